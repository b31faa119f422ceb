//! Backups of a hub on the embedded store: `poros-hub backup` and `poros-hub restore`.
//!
//! A backup is a [`poros_store::archive`] file of kind `hub`:
//! - `store.redb`: a consistent snapshot of the store, taken while the hub runs (one read
//!   transaction; the exchange goes on), with every body file it references under
//!   `bodies/<fan>/<sha256>` (removals of body files are held while they are copied);
//! - `config/hub.toml` and the public half of `pki/` (CA and hub certificates, CRLs);
//! - only with `--include-keys`: the private keys of `pki/` and `admin.token` under `keys/`,
//!   and the manifest says so.
//!
//! A running hub produces the snapshot part itself (`GET /admin/v1/backup`, streamed); the
//! command copies it into the file, checking it against the hub's manifest, and adds the
//! files of the deployment directory. A stopped hub's store is read by the command directly.
//! What a backup taken at time T holds, and how the documents accepted after T come back
//! after a restore, is [`recovery`]'s part.

pub mod recovery;
pub mod restore;

use crate::deployment::HubPaths;
use crate::state::HubStore;
use anyhow::{bail, Context, Result};
use poros_store::archive::{ArchiveWriter, Manifest};
use poros_store::Blobs;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The archive kind of a hub backup.
pub const KIND: &str = "hub";
/// The store snapshot inside a backup.
pub const STORE_MEMBER: &str = "store.redb";
/// Body files inside a backup, under their fan-out directory.
pub const BODIES_PREFIX: &str = "bodies/";

/// Removes the snapshot's temporary file however the backup ends.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Write the store part of a backup (snapshot and body files) into `out`; returns what the
/// manifest says of it. Blocking. The caller holds body removals
/// ([`Blobs::hold_removals`]) for the whole call.
pub fn write_store<W: Write>(
    store: &HubStore,
    blobs: &Blobs,
    out: &mut ArchiveWriter<W>,
    progress: &dyn Fn(u64),
) -> Result<BTreeMap<String, Value>> {
    // In the body directory's `tmp/`, which the hub empties when it opens: a snapshot left by
    // a crash does not stay.
    let tmp = TempFile(blobs.dir().join("tmp").join(format!(
        "backup-snapshot-{}-{}.redb",
        std::process::id(),
        poros_transport::now_ms()
    )));
    let snap = store
        .snapshot_into(&tmp.0)
        .context("taking a snapshot of the store")?;
    out.append_file(STORE_MEMBER, &tmp.0, 0o600)?;
    drop(tmp);
    progress(out.bytes());
    let mut body_bytes = 0u64;
    for digest in &snap.body_files {
        let hex = hex::encode(digest);
        let member = format!("{BODIES_PREFIX}{}/{hex}", &hex[..2]);
        let path = blobs.path(digest);
        let before = out.bytes();
        match out.append_file(&member, &path, 0o600) {
            Ok(()) => {}
            // A body found damaged and held for repair has no good file: the restored hub
            // asks its sender again, as the running one does.
            Err(poros_store::archive::ArchiveError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                tracing::warn!(digest = %hex, "body file missing at backup time: left out, repaired from its sender after a restore");
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        body_bytes += out.bytes() - before;
        progress(out.bytes());
    }
    let rows: serde_json::Map<String, Value> = snap
        .copy
        .tables
        .iter()
        .map(|(t, n)| (t.clone(), json!(n)))
        .collect();
    let mut c = BTreeMap::new();
    c.insert("store_backend".into(), json!("redb"));
    c.insert("snapshot_ms".into(), json!(snap.snapshot_ms));
    c.insert("documents".into(), json!(snap.copy.rows_of("docs")));
    c.insert("body_files".into(), json!(snap.body_files.len()));
    c.insert("body_file_bytes".into(), json!(body_bytes));
    c.insert("store_rows".into(), Value::Object(rows));
    Ok(c)
}

/// What `poros-hub backup` did.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// The file written.
    pub file: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Whether a running hub made the snapshot (else the command read the stopped store).
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
            "members": self.manifest.members.len(),
            "format": self.manifest.format,
        })
    }
}

/// Files of the deployment directory a backup carries besides the store: (path in the
/// deployment, member name, mode, private).
fn deployment_files(paths: &HubPaths) -> Result<Vec<(PathBuf, String, u32, bool)>> {
    let mut out = vec![(paths.config(), "config/hub.toml".to_owned(), 0o644, false)];
    let pki = paths.at("pki");
    let mut names: Vec<String> = std::fs::read_dir(&pki)
        .with_context(|| format!("listing {}", pki.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect();
    names.sort();
    for name in names {
        let private = name.ends_with(".key");
        let member = if private {
            format!("keys/pki/{name}")
        } else {
            format!("pki/{name}")
        };
        let mode = if private { 0o600 } else { 0o644 };
        out.push((pki.join(&name), member, mode, private));
    }
    out.push((
        paths.at("admin.token"),
        "keys/admin.token".to_owned(),
        0o600,
        true,
    ));
    Ok(out)
}

/// Create `file` for writing a backup: new, mode 0600 (it holds every document).
fn create_output(file: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .with_context(|| format!("creating {}", file.display()))
}

/// `poros-hub backup`: write a backup of the deployment at `paths` into the new file `to`,
/// from the running hub if there is one, else from its stopped store. The file appears only
/// when complete and durable (written beside it as `…partial`, then renamed).
pub fn backup(
    paths: &HubPaths,
    to: &Path,
    include_keys: bool,
    progress: &dyn Fn(u64),
) -> Result<BackupReport> {
    if to.exists() {
        bail!(
            "{} exists already; a backup is written into a new file",
            to.display()
        );
    }
    let cfg = poros_config::HubConfig::load(&paths.config())
        .with_context(|| format!("reading {}", paths.config().display()))?;
    if cfg.store.backend != poros_config::StoreBackend::Redb {
        bail!(
            "this hub keeps its state in PostgreSQL: back the cluster up with PostgreSQL's tools \
             (pg_basebackup, or pgBackRest with WAL archiving), and the deployment directory \
             (hub.toml, pki/) with your file backups; see docs/backup.md"
        );
    }
    let partial = PathBuf::from(format!("{}.partial", to.display()));
    let _ = std::fs::remove_file(&partial);
    let result = (|| -> Result<(Manifest, bool)> {
        let file = create_output(&partial)?;
        let mut w = ArchiveWriter::new(std::io::BufWriter::with_capacity(1 << 20, file), KIND)?;
        let (contents, online) = match crate::cli::AdminClient::connect(paths)? {
            Some(client) => {
                let stream = client.stream("/admin/v1/backup")?;
                (w.copy_members_of(stream, progress)?.contents, true)
            }
            None => (offline_store_part(paths, &mut w, progress)?, false),
        };
        for (path, member, mode, private) in deployment_files(paths)? {
            if private && !include_keys {
                continue;
            }
            if !path.exists() && !private {
                bail!("{} is missing from the deployment", path.display());
            }
            if !path.exists() {
                continue;
            }
            w.append_file(&member, &path, mode)?;
            if private {
                w.holds_private_keys();
            }
        }
        let (buf, manifest) = w.finish(contents)?;
        let file = buf.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
            .with_context(|| format!("fsync {}", partial.display()))?;
        Ok((manifest, online))
    })();
    let (manifest, online) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, to)
        .with_context(|| format!("renaming {} to {}", partial.display(), to.display()))?;
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        poros_store::fsync_dir(dir)?;
    }
    let bytes = std::fs::metadata(to)?.len();
    Ok(BackupReport {
        file: to.to_owned(),
        manifest,
        online,
        bytes,
    })
}

/// The store part of a backup of a stopped hub: the command opens the store itself (it
/// refuses if a hub holds it: then its admin API must answer).
fn offline_store_part<W: Write>(
    paths: &HubPaths,
    w: &mut ArchiveWriter<W>,
    progress: &dyn Fn(u64),
) -> Result<BTreeMap<String, Value>> {
    // Through the format check: an older store is upgraded (after its own backup) first.
    let (store, _) = HubStore::open_file(&paths.db()).map_err(|e| match e {
        poros_store::StoreError::Locked { .. } => anyhow::anyhow!(
            "the hub of {} holds its store but its operations listener does not answer; \
             back it up through the running hub (check `run/ops.addr`) or stop it first",
            paths.root.display()
        ),
        e => anyhow::Error::from(e).context(format!("opening {}", paths.db().display())),
    })?;
    let blobs = Blobs::open(&paths.bodies())?;
    write_store(&store, &blobs, w, progress)
}

/// Feeds what a blocking archive writer writes to an HTTP body, 256 KiB at a time.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
    buf: Vec<u8>,
}

const STREAM_CHUNK: usize = 256 * 1024;

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= STREAM_CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = bytes::Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(STREAM_CHUNK),
        ));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the backup's reader went away",
            )
        })
    }
}

/// The running hub's part of a backup (`GET /admin/v1/backup`): an archive of the store's
/// snapshot and its body files, written on the blocking pool while the exchange goes on and
/// streamed as it is written. An error part-way ends the stream without its manifest, which
/// the reader takes as a failed backup.
pub(crate) async fn stream(hub: &crate::hub::Hub) -> Result<axum::body::Body> {
    let Some(store) = hub.store.embedded().cloned() else {
        bail!(
            "this hub keeps its state in PostgreSQL: back the cluster up with PostgreSQL's tools; \
             see docs/backup.md"
        );
    };
    // Before the snapshot begins, so that every body file it references stays until copied.
    let hold = hub.blobs.hold_removals().await;
    let blobs = hub.blobs.clone();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::task::spawn_blocking(move || {
        let _hold = hold;
        let sink = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(STREAM_CHUNK),
        };
        let started = std::time::Instant::now();
        let written = (|| -> Result<Manifest> {
            let mut w = ArchiveWriter::new(sink, KIND)?;
            let contents = write_store(&store, &blobs, &mut w, &|_| {})?;
            let (mut sink, manifest) = w.finish(contents)?;
            sink.flush()?;
            Ok(manifest)
        })();
        match written {
            Ok(m) => tracing::info!(
                documents = m.number("documents"),
                body_files = m.number("body_files"),
                ms = started.elapsed().as_millis() as u64,
                "backup snapshot streamed"
            ),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "backup snapshot failed");
                let _ = tx.blocking_send(Err(std::io::Error::other(format!("{e:#}"))));
            }
        }
    });
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(axum::body::Body::from_stream(chunks))
}
