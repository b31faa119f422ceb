//! Tests of the PostgreSQL and Patroni harness itself (`poros_harness::pg`,
//! `poros_harness::patroni`): real servers from Debian's packages (`postgresql`, `patroni`,
//! `etcd-server`; scripts/test.sh installs them). A missing package fails the test with an
//! error naming it; nothing is skipped.
//!
//! What they pin down is what the hub's durability will rest on: a committed row survives a
//! SIGKILL of PostgreSQL; in a Patroni cluster in strict synchronous mode an acknowledged
//! commit is on the standby, survives the loss of the primary's machine, and with no
//! synchronous standby left a commit is not acknowledged at all (statement_timeout does not
//! end the wait) until a standby is back. One PostgreSQL behaviour the hub must avoid is
//! pinned down too: a cancelled wait reports success for a commit on one machine.

use poros_harness::pg::{psql, psql_command, PgServer};
use poros_harness::{wait_until, Error, PatroniCluster};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

/// Deadline for a server or cluster to reach a state (normally seconds).
const DEADLINE: Duration = Duration::from_secs(30);

/// How long a commit with no synchronous standby is watched not returning.
const BLOCKED_FOR: Duration = Duration::from_secs(4);

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

/// Run `sql` on `url` in the background, output captured.
fn spawn_psql(url: &str, sql: &str) -> Child {
    ok(psql_command(url, sql))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting psql")
}

fn text(out: &Output) -> String {
    format!(
        "{}; stdout {:?}; stderr {:?}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
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

#[test]
fn patroni_fails_over_to_the_sync_standby_and_never_acknowledges_a_commit_without_one() {
    let tmp = Scratch::new();
    let t0 = Instant::now();
    let mut cluster = ok(PatroniCluster::start(tmp.path(), 2));
    eprintln!("cluster up in {:?}", t0.elapsed());
    let url = cluster.url();
    assert_eq!(
        url,
        format!(
            "postgres://poros@127.0.0.1:{},127.0.0.1:{}/poros?target_session_attrs=read-write",
            cluster.pg_port(0),
            cluster.pg_port(1)
        )
    );
    let primary = ok(cluster.wait_primary(DEADLINE));
    let standby = ok(cluster.wait_sync_standby(DEADLINE));
    assert_ne!(primary, standby);
    assert_eq!(
        sql(
            &cluster.superuser_url(primary),
            "SHOW synchronous_standby_names"
        ),
        format!("node{standby}")
    );

    // A commit through the multi-host URL lands on the primary and reaches the standby.
    sql(
        &url,
        "CREATE TABLE t (id int PRIMARY KEY, body text NOT NULL)",
    );
    sql(&url, "INSERT INTO t VALUES (1, 'on two machines')");
    let on_standby = cluster.node_url(standby);
    wait_until("the row to be visible on the standby", DEADLINE, || {
        psql(&on_standby, "SELECT body FROM t WHERE id = 1").is_ok_and(|b| b == "on two machines")
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        psql(&on_standby, "INSERT INTO t VALUES (9, 'x')").is_err(),
        "the standby accepted a write"
    );

    // The primary's machine dies: Patroni and postgres killed together.
    let crash = Instant::now();
    cluster.kill9_patroni(primary);
    let new_primary = ok(cluster.wait_primary(DEADLINE));
    let failover = crash.elapsed();
    eprintln!("failover took {failover:?}");
    assert_eq!(
        new_primary, standby,
        "only the sync standby may be promoted"
    );
    assert_eq!(
        sql(&url, "SELECT body FROM t WHERE id = 1"),
        "on two machines"
    );

    // One node left and synchronous_mode_strict: a commit waits for a standby instead of
    // being acknowledged from one machine.
    let su = cluster.superuser_url(new_primary);
    wait_until("the lone primary to wait for any standby", DEADLINE, || {
        psql(&su, "SHOW synchronous_standby_names").is_ok_and(|s| s == "*")
    })
    .unwrap_or_else(|e| panic!("{e}"));
    // statement_timeout does not end that wait either (PostgreSQL stops the timer before
    // the commit waits), so a client cannot rely on it to give up.
    let mut writer = ok(psql_command(
        &url,
        "INSERT INTO t VALUES (2, 'waited for a standby')",
    ))
    .env("PGOPTIONS", "-c statement_timeout=1000")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("starting psql");
    let returned = wait_until("the lone primary's commit to return", BLOCKED_FOR, || {
        matches!(writer.try_wait(), Ok(Some(_)))
    });
    if returned.is_ok() {
        let out = writer.wait_with_output().unwrap();
        panic!(
            "a commit returned with no synchronous standby: {}",
            text(&out)
        );
    }
    // It waits for synchronous replication, and nobody else sees the row meanwhile.
    let waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'";
    assert_eq!(sql(&su, waiting), "1");
    assert_eq!(sql(&url, "SELECT count(*) FROM t WHERE id = 2"), "0");

    // Cancelling such a wait is no refusal: PostgreSQL keeps the local commit and the client
    // sees success with a WARNING. (So the hub must never cancel a commit it waits on.)
    let mut cancelled = spawn_psql(&url, "INSERT INTO t VALUES (3, 'cancelled wait')");
    wait_until("a second commit waiting for a standby", DEADLINE, || {
        psql(&su, waiting).is_ok_and(|n| n == "2")
    })
    .unwrap_or_else(|e| panic!("{e}"));
    sql(
        &su,
        "SELECT pg_cancel_backend(pid) FROM pg_stat_activity \
         WHERE wait_event = 'SyncRep' AND query LIKE 'INSERT INTO t VALUES (3,%'",
    );
    wait_until("the cancelled commit to return", DEADLINE, || {
        matches!(cancelled.try_wait(), Ok(Some(_)))
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let out = cancelled.wait_with_output().unwrap();
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stderr)
                .contains("canceling wait for synchronous replication"),
        "{}",
        text(&out)
    );
    assert_eq!(sql(&url, "SELECT count(*) FROM t WHERE id = 3"), "1");

    // The old primary comes back (rewound or re-cloned by Patroni) as the sync standby: the
    // waiting commit is acknowledged then, and is on both machines.
    let rejoin = Instant::now();
    ok(cluster.start_node(primary));
    assert_eq!(ok(cluster.wait_sync_standby(DEADLINE)), primary);
    wait_until("the waiting commit to return", DEADLINE, || {
        matches!(writer.try_wait(), Ok(Some(_)))
    })
    .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "old primary rejoined as sync standby in {:?}",
        rejoin.elapsed()
    );
    let out = writer.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the waiting commit failed: {}",
        text(&out)
    );
    assert_eq!(
        sql(&url, "SELECT body FROM t WHERE id = 2"),
        "waited for a standby"
    );
    let on_old = cluster.node_url(primary);
    wait_until(
        "rows 2 and 3 to be visible on the old primary",
        DEADLINE,
        || psql(&on_old, "SELECT count(*) FROM t").is_ok_and(|n| n == "3"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("whole test {:?}", t0.elapsed());
}
