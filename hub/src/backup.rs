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
use poros_store::archive::ArchiveWriter;
use poros_store::backup_file::{append_dir_files, append_store_part, write_new, DirFile, Removed};
use poros_store::Blobs;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// The archive kind of a hub backup.
pub const KIND: &str = "hub";

/// Write the store part of a backup (snapshot and body files) into `out`; returns what the
/// manifest says of it. Blocking. The caller holds body removals
/// ([`Blobs::hold_removals`]) for the whole call.
pub fn write_store<W: Write>(
    store: &HubStore,
    blobs: &Blobs,
    out: &mut ArchiveWriter<W>,
    progress: &dyn Fn(u64),
) -> Result<BTreeMap<String, Value>> {
    let tmp = Removed::snapshot_in(blobs);
    let snap = store
        .snapshot_into(tmp.path())
        .context("taking a snapshot of the store")?;
    // A body found damaged and held for repair has no good file: it is left out, and the
    // restored hub asks its sender again, as the running one does.
    let documents = snap.copy.rows_of("docs");
    Ok(append_store_part(
        out, tmp, &snap, blobs, documents, progress,
    )?)
}

pub use poros_store::backup_file::BackupReport;

/// Files of the deployment directory a backup carries besides the store.
fn deployment_files(paths: &HubPaths) -> Result<Vec<DirFile>> {
    let mut out = vec![DirFile {
        path: paths.config(),
        member: "config/hub.toml".to_owned(),
        private: false,
    }];
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
        let member = match private {
            true => format!("keys/pki/{name}"),
            false => format!("pki/{name}"),
        };
        out.push(DirFile {
            path: pki.join(&name),
            member,
            private,
        });
    }
    out.push(DirFile {
        path: paths.at("admin.token"),
        member: "keys/admin.token".to_owned(),
        private: true,
    });
    Ok(out)
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
    let cfg = poros_config::HubConfig::load(&paths.config())
        .with_context(|| format!("reading {}", paths.config().display()))?;
    if cfg.store.backend != poros_config::StoreBackend::Redb {
        bail!(
            "this hub keeps its state in PostgreSQL: back the cluster up with PostgreSQL's tools \
             (pg_basebackup, or pgBackRest with WAL archiving), and the deployment directory \
             (hub.toml, pki/) with your file backups; see docs/backup.md"
        );
    }
    let (manifest, online, bytes) = write_new(to, KIND, |w| -> Result<_> {
        let (contents, online) = match crate::cli::AdminClient::connect(paths)? {
            Some(client) => {
                let stream = client.stream("/admin/v1/backup")?;
                (w.copy_members_of(stream, progress)?.contents, true)
            }
            None => (offline_store_part(paths, w, progress)?, false),
        };
        append_dir_files(w, &deployment_files(paths)?, include_keys)?;
        Ok((contents, online))
    })?;
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

/// The running hub's part of a backup (`GET /admin/v1/backup`): an archive of the store's
/// snapshot and its body files, written on the blocking pool while the exchange goes on and
/// streamed as it is written.
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
    Ok(poros_transport::archive_stream::archive_body(
        KIND,
        hold,
        move |w| write_store(&store, &blobs, w, &|_| {}),
    ))
}
