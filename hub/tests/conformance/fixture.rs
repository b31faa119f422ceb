//! Each backend opened on fresh storage, and a scenario run on it.
//!
//! - redb: `HubStore` on `hub.redb` in a temporary directory.
//! - PostgreSQL: a fresh database, owned by the application role, on one server shared by the
//!   whole test binary and started on first use (see [`pg`]); created before the scenario and
//!   dropped after it.

use poros_hub::state::pg::{PgOptions, PgStore};
use poros_hub::state::{HubBackend, HubStore};
use poros_store::Db;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

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

/// Run `scenario` on a fresh PostgreSQL database (named after the scenario).
pub fn run_postgres(name: &str, scenario: Scenario) {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let server = pg::shared();
    let _slot = pg::Slot::take();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let short: String = name.chars().take(40).collect();
    let db = format!("c{}_{n}_{short}", std::process::id());
    let rt = runtime();
    rt.block_on(server.create_db(&db));
    let url = server.url_of(&db);
    let out = catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(async {
            let b = postgres_backend(&url).await;
            scenario(b).await
        })
    }));
    // The store's pool is gone with the scenario; FORCE ends anything left over.
    rt.block_on(server.drop_db(&db));
    drop(rt);
    if let Err(p) = out {
        resume_unwind(p)
    }
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
    Arc::new(super::pg_backend::PgBackend(store))
}

pub mod pg {
    //! The PostgreSQL server of this test binary, started once, on first use.

    use poros_harness::pg::{PgServer, APP_ROLE};
    use std::os::unix::process::CommandExt;
    use std::path::Path;
    use std::process::{Child, Command, Stdio};
    use std::sync::{Condvar, Mutex, OnceLock};

    /// The server, and where fresh databases are made.
    pub struct Shared {
        /// The superuser, on a database that always exists.
        admin_url: String,
        /// `postgres://poros@127.0.0.1:PORT/`, a database name appended.
        base: String,
        /// Kept for the life of the process (stopped by the lifeline).
        _server: Mutex<PgServer>,
        /// The lifeline, holding the write end of its stdin (closed when the process ends).
        _lifeline: Mutex<Child>,
    }

    static SHARED: OnceLock<Shared> = OnceLock::new();

    /// Most scenarios on the server at once (each has a pool of its own; the server allows
    /// 100 connections), however many test threads there are.
    const MAX_AT_ONCE: usize = 4;

    static RUNNING: Mutex<usize> = Mutex::new(0);
    static FREED: Condvar = Condvar::new();

    /// One of the [`MAX_AT_ONCE`] places, held while a scenario runs.
    pub struct Slot;

    impl Slot {
        /// Wait for a place.
        pub fn take() -> Slot {
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

    /// The shared server, started on first use.
    pub fn shared() -> &'static Shared {
        SHARED.get_or_init(start)
    }

    /// Start PostgreSQL (`poros_harness::pg::PgServer`) in a temporary directory, with a
    /// lifeline that stops it when this test process ends.
    fn start() -> Shared {
        // Kept (never removed by a drop: statics are not dropped); the lifeline removes it.
        let root = tempfile::Builder::new()
            .prefix("poros-conform-")
            .tempdir_in(std::env::temp_dir())
            .expect("a temporary directory")
            .keep();
        let server = PgServer::start(&root, "pg")
            .unwrap_or_else(|e| panic!("starting PostgreSQL for the conformance suite: {e}"));
        let pid = server.pid().expect("the postmaster runs");
        let lifeline = lifeline(pid, &root);
        Shared {
            admin_url: server.superuser_url(),
            base: format!("postgres://{APP_ROLE}@127.0.0.1:{}/", server.port()),
            _server: Mutex::new(server),
            _lifeline: Mutex::new(lifeline),
        }
    }

    /// A watchdog for the server: statics are never dropped, so the server would outlive the
    /// test process. `sh` waits for end of file on its stdin, a pipe whose only writer is this
    /// process (std opens it close-on-exec, so no other child inherits it): whenever and
    /// however this process ends, the kernel closes it; then `sh` asks the postmaster for a
    /// fast shutdown, kills its process group if it is still there after 10 s, and removes
    /// the directory. Its own process group, so a Ctrl-C to the tests does not stop it first.
    fn lifeline(postmaster: u32, root: &Path) -> Child {
        const SCRIPT: &str = r#"cat >/dev/null
kill -INT "$1" 2>/dev/null
i=0
while kill -0 "$1" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
kill -KILL -- "-$1" 2>/dev/null
rm -rf -- "$2""#;
        Command::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg("poros-conformance-lifeline")
            .arg(postmaster.to_string())
            .arg(root)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("starting the server's lifeline (sh)")
    }

    impl Shared {
        /// The URL of database `db`, as the application role.
        pub fn url_of(&self, db: &str) -> String {
            format!("{}{db}", self.base)
        }

        async fn admin(&self) -> tokio_postgres::Client {
            let (client, conn) = tokio_postgres::connect(&self.admin_url, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.admin_url));
            tokio::spawn(async move {
                let _ = conn.await;
            });
            client
        }

        /// Create an empty database `db`.
        pub async fn create_db(&self, db: &str) {
            let c = self.admin().await;
            c.batch_execute(&format!("CREATE DATABASE {db} OWNER {APP_ROLE}"))
                .await
                .unwrap_or_else(|e| panic!("CREATE DATABASE {db}: {e}"));
        }

        /// Drop database `db` (ending its connections); errors are ignored.
        pub async fn drop_db(&self, db: &str) {
            let c = self.admin().await;
            let _ = c
                .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .await;
        }
    }
}
