//! Tests of the PostgreSQL harness itself (`poros_harness::pg`): a real server from Debian's
//! `postgresql` package (scripts/test.sh installs it). A missing package fails the test with
//! an error naming it; nothing is skipped.
//!
//! What they pin down is what the hub's durability will rest on: a committed row survives a
//! SIGKILL of PostgreSQL.

use poros_harness::pg::{psql, PgServer};
use poros_harness::Error;
use std::path::{Path, PathBuf};

/// The test's root directory; on a panic, the tail of every `*.log` under it is printed, and
/// with `POROS_E2E_KEEP` set the directory is kept. Declared before the servers, so they are
/// stopped (dropped) first.
struct Scratch(Option<tempfile::TempDir>);

impl Scratch {
    fn new() -> Scratch {
        Scratch(Some(tempfile::tempdir().unwrap()))
    }

    fn path(&self) -> &Path {
        self.0.as_ref().unwrap().path()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let keep = std::env::var_os("POROS_E2E_KEEP").is_some();
        if std::thread::panicking() {
            let mut logs = Vec::new();
            find_logs(self.path(), &mut logs);
            logs.sort();
            for p in logs {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let from = lines.len().saturating_sub(60);
                eprintln!(
                    "----- {} (last {} lines) -----",
                    p.display(),
                    lines.len() - from
                );
                for l in &lines[from..] {
                    eprintln!("{l}");
                }
            }
            if !keep {
                eprintln!("(set POROS_E2E_KEEP=1 to keep {})", self.path().display());
            }
        }
        if keep {
            if let Some(t) = self.0.take() {
                eprintln!("keeping {}", t.keep().display());
            }
        }
    }
}

fn find_logs(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() && !p.ends_with("data") {
            find_logs(&p, out);
        } else if p.extension().is_some_and(|x| x == "log") {
            out.push(p);
        }
    }
}

fn ok<T>(r: Result<T, Error>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// `sql` on `url` through psql; its trimmed output.
fn sql(url: &str, sql: &str) -> String {
    ok(psql(url, sql))
}

/// The real uid of process `pid`, from /proc.
fn uid_of(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .and_then(|id| id.parse().ok())
        .unwrap()
}

#[test]
fn pg_server_round_trip_and_a_committed_row_survives_kill9() {
    let tmp = Scratch::new();
    let mut pg = ok(PgServer::start(tmp.path(), "pg"));
    let url = pg.url();
    assert_eq!(
        url,
        format!("postgres://poros@127.0.0.1:{}/poros", pg.port())
    );

    // PostgreSQL never runs as root, whoever runs the test.
    assert_ne!(uid_of(pg.pid().unwrap()), 0, "postgres runs as root");
    // The application role is no superuser and owns its database.
    assert_eq!(sql(&url, "SELECT current_user"), "poros");
    assert_eq!(
        sql(
            &url,
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        ),
        "f"
    );
    assert_eq!(
        sql(
            &url,
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
        ),
        "poros"
    );
    // Durability is on.
    assert_eq!(sql(&url, "SHOW fsync"), "on");
    assert_eq!(sql(&url, "SHOW synchronous_commit"), "on");

    sql(
        &url,
        "CREATE TABLE t (id int PRIMARY KEY, body text NOT NULL)",
    );
    sql(
        &url,
        "INSERT INTO t VALUES (1, 'committed before the crash')",
    );
    assert_eq!(
        sql(&url, "SELECT body FROM t WHERE id = 1"),
        "committed before the crash"
    );

    let port = pg.port();
    pg.kill9();
    assert!(!pg.is_running());
    assert!(psql(&url, "SELECT 1").is_err(), "a killed server answers");

    ok(pg.restart());
    assert_eq!(pg.port(), port);
    assert_eq!(
        sql(&url, "SELECT body FROM t WHERE id = 1"),
        "committed before the crash"
    );
    // It was a crash, recovered from the WAL, not a clean restart.
    let log = std::fs::read_to_string(pg.log_path()).unwrap();
    assert!(
        log.contains("not properly shut down"),
        "no crash recovery in {}",
        pg.log_path().display()
    );

    // A clean stop and a restart keep the data too.
    pg.stop();
    ok(pg.restart());
    assert_eq!(sql(&url, "SELECT count(*) FROM t"), "1");
}
