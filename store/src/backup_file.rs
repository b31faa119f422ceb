//! The steps a backup and a restore take the same way for the hub and the agent: the store
//! part of an archive (snapshot and body files), the file written so that it exists only
//! complete and durable, and a restore unpacked and verified beside its target before the
//! target appears. What else each archive holds (configuration, keys) is its owner's business.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::archive::{self, ArchiveError, ArchiveWriter, Manifest};
use crate::{Blobs, Digest, SnapshotCopy};

/// The store snapshot inside a backup.
pub const STORE_MEMBER: &str = "store.redb";
/// Body files inside a backup, under their fan-out directory, named by their SHA-256.
pub const BODIES_PREFIX: &str = "bodies/";

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ArchiveError {
    let what = what.into();
    move |source| ArchiveError::Io { what, source }
}

/// A file or directory removed however the operation that made it ends, unless kept.
pub struct Removed(PathBuf);

impl Removed {
    /// A new file name for a backup's store snapshot, in `blobs`' `tmp/` directory (which the
    /// store's owner empties when it opens, so a snapshot left by a crash does not stay).
    pub fn snapshot_in(blobs: &Blobs) -> Self {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Removed::new(
            blobs
                .dir()
                .join("tmp")
                .join(format!("backup-snapshot-{}-{ms}.redb", std::process::id())),
        )
    }

    /// Removes `path` when dropped.
    pub fn new(path: PathBuf) -> Self {
        Removed(path)
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Keep it after all.
    pub fn keep(mut self) {
        self.0 = PathBuf::new();
    }
}

impl Drop for Removed {
    fn drop(&mut self) {
        if self.0.as_os_str().is_empty() {
            return;
        }
        match self.0.is_dir() {
            true => {
                let _ = std::fs::remove_dir_all(&self.0);
            }
            false => {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }
}

/// What the store part of a backup holds.
pub struct StorePart {
    /// When the snapshot was taken, Unix ms.
    pub snapshot_ms: u64,
    /// Rows per table.
    pub copy: SnapshotCopy,
    /// Bodies kept as files that the snapshot references.
    pub body_files: Vec<Digest>,
}

/// Append the store part of a backup: the snapshot file `snapshot` (removed afterwards) as
/// [`STORE_MEMBER`], then every body file it references (a file missing at backup time is
/// left out with a warning: it was found damaged and waits for repair). Returns what the
/// manifest says of it; `documents` is the owner's count. The caller holds body removals
/// ([`Blobs::hold_removals`]) from before the snapshot until this returns.
pub fn append_store_part<W: Write>(
    out: &mut ArchiveWriter<W>,
    snapshot: Removed,
    part: &StorePart,
    blobs: &Blobs,
    documents: u64,
    progress: &dyn Fn(u64),
) -> Result<BTreeMap<String, Value>, ArchiveError> {
    out.append_file(STORE_MEMBER, snapshot.path(), 0o600)?;
    drop(snapshot);
    progress(out.bytes());
    let mut body_bytes = 0u64;
    for digest in &part.body_files {
        let hex = hex::encode(digest);
        let member = format!("{BODIES_PREFIX}{}/{hex}", &hex[..2]);
        let before = out.bytes();
        match out.append_file(&member, &blobs.path(digest), 0o600) {
            Ok(()) => {}
            Err(ArchiveError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                tracing::warn!(digest = %hex, "body file missing at backup time: left out");
                continue;
            }
            Err(e) => return Err(e),
        }
        body_bytes += out.bytes() - before;
        progress(out.bytes());
    }
    let rows: serde_json::Map<String, Value> = part
        .copy
        .tables
        .iter()
        .map(|(t, n)| (t.clone(), json!(n)))
        .collect();
    let mut c = BTreeMap::new();
    c.insert("store_backend".into(), json!("redb"));
    c.insert("snapshot_ms".into(), json!(part.snapshot_ms));
    c.insert("documents".into(), json!(documents));
    c.insert("body_files".into(), json!(part.body_files.len()));
    c.insert("body_file_bytes".into(), json!(body_bytes));
    c.insert("store_rows".into(), Value::Object(rows));
    Ok(c)
}

/// A file of the deployment or agent directory that a backup carries besides the store.
pub struct DirFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its member name (private files under `keys/`).
    pub member: String,
    /// A private key or secret: carried only when asked for, mode 0600.
    pub private: bool,
}

/// Append the directory's files: the public ones (each must exist), and the private ones
/// that exist only if `include_keys`, marking the archive as holding private keys.
pub fn append_dir_files<W: Write>(
    w: &mut ArchiveWriter<W>,
    files: &[DirFile],
    include_keys: bool,
) -> Result<(), ArchiveError> {
    for f in files {
        match (f.private, f.path.exists()) {
            (true, _) if !include_keys => continue,
            (true, false) => continue,
            (false, false) => {
                return Err(ArchiveError::Io {
                    what: format!("{} is missing from the directory", f.path.display()),
                    source: io::Error::from(io::ErrorKind::NotFound),
                })
            }
            _ => {}
        }
        let mode = if f.private { 0o600 } else { 0o644 };
        w.append_file(&f.member, &f.path, mode)?;
        if f.private {
            w.holds_private_keys();
        }
    }
    Ok(())
}

/// The archive file being written by [`write_new`].
pub type FileArchive = ArchiveWriter<BufWriter<File>>;

/// Write a backup of `kind` into the new file `to`: created beside it as `….partial` with
/// mode 0600 (a backup holds every document), filled by `fill` (which returns the manifest's
/// contents and its own result), fsync'd, then renamed, so a backup file that exists is
/// complete. Nothing is left on failure. Returns the manifest, `fill`'s result and the size.
pub fn write_new<T, E: From<ArchiveError>>(
    to: &Path,
    kind: &str,
    fill: impl FnOnce(&mut FileArchive) -> Result<(BTreeMap<String, Value>, T), E>,
) -> Result<(Manifest, T, u64), E> {
    use std::os::unix::fs::OpenOptionsExt;
    if to.symlink_metadata().is_ok() {
        return Err(ArchiveError::Exists {
            path: to.to_owned(),
        }
        .into());
    }
    let partial = PathBuf::from(format!("{}.partial", to.display()));
    let _ = std::fs::remove_file(&partial);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(io_err(format!("creating {}", partial.display())))?;
    let guard = Removed::new(partial.clone());
    let mut w = ArchiveWriter::new(BufWriter::with_capacity(1 << 20, file), kind)?;
    let (contents, extra) = fill(&mut w)?;
    let (buf, manifest) = w.finish(contents)?;
    let file = buf
        .into_inner()
        .map_err(|e| io_err(format!("writing {}", partial.display()))(e.into_error()))?;
    file.sync_all()
        .map_err(io_err(format!("fsync {}", partial.display())))?;
    std::fs::rename(&partial, to).map_err(io_err(format!(
        "renaming {} to {}",
        partial.display(),
        to.display()
    )))?;
    guard.keep();
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        sync_dir(dir)?;
    }
    let bytes = std::fs::metadata(to)
        .map_err(io_err(format!("reading {}", to.display())))?
        .len();
    Ok((manifest, extra, bytes))
}

fn sync_dir(dir: &Path) -> Result<(), ArchiveError> {
    crate::fsync_dir(dir).map_err(|e| ArchiveError::Io {
        what: format!("fsync {}", dir.display()),
        source: io::Error::other(e.to_string()),
    })
}

/// A directory beside `dir` for the restore's work (`.NAME.WHAT-PID`), removed however the
/// restore ends.
fn sibling(dir: &Path, what: &str) -> Result<Removed, ArchiveError> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| ArchiveError::Target(format!("{} has no usable name", dir.display())))?;
    let path = dir.with_file_name(format!(".{name}.{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    Ok(Removed::new(path))
}

/// A backup unpacked and verified beside its target.
pub struct Unpacked {
    /// Where the members are (removed when dropped).
    pub dir: Removed,
    /// The backup's manifest.
    pub manifest: Manifest,
    /// The directory the restore is assembled in (removed when dropped unless put in place).
    pub staged: Removed,
    /// The owner of an empty target that is not root's (the package's directory): a restore
    /// run as root gives it what it creates.
    owner: Option<(u32, u32)>,
}

/// Unpack the backup `from`, of `kind`, beside the restore's target `target` (which must not
/// exist or be an empty directory) and verify it: its header (format, kind), every member
/// against the manifest, each body file against its name, and that it holds a snapshot of an
/// embedded store. Nothing is written into `target`.
pub fn unpack(
    from: &Path,
    kind: &str,
    target: &Path,
    progress: &dyn Fn(u64),
) -> Result<Unpacked, ArchiveError> {
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(target)
        .ok()
        .filter(|m| m.is_dir() && m.uid() != 0)
        .map(|m| (m.uid(), m.gid()));
    if let Ok(mut entries) = std::fs::read_dir(target) {
        if entries.next().is_some() {
            return Err(ArchiveError::Target(format!(
                "{} is not empty; a backup is restored into a new or empty directory",
                target.display()
            )));
        }
    } else if target.symlink_metadata().is_ok() {
        return Err(ArchiveError::Target(format!(
            "{} exists and is not a directory",
            target.display()
        )));
    }
    let file = File::open(from).map_err(io_err(format!("opening {}", from.display())))?;
    let dir = sibling(target, "unpacking")?;
    let manifest = archive::extract(
        io::BufReader::with_capacity(1 << 20, file),
        kind,
        dir.path(),
        progress,
    )?;
    if manifest
        .contents
        .get("store_backend")
        .and_then(Value::as_str)
        != Some("redb")
    {
        return Err(ArchiveError::Damaged(
            "the backup names no embedded store (store_backend is not \"redb\")".into(),
        ));
    }
    for m in &manifest.members {
        if let Some(rest) = m.path.strip_prefix(BODIES_PREFIX) {
            let name = rest.rsplit('/').next().unwrap_or_default();
            if name != m.sha256 {
                return Err(ArchiveError::Damaged(format!(
                    "body file {} holds content with SHA-256 {}",
                    m.path, m.sha256
                )));
            }
        }
    }
    if !manifest.members.iter().any(|m| m.path == STORE_MEMBER) {
        return Err(ArchiveError::Damaged(format!(
            "the backup has no {STORE_MEMBER}"
        )));
    }
    let staged = sibling(target, "restoring")?;
    Ok(Unpacked {
        dir,
        manifest,
        staged,
        owner,
    })
}

impl Unpacked {
    /// Body files in the backup.
    pub fn body_files(&self) -> u64 {
        self.manifest
            .members
            .iter()
            .filter(|m| m.path.starts_with(BODIES_PREFIX))
            .count() as u64
    }

    /// Move the member (or directory of members) `member` to `to` under the staged
    /// directory; `Ok(false)` when the backup has no such member.
    pub fn take(&self, member: &str, to: &str) -> Result<bool, ArchiveError> {
        let from = self.dir.path().join(member);
        if from.symlink_metadata().is_err() {
            return Ok(false);
        }
        let dest = self.staged.path().join(to);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .map_err(io_err(format!("creating {}", parent.display())))?;
        }
        std::fs::rename(&from, &dest).map_err(io_err(format!(
            "moving {} to {}",
            from.display(),
            dest.display()
        )))?;
        Ok(true)
    }

    /// Move every file directly under the member directory `member` into `to`.
    pub fn take_files(&self, member: &str, to: &str) -> Result<(), ArchiveError> {
        let Ok(entries) = std::fs::read_dir(self.dir.path().join(member)) else {
            return Ok(());
        };
        for e in entries {
            let e = e.map_err(io_err(format!("listing {member}")))?;
            if e.path().is_file() {
                if let Some(name) = e.file_name().to_str() {
                    self.take(&format!("{member}/{name}"), &format!("{to}/{name}"))?;
                }
            }
        }
        Ok(())
    }

    /// Check the restored store's rows per table against the snapshot's, as the manifest
    /// lists them.
    pub fn check_rows(&self, rows: &[(String, u64)]) -> Result<(), ArchiveError> {
        let expected = self
            .manifest
            .contents
            .get("store_rows")
            .and_then(Value::as_object)
            .ok_or_else(|| ArchiveError::Damaged("the manifest lists no rows per table".into()))?;
        for (table, n) in rows {
            let want = expected.get(table).and_then(Value::as_u64).unwrap_or(0);
            if *n != want {
                return Err(ArchiveError::Damaged(format!(
                    "the restored store's table \"{table}\" holds {n} rows, the backup's \
                     snapshot {want}"
                )));
            }
        }
        Ok(())
    }

    /// Check that every body file the restored store references is restored, but for those
    /// the backup left out (missing at backup time).
    pub fn check_bodies(&self, referenced: &[Digest], blobs: &Blobs) -> Result<(), ArchiveError> {
        let missing: Vec<String> = referenced
            .iter()
            .filter(|d| !blobs.contains(d))
            .map(hex::encode)
            .collect();
        let left_out = (self.manifest.number("body_files") as usize)
            .saturating_sub(self.body_files() as usize);
        if missing.len() > left_out {
            return Err(ArchiveError::Damaged(format!(
                "the restored store references {} body files the backup does not hold (first: {})",
                missing.len(),
                missing[0]
            )));
        }
        Ok(())
    }

    /// Put the staged directory in place as `target` (an empty directory there is replaced),
    /// durably. Run as root into an empty directory another user owns (the package's), the
    /// restored files are given to that user, modes kept.
    pub fn put_in_place(self, target: &Path) -> Result<(), ArchiveError> {
        if let Some((uid, gid)) = self.owner {
            // Only root's entries change: run as another user, this does nothing.
            let root_owned = std::os::unix::fs::MetadataExt::uid(
                &std::fs::metadata(self.staged.path())
                    .map_err(io_err(format!("reading {}", self.staged.path().display())))?,
            ) == 0;
            let handed =
                crate::chown_tree(self.staged.path(), uid, gid).and_then(|()| match root_owned {
                    true => std::os::unix::fs::lchown(self.staged.path(), Some(uid), Some(gid))
                        .map_err(|e| crate::StoreError::Other(e.to_string())),
                    false => Ok(()),
                });
            handed.map_err(|e| ArchiveError::Io {
                what: format!(
                    "giving the restored files to the owner of {}",
                    target.display()
                ),
                source: io::Error::other(e.to_string()),
            })?;
        }
        sync_dir(self.staged.path())?;
        if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(io_err(format!("creating {}", parent.display())))?;
        }
        // Checked empty before unpacking: a rename replaces an empty directory.
        std::fs::rename(self.staged.path(), target).map_err(io_err(format!(
            "moving the restored directory to {}",
            target.display()
        )))?;
        self.staged.keep();
        if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        Ok(())
    }
}

/// What a backup command did (`poros-hub backup`, `poros-agent backup`).
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// The file written.
    pub file: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Whether the running service made the snapshot (else the command read the stopped store).
    pub online: bool,
    /// The file's size.
    pub bytes: u64,
}

impl BackupReport {
    /// The report as `--json` prints it.
    pub fn json(&self) -> Value {
        json!({
            "file": self.file,
            "online": self.online,
            "bytes": self.bytes,
            "snapshot_ms": self.manifest.number("snapshot_ms"),
            "documents": self.manifest.number("documents"),
            "body_files": self.manifest.number("body_files"),
            "contains_private_keys": self.manifest.contains_private_keys,
            "private_files": self.manifest.contents.get("private_files"),
            "members": self.manifest.members.len(),
            "format": self.manifest.format,
        })
    }
}

/// What a restore did (`poros-hub restore`, `poros-agent restore`).
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// The directory restored into.
    pub dir: PathBuf,
    /// The backup's manifest.
    pub manifest: Manifest,
    /// Documents in the restored store.
    pub documents: u64,
    /// Body files restored.
    pub body_files: u64,
    /// The restore's epoch, which a hub sends agents at connect (none for an agent).
    pub epoch: Option<u64>,
    /// Private files the directory still needs (a backup without keys).
    pub missing_private: Vec<String>,
}

impl RestoreReport {
    /// The report as `--json` prints it.
    pub fn json(&self) -> Value {
        let mut v = json!({
            "dir": self.dir,
            "snapshot_ms": self.manifest.number("snapshot_ms"),
            "written_by": self.manifest.written_by,
            "format": self.manifest.format,
            "documents": self.documents,
            "body_files": self.body_files,
            "contains_private_keys": self.manifest.contains_private_keys,
            "missing_private_files": self.missing_private,
        });
        if let Some(epoch) = self.epoch {
            v["epoch"] = json!(epoch);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_backup_leaves_no_file_and_an_existing_one_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let to = dir.path().join("b.tar");
        let err = write_new::<(), ArchiveError>(&to, "agent", |_| {
            Err(ArchiveError::Damaged("the snapshot failed".into()))
        })
        .expect_err("failed");
        assert!(matches!(err, ArchiveError::Damaged(_)), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
        let (_, (), bytes) = write_new::<(), ArchiveError>(&to, "agent", |w| {
            w.append_bytes(STORE_MEMBER, b"store", 0o600)?;
            let mut c = BTreeMap::new();
            c.insert("store_backend".into(), json!("redb"));
            Ok((c, ()))
        })
        .expect("written");
        assert_eq!(std::fs::metadata(&to).expect("file").len(), bytes);
        let err = write_new::<(), ArchiveError>(&to, "agent", |_| unreachable!("refused first"))
            .expect_err("exists");
        assert!(matches!(err, ArchiveError::Exists { .. }), "{err}");
    }

    #[test]
    fn a_restore_refuses_a_non_empty_target_and_fills_an_empty_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("b.tar");
        write_new::<(), ArchiveError>(&file, "agent", |w| {
            w.append_bytes(STORE_MEMBER, b"store", 0o600)?;
            w.append_bytes("agent.toml", b"x = 1", 0o644)?;
            let mut c = BTreeMap::new();
            c.insert("store_backend".into(), json!("redb"));
            Ok((c, ()))
        })
        .expect("written");
        let busy = dir.path().join("busy");
        std::fs::create_dir(&busy).expect("mkdir");
        std::fs::write(busy.join("keep"), b"k").expect("write");
        let err = unpack(&file, "agent", &busy, &|_| {})
            .err()
            .expect("refused");
        assert!(matches!(err, ArchiveError::Target(_)), "{err}");
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).expect("mkdir");
        let u = unpack(&file, "agent", &empty, &|_| {}).expect("unpacked");
        assert!(u.take("agent.toml", "agent.toml").expect("take"));
        assert!(!u.take("absent", "absent").expect("take"));
        u.put_in_place(&empty).expect("in place");
        assert_eq!(
            std::fs::read(empty.join("agent.toml")).expect("read"),
            b"x = 1"
        );
        // Nothing of the work is left beside the target.
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_restore_into_a_directory_another_user_owns_gives_it_the_files() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("b.tar");
        write_new::<(), ArchiveError>(&file, "agent", |w| {
            w.append_bytes(STORE_MEMBER, b"store", 0o600)?;
            w.append_bytes("keys/sign.key", b"secret", 0o600)?;
            let mut c = BTreeMap::new();
            c.insert("store_backend".into(), json!("redb"));
            Ok((c, ()))
        })
        .expect("written");
        let me = std::fs::metadata(&file).expect("meta").uid();
        let target = dir.path().join("packaged");
        std::fs::create_dir(&target).expect("mkdir");
        // As root (CI, a packaged restore): the directory is the service user's.
        let service = if me == 0 { 64_123 } else { me };
        if me == 0 {
            std::os::unix::fs::chown(&target, Some(service), Some(service)).expect("chown");
        }
        let u = unpack(&file, "agent", &target, &|_| {}).expect("unpacked");
        u.take("keys/sign.key", "keys/sign.key").expect("take");
        u.put_in_place(&target).expect("in place");
        for p in [
            target.clone(),
            target.join("keys"),
            target.join("keys/sign.key"),
        ] {
            let m = std::fs::metadata(&p).expect("meta");
            assert_eq!(m.uid(), service, "{}", p.display());
        }
        let key = std::fs::metadata(target.join("keys/sign.key")).expect("meta");
        assert_eq!(key.mode() & 0o777, 0o600, "modes are kept");
    }
}
