//! `poros-hub restore`: a backup brought back as a new deployment directory, on this machine
//! or another, verified before it is put in place.

use super::KIND;
use crate::deployment::HubPaths;
use crate::state::HubStore;
use anyhow::{bail, Context, Result};
use poros_store::backup_file::{self, STORE_MEMBER};
use std::path::{Path, PathBuf};

/// Private files a deployment needs that a backup without keys does not carry.
const PRIVATE_FILES: &[&str] = &[
    "pki/network-ca.key",
    "pki/signing-ca.key",
    "pki/hub-tls.key",
    "pki/hub-sign.key",
    "pki/quic-reset.key",
    "admin.token",
];

pub use poros_store::backup_file::RestoreReport;

/// Restore the backup `from` as the new deployment directory `dir` (absent or empty). Every
/// member is checked against the manifest, each body file against its name (its SHA-256),
/// and the restored store's rows per table against the snapshot's; only then does `dir`
/// appear.
pub fn restore(from: &Path, dir: &Path, progress: &dyn Fn(u64)) -> Result<RestoreReport> {
    let unpacked = backup_file::unpack(from, KIND, dir, progress)
        .with_context(|| format!("restoring {}", from.display()))?;
    let paths = HubPaths::new(unpacked.staged.path());
    let rel = |p: PathBuf| -> Result<String> {
        Ok(p.strip_prefix(unpacked.staged.path())?
            .to_string_lossy()
            .into_owned())
    };
    unpacked.take(STORE_MEMBER, &rel(paths.db())?)?;
    std::fs::create_dir_all(paths.bodies())?;
    if let Ok(fans) = std::fs::read_dir(unpacked.dir.path().join("bodies")) {
        let bodies = rel(paths.bodies())?;
        for fan in fans {
            let name = fan?.file_name();
            let name = name.to_string_lossy();
            unpacked.take(&format!("bodies/{name}"), &format!("{bodies}/{name}"))?;
        }
    }
    if !unpacked.take("config/hub.toml", &rel(paths.config())?)? {
        bail!("the backup has no hub.toml");
    }
    unpacked.take_files("pki", "pki")?;
    unpacked.take_files("keys/pki", "pki")?;
    unpacked.take("keys/admin.token", "admin.token")?;

    let db = poros_store::Db::open(&paths.db())?;
    let store = HubStore::open(db)?;
    unpacked.check_rows(&store.rows_per_table()?)?;
    let blobs = poros_store::Blobs::open(&paths.bodies())?;
    // A body missing at backup time is repaired from its sender by the restored hub; any
    // other gap means the backup is incomplete.
    unpacked.check_bodies(&store.body_files()?, &blobs)?;
    let documents = store.document_count()?;
    let point = crate::state::RecoveryPoint::new(unpacked.manifest.number("snapshot_ms"))?;
    let epoch = point.epoch;
    store.mark_restored(point)?;
    drop(store);
    drop(blobs);
    let body_files = unpacked.body_files();
    let manifest = unpacked.manifest.clone();
    unpacked.put_in_place(dir)?;
    let missing_private = PRIVATE_FILES
        .iter()
        .filter(|f| !dir.join(f).exists())
        .map(|f| f.to_string())
        .collect();
    Ok(RestoreReport {
        dir: dir.to_owned(),
        documents,
        body_files,
        manifest,
        epoch: Some(epoch),
        missing_private,
    })
}
