//! `poros-hub restore`: a backup brought back as a new deployment directory, on this machine
//! or another, verified before it is put in place.

use super::{BODIES_PREFIX, KIND, STORE_MEMBER};
use crate::deployment::HubPaths;
use crate::state::HubStore;
use anyhow::{bail, Context, Result};
use poros_store::archive::{self, Manifest};
use serde_json::{json, Value};
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

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// The new deployment directory.
    pub dir: PathBuf,
    /// The backup's manifest.
    pub manifest: Manifest,
    /// Documents in the restored store.
    pub documents: u64,
    /// Body files restored.
    pub body_files: u64,
    /// The restore's epoch, sent to agents at connect.
    pub epoch: u64,
    /// Private files the deployment still needs (a backup without keys).
    pub missing_private: Vec<String>,
}

impl RestoreReport {
    /// The report as `--json` prints it.
    pub fn json(&self) -> Value {
        json!({
            "dir": self.dir,
            "snapshot_ms": self.manifest.number("snapshot_ms"),
            "written_by": self.manifest.written_by,
            "format": self.manifest.format,
            "documents": self.documents,
            "body_files": self.body_files,
            "epoch": self.epoch,
            "contains_private_keys": self.manifest.contains_private_keys,
            "missing_private_files": self.missing_private,
        })
    }
}

/// Removes a working directory however the restore ends.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sibling(dir: &Path, what: &str) -> Result<PathBuf> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} has no usable name", dir.display()))?;
    Ok(dir.with_file_name(format!(".{name}.{what}-{}", std::process::id())))
}

fn move_into(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::rename(from, to)
        .with_context(|| format!("moving {} to {}", from.display(), to.display()))
}

/// Restore the backup `from` as the new deployment directory `dir`. Every member is checked
/// against the manifest, each body file against its name (its SHA-256), and the restored
/// store's rows per table against the snapshot's; only then does `dir` appear.
pub fn restore(from: &Path, dir: &Path, progress: &dyn Fn(u64)) -> Result<RestoreReport> {
    if dir.exists() {
        bail!(
            "{} exists already; a backup is restored into a new directory",
            dir.display()
        );
    }
    let file = std::fs::File::open(from).with_context(|| format!("opening {}", from.display()))?;
    let unpacked = WorkDir(sibling(dir, "unpacking")?);
    let _ = std::fs::remove_dir_all(&unpacked.0);
    let manifest = archive::extract(
        std::io::BufReader::with_capacity(1 << 20, file),
        KIND,
        &unpacked.0,
        progress,
    )
    .with_context(|| format!("reading {}", from.display()))?;
    if manifest
        .contents
        .get("store_backend")
        .and_then(Value::as_str)
        != Some("redb")
    {
        bail!("the backup names no embedded store (store_backend is not \"redb\")");
    }
    for m in &manifest.members {
        if let Some(rest) = m.path.strip_prefix(BODIES_PREFIX) {
            let name = rest.rsplit('/').next().unwrap_or_default();
            if name != m.sha256 {
                bail!(
                    "the backup does not verify: body file {} holds content with SHA-256 {}",
                    m.path,
                    m.sha256
                );
            }
        }
    }
    let staged = WorkDir(sibling(dir, "restoring")?);
    let _ = std::fs::remove_dir_all(&staged.0);
    let paths = HubPaths::new(&staged.0);
    let u = &unpacked.0;
    move_into(&u.join(STORE_MEMBER), &paths.db()).context("the backup has no store snapshot")?;
    std::fs::create_dir_all(paths.bodies())?;
    if u.join("bodies").is_dir() {
        for fan in std::fs::read_dir(u.join("bodies"))? {
            let fan = fan?;
            move_into(&fan.path(), &paths.bodies().join(fan.file_name()))?;
        }
    }
    move_into(&u.join("config/hub.toml"), &paths.config()).context("the backup has no hub.toml")?;
    for (sub, target) in [("pki", "pki"), ("keys/pki", "pki")] {
        if let Ok(entries) = std::fs::read_dir(u.join(sub)) {
            for e in entries {
                let e = e?;
                if e.path().is_file() {
                    move_into(&e.path(), &paths.at(target).join(e.file_name()))?;
                }
            }
        }
    }
    if u.join("keys/admin.token").exists() {
        move_into(&u.join("keys/admin.token"), &paths.at("admin.token"))?;
    }

    let db = poros_store::Db::open(&paths.db())?;
    let store = HubStore::open(db)?;
    let expected = manifest
        .contents
        .get("store_rows")
        .and_then(Value::as_object)
        .context("the backup's manifest lists no rows per table")?;
    for (table, rows) in store.rows_per_table()? {
        let want = expected.get(&table).and_then(Value::as_u64).unwrap_or(0);
        if rows != want {
            bail!(
                "the restored store does not verify: table \"{table}\" holds {rows} rows, the \
                 backup's snapshot {want}"
            );
        }
    }
    let blobs = poros_store::Blobs::open(&paths.bodies())?;
    let missing: Vec<String> = store
        .body_files()?
        .iter()
        .filter(|d| !blobs.contains(d))
        .map(hex::encode)
        .collect();
    // A body missing at backup time is repaired from its sender by the restored hub; any
    // other gap means the backup is incomplete.
    let left_out = (manifest.number("body_files") as usize).saturating_sub(
        manifest
            .members
            .iter()
            .filter(|m| m.path.starts_with(BODIES_PREFIX))
            .count(),
    );
    if missing.len() > left_out {
        bail!(
            "the restored store references {} body files the backup does not hold (first: {})",
            missing.len(),
            missing[0]
        );
    }
    let documents = store.document_count()?;
    let point = crate::state::RecoveryPoint::new(manifest.number("snapshot_ms"))?;
    let epoch = point.epoch;
    store.mark_restored(point)?;
    drop(store);
    drop(blobs);
    poros_store::fsync_dir(&paths.root)?;
    std::fs::rename(&staged.0, dir)
        .with_context(|| format!("moving the restored deployment to {}", dir.display()))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        poros_store::fsync_dir(parent)?;
    }
    let missing_private = PRIVATE_FILES
        .iter()
        .filter(|f| !dir.join(f).exists())
        .map(|f| f.to_string())
        .collect();
    Ok(RestoreReport {
        dir: dir.to_owned(),
        documents,
        body_files: manifest
            .members
            .iter()
            .filter(|m| m.path.starts_with(BODIES_PREFIX))
            .count() as u64,
        manifest,
        epoch,
        missing_private,
    })
}
