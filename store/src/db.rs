//! The redb handle with group commit: one committer thread, many concurrent writers.
//! Owns `Db`, the batching/retry logic and the commit statistics.

use std::any::{Any, TypeId};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadTransaction, WriteTransaction};
use tokio::sync::oneshot;

use crate::commit_times::{CommitHistogram, CommitTimes};
use crate::health::{Opener, Recovery, Shared, IDLE_CHECK};
use crate::tables::TableSet;
use crate::{StorageFault, StoreError};

/// Most jobs folded into one transaction; bounds the work lost to a retry.
pub const MAX_BATCH: usize = 512;

/// How long an unhurried write ([`Db::write_unhurried`]) waits for a commit to join before
/// it is committed on its own.
pub const UNHURRIED_WAIT: Duration = Duration::from_millis(20);

/// Counters describing how well writes are being batched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitStats {
    /// Durable commits performed (the count of [`CommitStats::times`]).
    pub commits: u64,
    /// Write jobs those commits acknowledged.
    pub jobs: u64,
    /// Wall time of the most recent `commit()` (including its fsync), in microseconds.
    pub last_commit_micros: u64,
    /// Writes refused or failed because the storage could not write (full, I/O error).
    pub write_failures: u64,
    /// How long the commits took (each including its fsync).
    pub times: CommitTimes,
}

impl CommitStats {
    /// Mean number of jobs per durable commit (0 before the first commit).
    pub fn mean_batch(&self) -> f64 {
        if self.commits == 0 {
            0.0
        } else {
            self.jobs as f64 / self.commits as f64
        }
    }
}

#[derive(Default)]
struct Stats {
    jobs: AtomicU64,
    last_commit_micros: AtomicU64,
    times: CommitHistogram,
}

/// Page cache of each database.
pub const CACHE_BYTES: usize = 32 * 1024 * 1024;

/// A shared, cheaply clonable handle to a redb database whose writes are group-committed.
///
/// Every write is durable (`Durability::Immediate`) before it is acknowledged, but writes that
/// arrive while a commit is in flight share the next one, so fsync latency does not cap throughput.
/// Dropping the last clone waits for queued writes to commit, then releases the file lock.
///
/// A write that fails for lack of space or an I/O error puts the handle in a faulted state
/// (see [`Db::health`]): redb refuses every later use of that `Database`, so the committer drops
/// it, re-opens the file (redb falls back to its last good commit) and checks that writing is
/// possible again, with backoff. Meanwhile writes are refused at once with
/// [`StoreError::Unavailable`]; nothing acknowledged is lost.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

/// Work done once per group commit, inside its transaction, after every job of the batch:
/// lets callers aggregate what many jobs write to the same keys (counters) into one update.
pub trait BatchHook: Send + Sync {
    /// Called inside the transaction just before it commits.
    fn before_commit(&self, txn: &WriteTransaction) -> Result<(), StoreError>;
    /// Called when a transaction is rolled back (anything gathered for it must be dropped).
    fn on_abort(&self);
}

type HookSlot = Arc<std::sync::RwLock<Option<Arc<dyn BatchHook>>>>;

fn hook_of(slot: &HookSlot) -> Option<Arc<dyn BatchHook>> {
    slot.read().ok().and_then(|h| h.clone())
}

struct Inner {
    path: PathBuf,
    shared: Arc<Shared>,
    stats: Arc<Stats>,
    hook: HookSlot,
    jobs: Option<mpsc::Sender<Box<dyn Job>>>,
    committer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

fn open_file(path: &Path) -> Result<Database, StoreError> {
    // redb's default page cache is 1 GiB; the working set here is queue heads and recent
    // records, so a small cache keeps resident memory flat as the history grows.
    match redb::Builder::new()
        .set_cache_size(CACHE_BYTES)
        .create(path)
    {
        Ok(db) => Ok(db),
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => Err(StoreError::Locked {
            path: path.to_owned(),
        }),
        Err(redb::DatabaseError::Storage(redb::StorageError::Io(source))) => Err(StoreError::Io {
            op: "open database",
            path: path.to_owned(),
            source,
        }),
        Err(e) => Err(e.into()),
    }
}

impl Db {
    /// Opens (creating if needed) the database at `path` and starts its committer thread.
    pub fn open(path: &Path) -> Result<Db, StoreError> {
        let p = path.to_owned();
        Db::open_with(path, Box::new(move || open_file(&p)))
    }

    /// [`Db::open`] on a store file the caller has opened read-write and locked (see
    /// [`crate::format`]): redb takes over the same open file, so the lock is never released
    /// between the caller's look at the file and redb's. Re-opens after a fault use the path.
    pub(crate) fn open_locked(path: &Path, file: std::fs::File) -> Result<Db, StoreError> {
        let first = std::sync::Mutex::new(Some(file));
        let p = path.to_owned();
        Db::open_with(
            path,
            Box::new(move || {
                let taken = first.lock().ok().and_then(|mut f| f.take());
                let Some(file) = taken else {
                    return open_file(&p);
                };
                let backend = redb::backends::FileBackend::new(file)?;
                Ok(redb::Builder::new()
                    .set_cache_size(CACHE_BYTES)
                    .create_with_backend(backend)?)
            }),
        )
    }

    /// [`Db::open`] with the way the database is (re-)opened given, so tests can inject faults.
    pub(crate) fn open_with(path: &Path, opener: Opener) -> Result<Db, StoreError> {
        Db::open_waiting(path, opener, UNHURRIED_WAIT)
    }

    /// [`Db::open_with`] with unhurried writes waiting `unhurried_wait` (tests).
    pub(crate) fn open_waiting(
        path: &Path,
        opener: Opener,
        unhurried_wait: Duration,
    ) -> Result<Db, StoreError> {
        let db = opener()?;
        let shared = Arc::new(Shared::new(db));
        let stats = Arc::new(Stats::default());
        let (tx, rx) = mpsc::channel();
        let hook: HookSlot = Arc::default();
        let committer = {
            let c = Committer {
                shared: shared.clone(),
                opener,
                stats: stats.clone(),
                hook: hook.clone(),
                recovery: None,
                unhurried_wait,
            };
            std::thread::Builder::new()
                .name("poros-store-commit".into())
                .spawn(move || c.run(&rx))
                .map_err(|source| StoreError::Io {
                    op: "spawn committer thread for",
                    path: path.to_owned(),
                    source,
                })?
        };
        Ok(Db {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                shared,
                stats,
                hook,
                jobs: Some(tx),
                committer: Some(committer),
            }),
        })
    }

    /// Install the hook run once per commit (replacing any earlier one).
    pub fn set_batch_hook(&self, hook: Arc<dyn BatchHook>) {
        if let Ok(mut h) = self.inner.hook.write() {
            *h = Some(hook);
        }
    }

    /// The database file this handle was opened on.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Starts a read transaction; it sees only durable, acknowledged writes.
    ///
    /// While the database is being re-opened after a failed write this fails with
    /// [`StoreError::Unavailable`].
    pub fn read(&self) -> Result<ReadTransaction, StoreError> {
        let db = self.inner.shared.current()?;
        db.begin_read().map_err(|e| {
            let e = StoreError::from(e);
            match e.fault() {
                Some(f) => StoreError::Unavailable(self.inner.shared.fail(f, true)),
                None => e,
            }
        })
    }

    /// Whether the store can take writes now: `None` when it can, else the fault it is
    /// recovering from.
    pub fn health(&self) -> Option<StorageFault> {
        self.inner.shared.fault()
    }

    /// Reports a storage fault met outside the database (e.g. writing a body file next to
    /// it): the store counts as unwritable until the committer sees writing work again.
    pub fn report_fault(&self, fault: StorageFault) {
        let _ = self.inner.shared.fail(fault, false);
    }

    /// Runs `f` inside a group-committed write transaction; returns once the write is durable.
    ///
    /// `f` shares its transaction with other writers' closures and sees their earlier writes.
    /// If any closure in a batch fails, the batch is rolled back and every closure is re-run
    /// alone, so `f` may be called more than once: it must not have effects outside `txn`.
    /// An `Err` from `f` rolls back everything `f` wrote and is returned unchanged, except
    /// storage faults, which come back as [`StoreError::Unavailable`].
    pub async fn write<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnMut(&WriteTransaction) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        self.written(f, Urgency::Commit).await
    }

    /// [`Db::write`] for a write no one is kept waiting on (a queue entry removed once its
    /// work is done elsewhere, a copy of what the peer already holds): it starts no commit of
    /// its own but joins the next one an ordinary write starts, or is committed alone after
    /// [`UNHURRIED_WAIT`]. Like [`Db::write`] it returns only once the write is durable, and
    /// it is committed before any ordinary write that comes after it, in the same commit or an
    /// earlier one. Below saturation a commit costs about the same CPU whatever it carries, so
    /// a write that rides along saves one.
    pub async fn write_unhurried<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnMut(&WriteTransaction) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        self.written(f, Urgency::Unhurried).await
    }

    /// Queues `f` and waits until it is durable (or refused).
    async fn written<R, F>(&self, f: F, urgency: Urgency) -> Result<R, StoreError>
    where
        F: FnMut(&WriteTransaction) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        self.submit(f, urgency)?
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// [`Db::write`] for synchronous callers; blocks the thread until the write is durable.
    ///
    /// Panics if called from within an async runtime context (use [`Db::write`] there).
    pub fn write_blocking<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnMut(&WriteTransaction) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        self.submit(f, Urgency::Commit)?
            .blocking_recv()
            .map_err(|_| StoreError::Closed)?
    }

    /// [`Db::write`] for a write that reaches its tables through the table set `S`: the
    /// consecutive writes of one set in a batch share one [`TableSet::Open`], so each table of
    /// the set is opened once for all of them rather than once per write. `f` must not open a
    /// table of the set directly (redb refuses a table opened twice in one transaction); it
    /// may open others through the set's transaction.
    pub async fn write_with<S, R, F>(&self, f: F) -> Result<R, StoreError>
    where
        S: TableSet,
        F: for<'t> FnMut(&mut S::Open<'t>) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        self.written_with::<S, R, F>(f, Urgency::Commit).await
    }

    /// [`Db::write_with`] for an unhurried write (see [`Db::write_unhurried`]).
    pub async fn write_unhurried_with<S, R, F>(&self, f: F) -> Result<R, StoreError>
    where
        S: TableSet,
        F: for<'t> FnMut(&mut S::Open<'t>) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        self.written_with::<S, R, F>(f, Urgency::Unhurried).await
    }

    async fn written_with<S, R, F>(&self, mut f: F, urgency: Urgency) -> Result<R, StoreError>
    where
        S: TableSet,
        F: for<'t> FnMut(&mut S::Open<'t>) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let f: SetFn<S> = Box::new(move |set| f(set).map(|r| Box::new(r) as Output));
        let job = Box::new(SetPending::<S> {
            f,
            reply: Reply::new(reply),
            urgency,
        });
        let jobs = self.inner.jobs.as_ref().ok_or(StoreError::Closed)?;
        jobs.send(job).map_err(|_| StoreError::Closed)?;
        let out = rx.await.map_err(|_| StoreError::Closed)??;
        out.downcast::<R>()
            .map(|r| *r)
            .map_err(|_| StoreError::Other("a table-set write returned another type".into()))
    }

    /// Snapshot of the commit counters.
    pub fn stats(&self) -> CommitStats {
        let s = &self.inner.stats;
        let times = s.times.snapshot();
        CommitStats {
            // Every commit is in the histogram: its count is the number of commits.
            commits: times.count(),
            jobs: s.jobs.load(Ordering::Relaxed),
            last_commit_micros: s.last_commit_micros.load(Ordering::Relaxed),
            write_failures: self.inner.shared.write_failures.load(Ordering::Relaxed),
            times,
        }
    }

    fn submit<R, F>(
        &self,
        f: F,
        urgency: Urgency,
    ) -> Result<oneshot::Receiver<Result<R, StoreError>>, StoreError>
    where
        F: FnMut(&WriteTransaction) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job = Box::new(Pending {
            f,
            reply: Reply::new(reply),
            urgency,
        });
        let jobs = self.inner.jobs.as_ref().ok_or(StoreError::Closed)?;
        jobs.send(job).map_err(|_| StoreError::Closed)?;
        Ok(rx)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel lets the committer drain what is queued and exit; joining it
        // releases the file lock before drop returns, so the same path can be reopened at once.
        drop(self.jobs.take());
        if let Some(handle) = self.committer.take() {
            // A write closure may own the last handle, in which case we are the committer.
            if handle.thread().id() != std::thread::current().id() && handle.join().is_err() {
                tracing::error!(path = %self.path.display(), "store committer thread panicked");
            }
        }
    }
}

enum Outcome {
    Done,
    Failed(StoreError),
    Panicked,
}

/// A type-erased write request as seen by the committer.
trait Job: Send {
    /// Runs the closure in `txn`, keeping its output until `finish`.
    fn run(&mut self, txn: &WriteTransaction) -> Outcome;
    /// The table set the job writes through ([`Db::write_with`]), if any.
    fn set(&self) -> Option<TypeId> {
        None
    }
    /// Runs this job, then `rest` (jobs of the same [`Job::set`], none for a job without one)
    /// sharing one opened set; stops at the first that does not succeed, giving its index
    /// (0 for this job, 1 + its index in `rest` for the others).
    fn run_with(
        &mut self,
        txn: &WriteTransaction,
        rest: &mut [Box<dyn Job>],
    ) -> Result<(), (usize, Outcome)> {
        debug_assert!(rest.is_empty());
        match self.run(txn) {
            Outcome::Done => Ok(()),
            o => Err((0, o)),
        }
    }
    /// The job itself, for a job of a table set to find the others of its set.
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// Acknowledges the caller: with the kept output if `result` is Ok.
    fn finish(self: Box<Self>, result: Result<(), StoreError>);
    /// Whether the job starts a commit or waits for one to join.
    fn urgency(&self) -> Urgency;
}

/// Whether a write starts a commit or waits for one to join.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Urgency {
    /// [`Db::write`]: committed as soon as the committer takes it.
    Commit,
    /// [`Db::write_unhurried`]: joins the next commit, or after [`UNHURRIED_WAIT`] starts one.
    Unhurried,
}

struct Pending<F, R> {
    f: F,
    reply: Reply<R>,
    urgency: Urgency,
}

/// A job's output, kept from its run until its commit, and where it goes then.
struct Reply<R> {
    out: Option<R>,
    to: oneshot::Sender<Result<R, StoreError>>,
}

impl<R> Reply<R> {
    fn new(to: oneshot::Sender<Result<R, StoreError>>) -> Self {
        Reply { out: None, to }
    }

    /// Runs `f`, keeping its output: a panicking closure must not kill the committer and
    /// strand every later writer.
    fn run(&mut self, f: impl FnOnce() -> Result<R, StoreError>) -> Outcome {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(Ok(r)) => {
                self.out = Some(r);
                Outcome::Done
            }
            Ok(Err(e)) => {
                self.out = None;
                Outcome::Failed(e)
            }
            Err(_) => Outcome::Panicked,
        }
    }

    /// Answers the caller: the kept output if `result` (the commit's) is Ok.
    fn send(mut self, result: Result<(), StoreError>) {
        let reply = result.and_then(|()| self.out.take().ok_or(StoreError::Closed));
        // The caller may have stopped waiting (future dropped); the write stands regardless.
        let _ = self.to.send(reply);
    }
}

impl<F, R> Job for Pending<F, R>
where
    F: FnMut(&WriteTransaction) -> Result<R, StoreError> + Send + 'static,
    R: Send + 'static,
{
    fn run(&mut self, txn: &WriteTransaction) -> Outcome {
        let f = &mut self.f;
        self.reply.run(|| f(txn))
    }

    fn finish(self: Box<Self>, result: Result<(), StoreError>) {
        self.reply.send(result);
    }

    fn urgency(&self) -> Urgency {
        self.urgency
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// What a table-set write returns, its type erased until the caller has it back.
type Output = Box<dyn Any + Send>;

/// A table-set write's closure, its output type erased so that every job of one set has the
/// same type and can be found among the batch's jobs.
type SetFn<S> =
    Box<dyn for<'t> FnMut(&mut <S as TableSet>::Open<'t>) -> Result<Output, StoreError> + Send>;

/// A write through the table set `S` ([`Db::write_with`]).
struct SetPending<S: TableSet> {
    f: SetFn<S>,
    reply: Reply<Output>,
    urgency: Urgency,
}

impl<S: TableSet> SetPending<S> {
    fn run_in(&mut self, set: &mut S::Open<'_>) -> Outcome {
        let f = &mut self.f;
        self.reply.run(|| f(set))
    }
}

impl<S: TableSet> Job for SetPending<S> {
    fn run(&mut self, txn: &WriteTransaction) -> Outcome {
        let mut set = S::begin(txn);
        self.run_in(&mut set)
    }

    fn set(&self) -> Option<TypeId> {
        Some(TypeId::of::<S>())
    }

    fn run_with(
        &mut self,
        txn: &WriteTransaction,
        rest: &mut [Box<dyn Job>],
    ) -> Result<(), (usize, Outcome)> {
        let mut set = S::begin(txn);
        match self.run_in(&mut set) {
            Outcome::Done => {}
            o => return Err((0, o)),
        }
        for (i, job) in rest.iter_mut().enumerate() {
            let outcome = match job.as_any_mut().downcast_mut::<SetPending<S>>() {
                Some(same) => same.run_in(&mut set),
                // Grouped by `set()`, so of this type; were it not, the batch is run again
                // job by job, each with a set of its own.
                None => Outcome::Failed(StoreError::Other("table sets mixed in a run".into())),
            };
            if !matches!(outcome, Outcome::Done) {
                return Err((i + 1, outcome));
            }
        }
        Ok(())
    }

    fn finish(self: Box<Self>, result: Result<(), StoreError>) {
        self.reply.send(result);
    }

    fn urgency(&self) -> Urgency {
        self.urgency
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// The committer's own state: how to re-open, and the recovery in progress if any.
struct Committer {
    shared: Arc<Shared>,
    opener: Opener,
    stats: Arc<Stats>,
    hook: HookSlot,
    recovery: Option<Recovery>,
    /// How long an unhurried job waits for a commit to join ([`UNHURRIED_WAIT`]).
    unhurried_wait: Duration,
}

impl Committer {
    fn run(mut self, rx: &mpsc::Receiver<Box<dyn Job>>) {
        let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
        // Unhurried jobs waiting for a commit to join, and when the oldest stops waiting.
        let mut waiting: Vec<Box<dyn Job>> = Vec::new();
        let mut due: Option<Instant> = None;
        loop {
            // Wake up now and then even without work: a fault reported by a reader or by
            // body-file code must start a recovery, and a recovery must progress while idle.
            let mut wait = self.idle_wait();
            if let Some(d) = due {
                wait = wait.min(d.saturating_duration_since(Instant::now()));
            }
            let first = match rx.recv_timeout(wait) {
                Ok(job) => Some(job),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // Closing: what waits is committed before the file is let go.
                    if !waiting.is_empty() {
                        batch.append(&mut waiting);
                        self.commit_batch(&mut batch);
                    }
                    break;
                }
            };
            self.recover_if_due();
            match first {
                Some(job)
                    if job.urgency() == Urgency::Unhurried && waiting.len() + 1 < MAX_BATCH =>
                {
                    due.get_or_insert_with(|| Instant::now() + self.unhurried_wait);
                    waiting.push(job);
                    continue;
                }
                Some(job) => {
                    // Those waiting were submitted first: they go first.
                    batch.append(&mut waiting);
                    batch.push(job);
                }
                None if due.is_some_and(|d| Instant::now() >= d) => {
                    batch.append(&mut waiting);
                }
                None => continue,
            }
            due = None;
            // A commit is being made: whatever is queued joins it, unhurried or not.
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.commit_batch(&mut batch);
        }
    }

    fn idle_wait(&self) -> Duration {
        match &self.recovery {
            Some(r) => r.next_try.saturating_duration_since(Instant::now()),
            None => IDLE_CHECK,
        }
    }

    /// Starts or advances recovery from a storage fault; clears the fault once the database
    /// is open again and a test write succeeds.
    fn recover_if_due(&mut self) {
        let Some(fault) = self.shared.fault() else {
            self.recovery = None;
            return;
        };
        let r = self.recovery.get_or_insert_with(|| {
            tracing::warn!(%fault, "store cannot write; recovering");
            Recovery::new()
        });
        if Instant::now() < r.next_try {
            return;
        }
        match self.shared.try_recover(&self.opener) {
            Ok(()) => {
                tracing::info!("store writable again");
                self.recovery = None;
            }
            Err(e) => {
                tracing::debug!(error = %e, "store still cannot write");
                r.backoff();
            }
        }
    }

    fn commit_batch(&mut self, batch: &mut Vec<Box<dyn Job>>) {
        let hook = hook_of(&self.hook);
        let hook = hook.as_deref();
        if let Some(f) = self.refusing() {
            self.refuse_all(batch, f);
            return;
        }
        let Ok(db) = self.shared.current() else {
            self.refuse_all(batch, StorageFault::Io);
            return;
        };
        if batch.len() == 1 {
            for job in batch.drain(..) {
                self.run_alone(&db, job, hook);
            }
            return;
        }
        match run_batch(&db, batch, &self.stats, hook) {
            Ok(()) => batch.drain(..).for_each(|job| job.finish(Ok(()))),
            Err(BatchFailed::Storage(f)) => {
                // Nothing of the batch was written, and redb will refuse this handle from now on.
                let f = self.shared.fail(f, true);
                self.refuse_all(batch, f);
            }
            Err(BatchFailed::Job(panicked)) => {
                tracing::debug!(
                    jobs = batch.len(),
                    "group commit failed; retrying jobs one by one"
                );
                for (i, job) in batch.drain(..).enumerate() {
                    if Some(i) == panicked {
                        job.finish(Err(StoreError::Panicked));
                    } else if let Some(f) = self.refusing() {
                        self.refuse(job, f);
                    } else {
                        self.run_alone(&db, job, hook);
                    }
                }
            }
        }
    }

    fn refusing(&self) -> Option<StorageFault> {
        self.shared.fault()
    }

    fn refuse(&self, job: Box<dyn Job>, f: StorageFault) {
        self.shared.write_failures.fetch_add(1, Ordering::Relaxed);
        job.finish(Err(StoreError::Unavailable(f)));
    }

    fn refuse_all(&self, batch: &mut Vec<Box<dyn Job>>, f: StorageFault) {
        for job in batch.drain(..) {
            self.refuse(job, f);
        }
    }

    fn run_alone(&self, db: &Database, job: Box<dyn Job>, hook: Option<&dyn BatchHook>) {
        let mut job = job;
        let result = run_one(db, &mut *job, &self.stats, hook);
        let result = result.map_err(|e| match e.fault() {
            Some(f) => {
                // redb refuses every later use of this handle; the next loop re-opens it.
                let f = self.shared.fail(f, true);
                self.shared.write_failures.fetch_add(1, Ordering::Relaxed);
                StoreError::Unavailable(f)
            }
            None => e,
        });
        job.finish(result);
    }
}

fn begin(db: &Database) -> Result<WriteTransaction, StoreError> {
    let mut txn = db.begin_write()?;
    // Immediate is redb's default; stated because acknowledging writes depends on it.
    txn.set_durability(Durability::Immediate);
    Ok(txn)
}

fn commit(txn: WriteTransaction, jobs: u64, stats: &Stats) -> Result<(), StoreError> {
    let started = Instant::now();
    txn.commit()?;
    let took = started.elapsed();
    let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    stats.last_commit_micros.store(micros, Ordering::Relaxed);
    stats.times.observe(took);
    stats.jobs.fetch_add(jobs, Ordering::Relaxed);
    Ok(())
}

fn abort(txn: WriteTransaction, hook: Option<&dyn BatchHook>) {
    if let Some(h) = hook {
        h.on_abort();
    }
    if let Err(e) = txn.abort() {
        tracing::warn!(error = %e, "aborting store write transaction failed");
    }
}

/// Why a group commit failed.
enum BatchFailed {
    /// A job failed (or panicked, at this index: it must not be re-run); the others may
    /// succeed alone.
    Job(Option<usize>),
    /// The storage could not write; no job can succeed now.
    Storage(StorageFault),
}

/// Runs every job in one transaction. On failure everything is rolled back.
fn run_batch(
    db: &Database,
    batch: &mut [Box<dyn Job>],
    stats: &Stats,
    hook: Option<&dyn BatchHook>,
) -> Result<(), BatchFailed> {
    let storage = |e: StoreError| match e.fault() {
        Some(f) => BatchFailed::Storage(f),
        None => BatchFailed::Job(None),
    };
    let txn = begin(db).map_err(storage)?;
    // Runs of consecutive jobs of one table set share it; any other job runs on its own.
    let mut start = 0;
    while let Some((head, rest)) = batch[start..].split_first_mut() {
        let same = match head.set() {
            Some(id) => rest.iter().take_while(|j| j.set() == Some(id)).count(),
            None => 0,
        };
        let result = head.run_with(&txn, &mut rest[..same]);
        match result {
            Ok(()) => {}
            Err((_, Outcome::Failed(e))) => {
                flag_reopened_table(&e);
                abort(txn, hook);
                return Err(BatchFailed::Job(None));
            }
            Err((_, Outcome::Done)) => {
                abort(txn, hook);
                return Err(BatchFailed::Job(None));
            }
            Err((i, Outcome::Panicked)) => {
                abort(txn, hook);
                return Err(BatchFailed::Job(Some(start + i)));
            }
        }
        start += 1 + same;
    }
    if let Some(h) = hook {
        if h.before_commit(&txn).is_err() {
            abort(txn, hook);
            return Err(BatchFailed::Job(None));
        }
    }
    commit(txn, batch.len() as u64, stats).map_err(|e| {
        // A failed commit leaves nothing written; what the hook gathered is gone with it.
        if let Some(h) = hook {
            h.on_abort();
        }
        storage(e)
    })
}

/// A write that opened a table already open in its transaction (one of its table set's,
/// opened directly, or one it opened twice) is a bug that costs every batch it joins a re-run
/// job by job: said loudly, and a failed assertion in debug builds (the tests).
fn flag_reopened_table(e: &StoreError) {
    if let StoreError::Db(e) = e {
        if let redb::Error::TableAlreadyOpen(name, _) = e.as_ref() {
            tracing::warn!(
                table = %name,
                "a write opened a table its transaction already holds open (one of its table \
                 set's, opened directly?); its batch is run again job by job"
            );
            debug_assert!(false, "table {name} opened twice in one transaction");
        }
    }
}

fn run_one(
    db: &Database,
    job: &mut dyn Job,
    stats: &Stats,
    hook: Option<&dyn BatchHook>,
) -> Result<(), StoreError> {
    let txn = begin(db)?;
    match job.run(&txn) {
        Outcome::Done => {
            if let Some(h) = hook {
                if let Err(e) = h.before_commit(&txn) {
                    abort(txn, hook);
                    return Err(e);
                }
            }
            commit(txn, 1, stats).inspect_err(|_| {
                if let Some(h) = hook {
                    h.on_abort();
                }
            })
        }
        Outcome::Failed(e) => {
            flag_reopened_table(&e);
            abort(txn, hook);
            Err(e)
        }
        Outcome::Panicked => {
            abort(txn, hook);
            Err(StoreError::Panicked)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use crate::testutil::{get, put, T};

    #[tokio::test(flavor = "multi_thread", worker_threads = 8)]
    async fn concurrent_writes_share_commits_and_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.redb");
        let db = Db::open(&path).expect("open");
        let tasks: Vec<_> = (0..200u64)
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move { db.write(put(i, i * 10)).await })
            })
            .collect();
        for t in tasks {
            t.await.expect("join").expect("write");
        }
        let stats = db.stats();
        assert_eq!(stats.jobs, 200);
        assert!(
            stats.commits < stats.jobs,
            "no batching happened: {stats:?}"
        );
        drop(db);

        let db = Db::open(&path).expect("reopen");
        for i in 0..200 {
            assert_eq!(get(&db, i), Some(i * 10));
        }
    }

    use redb::ReadableTable;

    /// Adds up what jobs report and writes the sum to key 0 once per commit.
    #[derive(Default)]
    struct SumHook {
        pending: std::sync::Mutex<u64>,
        flushes: AtomicUsize,
    }

    impl BatchHook for SumHook {
        fn before_commit(&self, txn: &WriteTransaction) -> Result<(), StoreError> {
            let add = std::mem::take(&mut *self.pending.lock().expect("lock"));
            let mut t = txn.open_table(T)?;
            let cur = t.get(0)?.map(|v| v.value()).unwrap_or(0);
            t.insert(0, cur + add)?;
            self.flushes.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        fn on_abort(&self) {
            *self.pending.lock().expect("lock") = 0;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn batch_hook_sums_once_per_commit_and_forgets_rolled_back_work() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("s.redb")).expect("open");
        let hook = Arc::new(SumHook::default());
        db.set_batch_hook(hook.clone());
        let tasks: Vec<_> = (1..=100u64)
            .map(|i| {
                let (db, hook) = (db.clone(), hook.clone());
                tokio::spawn(async move {
                    db.write(move |txn| {
                        *hook.pending.lock().expect("lock") += 1;
                        txn.open_table(T)?.insert(i, i)?;
                        // Every tenth job fails after reporting: its share must vanish.
                        if i % 10 == 0 {
                            return Err(StoreError::Other("refused".into()));
                        }
                        Ok(())
                    })
                    .await
                })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            if t.await.expect("join").is_ok() {
                ok += 1;
            }
        }
        assert_eq!(ok, 90);
        assert_eq!(get(&db, 0), Some(90), "sum must count committed jobs only");
        assert_eq!(get(&db, 10), None);
        let s = db.stats();
        assert_eq!(hook.flushes.load(Ordering::Relaxed) as u64, s.commits);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn failing_or_panicking_closure_does_not_affect_its_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("s.redb")).expect("open");
        // Keep the committer busy so the following jobs queue up and form one batch.
        let blocker = tokio::spawn({
            let db = db.clone();
            async move {
                db.write(|_txn| {
                    std::thread::sleep(Duration::from_millis(200));
                    Ok(())
                })
                .await
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let a_runs = Arc::new(AtomicUsize::new(0));
        let a = db.write({
            let (runs, mut put) = (a_runs.clone(), put(1, 1));
            move |txn| {
                runs.fetch_add(1, Ordering::Relaxed);
                put(txn)
            }
        });
        let bad = db.write(|txn| {
            txn.open_table(T)?.insert(2, 2)?;
            Err::<(), _>(StoreError::Other("nope".into()))
        });
        let boom = db.write(|txn| -> Result<(), StoreError> {
            txn.open_table(T)?.insert(3, 3)?;
            panic!("boom")
        });
        let c = db.write(put(4, 4));
        // join! polls in order on its first poll, so all four are queued behind the blocker.
        let (a, bad, boom, c) = tokio::join!(a, bad, boom, c);
        blocker.await.expect("join").expect("blocker");
        a.expect("a");
        c.expect("c");
        assert!(matches!(bad, Err(StoreError::Other(m)) if m == "nope"));
        assert!(matches!(boom, Err(StoreError::Panicked)));
        // Ran once in the failed batch, then again alone.
        assert_eq!(a_runs.load(Ordering::Relaxed), 2);
        assert_eq!(get(&db, 1), Some(1));
        assert_eq!(get(&db, 2), None);
        assert_eq!(get(&db, 3), None);
        assert_eq!(get(&db, 4), Some(4));
        // The committer survived the panic.
        db.write(put(5, 5)).await.expect("after panic");
    }

    /// The test table set opened: the transaction and the one test table.
    type Opened<'t> = (&'t WriteTransaction, crate::LazyTable<'t, u64, u64>);

    /// A table set of the one test table, counting how often it is begun.
    struct Counted<const N: usize>;
    static BEGUN: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];
    impl<const N: usize> TableSet for Counted<N> {
        type Open<'t> = Opened<'t>;
        fn begin(txn: &WriteTransaction) -> Self::Open<'_> {
            BEGUN[N].fetch_add(1, Ordering::Relaxed);
            (txn, crate::LazyTable::new(T))
        }
    }

    /// A write of (k, v) through the set, also reading `k - 1` (what an earlier write left).
    fn put_set<const N: usize>(
        k: u64,
        v: u64,
    ) -> impl for<'t> FnMut(&mut Opened<'t>) -> Result<Option<u64>, StoreError> {
        move |(txn, t)| {
            let t = t.open(txn)?;
            let before = t.get(k - 1)?.map(|g| g.value());
            t.insert(k, v)?;
            Ok(before)
        }
    }

    /// Holds the committer for a while, so that what is written next forms one batch.
    fn block(db: &Db) -> tokio::task::JoinHandle<Result<(), StoreError>> {
        let db = db.clone();
        tokio::spawn(async move {
            db.write(|_txn| {
                std::thread::sleep(Duration::from_millis(200));
                Ok(())
            })
            .await
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn consecutive_writes_of_one_table_set_share_it_and_keep_their_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("s.redb")).expect("open");
        let blocker = block(&db);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let a = db.write_with::<Counted<0>, _, _>(put_set::<0>(1, 10));
        let b = db.write_with::<Counted<0>, _, _>(put_set::<0>(2, 20));
        // A write opening the set's table directly: the set is closed before it runs.
        let plain = db.write(|txn| {
            let mut t = txn.open_table(T)?;
            let seen = t.get(2)?.map(|g| g.value());
            t.insert(3, 30)?;
            Ok(seen)
        });
        let c = db.write_with::<Counted<0>, _, _>(put_set::<0>(4, 40));
        let (a, b, plain, c) = tokio::join!(a, b, plain, c);
        blocker.await.expect("join").expect("blocker");
        assert_eq!(a.expect("a"), None);
        assert_eq!(b.expect("b"), Some(10), "the second write sees the first");
        assert_eq!(plain.expect("plain"), Some(20));
        assert_eq!(
            c.expect("c"),
            Some(30),
            "the set is opened again after the plain write"
        );
        // One set for a and b, one for c: not one per write, and not one for the batch.
        assert_eq!(BEGUN[0].load(Ordering::Relaxed), 2);
        assert_eq!(
            db.stats().commits,
            2,
            "the blocker's commit and one for the four"
        );
        for (k, v) in [(1, 10), (2, 20), (3, 30), (4, 40)] {
            assert_eq!(get(&db, k), Some(v));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_failing_or_panicking_table_set_write_leaves_the_others_of_its_run_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("s.redb")).expect("open");
        let blocker = block(&db);
        tokio::time::sleep(Duration::from_millis(50)).await;
        // A plain write first, so the run of the set's writes starts inside the batch.
        let first = db.write(put(9, 90));
        let a = db.write_with::<Counted<1>, _, _>(put_set::<1>(1, 10));
        let bad = db.write_with::<Counted<1>, _, _>(|(txn, t)| {
            t.open(txn)?.insert(2, 20)?;
            Err::<(), _>(StoreError::Other("nope".into()))
        });
        let boom = db.write_with::<Counted<1>, _, _>(|(txn, t)| -> Result<(), StoreError> {
            t.open(txn)?.insert(3, 30)?;
            panic!("boom")
        });
        let c = db.write_with::<Counted<1>, _, _>(put_set::<1>(5, 50));
        // The panic comes first in the run, so the batch stops there and must name it.
        let (first, a, boom, bad, c) = tokio::join!(first, a, boom, bad, c);
        blocker.await.expect("join").expect("blocker");
        first.expect("first");
        assert_eq!(a.expect("a"), None);
        assert!(matches!(bad, Err(StoreError::Other(m)) if m == "nope"));
        assert!(matches!(boom, Err(StoreError::Panicked)), "{boom:?}");
        assert_eq!(c.expect("c"), None);
        assert_eq!(get(&db, 1), Some(10));
        assert_eq!(get(&db, 2), None);
        assert_eq!(get(&db, 3), None);
        assert_eq!(get(&db, 5), Some(50));
        db.write_with::<Counted<1>, _, _>(put_set::<1>(6, 60))
            .await
            .expect("after panic");
    }

    /// A `Db` on `path` whose unhurried writes wait `wait` for a commit to join.
    fn open_waiting(path: &Path, wait: Duration) -> Db {
        let p = path.to_owned();
        Db::open_waiting(path, Box::new(move || open_file(&p)), wait).expect("open")
    }

    /// Polls `fut` once (submitting its write) and hands it back, still pending.
    async fn submitted<F: std::future::Future + Unpin>(mut fut: F) -> F {
        tokio::select! {
            biased;
            _ = &mut fut => panic!("the unhurried write finished before any commit"),
            () = std::future::ready(()) => fut,
        }
    }

    #[tokio::test]
    async fn an_unhurried_write_joins_the_next_commit_and_goes_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open_waiting(&dir.path().join("s.redb"), Duration::from_secs(60));
        let lazy = submitted(Box::pin(db.write_unhurried(put(1, 10)))).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(db.stats().commits, 0, "an unhurried write started a commit");
        assert_eq!(get(&db, 1), None);
        // The ordinary write sees what the unhurried one wrote: it ran first, in its commit.
        let seen = db
            .write(|txn| {
                let v = txn.open_table(T)?.get(1)?.map(|g| g.value());
                txn.open_table(T)?.insert(2, 20)?;
                Ok(v)
            })
            .await
            .expect("write");
        assert_eq!(seen, Some(10));
        lazy.await.expect("unhurried write");
        let s = db.stats();
        assert_eq!((s.commits, s.jobs), (1, 2), "both writes in one commit");
        assert_eq!((get(&db, 1), get(&db, 2)), (Some(10), Some(20)));
    }

    #[tokio::test]
    async fn an_unhurried_write_alone_is_committed_after_its_wait() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.redb");
        let db = open_waiting(&path, Duration::from_millis(100));
        let started = Instant::now();
        db.write_unhurried(put(3, 30))
            .await
            .expect("unhurried write");
        assert!(
            started.elapsed() >= Duration::from_millis(100),
            "committed before its wait: {:?}",
            started.elapsed()
        );
        assert_eq!(db.stats().commits, 1);
        drop(db);
        assert_eq!(get(&Db::open(&path).expect("reopen"), 3), Some(30));
    }

    #[tokio::test]
    async fn waiting_unhurried_writes_are_committed_when_the_store_closes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.redb");
        let db = open_waiting(&path, Duration::from_secs(60));
        // Submitted, then no longer waited on: the write stands all the same.
        drop(submitted(Box::pin(db.write_unhurried(put(4, 40)))).await);
        let started = Instant::now();
        drop(db);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "closing waited"
        );
        assert_eq!(get(&Db::open(&path).expect("reopen"), 4), Some(40));
    }

    #[test]
    fn second_open_is_locked_and_reopen_after_drop_works() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.redb");
        let db = Db::open(&path).expect("open");
        db.write_blocking(put(7, 70)).expect("write");
        match Db::open(&path) {
            Err(StoreError::Locked { path: p }) => assert_eq!(p, path),
            other => panic!("expected Locked, got {other:?}"),
        }
        let clone = db.clone();
        drop(db);
        assert_eq!(get(&clone, 7), Some(70));
        drop(clone);
        let db = Db::open(&path).expect("reopen");
        assert_eq!(get(&db, 7), Some(70));
        assert_eq!(db.write_blocking(|_| Ok(42)).expect("return value"), 42);
    }

    const CHILD_ENV: &str = "POROS_STORE_CRASH_CHILD";

    /// Child half of `acknowledged_writes_survive_sigkill`; does nothing unless spawned by it.
    #[test]
    fn crash_child() {
        let Some(path) = std::env::var_os(CHILD_ENV) else {
            return;
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let db = Db::open(Path::new(&path)).expect("child open");
            let writers: Vec<_> = (0..8u64)
                .map(|w| {
                    let db = db.clone();
                    tokio::spawn(async move {
                        for i in 0.. {
                            let key = i * 8 + w;
                            // Every way of writing acknowledges only what is durable: plain
                            // and unhurried writes, each also through a table set.
                            match w % 4 {
                                0 => db.write(put(key, key + 1)).await.expect("child write"),
                                1 => db
                                    .write_unhurried(put(key, key + 1))
                                    .await
                                    .expect("child unhurried write"),
                                2 => {
                                    db.write_with::<Counted<0>, _, _>(put_set::<0>(key, key + 1))
                                        .await
                                        .expect("child table-set write");
                                }
                                _ => {
                                    db.write_unhurried_with::<Counted<0>, _, _>(put_set::<0>(
                                        key,
                                        key + 1,
                                    ))
                                    .await
                                    .expect("child unhurried table-set write");
                                }
                            }
                            let mut out = std::io::stdout().lock();
                            writeln!(out, "ack {key}")
                                .and_then(|()| out.flush())
                                .expect("stdout");
                        }
                    })
                })
                .collect();
            for w in writers {
                w.await.expect("writer");
            }
        });
    }

    #[test]
    fn acknowledged_writes_survive_sigkill() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.redb");
        let mut child = Command::new(std::env::current_exe().expect("current_exe"))
            .args([
                "--exact",
                "db::tests::crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn child");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut acked = Vec::new();
        while acked.len() < 300 {
            let line = lines
                .next()
                .expect("child exited early")
                .expect("read child stdout");
            if let Some(key) = line.strip_prefix("ack ") {
                acked.push(key.parse::<u64>().expect("key"));
            }
        }
        child.kill().expect("kill child");
        child.wait().expect("wait child");
        // Acks already in the pipe were also durable before they were printed.
        for line in lines {
            if let Some(key) = line.expect("read child stdout").strip_prefix("ack ") {
                acked.push(key.parse().expect("key"));
            }
        }
        let db = Db::open(&path).expect("reopen after kill");
        for key in &acked {
            assert_eq!(get(&db, *key), Some(key + 1), "acknowledged key {key} lost");
        }
    }
}
