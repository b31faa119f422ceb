//! What a durable redb commit costs by how many tables it touches: the same inserts in one
//! table, or spread one per table over several, as the hub's and the agents' per-document
//! writes are (docs/perf/README.md, "Below saturation"). Each case runs in a fresh database
//! in a temporary directory, every commit `Durability::Immediate` (fsync'd), on this thread.
//!
//! Reported per commit: CPU time of this thread (from `/proc/thread-self/schedstat`, so the
//! kernel's work under fsync counts), wall time, and bytes the process sent to storage
//! (`write_bytes` of `/proc/self/io`); and each case's CPU as a ratio to the first case
//! (ten inserts in one table) measured in the same run.
//!
//! `cargo bench -p poros-store --bench layout`; `POROS_BENCH_QUICK=1` for a short run.

use std::time::Instant;

use redb::{Database, Durability, TableDefinition};

const NAMES: [&str; 10] = ["t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9"];
/// About the size of a small record with its signed statement.
const VALUE: usize = 300;

struct Case {
    tables: usize,
    per_table: u64,
    /// Keys already in each table, so paths are as deep as in a store with some history.
    prefill: u64,
    /// Keys in increasing order, as time-ordered document IDs (UUIDv7) and sequence numbers
    /// are: each insert lands in the table's last leaf. Otherwise spread over the key space,
    /// each insert in a leaf of its own.
    ordered: bool,
}

struct Cost {
    cpu_us: f64,
    wall_us: f64,
    kib: f64,
}

fn thread_cpu_ns() -> u64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat")
        .expect("/proc/thread-self/schedstat (Linux)");
    s.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("schedstat's first field")
}

fn written_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/io").expect("/proc/self/io (Linux)");
    s.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("write_bytes in /proc/self/io")
}

fn table(i: usize) -> TableDefinition<'static, u64, &'static [u8]> {
    TableDefinition::new(NAMES[i])
}

/// One durable commit of `per_table` inserts into each of the first `tables` tables.
fn commit_inserts(
    db: &Database,
    tables: usize,
    per_table: u64,
    next_key: &mut impl FnMut() -> u64,
    value: &[u8],
) {
    let mut txn = db.begin_write().expect("begin");
    txn.set_durability(Durability::Immediate);
    for t in 0..tables {
        let mut tb = txn.open_table(table(t)).expect("open table");
        for _ in 0..per_table {
            tb.insert(next_key(), value).expect("insert");
        }
    }
    txn.commit().expect("commit");
}

fn run(case: &Case, commits: u64) -> Cost {
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = Database::builder()
        .set_cache_size(32 * 1024 * 1024)
        .create(dir.path().join("layout.redb"))
        .expect("create database");
    let value = vec![7u8; VALUE];
    let mut key = 0u64;
    let ordered = case.ordered;
    let mut next_key = || {
        key += 1;
        if ordered {
            key
        } else {
            key.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        }
    };
    if case.prefill > 0 {
        commit_inserts(&db, case.tables, case.prefill, &mut next_key, &value);
    }
    let (cpu0, bytes0, t0) = (thread_cpu_ns(), written_bytes(), Instant::now());
    for _ in 0..commits {
        commit_inserts(&db, case.tables, case.per_table, &mut next_key, &value);
    }
    let n = commits as f64;
    Cost {
        cpu_us: (thread_cpu_ns() - cpu0) as f64 / 1e3 / n,
        wall_us: t0.elapsed().as_secs_f64() * 1e6 / n,
        kib: (written_bytes() - bytes0) as f64 / 1024.0 / n,
    }
}

fn main() {
    let quick = std::env::var("POROS_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let commits = if quick { 200 } else { 2_000 };
    let prefill = if quick { 10_000 } else { 100_000 };
    let case = |tables, per_table, prefill, ordered| Case {
        tables,
        per_table,
        prefill,
        ordered,
    };
    let cases = [
        case(1, 10, prefill, true),
        case(10, 1, prefill, true),
        case(5, 2, prefill, true),
        case(2, 5, prefill, true),
        case(1, 1, prefill, true),
        case(1, 10, prefill, false),
        case(10, 1, prefill, false),
    ];
    println!(
        "== redb {commits} durable commits per case, {VALUE}-byte values, one thread; CPU includes the kernel's under fsync"
    );
    let mut reference = None;
    for case in &cases {
        let c = run(case, commits);
        let base = *reference.get_or_insert(c.cpu_us);
        println!(
            "   {:2} table(s) x {:2} insert(s), {} keys, {:6} in each before: {:6.0} us CPU, {:6.0} us wall, {:6.1} KiB written per commit; CPU {:.2}x the first case",
            case.tables,
            case.per_table,
            if case.ordered { "ordered" } else { "spread " },
            case.prefill,
            c.cpu_us,
            c.wall_us,
            c.kib,
            c.cpu_us / base
        );
    }
}
