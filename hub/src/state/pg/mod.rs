//! The PostgreSQL backend: the hub's state in a database shared by every hub instance.
//!
//! - Connections come from a pool (deadpool-postgres over tokio-postgres) on a libpq
//!   connection string that lists every database host with `target_session_attrs=read-write`,
//!   so new connections go to whichever server is the primary after a failover.
//! - Each operation is one SERIALIZABLE transaction ([`PgStore::write`]): the rules read
//!   what they change, and PostgreSQL aborts one of two transactions that would interleave
//!   badly (SQLSTATE 40001/40P01); the operation is then run again from the start.
//! - Nothing is acknowledged before its COMMIT returned. On the cluster this backend is
//!   built for, a COMMIT returns once a synchronous standby has the transaction.
//! - A COMMIT whose outcome is unknown (connection lost, no confirmation in time) is
//!   resolved by reading: every write transaction inserts a marker row with a fresh ID, and
//!   the marker is looked up on a new connection. Found: the work is committed, and a second
//!   small commit waits for the standby to have everything up to it. Not found: the work is
//!   run again. Unreachable: the caller gets [`StorageFault::Unreachable`], retryable, and
//!   its retry finds the work done or not (every operation is idempotent).
//! - Counters are inserted as deltas and summed when read ([`counters`]), so no single row
//!   is updated by every accept; a roll-up folds old deltas in from time to time.
//! - The schema is under versioned migrations ([`migrations`]), applied at start under an
//!   advisory lock, so several hubs starting together apply each once.

mod bodies;
mod coord;
pub(crate) mod counters;
mod exchange;
mod export;
mod import;
pub mod migrations;
mod registry;
mod repair;
mod retention;
mod statements;
mod statistics;

pub use bodies::{PgBodies, CHUNK};
pub use import::{ImportError, Load};
pub(crate) use registry::state_name;

use futures_util::future::BoxFuture;
use poros_store::{CommitStats, StorageFault, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_postgres::error::SqlState;
use tokio_postgres::{IsolationLevel, Transaction};
use tracing::{debug, info, warn};

/// How to reach the database and how long to wait for it.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// libpq connection string (`postgres://…`), every host listed.
    pub url: String,
    /// The password, if the server asks for one (read from a 0600 file, never from the URL
    /// in `hub.toml`).
    pub password: Option<String>,
    /// Pool size.
    pub pool_size: usize,
    /// How long a COMMIT may wait for its confirmation.
    pub commit_timeout: Duration,
    /// This hub instance's name (leases, logs).
    pub instance: String,
}

impl PgOptions {
    /// Options for `url` with the defaults of `hub.toml`.
    pub fn new(url: &str) -> Self {
        let d = poros_config::HubStoreConfig::default();
        PgOptions {
            url: url.to_string(),
            password: None,
            pool_size: d.pool_size,
            commit_timeout: Duration::from_secs(d.commit_timeout_secs),
            instance: default_instance(),
        }
    }
}

/// The host name, or `hub` if it cannot be read.
pub fn default_instance() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "hub".into())
}

/// Handle on the hub's state in PostgreSQL. Cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
    /// Deliveries answered within this many ms of acceptance count as on time.
    pub(crate) on_time_ms: u64,
    /// Working-day calendar and registration window of the business figures.
    pub(crate) business: Arc<(crate::business::Calendar, u32)>,
}

struct Inner {
    pool: deadpool_postgres::Pool,
    /// Other instances' events (see `coord`).
    events: tokio::sync::broadcast::Sender<crate::state::HubEvent>,
    opts: PgOptions,
    /// The last fault seen, until a commit succeeds again.
    fault: Mutex<Option<StorageFault>>,
    jobs: AtomicU64,
    last_commit_micros: AtomicU64,
    /// Every commit's duration; its count is the number of commits.
    commit_times: poros_store::CommitHistogram,
    retries: AtomicU64,
    resolved: AtomicU64,
    write_failures: AtomicU64,
    /// The event listener's task, ended with the store (its connection with it).
    listener: tokio::task::AbortHandle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// What a write transaction's closure gets: the open transaction.
pub(crate) type Tx<'a> = Transaction<'a>;

impl PgStore {
    /// Connect, apply the schema's migrations, and return the store.
    pub async fn connect(opts: PgOptions) -> Result<PgStore, StoreError> {
        let mut cfg: tokio_postgres::Config = opts
            .url
            .parse()
            .map_err(|e| StoreError::Other(format!("store.url is not a connection string: {e}")))?;
        if let Some(p) = &opts.password {
            cfg.password(p.as_bytes());
        }
        // Writes need the primary; libpq's own rule for a multi-host string.
        cfg.target_session_attrs(tokio_postgres::config::TargetSessionAttrs::ReadWrite);
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(Duration::from_secs(3));
        }
        cfg.keepalives_idle(Duration::from_secs(10));
        // A hub that stops (SIGSTOP, a hung VM) inside a transaction must not hold its row
        // locks against every other instance: the server ends such a session after 10 s
        // (its transaction rolls back, nothing it did was acknowledged).
        // A row lock held longer than a commit may take (by a commit waiting for a standby
        // that is gone) fails the statement rather than holding a pooled connection for as
        // long as the standby is away: the caller gets a retryable refusal. Options the URL
        // gives come after these, so an operator's own values win.
        let ours = format!(
            "-c idle_in_transaction_session_timeout=10000 -c lock_timeout={}",
            opts.commit_timeout.as_millis().max(1)
        );
        let options = match cfg.get_options() {
            Some(theirs) => format!("{ours} {theirs}"),
            None => ours,
        };
        cfg.options(options);
        cfg.application_name(format!("poros-hub/{}", opts.instance));
        let (events, _) = tokio::sync::broadcast::channel(4096);
        let listener = coord::spawn_listener(cfg.clone(), opts.instance.clone(), events.clone());
        let mgr = deadpool_postgres::Manager::from_config(
            cfg,
            tokio_postgres::NoTls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = deadpool_postgres::Pool::builder(mgr)
            .max_size(opts.pool_size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(opts.commit_timeout))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| StoreError::Other(format!("database pool: {e}")))?;
        let store = PgStore {
            inner: Arc::new(Inner {
                pool,
                events,
                opts,
                fault: Mutex::new(None),
                jobs: AtomicU64::new(0),
                last_commit_micros: AtomicU64::new(0),
                commit_times: poros_store::CommitHistogram::default(),
                retries: AtomicU64::new(0),
                resolved: AtomicU64::new(0),
                write_failures: AtomicU64::new(0),
                listener,
            }),
            on_time_ms: 3_600_000,
            business: Arc::new((crate::business::Calendar::default(), 1)),
        };
        {
            let mut client = store.client().await?;
            migrations::apply(&mut client).await?;
        }
        info!(instance = %store.inner.opts.instance, "PostgreSQL store ready");
        Ok(store)
    }

    /// Set the working-day calendar and the registration window of the business figures.
    pub fn with_business(mut self, cal: crate::business::Calendar, working_days: u32) -> Self {
        self.business = Arc::new((cal, working_days));
        self
    }

    /// Set the on-time target used when counting answers.
    pub fn with_on_time_ms(mut self, ms: u64) -> Self {
        self.on_time_ms = ms;
        self
    }

    /// This hub instance's name.
    pub fn instance(&self) -> &str {
        &self.inner.opts.instance
    }

    /// A receiver of the other instances' events.
    pub(crate) fn subscribe(&self) -> tokio::sync::broadcast::Receiver<crate::state::HubEvent> {
        self.inner.events.subscribe()
    }

    /// A pooled connection to the primary.
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.inner.pool.get().await.map_err(|e| {
            debug!(error = %e, "no database connection");
            self.note_fault(StorageFault::Unreachable)
        })
    }

    fn note_fault(&self, f: StorageFault) -> StoreError {
        self.inner.write_failures.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut g) = self.inner.fault.lock() {
            *g = Some(f);
        }
        StoreError::Unavailable(f)
    }

    fn clear_fault(&self) {
        if let Ok(mut g) = self.inner.fault.lock() {
            *g = None;
        }
    }

    /// Run `f` in one SERIALIZABLE transaction and commit it; `Ok` only once the COMMIT is
    /// known to have happened (see the module docs). `f` may run more than once: it must
    /// derive everything from what it reads in its transaction.
    pub(crate) async fn write<T, F>(&self, op: &'static str, mut f: F) -> Result<T, StoreError>
    where
        T: Send,
        F: for<'a> FnMut(&'a Tx<'a>) -> BoxFuture<'a, Result<T, StoreError>> + Send,
    {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let marker = uuid::Uuid::now_v7();
            let mut client = self.client().await?;
            let tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::Serializable)
                .start()
                .await
                .map_err(|e| self.sql_error(op, e))?;
            let out = match f(&tx).await {
                Ok(v) => v,
                Err(StoreError::Conflict(why)) if attempt < MAX_ATTEMPTS => {
                    drop(tx);
                    self.backoff(op, attempt, &why).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            // SERIALIZABLE may report a conflict at any statement, this one included.
            let xid: i64 = match tx
                .query_one(
                    "INSERT INTO poros_commits (id, op) VALUES ($1, $2) RETURNING txid_current()",
                    &[&marker, &op],
                )
                .await
            {
                Ok(row) => row.get(0),
                Err(e) => match self.sql_error(op, e) {
                    StoreError::Conflict(why) if attempt < MAX_ATTEMPTS => {
                        drop(tx);
                        self.backoff(op, attempt, &why).await;
                        continue;
                    }
                    other => return Err(other),
                },
            };
            let commit = tokio::time::timeout(self.inner.opts.commit_timeout, tx.commit()).await;
            match commit {
                Ok(Ok(())) => {
                    self.committed(started);
                    return Ok(out);
                }
                Ok(Err(e)) => match self.sql_error(op, e) {
                    StoreError::Conflict(why) if attempt < MAX_ATTEMPTS => {
                        self.backoff(op, attempt, &why).await;
                        continue;
                    }
                    StoreError::Unavailable(_) => {
                        let _ = deadpool_postgres::Object::take(client);
                    }
                    other => return Err(other),
                },
                Err(_elapsed) => {
                    // The commit may have happened locally while its confirmation is still
                    // awaited; this connection is in an unknown state: never reuse it.
                    let _ = deadpool_postgres::Object::take(client);
                    warn!(op, "commit not confirmed in time; resolving by reading");
                }
            }
            match self.resolve(marker, xid).await? {
                Outcome::Committed => {
                    self.inner.resolved.fetch_add(1, Ordering::Relaxed);
                    self.committed(started);
                    return Ok(out);
                }
                Outcome::NotCommitted if attempt < MAX_ATTEMPTS => {
                    info!(op, "commit outcome resolved: not committed; running again");
                    continue;
                }
                Outcome::NotCommitted => return Err(self.note_fault(StorageFault::Unreachable)),
                Outcome::Unknown => {
                    // Committed here but waiting for a synchronous standby, or not decided:
                    // neither acknowledged nor run again (it may still commit). The caller
                    // retries; every operation is idempotent on its own keys.
                    warn!(
                        op,
                        "commit not confirmed by a synchronous standby; refused for now"
                    );
                    return Err(self.note_fault(StorageFault::NotReplicated));
                }
            }
        }
    }

    /// What became of the transaction that inserted `marker` (transaction ID `xid`), read on
    /// a new connection.
    ///
    /// - Its marker is visible: it committed. One more commit on the primary then waits until
    ///   the standby has everything up to it (WAL is replayed in order), so what is reported
    ///   committed is on two machines; if none confirms in time, a retryable `NotReplicated`.
    /// - Not visible, and the server knows the transaction as aborted, or not at all (a
    ///   promoted standby that never received it): it did not commit, and may run again.
    /// - Not visible, but committed or in progress by the server's commit log: it waits for a
    ///   synchronous standby (a waiting commit is not yet visible to others) or is still
    ///   undecided: [`Outcome::Unknown`]. (After a failover the same ID may belong to another
    ///   transaction; either way nothing is acknowledged and nothing runs twice.)
    async fn resolve(&self, marker: uuid::Uuid, xid: i64) -> Result<Outcome, StoreError> {
        let client = self.client().await?;
        let found = client
            .query_opt("SELECT 1 FROM poros_commits WHERE id = $1", &[&marker])
            .await
            .map_err(|e| self.sql_error("resolve", e))?
            .is_some();
        if !found {
            let status = client.query_one("SELECT txid_status($1)", &[&xid]).await;
            return match status {
                Ok(row) => match row.get::<_, Option<String>>(0).as_deref() {
                    Some("committed") | Some("in progress") => Ok(Outcome::Unknown),
                    // Aborted, or too old to know (long before this transaction began).
                    _ => Ok(Outcome::NotCommitted),
                },
                // "transaction ID is in the future": this server never saw it.
                Err(e) if e.code() == Some(&SqlState::INVALID_PARAMETER_VALUE) => {
                    Ok(Outcome::NotCommitted)
                }
                Err(e) => Err(self.sql_error("resolve", e)),
            };
        }
        let barrier = tokio::time::timeout(
            self.inner.opts.commit_timeout,
            client.execute(
                "INSERT INTO poros_commits (id, op) VALUES ($1, 'barrier')",
                &[&uuid::Uuid::now_v7()],
            ),
        )
        .await;
        match barrier {
            Ok(Ok(_)) => Ok(Outcome::Committed),
            Ok(Err(e)) => Err(self.sql_error("resolve", e)),
            Err(_) => {
                let _ = deadpool_postgres::Object::take(client);
                Err(self.note_fault(StorageFault::NotReplicated))
            }
        }
    }

    /// Run `f` in one read-only REPEATABLE READ transaction: every query sees the same commit.
    pub(crate) async fn read<T, F>(&self, op: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send,
        F: for<'a> FnOnce(&'a Tx<'a>) -> BoxFuture<'a, Result<T, StoreError>> + Send,
    {
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(|e| self.sql_error(op, e))?;
        let out = f(&tx).await?;
        tx.commit().await.map_err(|e| self.sql_error(op, e))?;
        Ok(out)
    }

    fn committed(&self, started: Instant) {
        self.clear_fault();
        self.inner.jobs.fetch_add(1, Ordering::Relaxed);
        let took = started.elapsed();
        self.inner
            .last_commit_micros
            .store(took.as_micros() as u64, Ordering::Relaxed);
        self.inner.commit_times.observe(took);
    }

    async fn backoff(&self, op: &'static str, attempt: u32, why: &str) {
        self.inner.retries.fetch_add(1, Ordering::Relaxed);
        debug!(op, attempt, why, "transaction conflicted; running it again");
        // Jittered, growing: two hubs that conflicted do not meet again at once.
        let base = 2u64.saturating_pow(attempt.min(8)).min(200);
        let jitter = u64::from(uuid::Uuid::now_v7().as_bytes()[15]) % (base + 1);
        tokio::time::sleep(Duration::from_millis(base / 2 + jitter)).await;
    }

    /// Classify a database error: conflicts are retried, lost or read-only servers are a
    /// retryable fault, the rest are errors of the statement.
    pub(crate) fn sql_error(&self, op: &'static str, e: tokio_postgres::Error) -> StoreError {
        match classify(&e) {
            Class::Conflict => StoreError::Conflict(describe(&e)),
            Class::Unreachable => {
                debug!(op, error = %e, "database unreachable");
                self.note_fault(StorageFault::Unreachable)
            }
            Class::Locked => {
                warn!(op, error = %e, "a needed row stayed locked past the commit timeout");
                self.note_fault(StorageFault::Busy)
            }
            Class::Statement => {
                warn!(op, error = %e, "database statement failed");
                StoreError::Sql(format!("{op}: {}", describe(&e)))
            }
        }
    }
}

/// Most runs of one operation before it gives up (conflicts, commits that did not happen).
const MAX_ATTEMPTS: u32 = 20;

/// What became of a commit whose answer did not come.
enum Outcome {
    Committed,
    NotCommitted,
    Unknown,
}

enum Class {
    Conflict,
    Unreachable,
    Locked,
    Statement,
}

fn classify(e: &tokio_postgres::Error) -> Class {
    match e.code() {
        Some(c)
            if *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            Class::Conflict
        }
        Some(c) if *c == SqlState::LOCK_NOT_AVAILABLE => Class::Locked,
        // A demoted primary, a server shutting down or in recovery, too many connections.
        Some(c)
            if *c == SqlState::READ_ONLY_SQL_TRANSACTION
                || *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
                || *c == SqlState::TOO_MANY_CONNECTIONS
                || c.code().starts_with("08") =>
        {
            Class::Unreachable
        }
        Some(_) => Class::Statement,
        // No SQLSTATE: the connection itself failed (closed, reset, timed out).
        None => Class::Unreachable,
    }
}

fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

impl crate::state::HubBackend for PgStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn health(&self) -> Option<StorageFault> {
        self.inner.fault.lock().ok().and_then(|g| *g)
    }

    fn report_fault(&self, f: StorageFault) {
        let _ = self.note_fault(f);
    }

    fn commit_stats(&self) -> CommitStats {
        let times = self.inner.commit_times.snapshot();
        CommitStats {
            commits: times.count(),
            jobs: self.inner.jobs.load(Ordering::Relaxed),
            last_commit_micros: self.inner.last_commit_micros.load(Ordering::Relaxed),
            write_failures: self.inner.write_failures.load(Ordering::Relaxed),
            times,
        }
    }

    /// The store health every backend reports, and how often transactions were run again
    /// or their commits resolved by reading.
    fn health_metrics(&self) -> String {
        use poros_store::{WRITABLE_METRIC, WRITE_FAILURES_METRIC};
        format!(
            "# TYPE {WRITABLE_METRIC} gauge\n{WRITABLE_METRIC} {}\n\
             # TYPE {WRITE_FAILURES_METRIC} counter\n{WRITE_FAILURES_METRIC} {}\n\
             # TYPE poros_store_pg_retries_total counter\nporos_store_pg_retries_total {}\n\
             # TYPE poros_store_pg_resolved_total counter\nporos_store_pg_resolved_total {}\n",
            u8::from(self.health().is_none()),
            self.inner.write_failures.load(Ordering::Relaxed),
            self.inner.retries.load(Ordering::Relaxed),
            self.inner.resolved.load(Ordering::Relaxed),
        )
    }
}
