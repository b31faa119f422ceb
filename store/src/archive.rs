//! The backup archive of a Poros store (hub or agent): a tar file whose first member,
//! `POROS-BACKUP`, names the archive format, the kind of store and the version that wrote it,
//! and whose last member, `manifest.json`, lists every other member with its length and
//! SHA-256. What the members are (the store snapshot, body files, configuration, keys) is the
//! owner's business; this module writes them hashed and reads them back verified.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use ring::digest::{Context, SHA256};
use serde::{Deserialize, Serialize};

/// The archive format this version writes and the newest it reads.
pub const BACKUP_FORMAT: u32 = 1;
/// The first member: says what the file is, readable with `tar -xOf FILE POROS-BACKUP`.
pub const HEADER_MEMBER: &str = "POROS-BACKUP";
/// The last member: every other member with its length and SHA-256.
pub const MANIFEST_MEMBER: &str = "manifest.json";

/// Why an archive could not be written or read back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// Reading or writing failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The file is not a Poros backup.
    #[error("not a Poros backup: {0}")]
    NotABackup(String),
    /// The archive was written by a newer version, in a format this one does not know.
    #[error(
        "the backup is in archive format {found}, written by Poros {written_by}; this version \
         reads format {BACKUP_FORMAT} and older: restore it with a newer poros binary"
    )]
    NewerFormat {
        /// The format the archive names.
        found: u32,
        /// The version that wrote it.
        written_by: String,
    },
    /// A backup of another kind of store (an agent's given to the hub, or the reverse).
    #[error(
        "this is a backup of kind \"{found}\", not \"{expected}\": restore it with \
         `poros-{found} restore`"
    )]
    WrongKind {
        /// What the caller restores.
        expected: String,
        /// What the archive holds.
        found: String,
    },
    /// The backup file to write exists already.
    #[error("{} exists already; a backup is written into a new file", .path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The directory to restore into cannot take the backup (not empty, not a directory).
    #[error("{0}")]
    Target(String),
    /// A member differs from what the manifest says, is missing, or is not listed: the file
    /// was damaged or changed after it was written.
    #[error("the backup does not verify: {0}")]
    Damaged(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ArchiveError {
    let what = what.into();
    move |source| ArchiveError::Io { what, source }
}

/// One member as the manifest lists it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Member {
    /// Path inside the archive.
    pub path: String,
    /// Length in bytes.
    pub len: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

/// The last member of an archive: what it holds and how to check it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// Archive format ([`BACKUP_FORMAT`]).
    pub format: u32,
    /// `hub` or `agent`.
    pub kind: String,
    /// The Poros version that wrote it.
    pub written_by: String,
    /// When the archive was finished, Unix ms.
    pub created_ms: u64,
    /// The owner's description of the contents (snapshot time, store format, rows per
    /// table, documents, body files, …).
    pub contents: BTreeMap<String, serde_json::Value>,
    /// Whether private keys or secrets are inside: such a file must be kept like the keys.
    pub contains_private_keys: bool,
    /// Every member but the header and the manifest, in archive order.
    pub members: Vec<Member>,
}

impl Manifest {
    /// A content value as a number (0 when absent).
    pub fn number(&self, key: &str) -> u64 {
        self.contents
            .get(key)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    }
}

struct Hashing<R> {
    inner: R,
    ctx: Context,
    len: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.ctx.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

impl<R> Hashing<R> {
    fn new(inner: R) -> Self {
        Hashing {
            inner,
            ctx: Context::new(&SHA256),
            len: 0,
        }
    }

    fn member(self, path: &str) -> Member {
        Member {
            path: path.to_owned(),
            len: self.len,
            sha256: hex::encode(self.ctx.finish().as_ref()),
        }
    }
}

fn header(len: u64, mode: u32, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(len);
    h.set_mode(mode);
    h.set_mtime(mtime);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    h
}

/// Writes an archive: the header member at once, then members, then the manifest.
pub struct ArchiveWriter<W: Write> {
    tar: tar::Builder<W>,
    kind: String,
    members: Vec<Member>,
    bytes: u64,
    private_keys: bool,
}

impl<W: Write> ArchiveWriter<W> {
    /// Start an archive of a `kind` store into `out`.
    pub fn new(out: W, kind: &str) -> Result<Self, ArchiveError> {
        let mut w = ArchiveWriter {
            tar: tar::Builder::new(out),
            kind: kind.to_owned(),
            members: Vec::new(),
            bytes: 0,
            private_keys: false,
        };
        let text = format!(
            "Poros backup, archive format {BACKUP_FORMAT}\nkind: {kind}\nwritten by: poros {}\n\
             Restore with `poros-{kind} restore --from FILE --dir DIR`; the members are listed \
             with their SHA-256 in {MANIFEST_MEMBER}.\n",
            env!("CARGO_PKG_VERSION")
        );
        w.raw(HEADER_MEMBER, text.as_bytes(), 0o644)?;
        Ok(w)
    }

    fn raw(&mut self, path: &str, data: &[u8], mode: u32) -> Result<(), ArchiveError> {
        let mut h = header(data.len() as u64, mode, crate::now_secs());
        self.tar
            .append_data(&mut h, path, data)
            .map_err(io_err(format!("writing {path} into the backup")))
    }

    /// Append `len` bytes read from `from` as `path` (file mode `mode`), hashed as written.
    pub fn append(
        &mut self,
        path: &str,
        len: u64,
        from: impl Read,
        mode: u32,
    ) -> Result<&Member, ArchiveError> {
        check_member_path(path)?;
        let mut h = header(len, mode, crate::now_secs());
        let mut hashing = Hashing::new(from.take(len));
        self.tar
            .append_data(&mut h, path, &mut hashing)
            .map_err(io_err(format!("writing {path} into the backup")))?;
        if hashing.len != len {
            return Err(ArchiveError::Io {
                what: format!("reading {path} for the backup"),
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{} bytes read of {len}", hashing.len),
                ),
            });
        }
        self.bytes += len;
        self.members.push(hashing.member(path));
        Ok(self.members.last().expect("just pushed"))
    }

    /// Append a file of this machine as `path`, with its own length at the time.
    pub fn append_file(&mut self, path: &str, file: &Path, mode: u32) -> Result<(), ArchiveError> {
        let f = std::fs::File::open(file).map_err(io_err(format!("opening {}", file.display())))?;
        let len = f
            .metadata()
            .map_err(io_err(format!("reading {}", file.display())))?
            .len();
        self.append(path, len, f, mode)?;
        Ok(())
    }

    /// Append bytes as `path`.
    pub fn append_bytes(&mut self, path: &str, data: &[u8], mode: u32) -> Result<(), ArchiveError> {
        self.append(path, data.len() as u64, data, mode)?;
        Ok(())
    }

    /// Mark the archive as holding private keys or secrets (said in its manifest).
    pub fn holds_private_keys(&mut self) {
        self.private_keys = true;
    }

    /// Bytes of members written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Copy every member of another archive of the same kind (e.g. the one a running hub
    /// streams) into this one, checking each against that archive's manifest; returns that
    /// manifest. `progress` is called with the bytes copied so far.
    pub fn copy_members_of(
        &mut self,
        from: impl Read,
        progress: &dyn Fn(u64),
    ) -> Result<Manifest, ArchiveError> {
        let mut ar = tar::Archive::new(from);
        let mut seen: Vec<Member> = Vec::new();
        let mut first = true;
        let mut manifest = None;
        for entry in ar.entries().map_err(io_err("reading the backup stream"))? {
            let mut e = entry.map_err(io_err("reading the backup stream"))?;
            let path = member_name(&e)?;
            let len = e.size();
            if first {
                first = false;
                let mut text = String::new();
                e.read_to_string(&mut text)
                    .map_err(io_err("reading the backup stream"))?;
                check_header(&path, &text, &self.kind)?;
                continue;
            }
            if path == MANIFEST_MEMBER {
                let mut text = Vec::new();
                e.read_to_end(&mut text)
                    .map_err(io_err("reading the backup stream"))?;
                manifest = Some(parse_manifest(&text)?);
                continue;
            }
            let mode = e.header().mode().unwrap_or(0o600);
            let m = self.append(&path, len, &mut e, mode)?.clone();
            progress(self.bytes);
            seen.push(m);
        }
        let manifest = manifest
            .ok_or_else(|| ArchiveError::Damaged("the stream ended before its manifest".into()))?;
        compare(&manifest, &seen)?;
        if manifest.contains_private_keys {
            self.private_keys = true;
        }
        Ok(manifest)
    }

    /// Write the manifest and end the archive; returns the output and the manifest.
    pub fn finish(
        mut self,
        contents: BTreeMap<String, serde_json::Value>,
    ) -> Result<(W, Manifest), ArchiveError> {
        let manifest = Manifest {
            format: BACKUP_FORMAT,
            kind: self.kind.clone(),
            written_by: env!("CARGO_PKG_VERSION").to_owned(),
            created_ms: crate::now_secs() * 1000,
            contents,
            contains_private_keys: self.private_keys,
            members: std::mem::take(&mut self.members),
        };
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| ArchiveError::Io {
            what: "encoding the manifest".into(),
            source: io::Error::other(e),
        })?;
        self.raw(MANIFEST_MEMBER, &json, 0o644)?;
        let out = self.tar.into_inner().map_err(io_err("ending the backup"))?;
        Ok((out, manifest))
    }
}

fn member_name<R: Read>(e: &tar::Entry<R>) -> Result<String, ArchiveError> {
    let path = e.path().map_err(io_err("reading a member's name"))?;
    let s = path
        .to_str()
        .ok_or_else(|| ArchiveError::NotABackup("a member's name is not UTF-8".into()))?
        .to_owned();
    Ok(s)
}

/// A member path must stay inside the directory it is extracted into.
fn check_member_path(path: &str) -> Result<(), ArchiveError> {
    let p = Path::new(path);
    let ok = !path.is_empty()
        && p.components().all(|c| matches!(c, Component::Normal(_)))
        && path != HEADER_MEMBER
        && path != MANIFEST_MEMBER;
    if ok {
        Ok(())
    } else {
        Err(ArchiveError::NotABackup(format!(
            "member name \"{path}\" is not allowed"
        )))
    }
}

fn check_header(path: &str, text: &str, kind: &str) -> Result<(), ArchiveError> {
    if path != HEADER_MEMBER {
        return Err(ArchiveError::NotABackup(format!(
            "its first member is \"{path}\", not {HEADER_MEMBER}"
        )));
    }
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).map(str::trim).map(str::to_owned))
    };
    let format = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("Poros backup, archive format "))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .ok_or_else(|| ArchiveError::NotABackup(format!("{HEADER_MEMBER} names no format")))?;
    let written_by = field("written by:").unwrap_or_default();
    if format > BACKUP_FORMAT {
        return Err(ArchiveError::NewerFormat {
            found: format,
            written_by,
        });
    }
    let found = field("kind:").unwrap_or_default();
    if found != kind {
        return Err(ArchiveError::WrongKind {
            expected: kind.to_owned(),
            found,
        });
    }
    Ok(())
}

fn parse_manifest(bytes: &[u8]) -> Result<Manifest, ArchiveError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ArchiveError::Damaged(format!("{MANIFEST_MEMBER} does not parse: {e}")))
}

fn compare(manifest: &Manifest, seen: &[Member]) -> Result<(), ArchiveError> {
    let listed: BTreeMap<&str, &Member> = manifest
        .members
        .iter()
        .map(|m| (m.path.as_str(), m))
        .collect();
    for m in seen {
        match listed.get(m.path.as_str()) {
            None => {
                return Err(ArchiveError::Damaged(format!(
                    "{} is in the archive but not in its manifest",
                    m.path
                )))
            }
            Some(l) if *l != m => {
                return Err(ArchiveError::Damaged(format!(
                    "{}: the manifest says {} bytes with SHA-256 {}, the archive holds {} bytes \
                     with SHA-256 {}",
                    m.path, l.len, l.sha256, m.len, m.sha256
                )))
            }
            Some(_) => {}
        }
    }
    if seen.len() != listed.len() {
        let have: std::collections::BTreeSet<&str> = seen.iter().map(|m| m.path.as_str()).collect();
        let missing: Vec<&str> = listed
            .keys()
            .filter(|p| !have.contains(*p))
            .copied()
            .collect();
        return Err(ArchiveError::Damaged(format!(
            "members listed in the manifest are missing: {}",
            missing.join(", ")
        )));
    }
    Ok(())
}

/// Extract an archive of a `kind` store into the new directory `into` (created here, mode
/// 0700), checking the header first and every member against the manifest at the end. On
/// any error the caller should remove `into`: nothing in it is verified. `progress` is called
/// with the bytes extracted so far.
pub fn extract(
    from: impl Read,
    kind: &str,
    into: &Path,
    progress: &dyn Fn(u64),
) -> Result<Manifest, ArchiveError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(into)
        .map_err(io_err(format!("creating {}", into.display())))?;
    let mut ar = tar::Archive::new(from);
    let mut seen = Vec::new();
    let mut first = true;
    let mut manifest = None;
    let mut bytes = 0u64;
    for entry in ar.entries().map_err(io_err("reading the backup"))? {
        let mut e = entry.map_err(io_err("reading the backup"))?;
        let path = member_name(&e)?;
        if first {
            first = false;
            let mut text = String::new();
            e.read_to_string(&mut text)
                .map_err(io_err("reading the backup"))?;
            check_header(&path, &text, kind)?;
            continue;
        }
        if manifest.is_some() {
            return Err(ArchiveError::Damaged(format!(
                "{path} follows the manifest"
            )));
        }
        if path == MANIFEST_MEMBER {
            let mut text = Vec::new();
            e.read_to_end(&mut text)
                .map_err(io_err("reading the backup"))?;
            manifest = Some(parse_manifest(&text)?);
            continue;
        }
        check_member_path(&path)?;
        if e.header().entry_type() != tar::EntryType::Regular {
            return Err(ArchiveError::NotABackup(format!(
                "member {path} is not a regular file"
            )));
        }
        let dest: PathBuf = into.join(&path);
        if let Some(parent) = dest.parent() {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .recursive(true)
                .create(parent)
                .map_err(io_err(format!("creating {}", parent.display())))?;
        }
        let mode = e.header().mode().unwrap_or(0o600) & 0o700;
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&dest)
            .map_err(io_err(format!("creating {}", dest.display())))?;
        let mut hashing = Hashing::new(&mut e);
        io::copy(&mut hashing, &mut out).map_err(io_err(format!("extracting {path}")))?;
        out.sync_all()
            .map_err(io_err(format!("fsync {}", dest.display())))?;
        bytes += hashing.len;
        progress(bytes);
        seen.push(hashing.member(&path));
    }
    if first {
        return Err(ArchiveError::NotABackup(
            "the file is empty or not a tar archive".into(),
        ));
    }
    let manifest = manifest.ok_or_else(|| {
        ArchiveError::Damaged("the archive ends before its manifest (truncated?)".into())
    })?;
    if manifest.format > BACKUP_FORMAT {
        return Err(ArchiveError::NewerFormat {
            found: manifest.format,
            written_by: manifest.written_by.clone(),
        });
    }
    compare(&manifest, &seen)?;
    sync_tree(into)?;
    Ok(manifest)
}

/// fsync every directory under `dir` (the extracted files were synced one by one).
fn sync_tree(dir: &Path) -> Result<(), ArchiveError> {
    for entry in std::fs::read_dir(dir).map_err(io_err(format!("listing {}", dir.display())))? {
        let entry = entry.map_err(io_err(format!("listing {}", dir.display())))?;
        if entry.path().is_dir() {
            sync_tree(&entry.path())?;
        }
    }
    crate::fsync_dir(dir).map_err(|e| ArchiveError::Io {
        what: format!("fsync {}", dir.display()),
        source: io::Error::other(e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(kind: &str) -> Vec<u8> {
        let mut w = ArchiveWriter::new(Vec::new(), kind).expect("new");
        w.append_bytes("store.redb", b"the store", 0o600)
            .expect("store");
        w.append_bytes("bodies/ab/abcd", &vec![7u8; 100_000], 0o600)
            .expect("body");
        let mut c = BTreeMap::new();
        c.insert("documents".into(), 3.into());
        w.finish(c).expect("finish").0
    }

    #[test]
    fn what_is_written_is_extracted_and_verified() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bytes = archive("hub");
        let into = dir.path().join("x");
        let m = extract(&bytes[..], "hub", &into, &|_| {}).expect("extract");
        assert_eq!(m.number("documents"), 3);
        assert_eq!(m.members.len(), 2);
        assert!(!m.contains_private_keys);
        assert_eq!(
            std::fs::read(into.join("store.redb")).expect("read"),
            b"the store"
        );
        assert_eq!(
            std::fs::read(into.join("bodies/ab/abcd"))
                .expect("read")
                .len(),
            100_000
        );
    }

    #[test]
    fn a_changed_byte_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut bytes = archive("hub");
        // The body member's data: a run of 7s somewhere after the header blocks.
        let at = bytes
            .windows(64)
            .position(|w| w.iter().all(|b| *b == 7))
            .expect("body data");
        bytes[at + 10] = 8;
        let err = extract(&bytes[..], "hub", &dir.path().join("x"), &|_| {}).expect_err("damaged");
        assert!(
            matches!(&err, ArchiveError::Damaged(m) if m.contains("bodies/ab/abcd")),
            "{err}"
        );
    }

    #[test]
    fn a_truncated_archive_wrong_kind_or_newer_format_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bytes = archive("hub");
        let err = extract(
            &bytes[..bytes.len() / 2],
            "hub",
            &dir.path().join("a"),
            &|_| {},
        )
        .expect_err("truncated");
        assert!(
            matches!(err, ArchiveError::Damaged(_) | ArchiveError::Io { .. }),
            "{err}"
        );
        let err = extract(&bytes[..], "agent", &dir.path().join("b"), &|_| {}).expect_err("kind");
        assert!(matches!(err, ArchiveError::WrongKind { .. }), "{err}");
        // An archive from a future version: its header names format 9.
        let mut t = tar::Builder::new(Vec::new());
        let text = b"Poros backup, archive format 9\nkind: hub\nwritten by: poros 9.0.0\n";
        let mut h = header(text.len() as u64, 0o644, 0);
        t.append_data(&mut h, HEADER_MEMBER, &text[..])
            .expect("append");
        let future = t.into_inner().expect("tar");
        let err = extract(&future[..], "hub", &dir.path().join("c"), &|_| {}).expect_err("newer");
        assert!(
            matches!(&err, ArchiveError::NewerFormat { found: 9, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("newer poros binary"), "{err}");
    }

    #[test]
    fn members_copied_from_another_archive_are_checked_against_its_manifest() {
        let bytes = archive("hub");
        let mut w = ArchiveWriter::new(Vec::new(), "hub").expect("new");
        let theirs = w.copy_members_of(&bytes[..], &|_| {}).expect("copy");
        assert_eq!(theirs.members.len(), 2);
        w.append_bytes("config/hub.toml", b"x = 1", 0o644)
            .expect("add");
        let (out, mine) = w.finish(theirs.contents.clone()).expect("finish");
        assert_eq!(mine.members.len(), 3);
        let dir = tempfile::tempdir().expect("tempdir");
        extract(&out[..], "hub", &dir.path().join("x"), &|_| {}).expect("extract");
    }
}
