//! `poros-hub store migrate`: move a stopped redb deployment into PostgreSQL, then prove the
//! copy is whole.
//!
//! - Refusals first: a running hub (the redb file is locked), a target that already holds
//!   Poros data, a target schema newer than this binary.
//! - Copy: the redb store is read out as neutral rows from one snapshot
//!   (`state::transfer`, `HubStore::export`) on a blocking thread, and the large body files
//!   are streamed behind them a chunk at a time; PostgreSQL loads it all with binary COPY in
//!   one transaction (`PgStore::import`), committed only if the source was read to its end.
//!   A bounded channel in between keeps memory flat whatever the deployment's size.
//! - Verify: both stores are tallied independently — the source while it is read, the target
//!   read back from the database afterwards — into a row count and a SHA-256 per table, the
//!   large bodies re-read and hashed on both sides; what PostgreSQL keeps beside the rows is
//!   checked, and the target's statistics are recounted from its documents and compared with
//!   its live counters. Any difference fails the command, naming what differs.
//! - `--verify-only` does the second half alone (e.g. after copying, before the first start).

use crate::deployment::HubPaths;
use crate::hub::BodiesIn;
use crate::state::pg::{ImportError, Load, PgStore};
use crate::state::transfer::{Table, Tally};
use crate::state::{HubBackend, HubStore};
use poros_config::{HubConfig, StoreBackend};
use poros_store::{Blobs, StoreError};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

mod source;
use poros_transport::progress::Progress;
use source::read_source;

/// What to migrate where.
#[derive(Clone, Debug)]
pub struct Options {
    /// The deployment directory (its hub stopped).
    pub dir: PathBuf,
    /// The target database's connection string.
    pub to: String,
    /// File holding the database password (mode 0600), if the server asks for one.
    pub password_file: Option<PathBuf>,
    /// Compare only; copy nothing.
    pub verify_only: bool,
    /// Show a progress bar on the terminal (stderr; never when it is not a terminal).
    pub progress: bool,
}

/// Why a migration did not happen or did not verify.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// No deployment there.
    #[error("{0} is not a Poros deployment (no hub.toml)")]
    NotDeployment(PathBuf),
    /// The deployment has no redb store.
    #[error("{0} does not exist: this deployment has no redb store to migrate")]
    NoStore(PathBuf),
    /// The hub holds the store.
    #[error(
        "the hub on {0} is running (its store is locked): stop the hub first; \
         `store migrate` copies a stopped deployment"
    )]
    HubRunning(PathBuf),
    /// The hub.toml does not load.
    #[error("{0}")]
    Config(String),
    /// The target database cannot be used (unreachable, refused, a newer schema).
    #[error("the target database: {0}")]
    Target(String),
    /// The load refused or failed.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// Reading the source failed.
    #[error("reading the deployment's store: {0}")]
    Source(StoreError),
    /// A body file could not be read.
    #[error("reading body file {path}: {source}")]
    BodyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The target failed while being read back.
    #[error("reading the target database back: {0}")]
    ReadBack(StoreError),
}

/// One table compared.
#[derive(Clone, Debug, Serialize)]
pub struct TableCheck {
    /// Table.
    pub table: &'static str,
    /// Area.
    pub area: &'static str,
    /// Rows in the source.
    pub source_rows: u64,
    /// Rows read back from the target.
    pub target_rows: u64,
    /// SHA-256 of the source's rows.
    pub source_sha256: String,
    /// SHA-256 of the target's rows.
    pub target_sha256: String,
    /// Counts and checksums equal.
    pub equal: bool,
}

/// The large bodies of the source.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BodyFiles {
    /// Copied (or, verifying, read) whole and intact.
    pub intact: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Referenced but without a file (digests): not copied; the hub's scrub finds them
    /// missing on either store and asks their senders again.
    pub missing: Vec<String>,
    /// Files whose bytes do not hash to their name (digests): not copied, as missing.
    pub damaged: Vec<String>,
}

/// What `store migrate` did and found.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Everything equal and consistent.
    pub verified: bool,
    /// Whether rows were copied (false with `--verify-only`).
    pub copied: bool,
    /// Every table compared.
    pub tables: Vec<TableCheck>,
    /// Large bodies of the source.
    pub bodies: BodyFiles,
    /// Rules broken in what PostgreSQL keeps beside the rows.
    pub problems: Vec<String>,
    /// The target's live statistics against a recount from its documents: the differences.
    pub statistics_differences: Vec<String>,
    /// Documents.
    pub documents: u64,
    /// Seconds copying.
    pub copy_secs: f64,
    /// Seconds verifying.
    pub verify_secs: f64,
    /// Documents per second copied.
    pub docs_per_sec: f64,
    /// MiB per second of large bodies copied.
    pub body_mib_per_sec: f64,
    /// Peak resident memory of this process, KiB: after the copy (or the source's reading),
    /// and at the end (after the verification).
    pub peak_rss_copy_kib: u64,
    /// See `peak_rss_copy_kib`.
    pub peak_rss_kib: u64,
    /// Size of the source's redb file, bytes.
    pub source_db_bytes: u64,
}

impl Report {
    /// What differs, one line each (empty when verified).
    pub fn differences(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .tables
            .iter()
            .filter(|t| !t.equal)
            .map(|t| {
                format!(
                    "{} ({}): source {} rows sha256 {}, target {} rows sha256 {}",
                    t.table,
                    t.area,
                    t.source_rows,
                    &t.source_sha256[..16],
                    t.target_rows,
                    &t.target_sha256[..16]
                )
            })
            .collect();
        out.extend(self.problems.iter().cloned());
        out.extend(
            self.statistics_differences
                .iter()
                .map(|d| format!("statistics: {d}")),
        );
        out
    }
}

/// Run `store migrate` (or its verification alone).
pub async fn run(opts: Options) -> Result<Report, MigrateError> {
    let paths = HubPaths::new(&opts.dir);
    if !paths.config().exists() {
        return Err(MigrateError::NotDeployment(opts.dir.clone()));
    }
    let mut cfg =
        HubConfig::load(&paths.config()).map_err(|e| MigrateError::Config(format!("{e:#}")))?;
    let source = open_source(&paths).await?;
    // The target through the hub's own opening: password file rules, schema migrations
    // (refusing a newer schema), the statistics settings of this hub.toml.
    cfg.store.backend = StoreBackend::Postgres;
    cfg.store.url = opts.to.clone();
    cfg.store.password_file = opts.password_file.clone();
    cfg.store.instance = format!("store-migrate/{}", std::process::id());
    let (target, bodies_in) = crate::hub::open_store(&paths, &cfg)
        .await
        .map_err(|e| MigrateError::Target(format!("{e:#}")))?;
    let BodiesIn::Database(pg) = bodies_in else {
        return Err(MigrateError::Target("not a PostgreSQL store".into()));
    };
    if !opts.verify_only {
        let used = pg.tables_in_use().await.map_err(MigrateError::ReadBack)?;
        if !used.is_empty() {
            return Err(ImportError::NotEmpty(used).into());
        }
    }
    let progress = Progress::rows("reading", None, !opts.progress);
    let sizes = blocking({
        let s = source.clone();
        move || s.export_sizes()
    })
    .await
    .map_err(MigrateError::Source)?;
    progress.set_total(sizes.values().sum());
    let blobs = Blobs::open(&paths.bodies()).map_err(MigrateError::Source)?;
    let started = Instant::now();
    let (source_tally, bodies) = match opts.verify_only {
        true => {
            progress.phase("reading the source");
            read_source(source.clone(), blobs, None, progress.clone()).await?
        }
        false => {
            progress.phase("copying");
            copy(&source, &pg, blobs, progress.clone()).await?
        }
    };
    let copy_secs = started.elapsed().as_secs_f64();
    let peak_rss_copy_kib = peak_rss_kib();
    progress.phase("verifying");
    progress.set_total(source_tally.total_rows());
    let verify_started = Instant::now();
    let p = progress.clone();
    let (target_tally, problems) = pg
        .tally(&move |_, n, bytes| {
            p.set(n);
            p.note_bytes(bytes);
        })
        .await
        .map_err(MigrateError::ReadBack)?;
    let statistics_differences = stats_check(target.as_ref(), &cfg).await?;
    let verify_secs = verify_started.elapsed().as_secs_f64();
    progress.finish();
    let (src, dst) = (source_tally.finish(), target_tally.finish());
    let tables: Vec<TableCheck> = Table::ALL
        .iter()
        .map(|t| {
            let (sr, ss) = src[t].clone();
            let (tr, ts) = dst[t].clone();
            TableCheck {
                table: t.name(),
                area: t.area(),
                equal: sr == tr && ss == ts,
                source_rows: sr,
                target_rows: tr,
                source_sha256: ss,
                target_sha256: ts,
            }
        })
        .collect();
    let documents = src[&Table::Docs].0;
    let verified =
        tables.iter().all(|t| t.equal) && problems.is_empty() && statistics_differences.is_empty();
    let per_sec = |n: f64| if copy_secs > 0.0 { n / copy_secs } else { 0.0 };
    Ok(Report {
        verified,
        copied: !opts.verify_only,
        documents,
        docs_per_sec: per_sec(documents as f64),
        body_mib_per_sec: per_sec(bodies.bytes as f64 / (1024.0 * 1024.0)),
        tables,
        bodies,
        problems,
        statistics_differences,
        copy_secs,
        verify_secs,
        peak_rss_copy_kib,
        peak_rss_kib: peak_rss_kib(),
        source_db_bytes: std::fs::metadata(paths.db()).map(|m| m.len()).unwrap_or(0),
    })
}

/// Open the deployment's redb store, refusing while its hub holds it.
async fn open_source(paths: &HubPaths) -> Result<HubStore, MigrateError> {
    let file = paths.db();
    if !file.exists() {
        return Err(MigrateError::NoStore(file));
    }
    let dir = paths.root.clone();
    blocking(move || HubStore::open_file(&file).map(|(store, _)| store))
        .await
        .map_err(|e| match e {
            StoreError::Locked { .. } => MigrateError::HubRunning(dir),
            e => MigrateError::Source(e),
        })
}

/// Copy the source into the target: the reader on a blocking thread, the load on this task.
async fn copy(
    source: &HubStore,
    pg: &PgStore,
    blobs: Blobs,
    progress: Progress,
) -> Result<(Tally, BodyFiles), MigrateError> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Load>(8);
    let (commit_tx, commit_rx) = tokio::sync::oneshot::channel();
    let reader = read_source(source.clone(), blobs, Some(tx), progress);
    let load = pg.import(rx, commit_rx);
    let reader = async move {
        let r = reader.await;
        // The load commits only once the source was read to its end.
        let _ = commit_tx.send(r.is_ok());
        r
    };
    let (read, loaded) = tokio::join!(reader, load);
    match (read, loaded) {
        (Ok(read), Ok(_)) => Ok(read),
        // The reader failed and so the load stopped: the reader's error says why.
        (Err(e), Err(ImportError::Truncated) | Ok(_)) => Err(e),
        // The load refused or failed, and the reader found its rows no longer taken.
        (_, Err(e)) => Err(e.into()),
    }
}

/// The target's live statistics against a recount from its stored documents (all time), as
/// the hub's own statistics check compares them: the differences.
async fn stats_check(
    target: &dyn HubBackend,
    cfg: &HubConfig,
) -> Result<Vec<String>, MigrateError> {
    let (_, differences) =
        crate::report::recount_differences(target, cfg.monitoring.on_time_secs * 1000)
            .await
            .map_err(MigrateError::ReadBack)?;
    Ok(differences.iter().map(ToString::to_string).collect())
}

/// Peak resident memory of this process (`VmHWM`), KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Other(format!("blocking task: {e}")))?
}
