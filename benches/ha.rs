//! The exchange on PostgreSQL next to redb, in one run: the same six agents and the same
//! 4 KiB documents (benches/common/load.rs) through one hub on redb, one hub on a PostgreSQL
//! server, three hub instances sharing that server, and three hub instances on a two-node
//! Patroni cluster with a synchronous standby (see benches/README.md).
//!
//! For each configuration: docs/s end to end (closed loop), p50/p99 submit-to-receipt at a
//! fixed light offered rate (open loop), CPU-ms per document per process kind (hubs, sending
//! agents, receiving agents, postgres, Patroni + etcd, the load generator) from `/proc`, and
//! the store's growth per document (PostgreSQL: `pg_database_size` and WAL bytes; redb: the
//! hub directory), the inputs of the sizing calculation in the README. Also, with every agent
//! connected and nothing sent, the idle CPU per process kind and the database's transactions
//! and WAL per second; and PostgreSQL transactions per document.
//!
//! `setup` (benches/ha/setup.rs) starts a configuration and reads what it costs; this file
//! drives the phases and reports.
//!
//! `POROS_BENCH_HA=redb-1,pg-1,pg-3,patroni-3` picks configurations (also `patroni-1`);
//! `POROS_BENCH_DOCS` (closed loop, default 3,000), `POROS_BENCH_RATE` (open loop docs/s,
//! default 50) and `POROS_BENCH_RATE_DOCS` (default 600) size the phases;
//! `POROS_BENCH_QUICK=1` runs a smoke version. Writes `<target>/bench-ha.json`.

mod common;
#[path = "ha/setup.rs"]
mod setup;
use common::load::*;
use common::procstat::*;
use common::*;
use serde_json::{json, Value};
use setup::{Config, Net};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Closed-loop POSTs in flight per sender (as in the exchange bench's phase A).
const IN_FLIGHT: usize = 48;
/// How long the idle CPU is measured (twice the period of an agency's queue scan).
const IDLE_WINDOW: Duration = Duration::from_secs(20);
/// How late a PostgreSQL backend may report its transaction counts (PGSTAT_IDLE_INTERVAL).
const STATS_LAG: Duration = Duration::from_secs(11);
/// How long the bench waits for the last receipts of a phase.
const ANSWER_WAIT: Duration = Duration::from_secs(300);

/// What to run, from the environment.
struct Params {
    quick: bool,
    configs: Vec<Config>,
    warmup_per_sender: usize,
    docs_per_sender: usize,
    rate: f64,
    rate_docs_per_sender: usize,
}

impl Params {
    fn from_env() -> Res<Params> {
        let quick = std::env::var("POROS_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let configs = std::env::var("POROS_BENCH_HA")
            .unwrap_or_else(|_| "redb-1,pg-1,pg-3,patroni-3".into())
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(Config::parse)
            .collect::<Res<Vec<_>>>()?;
        let n = SENDERS.len() as f64;
        let docs = env_num("POROS_BENCH_DOCS").unwrap_or(if quick { 300.0 } else { 3000.0 });
        let rate_docs =
            env_num("POROS_BENCH_RATE_DOCS").unwrap_or(if quick { 150.0 } else { 600.0 });
        Ok(Params {
            quick,
            configs,
            warmup_per_sender: if quick { 10 } else { 100 },
            docs_per_sender: (docs / n).ceil().max(1.0) as usize,
            rate: env_num("POROS_BENCH_RATE").unwrap_or(50.0),
            rate_docs_per_sender: (rate_docs / n).ceil().max(1.0) as usize,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Measuring
// ---------------------------------------------------------------------------------------------

/// One phase's figures.
struct Phase {
    delivered: usize,
    missing: usize,
    errors: usize,
    docs_per_s: f64,
    p50: f64,
    p99: f64,
    /// CPU-ms per delivered document by process kind.
    cpu_ms_per_doc: BTreeMap<String, f64>,
    wall_s: f64,
    machine_busy_s: f64,
    outside_s: f64,
    /// PostgreSQL transactions (committed, rolled back) per delivered document.
    xacts_per_doc: (f64, f64),
    /// PostgreSQL writing transactions (transaction IDs taken) per delivered document.
    writes_per_doc: f64,
}

impl Phase {
    fn json(&self) -> Value {
        json!({
            "delivered": self.delivered,
            "missing": self.missing,
            "post_errors": self.errors,
            "docs_per_s": self.docs_per_s,
            "latency_ms": {"p50": self.p50, "p99": self.p99},
            "cpu_ms_per_doc": self.cpu_ms_per_doc,
            "wall_s": self.wall_s,
            "machine_busy_cpu_s": self.machine_busy_s,
            "outside_cpu_s": self.outside_s,
            "pg_commits_per_doc": self.xacts_per_doc.0,
            "pg_rollbacks_per_doc": self.xacts_per_doc.1,
            "pg_writing_transactions_per_doc": self.writes_per_doc,
        })
    }
}

fn measure(
    rt: &tokio::runtime::Runtime,
    net: &Net,
    seen: &Seen,
    phase: u8,
    per_sender: usize,
    rate: Option<f64>,
) -> Phase {
    settle();
    let db0 = net.store_stats();
    let cpu0 = net.cpu();
    let mach0 = machine_cpu();
    let t0 = Instant::now();
    let in_flight = if rate.is_some() { 512 } else { IN_FLIGHT };
    let sub = submit(rt, &net.apis, phase, per_sender, in_flight, rate);
    let missing = wait_answers(seen, &sub.docs, ANSWER_WAIT);
    let wall_s = t0.elapsed().as_secs_f64();
    let cpu1 = net.cpu();
    let mach1 = machine_cpu();
    let db1 = net.store_stats();

    let s = seen.lock().expect("followers do not panic");
    let mut lat = Vec::new();
    let mut last = 0u64;
    let mut delivered = 0usize;
    for (id, t, _) in &sub.docs {
        if let Some((ms, st)) = s.get(id) {
            lat.push(ms.saturating_sub(*t));
            last = last.max(*ms);
            delivered += usize::from(st == "delivered");
        }
    }
    drop(s);
    lat.sort_unstable();
    let window = last.saturating_sub(sub.first_start_ms) as f64 / 1000.0;
    let per_doc = delivered.max(1) as f64;
    let mut ours = 0.0;
    let cpu_ms_per_doc: BTreeMap<String, f64> = cpu1
        .iter()
        .map(|(k, v)| {
            let d = v - cpu0.get(k).copied().unwrap_or(0.0);
            if !k.starts_with("hub instance") {
                ours += d;
            }
            (k.clone(), 1000.0 * d / per_doc)
        })
        .collect();
    let machine_busy_s = mach1.0 - mach0.0;
    Phase {
        xacts_per_doc: (
            db1[2].saturating_sub(db0[2]) as f64 / per_doc,
            db1[3].saturating_sub(db0[3]) as f64 / per_doc,
        ),
        // Minus the one transaction ID the measurement itself takes.
        writes_per_doc: db1[4].saturating_sub(db0[4] + 1) as f64 / per_doc,
        delivered,
        missing,
        errors: sub.errors.len(),
        docs_per_s: delivered as f64 / window.max(1e-3),
        p50: pct(&lat, 50.0),
        p99: pct(&lat, 99.0),
        cpu_ms_per_doc,
        wall_s,
        machine_busy_s,
        outside_s: (machine_busy_s - ours).max(0.0),
    }
}

/// CPU-ms per second by process kind with every agent connected and nothing sent: the
/// fixed cost (keep-alives, lease renewals, each connected agency's periodic queue scan) that
/// per-document figures at a low rate include; on PostgreSQL also transactions, writing
/// transactions and WAL bytes per second (keys `postgres transactions`, `... writing
/// transactions`, `postgres WAL bytes`).
fn idle(net: &Net, window: Duration) -> BTreeMap<String, f64> {
    settle();
    if net.db.is_some() {
        // The warm-up's transaction counts reach pg_stat_database up to 10 s after the
        // backends go idle; they must not be counted as idle work.
        std::thread::sleep(STATS_LAG);
    }
    let db0 = net.store_stats();
    let cpu0 = net.cpu();
    let t0 = Instant::now();
    // A measurement window, not a synchronisation: nothing is waited for.
    std::thread::sleep(window);
    let cpu1 = net.cpu();
    let secs = t0.elapsed().as_secs_f64();
    let db1 = net.store_stats();
    let mut m: BTreeMap<String, f64> = cpu1
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                1000.0 * (v - cpu0.get(k).copied().unwrap_or(0.0)) / secs,
            )
        })
        .collect();
    if net.db.is_some() {
        m.insert(
            "postgres transactions".into(),
            (db1[2] + db1[3]).saturating_sub(db0[2] + db0[3]) as f64 / secs,
        );
        m.insert(
            "postgres writing transactions".into(),
            db1[4].saturating_sub(db0[4] + 1) as f64 / secs,
        );
        m.insert(
            "postgres WAL bytes".into(),
            db1[1].saturating_sub(db0[1]) as f64 / secs,
        );
    }
    m
}

/// What one configuration measured.
struct Outcome {
    cfg: Config,
    setup_s: f64,
    /// CPU-ms per second by kind while idle.
    idle: BTreeMap<String, f64>,
    closed: Phase,
    open: Phase,
    /// Store growth per delivered document over both phases: (data bytes, WAL bytes).
    bytes_per_doc: (f64, f64),
}

fn run_config(rt: &tokio::runtime::Runtime, p: &Params, cfg: &Config, root: &Path) -> Res<Outcome> {
    println!("--- {}: {}", cfg.name, cfg.describe());
    let t = Instant::now();
    let net = Net::start(cfg, root)?;
    let setup_s = t.elapsed().as_secs_f64();
    println!(
        "    started in {setup_s:.1} s; senders on instances {:?}, receivers on {:?}",
        (0..SENDERS.len()).map(|k| k % cfg.hubs).collect::<Vec<_>>(),
        (0..RECEIVERS.len())
            .map(|k| k % cfg.hubs)
            .collect::<Vec<_>>()
    );
    let seen: Seen = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let followers = start_followers(rt, net.apis.clone(), seen.clone(), stop.clone());
    let w = submit(rt, &net.apis, 0, p.warmup_per_sender, IN_FLIGHT, None);
    let missing = wait_answers(&seen, &w.docs, ANSWER_WAIT);
    println!(
        "    warm-up: {} docs ({} POST errors), {missing} without receipt",
        w.docs.len(),
        w.errors.len()
    );
    let idle = idle(&net, IDLE_WINDOW);
    println!(
        "    idle ({} s, all agents connected): CPU-ms per second {}",
        IDLE_WINDOW.as_secs(),
        idle.iter()
            .map(|(k, v)| format!("{k} {v:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let bytes0 = net.store_stats();
    let closed = measure(rt, &net, &seen, 1, p.docs_per_sender, None);
    report("closed loop", &closed);
    let open = measure(rt, &net, &seen, 2, p.rate_docs_per_sender, Some(p.rate));
    report(&format!("open loop at {:.0} docs/s", p.rate), &open);
    let bytes1 = net.store_stats();
    let docs = (closed.delivered + open.delivered).max(1) as f64;
    let bytes_per_doc = (
        bytes1[0].saturating_sub(bytes0[0]) as f64 / docs,
        bytes1[1].saturating_sub(bytes0[1]) as f64 / docs,
    );
    println!(
        "    store growth per document: {:.0} B{}",
        bytes_per_doc.0,
        if net.db.is_some() {
            format!(" (pg_database_size), WAL {:.0} B", bytes_per_doc.1)
        } else {
            " (hub directory: redb file and body files)".into()
        }
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for f in followers {
        let _ = rt.block_on(f);
    }
    drop(net);
    let _ = std::fs::remove_dir_all(root.join(&cfg.name));
    Ok(Outcome {
        cfg: cfg.clone(),
        setup_s,
        idle,
        closed,
        open,
        bytes_per_doc,
    })
}

fn report(what: &str, ph: &Phase) {
    println!(
        "    {what}: {} delivered ({} missing, {} POST errors) = {:.0} docs/s end to end; submit->receipt p50 {:.0} ms, p99 {:.0} ms",
        ph.delivered, ph.missing, ph.errors, ph.docs_per_s, ph.p50, ph.p99
    );
    println!(
        "      CPU-ms per document: {}",
        ph.cpu_ms_per_doc
            .iter()
            .map(|(k, v)| format!("{k} {v:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "      machine: {:.1} CPU-s busy in {:.1} s (2 cores = {:.1} available), {:.1} of it outside this benchmark",
        ph.machine_busy_s,
        ph.wall_s,
        2.0 * ph.wall_s,
        ph.outside_s
    );
    if ph.xacts_per_doc.0 > 0.0 {
        println!(
            "      PostgreSQL per document: {:.1} transactions committed (about: the statistics lag), {:.2} rolled back, {:.1} writing transactions (exact)",
            ph.xacts_per_doc.0, ph.xacts_per_doc.1, ph.writes_per_doc
        );
    }
}

// ---------------------------------------------------------------------------------------------

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if let Err(e) = run() {
        eprintln!("ha bench failed: {e}");
        std::process::exit(1);
    }
}

fn run() -> Res<()> {
    let p = Params::from_env()?;
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let tmp = tempfile::Builder::new()
        .prefix("poros-bench-ha-")
        .tempdir()?;
    let root = tmp.path().to_path_buf();
    // Running as root, PostgreSQL runs as its own user, which must pass through this
    // directory to reach its data directory below it (the harness opens only the last level).
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o711))?;
    }
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    println!(
        "== Poros exchange on redb and PostgreSQL{} — {} senders, {} receivers, {DOC_BYTES} B documents; everything on {cpus} CPU(s), loopback, RUST_LOG=warn",
        if p.quick { " (QUICK smoke run)" } else { "" },
        SENDERS.len(),
        RECEIVERS.len()
    );
    println!(
        "   closed loop {} docs ({} in flight per sender), then open loop {} docs at {:.0} docs/s; configurations: {}",
        p.docs_per_sender * SENDERS.len(),
        IN_FLIGHT,
        p.rate_docs_per_sender * SENDERS.len(),
        p.rate,
        p.configs
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut outcomes = Vec::new();
    for cfg in &p.configs {
        match run_config(&rt, &p, cfg, &root) {
            Ok(o) => outcomes.push(o),
            Err(e) => println!("    {} failed: {e}", cfg.name),
        }
    }

    println!();
    println!("== Summary: docs/s closed loop; p50/p99 submit->receipt in the open loop; CPU-ms per document (closed loop) by process kind; store bytes per document; idle CPU-ms per second");
    println!(
        "   {:<10} {:>7} {:>13} {:>6} {:>6} {:>7} {:>8} {:>8} {:>8} {:>7} {:>8} {:>9} {:>9} {:>6} {:>9} {:>8} {:>8}",
        "config",
        "docs/s",
        "p50/p99 ms",
        "hubs",
        "send",
        "receive",
        "postgres",
        "patroni",
        "loadgen",
        "all",
        "outside",
        "DB B/doc",
        "WAL B/doc",
        "wtx/doc",
        "idle hubs",
        "idle db",
        "idle tx/s"
    );
    let mut rows = Vec::new();
    for o in &outcomes {
        let c = &o.closed.cpu_ms_per_doc;
        let g = |k: &str| c.get(k).copied().unwrap_or(0.0);
        let i = |k: &str| o.idle.get(k).copied().unwrap_or(0.0);
        let total: f64 = c
            .iter()
            .filter(|(k, _)| !k.starts_with("hub instance"))
            .map(|(_, v)| v)
            .sum();
        println!(
            "   {:<10} {:>7.0} {:>13} {:>6.2} {:>6.2} {:>7.2} {:>8.2} {:>8.2} {:>8.2} {:>7.2} {:>7.0}% {:>9.0} {:>9.0} {:>6.1} {:>9.1} {:>8.1} {:>8.1}",
            o.cfg.name,
            o.closed.docs_per_s,
            format!("{:.0}/{:.0}", o.open.p50, o.open.p99),
            g("hubs"),
            g("sending agents"),
            g("receiving agents"),
            g("postgres"),
            g("patroni + etcd"),
            g("load generator"),
            total,
            100.0 * o.closed.outside_s / o.closed.machine_busy_s.max(1e-3),
            o.bytes_per_doc.0,
            o.bytes_per_doc.1,
            o.closed.writes_per_doc,
            i("hubs"),
            i("postgres") + i("patroni + etcd"),
            i("postgres transactions"),
        );
        rows.push(json!({
            "config": o.cfg.name,
            "describe": o.cfg.describe(),
            "hubs": o.cfg.hubs,
            "setup_s": o.setup_s,
            "idle_cpu_ms_per_s": o.idle,
            "closed_loop": o.closed.json(),
            "open_loop": o.open.json(),
            "store_bytes_per_doc": o.bytes_per_doc.0,
            "wal_bytes_per_doc": o.bytes_per_doc.1,
        }));
    }
    println!(
        "   at the light offered rate ({:.0} docs/s), CPU-ms per document: hubs / sending / receiving agents / postgres / patroni + etcd; PostgreSQL transactions per document",
        p.rate
    );
    for o in &outcomes {
        let c = &o.open.cpu_ms_per_doc;
        let g = |k: &str| c.get(k).copied().unwrap_or(0.0);
        println!(
            "   {:<10} {:>6.2} {:>6.2} {:>7.2} {:>8.2} {:>8.2}   {:.1} tx/doc (about), {:.1} writing",
            o.cfg.name,
            g("hubs"),
            g("sending agents"),
            g("receiving agents"),
            g("postgres"),
            g("patroni + etcd"),
            o.open.xacts_per_doc.0 + o.open.xacts_per_doc.1,
            o.open.writes_per_doc
        );
    }
    println!("   (\"outside\": share of the machine's busy CPU during the closed loop used by processes outside this benchmark; \"wtx/doc\": PostgreSQL writing transactions per document; \"idle\": CPU-ms (and transactions) per second with all agents connected and nothing sent)");
    let summary = json!({
        "quick": p.quick,
        "cpus": cpus,
        "doc_bytes": DOC_BYTES,
        "closed_loop_docs": p.docs_per_sender * SENDERS.len(),
        "open_loop_rate": p.rate,
        "open_loop_docs": p.rate_docs_per_sender * SENDERS.len(),
        "configs": rows,
        "elapsed_s": started.elapsed().as_secs_f64(),
    });
    let out = target_dir().join("bench-ha.json");
    std::fs::write(&out, serde_json::to_string_pretty(&summary)?)?;
    println!(
        "   JSON summary: {}  (total {:.0} s)",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    if outcomes.len() < p.configs.len() {
        return Err("a configuration failed (see above)".into());
    }
    Ok(())
}
