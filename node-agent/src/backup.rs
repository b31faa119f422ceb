//! Backups of an agent: `poros-agent backup` and `poros-agent restore`.
//!
//! A backup is a [`poros_store::archive`] file of kind `agent`:
//! - `store.redb`: a consistent snapshot of the agent's store (outbox, inbox, quarantine,
//!   receipts, statements, the document-management boxes: every table, one read transaction
//!   while the agent goes on), with every body file it references under `bodies/<fan>/<sha256>`
//!   (removals of body files are held while they are copied);
//! - the agent directory's public files under their own names: `agent.toml`, `certs/` (its
//!   certificates, the trust roots, the CRL), `requests/`;
//! - only with `--include-keys`: its private keys (`keys/`) and the SDK secret (`vdxp.secret`),
//!   listed in the manifest's `private_files`, which then says `contains_private_keys`.
//!
//! A running agent produces the store part itself (`GET /v1/backup` on its local API,
//! streamed); the command copies it into the file, checking it against the agent's manifest,
//! and adds the directory's files, which it reads itself (they never cross the API). A
//! stopped agent's store is read by the command directly. What a backup taken at time T holds
//! and what comes back after a restore: docs/backup.md.

pub mod restore;

use crate::paths::AgentPaths;
use crate::state::AgentStore;
use anyhow::{Context, Result};
use poros_store::archive::ArchiveWriter;
use poros_store::backup_file::{append_dir_files, append_store_part, write_new, DirFile, Removed};
use poros_store::Blobs;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Component, Path};

/// The archive kind of an agent backup.
pub const KIND: &str = "agent";

/// The store file inside an agent directory.
pub const STORE_FILE: &str = "data/agent.redb";
/// The body files inside an agent directory.
pub const BODIES_DIR: &str = "data/bodies";

/// Write the store part of a backup (snapshot and body files) into `out`; returns what the
/// manifest says of it. Blocking. The caller holds body removals
/// ([`Blobs::hold_removals`]) for the whole call.
pub fn write_store<W: Write>(
    store: &AgentStore,
    blobs: &Blobs,
    out: &mut ArchiveWriter<W>,
    progress: &dyn Fn(u64),
) -> Result<BTreeMap<String, Value>> {
    let tmp = Removed::snapshot_in(blobs);
    let (part, documents) = store
        .snapshot_into(tmp.path())
        .context("taking a snapshot of the store")?;
    Ok(append_store_part(
        out, tmp, &part, blobs, documents, progress,
    )?)
}

pub use poros_store::backup_file::BackupReport;

/// A path relative to the agent directory that stays inside it.
fn inside(rel: &str) -> bool {
    let p = Path::new(rel);
    !rel.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Files of the agent directory a backup carries besides the store, each under its path in
/// the directory: public ones first, then the private ones (keys, the SDK secret).
fn agent_files(paths: &AgentPaths) -> Result<Vec<DirFile>> {
    let cfg = paths.load_config()?;
    let mut out = vec![DirFile {
        path: paths.config(),
        member: "agent.toml".into(),
        private: false,
    }];
    for (sub, private) in [("certs", false), ("requests", false), ("keys", true)] {
        let dir = paths.at(sub);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .collect();
        names.sort();
        for name in names {
            out.push(DirFile {
                path: dir.join(&name),
                member: format!("{sub}/{name}"),
                private,
            });
        }
    }
    if let Some(v) = &cfg.vdxp {
        // A secret kept outside the directory is the administrator's to back up.
        if inside(&v.secret_file) {
            out.push(DirFile {
                path: paths.at(&v.secret_file),
                member: v.secret_file.clone(),
                private: true,
            });
        }
    }
    Ok(out)
}

/// Members of an agent backup that are files of the agent directory (not the store part).
pub(crate) fn is_dir_file(member: &str) -> bool {
    member != poros_store::backup_file::STORE_MEMBER
        && !member.starts_with(poros_store::backup_file::BODIES_PREFIX)
}

/// `poros-agent backup`: write a backup of the agent directory `paths` into the new file
/// `to`, from the running agent if there is one, else from its stopped store. The file
/// appears only when complete and durable (written beside it as `…partial`, then renamed).
pub fn backup(
    paths: &AgentPaths,
    to: &Path,
    include_keys: bool,
    progress: &dyn Fn(u64),
) -> Result<BackupReport> {
    let files = agent_files(paths)?;
    let (manifest, online, bytes) = write_new(to, KIND, |w| -> Result<_> {
        let (mut contents, online) = match running_agent(paths)? {
            Some(client) => {
                let stream = client.stream("/v1/backup")?;
                (w.copy_members_of(stream, progress)?.contents, true)
            }
            None => (offline_store_part(paths, w, progress)?, false),
        };
        append_dir_files(w, &files, include_keys)?;
        let private: Vec<&str> = files
            .iter()
            .filter(|f| include_keys && f.private && f.path.exists())
            .map(|f| f.member.as_str())
            .collect();
        contents.insert("private_files".into(), json!(private));
        Ok((contents, online))
    })?;
    Ok(BackupReport {
        file: to.to_owned(),
        manifest,
        online,
        bytes,
    })
}

/// The running agent's API, if it answers (`run/api.addr` is left behind by a killed agent).
fn running_agent(paths: &AgentPaths) -> Result<Option<crate::cli::ApiClient>> {
    if !paths.at("run/api.addr").exists() {
        return Ok(None);
    }
    let client = crate::cli::ApiClient::new(&paths.root)?;
    Ok(client.answers().then_some(client))
}

/// The store part of a backup of a stopped agent: the command opens the store itself (it
/// refuses if an agent holds it: then its API must answer).
fn offline_store_part<W: Write>(
    paths: &AgentPaths,
    w: &mut ArchiveWriter<W>,
    progress: &dyn Fn(u64),
) -> Result<BTreeMap<String, Value>> {
    // Through the format check: an older store is upgraded (after its own backup) first.
    let (store, _) = AgentStore::open_file(&paths.at(STORE_FILE)).map_err(|e| match e {
        poros_store::StoreError::Locked { .. } => anyhow::anyhow!(
            "the agent of {} holds its store but its local API does not answer; back it up \
             through the running agent (check `run/api.addr`) or stop it first",
            paths.root.display()
        ),
        e => anyhow::Error::from(e).context(format!("opening {}", paths.at(STORE_FILE).display())),
    })?;
    let blobs = Blobs::open(&paths.at(BODIES_DIR))?;
    write_store(&store, &blobs, w, progress)
}

/// The running agent's part of a backup (`GET /v1/backup`): an archive of the store's
/// snapshot and its body files, written on the blocking pool while the exchange goes on and
/// streamed as it is written.
pub(crate) async fn stream(agent: &crate::agent::Agent) -> axum::body::Body {
    // Before the snapshot begins, so that every body file it references stays until copied.
    let hold = agent.blobs.hold_removals().await;
    let (store, blobs) = (agent.store.clone(), agent.blobs.clone());
    poros_transport::archive_stream::archive_body(KIND, hold, move |w| {
        write_store(&store, &blobs, w, &|_| {})
    })
}
