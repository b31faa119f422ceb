//! One PostgreSQL server shared by all the tests of a test binary, and a fresh database for
//! each test ([`fresh_database`]): starting a cluster takes seconds, creating a database a
//! few milliseconds.
//!
//! The server is started on first use and outlives every test; a watchdog process (started
//! with it, in a session of its own) stops it and removes its directory once the test
//! process is gone, however that process ends.

use crate::pg::{io_err, psql, PgServer, APP_ROLE};
use crate::Error;
use std::sync::{Mutex, OnceLock};

struct Shared {
    port: u16,
    superuser_url: String,
}

static SHARED: OnceLock<Mutex<Option<Shared>>> = OnceLock::new();

/// A new, empty database on the shared server, owned by the application role: its URL
/// (`postgres://poros@127.0.0.1:PORT/<prefix>_<unique>`).
pub fn fresh_database(prefix: &str) -> Result<String, Error> {
    let cell = SHARED.get_or_init(|| Mutex::new(None));
    let mut guard = cell.lock().map_err(|_| Error::Io {
        what: "shared PostgreSQL: a test panicked while starting it".into(),
        source: std::io::ErrorKind::Other.into(),
    })?;
    if guard.is_none() {
        *guard = Some(start()?);
    }
    let shared = guard.as_ref().expect("just set");
    let name = format!(
        "{}_{}",
        prefix
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            })
            .collect::<String>(),
        unique()
    );
    psql(
        &shared.superuser_url,
        &format!("CREATE DATABASE {name} OWNER {APP_ROLE}"),
    )?;
    Ok(format!(
        "postgres://{APP_ROLE}@127.0.0.1:{}/{name}",
        shared.port
    ))
}

fn start() -> Result<Shared, Error> {
    let root = std::env::temp_dir().join(format!(
        "poros-pg-shared-{}-{}",
        std::process::id(),
        unique()
    ));
    std::fs::create_dir_all(&root).map_err(io_err(format!("creating {}", root.display())))?;
    let server = PgServer::start(&root, "pg")?;
    let (port, superuser_url) = (server.port(), server.superuser_url());
    let pid = server.pid().ok_or_else(|| Error::Io {
        what: "shared PostgreSQL has no postmaster".into(),
        source: std::io::ErrorKind::NotFound.into(),
    })?;
    // The watchdog: once this process is gone, a fast shutdown of the postmaster's group,
    // then SIGKILL if it lingers, then the directory goes.
    let script = format!(
        "while kill -0 {me} 2>/dev/null; do sleep 1; done; \
         kill -INT -{pid} 2>/dev/null; \
         for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 {pid} 2>/dev/null || break; sleep 1; done; \
         kill -KILL -{pid} 2>/dev/null; rm -rf '{dir}'",
        me = std::process::id(),
        dir = root.display()
    );
    std::process::Command::new("setsid")
        .args(["sh", "-c", &script])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(io_err("starting the shared PostgreSQL's watchdog"))?;
    // The server must outlive this function (and every test): the watchdog stops it.
    std::mem::forget(server);
    Ok(Shared {
        port,
        superuser_url,
    })
}

/// A name part no other test of any process uses: time, process and a counter.
fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{t:x}{:x}{:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
