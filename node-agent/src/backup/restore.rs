//! `poros-agent restore`: a backup brought back as a new agent directory, on this machine or
//! another, verified before it is put in place.

use super::{is_dir_file, BODIES_DIR, KIND, STORE_FILE};
use crate::paths::AgentPaths;
use crate::state::AgentStore;
use anyhow::{bail, Context, Result};
use poros_store::backup_file::{self, BODIES_PREFIX, STORE_MEMBER};
use std::path::Path;

pub use poros_store::backup_file::RestoreReport;

/// Restore the backup `from` as the agent directory `dir` (absent or empty). Every member is
/// checked against the manifest, each body file against its name (its SHA-256), and the
/// restored store's rows per table against the snapshot's; only then does `dir` appear. A
/// failed restore leaves nothing behind.
pub fn restore(from: &Path, dir: &Path, progress: &dyn Fn(u64)) -> Result<RestoreReport> {
    let unpacked = backup_file::unpack(from, KIND, dir, progress)
        .with_context(|| format!("restoring {}", from.display()))?;
    unpacked.take(STORE_MEMBER, STORE_FILE)?;
    if let Ok(fans) = std::fs::read_dir(unpacked.dir.path().join(BODIES_PREFIX)) {
        for fan in fans {
            let name = fan?.file_name();
            let name = name.to_string_lossy();
            unpacked.take(
                &format!("{BODIES_PREFIX}{name}"),
                &format!("{BODIES_DIR}/{name}"),
            )?;
        }
    }
    for m in unpacked
        .manifest
        .members
        .iter()
        .filter(|m| is_dir_file(&m.path))
    {
        unpacked.take(&m.path, &m.path)?;
    }
    let staged = AgentPaths::new(unpacked.staged.path());
    if !staged.config().exists() {
        bail!("the backup has no agent.toml");
    }
    let cfg = staged.load_config()?;
    for sub in ["keys", "certs", "requests", "run"] {
        std::fs::create_dir_all(staged.at(sub))?;
    }

    let (store, _) = AgentStore::open_file(&staged.at(STORE_FILE))?;
    unpacked.check_rows(&store.rows_per_table()?)?;
    let blobs = poros_store::Blobs::open(&staged.at(BODIES_DIR))?;
    unpacked.check_bodies(&store.body_files()?, &blobs)?;
    let documents = store.rows_per_table()?.iter().fold(0, |n, (t, rows)| {
        n + match t.as_str() {
            "outbox" | "inbox" | "quarantine" => *rows,
            _ => 0,
        }
    });
    drop(store);
    drop(blobs);
    let mut private = vec!["keys/tls.key".to_owned(), "keys/sign.key".to_owned()];
    if let Some(v) = cfg.vdxp.as_ref().filter(|v| v.enabled) {
        private.push(v.secret_file.clone());
    }
    let body_files = unpacked.body_files();
    let manifest = unpacked.manifest.clone();
    unpacked.put_in_place(dir)?;
    let missing_private = private
        .into_iter()
        .filter(|f| !dir.join(f).exists())
        .collect();
    Ok(RestoreReport {
        dir: dir.to_owned(),
        manifest,
        documents,
        body_files,
        epoch: None,
        missing_private,
    })
}
