//! Whether the store can write, and recovery after it could not (full disk, I/O error).
//! Owns the swappable database handle shared by readers and the committer, and the backoff.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use redb::{Database, Durability, TableDefinition};

use crate::{StorageFault, StoreError};

/// How the committer (re-)opens the database file.
pub(crate) type Opener = Box<dyn Fn() -> Result<Database, StoreError> + Send + Sync>;

/// How often an idle, healthy committer looks for a fault reported from outside.
pub(crate) const IDLE_CHECK: Duration = Duration::from_millis(500);

/// Bytes committed (then deleted) to show that writing works again: a commit needs some room,
/// so "one byte fits" would flap between writable and full.
pub const PROBE_BYTES: usize = 1024 * 1024;

/// Where the probe is written: through redb itself, so it meets the same file and limits
/// as real writes.
pub(crate) const PROBE: TableDefinition<u8, &[u8]> =
    TableDefinition::new("poros_store_write_probe");

const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What readers, writers and the committer share.
pub(crate) struct Shared {
    /// The open database; `None` while it is being re-opened after a failed write.
    db: RwLock<Option<Arc<Database>>>,
    /// The fault being recovered from, if any.
    fault: Mutex<Option<StorageFault>>,
    /// Whether the database handle failed (redb then refuses it for good) rather than, say,
    /// a body file next to it.
    reopen: AtomicBool,
    /// Writes refused or failed for a storage fault, since start.
    pub(crate) write_failures: AtomicU64,
}

impl Shared {
    pub(crate) fn new(db: Database) -> Shared {
        Shared {
            db: RwLock::new(Some(Arc::new(db))),
            fault: Mutex::new(None),
            reopen: AtomicBool::new(false),
            write_failures: AtomicU64::new(0),
        }
    }

    /// The database to use now.
    pub(crate) fn current(&self) -> Result<Arc<Database>, StoreError> {
        let db = self.db.read().ok().and_then(|d| d.clone());
        db.ok_or_else(|| StoreError::Unavailable(self.fault().unwrap_or(StorageFault::Io)))
    }

    pub(crate) fn fault(&self) -> Option<StorageFault> {
        self.fault.lock().ok().and_then(|f| *f)
    }

    /// Marks the store unwritable. The first cause is kept: the errors that follow a failed
    /// write are redb's generic "previous I/O error", which would hide "disk full".
    /// `db_failed`: the database handle itself met the fault and must be re-opened.
    /// Returns the fault now recorded, which callers report instead of their own.
    pub(crate) fn fail(&self, fault: StorageFault, db_failed: bool) -> StorageFault {
        if db_failed {
            self.reopen.store(true, Ordering::Release);
        }
        match self.fault.lock() {
            Ok(mut f) => *f.get_or_insert(fault),
            Err(_) => fault,
        }
    }

    /// One recovery attempt: re-open the database if it failed, then probe a real write.
    pub(crate) fn try_recover(&self, opener: &Opener) -> Result<(), StoreError> {
        if self.reopen.load(Ordering::Acquire) {
            // Drop our handle so its file lock is released (readers still holding the old
            // one delay this; a later attempt succeeds), then open afresh: redb falls back
            // to its last good commit.
            if let Ok(mut d) = self.db.write() {
                d.take();
            }
            // redb asserts on some damaged files; a panic must not kill the committer.
            let db = catch_unwind(AssertUnwindSafe(opener))
                .map_err(|_| StoreError::Other("re-opening the database panicked".into()))??;
            if let Ok(mut d) = self.db.write() {
                *d = Some(Arc::new(db));
            }
            self.reopen.store(false, Ordering::Release);
            tracing::info!("database re-opened on its last good commit");
        }
        let db = self.current()?;
        if let Err(e) = probe_write(&db) {
            if e.fault().is_some() {
                self.reopen.store(true, Ordering::Release);
            }
            return Err(e);
        }
        if let Ok(mut f) = self.fault.lock() {
            *f = None;
        }
        Ok(())
    }
}

/// Commits [`PROBE_BYTES`], then removes them in a second commit.
fn probe_write(db: &Database) -> Result<(), StoreError> {
    let filler = vec![0xa5; PROBE_BYTES];
    for keep in [true, false] {
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate);
        {
            let mut t = txn.open_table(PROBE)?;
            if keep {
                t.insert(0, filler.as_slice())?;
            } else {
                t.remove(0)?;
            }
        }
        txn.commit()?;
    }
    Ok(())
}

/// Backoff between recovery attempts.
pub(crate) struct Recovery {
    pub(crate) next_try: Instant,
    wait: Duration,
}

impl Recovery {
    /// The first attempt is immediate: readers need a working handle again as soon as possible.
    pub(crate) fn new() -> Recovery {
        Recovery {
            next_try: Instant::now(),
            wait: FIRST_BACKOFF,
        }
    }

    pub(crate) fn backoff(&mut self) {
        self.next_try = Instant::now() + self.wait;
        self.wait = (self.wait * 2).min(MAX_BACKOFF);
    }
}

/// Gauge: 1 while the store can write, 0 while it recovers from a storage fault (alert on 0).
pub const WRITABLE_METRIC: &str = "poros_store_writable";
/// Counter: writes refused or failed because the storage could not write.
pub const WRITE_FAILURES_METRIC: &str = "poros_store_write_failures_total";

/// Prometheus text for a store's health, the same on hub and agent.
pub fn health_metrics(db: &crate::Db) -> String {
    let writable = u8::from(db.health().is_none());
    format!(
        "# TYPE {WRITABLE_METRIC} gauge\n{WRITABLE_METRIC} {writable}\n\
         # TYPE {WRITE_FAILURES_METRIC} counter\n{WRITE_FAILURES_METRIC} {}\n",
        db.stats().write_failures
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Db;
    use std::path::Path;

    use crate::testutil::{get, put};

    /// A file whose writes fail with "no space" while `full` is set: a full disk on demand.
    #[derive(Debug)]
    struct FillableFile {
        file: redb::backends::FileBackend,
        full: Arc<std::sync::atomic::AtomicBool>,
    }

    impl redb::StorageBackend for FillableFile {
        fn len(&self) -> Result<u64, std::io::Error> {
            self.file.len()
        }
        fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, std::io::Error> {
            self.file.read(offset, len)
        }
        fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
            self.file.set_len(len)
        }
        fn sync_data(&self, eventual: bool) -> Result<(), std::io::Error> {
            self.file.sync_data(eventual)
        }
        fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
            if self.full.load(Ordering::SeqCst) {
                return Err(std::io::Error::from(std::io::ErrorKind::StorageFull));
            }
            self.file.write(offset, data)
        }
    }

    fn fillable(path: &Path, full: &Arc<std::sync::atomic::AtomicBool>) -> Db {
        let (path, full) = (path.to_owned(), full.clone());
        let p = path.clone();
        Db::open_with(
            &p,
            Box::new(move || {
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&path)
                    .map_err(|source| StoreError::Io {
                        op: "open",
                        path: path.clone(),
                        source,
                    })?;
                let file = redb::backends::FileBackend::new(f)?;
                let backend = FillableFile {
                    file,
                    full: full.clone(),
                };
                Ok(redb::Builder::new().create_with_backend(backend)?)
            }),
        )
        .expect("open fillable")
    }

    fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn full_disk_refuses_writes_then_recovers_without_reopening_by_the_caller() {
        let dir = tempfile::tempdir().expect("tempdir");
        let full = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let db = fillable(&dir.path().join("s.redb"), &full);
        db.write_blocking(put(1, 10))
            .expect("write before the disk fills");
        assert_eq!(db.health(), None);

        full.store(true, Ordering::SeqCst);
        match db.write_blocking(put(2, 20)) {
            Err(StoreError::Unavailable(StorageFault::NoSpace)) => {}
            other => panic!("expected Unavailable(NoSpace), got {other:?}"),
        }
        assert_eq!(db.health(), Some(StorageFault::NoSpace));
        // Later writes are refused at once with the same retryable cause, not redb's
        // "previous I/O error".
        match db.write_blocking(put(3, 30)) {
            Err(e) => assert_eq!(e.fault(), Some(StorageFault::NoSpace), "{e}"),
            Ok(()) => panic!("write accepted on a full disk"),
        }
        assert!(db.stats().write_failures >= 2);
        assert_eq!(db.health(), Some(StorageFault::NoSpace), "still full");

        full.store(false, Ordering::SeqCst);
        wait_for("the store to become writable", || db.health().is_none());
        db.write_blocking(put(4, 40))
            .expect("write after space is freed");
        // Re-opened on redb's last good commit: the acknowledged write is there.
        assert_eq!(get(&db, 1), Some(10));
        assert_eq!(get(&db, 2), None, "a refused write must not appear");
        assert_eq!(get(&db, 4), Some(40));
    }

    #[test]
    fn a_fault_reported_from_outside_clears_once_writing_works() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("s.redb")).expect("open");
        db.report_fault(StorageFault::NoSpace);
        assert_eq!(db.health(), Some(StorageFault::NoSpace));
        wait_for("the probe to clear the fault", || db.health().is_none());
        db.write_blocking(put(1, 1)).expect("write");
    }
}
