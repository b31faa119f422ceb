//! National scale on one hub (see benches/README.md, "scale"): N simulated agents, each a
//! registered agency with its own certificates and a real mutual-TLS QUIC connection to a
//! real `poros-hub` process, and two real `poros-agent` processes exchanging a trickle of
//! signed documents throughout.
//!
//! Phases:
//!   1. register N agencies through the hub's admin API with their certificate requests
//!      (the issuance `node add --requests` uses); all N connect;
//!   2. idle: hub RSS and CPU with every agent connected and nothing sent;
//!   3. the trickle's submit→receipt latency with every agent connected (before the storm);
//!   4. the storm: the hub is killed (SIGKILL) and started again; every agent reconnects
//!      with its real backoff. Handshakes per second, the time until all are connected
//!      again, the trickle's latency meanwhile (all of it, and split at the moment both
//!      real agents were connected again), and the hub's admin API and ops endpoints probed
//!      all along (answers and their latency).
//!
//! `POROS_SCALE_AGENTS` (default 10,000), `POROS_SCALE_RATE` (trickle, documents per second,
//! default 20), `POROS_SCALE_IDLE_SECS` (the simulated agents' `hub_idle_timeout_secs`; the
//! agent's default otherwise), `POROS_SCALE_IDLE_WINDOW_SECS` (how long the idle hub is
//! measured, default 20 s), `POROS_SCALE_HANDSHAKES` (the hub's
//! `limits.handshakes_in_flight`), `POROS_BENCH_QUICK=1` (300 agents, shorter phases). Writes
//! `<target>/bench-scale.json`.

mod common;
#[path = "scale/sim.rs"]
mod sim;
use common::load::{body, now_ms, pct, post_one, start_followers, Seen};
use common::procstat::{cpu_secs, thread_cpu_secs};
use common::*;
use poros_harness::deployment::HUB;
use poros_transport::quic_thread::THREAD_NAME as QUIC_THREAD;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SENDER: &str = "000.00.00.G01";
const RECEIVER: &str = "000.00.00.H01";

// Targets the figures are compared against (issue 12).
const TARGET_RSS_MIB: f64 = 1024.0;
const TARGET_IDLE_CPU_PCT: f64 = 5.0;
const TARGET_RECONNECT_S: f64 = 30.0;
const TARGET_P99_STORM_MS: f64 = 1000.0;
const TARGET_P99_CALM_MS: f64 = 50.0;

struct Params {
    agents: usize,
    /// The simulated agents' `hub_idle_timeout_secs` (keep-alives at a third), if not the
    /// agent's default.
    idle_secs: Option<u64>,
    /// The hub's `limits.handshakes_in_flight`, if not its default.
    handshakes: Option<u64>,
    rate: f64,
    idle: Duration,
    calm: Duration,
    connect_deadline: Duration,
}

impl Params {
    fn from_env() -> Params {
        let quick = std::env::var("POROS_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let agents = env_num("POROS_SCALE_AGENTS")
            .map(|n| n as usize)
            .unwrap_or(if quick { 300 } else { 10_000 });
        Params {
            agents,
            idle_secs: env_num("POROS_SCALE_IDLE_SECS").map(|s| s as u64),
            handshakes: env_num("POROS_SCALE_HANDSHAKES").map(|n| n as u64),
            rate: env_num("POROS_SCALE_RATE").unwrap_or(20.0),
            idle: Duration::from_secs(
                env_num("POROS_SCALE_IDLE_WINDOW_SECS")
                    .map(|s| s as u64)
                    .unwrap_or(if quick { 5 } else { 20 }),
            ),
            calm: Duration::from_secs(if quick { 5 } else { 15 }),
            connect_deadline: Duration::from_secs(300),
        }
    }
}

/// One trickle document: id, POST start (Unix ms).
type Sent = Arc<Mutex<Vec<(String, u64)>>>;

/// Post `rate` documents per second from the real sender until `stop`.
fn start_trickle(
    rt: &tokio::runtime::Runtime,
    api: String,
    rate: f64,
    sent: Sent,
    errors: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
) {
    rt.spawn(async move {
        let client = reqwest::Client::new();
        let period = Duration::from_secs_f64(1.0 / rate);
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut k = 0usize;
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let (client, api, sent, errors) =
                (client.clone(), api.clone(), sent.clone(), errors.clone());
            k += 1;
            tokio::spawn(async move {
                let t0 = now_ms();
                match post_one(
                    &client,
                    &api,
                    RECEIVER,
                    &format!("Scale-{k}"),
                    body(9, 0, k),
                )
                .await
                {
                    Ok(id) => sent.lock().unwrap().push((id, t0)),
                    Err(e) => errors.lock().unwrap().push(e),
                }
            });
        }
    });
}

/// The trickle documents posted in `[from_ms, to_ms)` that have their receipt, each as (posted
/// at, ms to the receipt), and how many have none yet.
fn receipted(sent: &Sent, seen: &Seen, from_ms: u64, to_ms: u64) -> (Vec<(u64, u64)>, usize) {
    let sent = sent.lock().unwrap();
    let seen = seen.lock().unwrap();
    let mut done = Vec::new();
    let mut missing = 0;
    for (id, t0) in sent.iter().filter(|(_, t)| *t >= from_ms && *t < to_ms) {
        match seen.get(id) {
            Some((stored, _)) => done.push((*t0, stored.saturating_sub(*t0))),
            None => missing += 1,
        }
    }
    (done, missing)
}

/// Latencies (ms) of the trickle documents posted in `[from_ms, to_ms)`, sorted, and how many
/// of them have no receipt yet.
fn latencies(sent: &Sent, seen: &Seen, from_ms: u64, to_ms: u64) -> (Vec<u64>, usize) {
    let (done, missing) = receipted(sent, seen, from_ms, to_ms);
    let mut lat: Vec<u64> = done.into_iter().map(|(_, lat)| lat).collect();
    lat.sort_unstable();
    (lat, missing)
}

/// The `n` slowest documents posted in `[from_ms, to_ms)`: when posted and how long to the
/// receipt, slowest first.
fn slowest(sent: &Sent, seen: &Seen, from_ms: u64, to_ms: u64, n: usize) -> Vec<(u64, u64)> {
    let (mut done, _) = receipted(sent, seen, from_ms, to_ms);
    done.sort_unstable_by_key(|(_, lat)| std::cmp::Reverse(*lat));
    done.truncate(n);
    done
}

/// Wait until every trickle document posted before `to_ms` has its receipt.
fn wait_receipts(sent: &Sent, seen: &Seen, to_ms: u64, deadline: Duration) -> usize {
    let end = Instant::now() + deadline;
    loop {
        let (_, missing) = latencies(sent, seen, 0, to_ms);
        if missing == 0 || Instant::now() > end {
            return missing;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What the probes of the hub's endpoints saw during the storm.
#[derive(Default)]
struct Probes {
    answered: usize,
    failed: Vec<String>,
    latencies_ms: Vec<u64>,
}

/// The HTTP client of the probes: a hub that does not answer within 5 s counts as failed.
fn probe_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client")
}

/// What one answer of each of the hub's registry-wide endpoints takes with every agency
/// registered and connected (median of `n`, ms): the Prometheus scrape, the list of nodes and
/// one node's page. Each reads the whole registry or looks agencies up in it.
async fn endpoint_times(ops: &str, token: &str, n: usize) -> Result<Vec<(String, f64)>, String> {
    let client = probe_client();
    let paths = [
        "/metrics".to_string(),
        "/admin/v1/nodes".to_string(),
        format!("/admin/v1/nodes/{SENDER}"),
    ];
    let mut out = Vec::new();
    for path in paths {
        let mut took = Vec::new();
        for _ in 0..n {
            let t = Instant::now();
            let r = client
                .get(format!("http://{ops}{path}"))
                .bearer_auth(token)
                .send()
                .await
                .map_err(|e| format!("{path}: {e}"))?;
            if !r.status().is_success() {
                return Err(format!("{path}: {}", r.status()));
            }
            r.bytes().await.map_err(|e| format!("{path}: {e}"))?;
            took.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        took.sort_by(f64::total_cmp);
        out.push((path, took[took.len() / 2]));
    }
    Ok(out)
}

/// Probe the hub's ops endpoints and admin API every 100 ms until `stop`.
fn start_probes(
    rt: &tokio::runtime::Runtime,
    ops: String,
    token: String,
    out: Arc<Mutex<Probes>>,
    stop: Arc<AtomicBool>,
) {
    rt.spawn(async move {
        let client = probe_client();
        let paths = [
            "/healthz".to_string(),
            "/metrics".to_string(),
            format!("/admin/v1/nodes/{SENDER}"),
        ];
        let mut k = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let path = &paths[k % paths.len()];
            k += 1;
            let t0 = Instant::now();
            let r = client
                .get(format!("http://{ops}{path}"))
                .bearer_auth(&token)
                .send()
                .await;
            let ms = t0.elapsed().as_millis() as u64;
            {
                let mut o = out.lock().unwrap();
                match r {
                    Ok(r) if r.status().is_success() => {
                        o.answered += 1;
                        o.latencies_ms.push(ms);
                    }
                    Ok(r) => o.failed.push(format!("{path}: {}", r.status())),
                    Err(e) => o.failed.push(format!("{path}: {e}")),
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

/// Poll the hub's admin API every 50 ms until it shows both real agents connected; then
/// store the time (Unix ms) in `back`.
fn watch_real_agents(
    rt: &tokio::runtime::Runtime,
    ops: String,
    token: String,
    back: Arc<AtomicU64>,
) {
    rt.spawn(async move {
        let client = probe_client();
        loop {
            let mut both = true;
            for code in [SENDER, RECEIVER] {
                let node: Option<serde_json::Value> = match client
                    .get(format!("http://{ops}/admin/v1/nodes/{code}"))
                    .bearer_auth(&token)
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => r.json().await.ok(),
                    _ => None,
                };
                both &= node.is_some_and(|n| n["connected"] == true);
            }
            if both {
                back.store(now_ms(), Ordering::Relaxed);
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

fn hub_pid(d: &Deployment) -> Res<u32> {
    Ok(d.procs().pid(HUB).ok_or("the hub is not running")?)
}

fn rss_mib(pid: u32, key: &str) -> f64 {
    proc_status_kib(pid, key).unwrap_or(0) as f64 / 1024.0
}

/// Wait until `n` simulated agents are connected; the time it took.
fn wait_connected(fleet: &sim::Fleet, n: usize, deadline: Duration) -> Res<Duration> {
    let t0 = Instant::now();
    while fleet.connected.load(Ordering::Relaxed) < n {
        if t0.elapsed() > deadline {
            return Err(format!(
                "only {} of {n} agents connected after {deadline:?}",
                fleet.connected.load(Ordering::Relaxed)
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(t0.elapsed())
}

/// The duration (ms) of the handshakes completed in `[from, to)`, sorted.
fn handshake_durations(fleet: &sim::Fleet, from: Duration, to: Duration) -> Vec<u64> {
    let mut d: Vec<u64> = fleet
        .handshake_durations
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, at, _)| *at >= from && *at < to)
        .map(|(_, _, took)| took.as_millis() as u64)
        .collect();
    d.sort_unstable();
    d
}

/// Handshakes completed per second in `[from, to)` (since the fleet's epoch): the mean and
/// the busiest second.
fn handshake_rate(fleet: &sim::Fleet, from: Duration, to: Duration) -> (f64, usize) {
    let times = fleet.handshake_durations.lock().unwrap();
    let inside: Vec<Duration> = times
        .iter()
        .map(|(_, at, _)| *at)
        .filter(|t| *t >= from && *t < to)
        .collect();
    let secs = (to - from).as_secs_f64().max(1e-3);
    let mut per_second = std::collections::HashMap::<u64, usize>::new();
    for t in &inside {
        *per_second.entry((*t - from).as_secs()).or_default() += 1;
    }
    (
        inside.len() as f64 / secs,
        per_second.values().copied().max().unwrap_or(0),
    )
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

fn main() -> Res<()> {
    let p = Params::from_env();
    println!(
        "scale: {} simulated agents, a trickle of {} documents/s between two real agents",
        p.agents, p.rate
    );
    let tmp = tempfile::tempdir()?;
    let mut d = deployment(tmp.path(), &[SENDER, RECEIVER])?;
    // POROS_BENCH_KEEP=1: the deployment (stores, logs) stays for a look afterwards.
    let root = tmp.path().to_path_buf();
    let _tmp = if std::env::var("POROS_BENCH_KEEP").is_ok_and(|v| v == "1") {
        println!("the deployment stays in {}", tmp.keep().display());
        None
    } else {
        Some(tmp)
    };
    if let Some(n) = p.handshakes {
        // Another admission limit than the default: restart the hub with it.
        d.stop_hub()?;
        poros_harness::set_toml_key(
            &d.hub_dir.join("hub.toml"),
            "handshakes_in_flight",
            &n.to_string(),
        )?;
        d.start_hub()?;
    }
    d.start_agents(&[SENDER, RECEIVER], true)?;
    let ops = d.ops_base().trim_start_matches("http://").to_string();
    let token = std::fs::read_to_string(d.hub_dir.join("admin.token"))?
        .trim()
        .to_string();
    let hub_addr: SocketAddr = std::fs::read_to_string(d.hub_dir.join("run/quic.addr"))?
        .trim()
        .parse()?;
    let sender_api = d.api_addr(SENDER).ok_or("the sender's API address")?;

    // The simulated agents' runtime: every core, as an agent has its own.
    let fleet_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // The measuring side (trickle, receipt followers, probes) on its own thread, so that the
    // fleet's work does not delay a measurement.
    let meter_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;

    // 1. Registration and first connection.
    let issued = sim::issue(&meter_rt, &ops, &token, p.agents)?;
    let per_s = p.agents as f64 / issued.issue.as_secs_f64();
    println!(
        "registered {} agencies: keys and requests {:.1} s, issuance through the admin API {:.1} s ({:.0} agencies/s)",
        p.agents,
        issued.keygen.as_secs_f64(),
        issued.issue.as_secs_f64(),
        per_s
    );
    let epoch = Instant::now();
    let fleet = sim::start(&fleet_rt, issued.identities, hub_addr, p.idle_secs, epoch)?;
    let first_connect = wait_connected(&fleet, p.agents, p.connect_deadline)?;
    println!(
        "all {} agents connected {:.1} s after they started",
        p.agents,
        first_connect.as_secs_f64()
    );

    // 2. Idle.
    std::thread::sleep(Duration::from_secs(3));
    let pid = hub_pid(&d)?;
    let (c0, t0) = (cpu_secs(pid).unwrap_or(0.0), Instant::now());
    let q0 = thread_cpu_secs(pid, QUIC_THREAD);
    let b0 = cpu_secs(std::process::id()).unwrap_or(0.0);
    std::thread::sleep(p.idle);
    let idle_cpu_pct = (cpu_secs(pid).unwrap_or(0.0) - c0) / t0.elapsed().as_secs_f64() * 100.0;
    let idle_quic_pct =
        (thread_cpu_secs(pid, QUIC_THREAD) - q0) / t0.elapsed().as_secs_f64() * 100.0;
    let fleet_cpu_pct =
        (cpu_secs(std::process::id()).unwrap_or(0.0) - b0) / t0.elapsed().as_secs_f64() * 100.0;
    let idle_rss = rss_mib(pid, "VmRSS:");
    let connected_idle = fleet.connected.load(Ordering::Relaxed);
    println!(
        "idle, {connected_idle} connected: hub RSS {idle_rss:.0} MiB (target < {TARGET_RSS_MIB:.0}: {}), hub CPU {idle_cpu_pct:.2}% of one core (target < {TARGET_IDLE_CPU_PCT}%: {}; its QUIC thread {idle_quic_pct:.2}%); the {} simulated agents {fleet_cpu_pct:.1}%",
        verdict(idle_rss < TARGET_RSS_MIB),
        verdict(idle_cpu_pct < TARGET_IDLE_CPU_PCT),
        p.agents
    );
    let endpoints = meter_rt.block_on(endpoint_times(&ops, &token, 5))?;
    println!(
        "  one answer with every agency connected (median of 5): {}",
        endpoints
            .iter()
            .map(|(path, ms)| format!("{path} {ms:.1} ms"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    // 3. The trickle with everyone connected.
    let seen: Seen = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    // The receipt followers run on after the trickle stops, until every receipt is in.
    let stop_followers = Arc::new(AtomicBool::new(false));
    let followers = start_followers(
        &meter_rt,
        vec![sender_api.clone()],
        seen.clone(),
        stop_followers.clone(),
    );
    let sent: Sent = Arc::default();
    let errors = Arc::new(Mutex::new(Vec::new()));
    start_trickle(
        &meter_rt,
        sender_api,
        p.rate,
        sent.clone(),
        errors.clone(),
        stop.clone(),
    );
    let calm_from = now_ms();
    std::thread::sleep(p.calm);
    let calm_to = now_ms();
    wait_receipts(&sent, &seen, calm_to, Duration::from_secs(30));
    let (calm, calm_missing) = latencies(&sent, &seen, calm_from, calm_to);
    let calm_p99 = pct(&calm, 99.0);
    println!(
        "trickle before the storm: {} documents, p50 {:.0} ms, p99 {calm_p99:.0} ms (target < {TARGET_P99_CALM_MS}: {}){}",
        calm.len(),
        pct(&calm, 50.0),
        verdict(calm_p99 < TARGET_P99_CALM_MS),
        if calm_missing > 0 { format!(", {calm_missing} without a receipt") } else { String::new() }
    );

    // 4. The storm.
    let probes = Arc::new(Mutex::new(Probes::default()));
    // Attempts that failed or timed out at the first connection, so the storm's own count.
    let failed_before = fleet.failed_attempts.load(Ordering::Relaxed);
    let timed_out_before = fleet.timed_out_attempts.load(Ordering::Relaxed);
    let kill_ms = now_ms();
    let killed_at = epoch.elapsed();
    d.kill_hub();
    let restart = Instant::now();
    d.start_hub()?;
    let hub_ready = restart.elapsed();
    let up_ms = now_ms();
    let up_at = epoch.elapsed();
    let real_back = Arc::new(AtomicU64::new(0));
    watch_real_agents(&meter_rt, ops.clone(), token.clone(), real_back.clone());
    let stop_probes = Arc::new(AtomicBool::new(false));
    start_probes(
        &meter_rt,
        ops.clone(),
        token.clone(),
        probes.clone(),
        stop_probes.clone(),
    );
    let pid = hub_pid(&d)?;
    let storm_c0 = cpu_secs(pid).unwrap_or(0.0);
    let storm_q0 = thread_cpu_secs(pid, QUIC_THREAD);
    let storm_b0 = cpu_secs(std::process::id()).unwrap_or(0.0);
    // Connected again: every simulated agent has made a new connection since the kill.
    let reconnect_deadline = Instant::now() + p.connect_deadline;
    let all_back = loop {
        let again = fleet
            .handshake_durations
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, at, _)| *at > killed_at)
            .count();
        if again >= p.agents && fleet.connected.load(Ordering::Relaxed) >= p.agents {
            break epoch.elapsed();
        }
        if Instant::now() > reconnect_deadline {
            return Err(format!(
                "{again} of {} agents reconnected within {:?} of the restart",
                p.agents, p.connect_deadline
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let storm_to = now_ms();
    let storm_cpu = cpu_secs(pid).unwrap_or(0.0) - storm_c0;
    let storm_quic = thread_cpu_secs(pid, QUIC_THREAD) - storm_q0;
    let storm_fleet_cpu = cpu_secs(std::process::id()).unwrap_or(0.0) - storm_b0;
    let reconnect = all_back - up_at;
    let (mean_hs, peak_hs) = handshake_rate(&fleet, up_at, all_back);
    let hs_took = handshake_durations(&fleet, up_at, all_back);
    // When each agent was connected again (s after the hub was ready): its last handshake.
    let back_after = {
        let mut last = std::collections::HashMap::<usize, Duration>::new();
        let all = fleet.handshake_durations.lock().unwrap();
        for (agent, at, _) in all.iter().filter(|(_, at, _)| *at > killed_at) {
            last.insert(*agent, *at);
        }
        let mut v: Vec<u64> = (last.values())
            .map(|at| at.saturating_sub(up_at).as_millis() as u64)
            .collect();
        v.sort_unstable();
        v
    };
    let first_took = handshake_durations(&fleet, Duration::ZERO, killed_at);
    // What the restarted hub counted: refusals by reason, failed handshakes.
    let hub_counts: Vec<String> = meter_rt
        .block_on(async {
            let r = probe_client()
                .get(format!("http://{ops}/metrics"))
                .bearer_auth(&token)
                .send()
                .await
                .ok()?;
            r.text().await.ok()
        })
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            l.starts_with("poros_refusals_total") || l.starts_with("poros_handshake_failures_total")
        })
        .map(str::to_string)
        .collect();
    // A little after the storm, then stop the trickle and the probes.
    std::thread::sleep(Duration::from_secs(3));
    stop_probes.store(true, Ordering::Relaxed);
    let end_ms = now_ms();
    stop.store(true, Ordering::Relaxed);
    let missing_end = wait_receipts(&sent, &seen, end_ms, Duration::from_secs(60));
    stop_followers.store(true, Ordering::Relaxed);
    let (storm, storm_missing) = latencies(&sent, &seen, up_ms, storm_to);
    let storm_p99 = pct(&storm, 99.0);
    // Split at the moment both real agents were connected again: before it a document waits
    // for its own sender or receiver to be readmitted (the receiver learns of the restart at
    // its next keep-alive); after it, it is exchanged between established agents while the
    // rest of the storm goes on.
    let back_ms = match real_back.load(Ordering::Relaxed) {
        0 => storm_to, // not seen back before the storm ended
        t => t.clamp(up_ms, storm_to),
    };
    let (waiting, _) = latencies(&sent, &seen, up_ms, back_ms);
    let (established, _) = latencies(&sent, &seen, back_ms, storm_to);
    let established_p99 = pct(&established, 99.0);
    let (down, _) = latencies(&sent, &seen, kill_ms, up_ms);
    let pr = probes.lock().unwrap();
    let mut probe_lat = pr.latencies_ms.clone();
    probe_lat.sort_unstable();
    let storm_rss = rss_mib(pid, "VmHWM:");
    println!(
        "storm: hub killed and started again (ready after {:.2} s); all {} agents connected again {:.1} s after it was ready (target < {TARGET_RECONNECT_S} s: {}), {:.1} s after the kill",
        hub_ready.as_secs_f64(),
        p.agents,
        reconnect.as_secs_f64(),
        verdict(reconnect.as_secs_f64() < TARGET_RECONNECT_S),
        (all_back - killed_at).as_secs_f64()
    );
    println!(
        "  agents connected again, s after the hub was ready: half {:.1}, 90% {:.1}, 99% {:.1}, all {:.1}; their old connections ended by a stateless reset {}, by the idle timeout {}",
        pct(&back_after, 50.0) / 1000.0,
        pct(&back_after, 90.0) / 1000.0,
        pct(&back_after, 99.0) / 1000.0,
        back_after.last().copied().unwrap_or(0) as f64 / 1000.0,
        fleet.ended_by_reset.load(Ordering::Relaxed),
        fleet.ended_by_timeout.load(Ordering::Relaxed)
    );
    println!(
        "  agents that sat out their idle timeout (index, socket): {:?}",
        fleet
            .timed_out_agents
            .lock()
            .unwrap()
            .iter()
            .map(|i| (i, i / sim::AGENTS_PER_SOCKET))
            .collect::<Vec<_>>()
    );
    println!(
        "  handshakes: {mean_hs:.0}/s on average, {peak_hs} in the busiest second; CPU meanwhile: hub {:.0}% (its QUIC thread {:.0}%), simulated agents {:.0}% of one core (the machine has {}); hub peak RSS {storm_rss:.0} MiB",
        storm_cpu / reconnect.as_secs_f64().max(1e-3) * 100.0,
        storm_quic / reconnect.as_secs_f64().max(1e-3) * 100.0,
        storm_fleet_cpu / reconnect.as_secs_f64().max(1e-3) * 100.0,
        std::thread::available_parallelism().map_or(0, |c| c.get())
    );
    println!(
        "  trickle while agents reconnected: {} documents, p50 {:.0} ms, p99 {storm_p99:.0} ms{}; {} posted while the hub was down (held by their agent, p50 {:.0} ms)",
        storm.len(),
        pct(&storm, 50.0),
        if storm_missing > 0 { format!(", {storm_missing} without a receipt") } else { String::new() },
        down.len(),
        pct(&down, 50.0)
    );
    println!(
        "    between its two agents once both were back ({:.1} s after the hub was ready, {:.1} s before the storm ended): {} documents, p50 {:.0} ms, p99 {established_p99:.0} ms (target < {TARGET_P99_STORM_MS}: {}); before that (waiting for their own readmission): {} documents, p50 {:.0} ms, p99 {:.0} ms",
        back_ms.saturating_sub(up_ms) as f64 / 1000.0,
        storm_to.saturating_sub(back_ms) as f64 / 1000.0,
        established.len(),
        pct(&established, 50.0),
        verdict(!established.is_empty() && established_p99 < TARGET_P99_STORM_MS),
        waiting.len(),
        pct(&waiting, 50.0),
        pct(&waiting, 99.0)
    );
    let slow: Vec<String> = slowest(&sent, &seen, back_ms, storm_to, 5)
        .iter()
        .map(|(t, lat)| format!("{:.1}: {lat}", t.saturating_sub(up_ms) as f64 / 1000.0))
        .collect();
    println!(
        "    its slowest there (posted s after the hub was ready: ms): {}",
        if slow.is_empty() {
            "none".to_string()
        } else {
            slow.join(", ")
        }
    );
    println!(
        "  hub endpoints (healthz, metrics, admin API) during the storm: {} answered, p50 {:.0} ms, max {:.0} ms; {} failed{}",
        pr.answered,
        pct(&probe_lat, 50.0),
        probe_lat.last().copied().unwrap_or(0) as f64,
        pr.failed.len(),
        pr.failed.first().map(|f| format!(" (first: {f})")).unwrap_or_default()
    );
    println!(
        "  one handshake, attempt to established: p50 {:.0} ms, p99 {:.0} ms during the storm (p50 {:.0} ms, p99 {:.0} ms at the first connection); in the storm, attempts refused by admission control or closed {} (at the first connection {failed_before}), timed out ({:?}) {}",
        pct(&hs_took, 50.0),
        pct(&hs_took, 99.0),
        pct(&first_took, 50.0),
        pct(&first_took, 99.0),
        fleet.failed_attempts.load(Ordering::Relaxed) - failed_before,
        poros_protocol::backoff::Backoff::ATTEMPT_TIMEOUT,
        fleet.timed_out_attempts.load(Ordering::Relaxed) - timed_out_before
    );
    println!("  the hub's own counts: {}", hub_counts.join(", "));
    let errs = errors.lock().unwrap();
    println!(
        "  trickle: {} posted, {} refused by the sender's API, {missing_end} without a receipt at the end",
        sent.lock().unwrap().len(),
        errs.len()
    );

    let summary = json!({
        "agents": p.agents,
        "agent_idle_timeout_secs": p.idle_secs,
        "hub_handshakes_in_flight": p.handshakes,
        "registration": {
            "keygen_s": issued.keygen.as_secs_f64(),
            "issue_s": issued.issue.as_secs_f64(),
            "agencies_per_s": per_s,
        },
        "first_connect_s": first_connect.as_secs_f64(),
        "idle": {
            "connected": connected_idle,
            "hub_rss_mib": idle_rss,
            "hub_cpu_pct_of_one_core": idle_cpu_pct,
            "hub_quic_thread_cpu_pct_of_one_core": idle_quic_pct,
            "endpoint_ms": endpoints.iter().map(|(p, ms)| (p.clone(), json!(ms))).collect::<serde_json::Map<_, _>>(),
            "simulated_agents_cpu_pct": fleet_cpu_pct,
        },
        "trickle_before": {"docs": calm.len(), "p50_ms": pct(&calm, 50.0), "p99_ms": calm_p99, "missing": calm_missing},
        "storm": {
            "hub_ready_s": hub_ready.as_secs_f64(),
            "reconnect_after_ready_s": reconnect.as_secs_f64(),
            "reconnect_after_kill_s": (all_back - killed_at).as_secs_f64(),
            "old_connections_ended_by_reset": fleet.ended_by_reset.load(Ordering::Relaxed),
            "old_connections_ended_by_idle_timeout": fleet.ended_by_timeout.load(Ordering::Relaxed),
            "reconnected_after_ready_s": {"p50": pct(&back_after, 50.0) / 1000.0, "p90": pct(&back_after, 90.0) / 1000.0, "p99": pct(&back_after, 99.0) / 1000.0},
            "handshakes_per_s_mean": mean_hs,
            "handshakes_busiest_second": peak_hs,
            "handshake_p50_ms": pct(&hs_took, 50.0),
            "handshake_p99_ms": pct(&hs_took, 99.0),
            "attempts_refused": fleet.failed_attempts.load(Ordering::Relaxed) - failed_before,
            "attempts_timed_out": fleet.timed_out_attempts.load(Ordering::Relaxed) - timed_out_before,
            "first_connect_attempts_refused": failed_before,
            "hub_cpu_s": storm_cpu,
            "hub_quic_thread_cpu_s": storm_quic,
            "simulated_agents_cpu_s": storm_fleet_cpu,
            "hub_peak_rss_mib": storm_rss,
            "trickle": {"docs": storm.len(), "p50_ms": pct(&storm, 50.0), "p99_ms": storm_p99, "missing": storm_missing},
            "real_agents_back_after_ready_s": back_ms.saturating_sub(up_ms) as f64 / 1000.0,
            "trickle_established": {"docs": established.len(), "p50_ms": pct(&established, 50.0), "p99_ms": established_p99},
            "trickle_waiting_for_readmission": {"docs": waiting.len(), "p50_ms": pct(&waiting, 50.0), "p99_ms": pct(&waiting, 99.0)},
            "hub_counts": hub_counts,
            "probes": {"answered": pr.answered, "failed": pr.failed.len(), "p50_ms": pct(&probe_lat, 50.0), "max_ms": probe_lat.last()},
        },
        "trickle_errors": errs.len(),
        "missing_receipts_at_end": missing_end,
    });
    let out = target_dir().join("bench-scale.json");
    std::fs::write(&out, serde_json::to_string_pretty(&summary)?)?;
    println!("summary written to {}", out.display());
    fleet.stop.store(true, Ordering::Relaxed);
    for f in followers {
        f.abort();
    }
    drop(pr);
    drop(errs);
    fleet_rt.shutdown_timeout(Duration::from_secs(1));
    meter_rt.shutdown_timeout(Duration::from_secs(1));
    d.stop_all();
    if missing_end > 0 {
        let sent = sent.lock().unwrap();
        let seen = seen.lock().unwrap();
        for (id, t0) in sent.iter().filter(|(id, _)| !seen.contains_key(id)) {
            println!(
                "  no receipt: {id}, posted {:.1} s after the kill (logs under {})",
                (*t0 as f64 - kill_ms as f64) / 1000.0,
                root.display()
            );
        }
        return Err(format!("{missing_end} trickle documents never got their receipt").into());
    }
    Ok(())
}
