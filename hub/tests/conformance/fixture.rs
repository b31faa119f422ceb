//! Each backend opened on fresh storage, and a scenario run on it.
//!
//! - redb: `HubStore` on `hub.redb` in a temporary directory.
//! - PostgreSQL: a fresh database, owned by the application role, on the one server the
//!   whole test binary shares (`poros_harness::fresh_database`, stopped when the binary ends).

use poros_hub::state::pg::{PgOptions, PgStore};
use poros_hub::state::{HubBackend, HubStore};
use poros_store::Db;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};

/// A scenario: an async function of the backend under test.
pub type Scenario = fn(Arc<dyn HubBackend>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Several worker threads: the concurrency scenarios race tasks for real.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

/// Run `scenario` on a fresh redb store.
pub fn run_redb(scenario: Scenario) {
    let dir = tempfile::tempdir().unwrap();
    // Opening writes its tables with a blocking commit: outside the runtime.
    let db = Db::open(&dir.path().join("hub.redb")).unwrap();
    let store = HubStore::open(db).unwrap();
    runtime().block_on(scenario(Arc::new(store)));
}

/// Run `scenario` on a fresh PostgreSQL database (named after the scenario), on the server
/// this test binary shares (`poros_harness::fresh_database`).
pub fn run_postgres(name: &str, scenario: Scenario) {
    let _slot = Slot::take();
    let short: String = name.chars().take(40).collect();
    let url = poros_harness::fresh_database(&format!("c_{short}"))
        .unwrap_or_else(|e| panic!("a fresh database for {name}: {e}"));
    runtime().block_on(async {
        let b = postgres_backend(&url).await;
        scenario(b).await
    });
}

/// The PostgreSQL backend on `url`, migrated.
async fn postgres_backend(url: &str) -> Arc<dyn HubBackend> {
    let mut opts = PgOptions::new(url);
    // Many scenarios run at once on one server: a small pool each (the concurrency
    // scenarios race 8 tasks).
    opts.pool_size = 10;
    opts.instance = "conformance".into();
    let store = PgStore::connect(opts)
        .await
        .unwrap_or_else(|e| panic!("PgStore::connect({url}): {e}"));
    Arc::new(store)
}

/// Most scenarios on the server at once (each has a pool of its own; the server allows 100
/// connections), however many test threads there are.
const MAX_AT_ONCE: usize = 4;

static RUNNING: Mutex<usize> = Mutex::new(0);
static FREED: Condvar = Condvar::new();

/// One of the [`MAX_AT_ONCE`] places, held while a scenario runs.
struct Slot;

impl Slot {
    /// Wait for a place.
    fn take() -> Slot {
        let mut n = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= MAX_AT_ONCE {
            n = FREED.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
        Slot
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut n = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        *n -= 1;
        FREED.notify_one();
    }
}
