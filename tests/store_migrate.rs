//! `poros-hub store migrate` end to end: a redb deployment with several thousand documents in
//! every state is stopped, copied into a real PostgreSQL database and verified; then the hub
//! runs on PostgreSQL and the copy behaves as the original would (pending documents delivered
//! once their agency connects, the held one repaired, statistics equal to a recount, the
//! revoked node still refused, the unredeemed token redeemable once). And a copy that does
//! not match — a second migration into the same database, a row or a body chunk changed
//! afterwards — is refused or reported, naming what differs.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The recipient that never connects: its deliveries expire.
const X: &str = "000.00.00.H05";
/// The node revoked before the migration.
const E: &str = "000.00.00.H06";
/// The agency whose token is issued before the migration and redeemed after it.
const F: &str = "000.00.00.H07";

/// Concurrent senders per batch.
const SENDERS: usize = 12;

fn body_for(tag: &str, k: usize, large: bool) -> Vec<u8> {
    let seed = k as u64 ^ (tag.len() as u64) << 40 ^ (tag.as_bytes()[0] as u64) << 48;
    let len = if large {
        // Over the inline limit; most over one 256 KiB chunk of the database's store.
        65 * 1024 + 1 + (k / 4 % 5) * 150_000
    } else {
        200 + k % 300
    };
    let mut b = format!("{tag} {k}\n").into_bytes();
    b.extend(pseudo_random(len, seed + 1));
    b
}

/// Send `n` documents from `from` to `to`, `SENDERS` at a time; every `large_every`-th body is
/// large. Returns the IDs in order of `k`.
fn send_many(
    net: &Net,
    from: &str,
    to: &[&str],
    n: usize,
    large_every: usize,
    tag: &str,
) -> Vec<String> {
    let next = AtomicUsize::new(0);
    let ids = Mutex::new(vec![String::new(); n]);
    std::thread::scope(|s| {
        for _ in 0..SENDERS {
            let h = net.handle(from);
            let (next, ids) = (&next, &ids);
            s.spawn(move || loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= n {
                    break;
                }
                let large = large_every > 0 && k % large_every == 0;
                let id = h
                    .try_send(to, &format!("{tag} {k}"), &body_for(tag, k, large))
                    .unwrap_or_else(|e| panic!("send {tag} {k}: {e}"));
                ids.lock().unwrap()[k] = id;
            });
        }
    });
    ids.into_inner().unwrap()
}

/// POST a business status for each of `ids` at agency `code`, `SENDERS` at a time.
fn progress_many(net: &Net, code: &str, ids: &[String], status: &str) {
    let addr = std::fs::read_to_string(net.agent_dir(code).join("run/api.addr")).unwrap();
    let url = |id: &str| format!("http://{}/v1/documents/{id}/progress", addr.trim());
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..SENDERS {
            let (next, http) = (&next, net.http().clone());
            let url = &url;
            s.spawn(move || loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(id) = ids.get(k) else { break };
                let r = http
                    .post(url(id))
                    .json(&serde_json::json!({
                        "code": status,
                        "staff": {"department": "Văn thư", "name": "Migration test"},
                    }))
                    .send()
                    .unwrap_or_else(|e| panic!("progress {status} {id}: {e}"));
                assert!(
                    r.status().is_success(),
                    "progress {status} {id}: {} {}",
                    r.status(),
                    r.text().unwrap_or_default()
                );
            });
        }
    });
}

fn wait_metric(net: &Net, name: &str, want: u64, timeout: Duration) {
    wait_until(&format!("{name} = {want}"), timeout, || {
        net.metric(name) == want
    });
}

/// `poros-hub store migrate --dir HUB --to URL --json [extra]`.
fn migrate(net: &Net, url: &str, extra: &[&str]) -> (Output, Option<Value>) {
    let dir = s(&net.hub_dir);
    let mut args = vec!["store", "migrate", "--dir", &dir, "--to", url, "--json"];
    args.extend_from_slice(extra);
    let out = net.hub_cli(&args);
    let report = serde_json::from_slice(&out.stdout).ok();
    (out, report)
}

/// The report's tables by name: (source rows, target rows, equal).
fn tables(report: &Value) -> BTreeMap<String, (u64, u64, bool)> {
    report["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| {
            (
                t["table"].as_str().unwrap().to_string(),
                (
                    t["source_rows"].as_u64().unwrap(),
                    t["target_rows"].as_u64().unwrap(),
                    t["equal"].as_bool().unwrap(),
                ),
            )
        })
        .collect()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Append the `[store]` section that puts the deployment on `url`.
fn switch_to_postgres(net: &Net, url: &str) {
    let mut toml = std::fs::read_to_string(net.hub_toml()).unwrap();
    toml.push_str(&format!(
        "\n[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n"
    ));
    std::fs::write(net.hub_toml(), toml).unwrap();
}

#[test]
fn a_deployment_in_every_state_moves_to_postgres_whole() {
    let t0 = Instant::now();
    let url = poros_harness::fresh_database("migrate").unwrap_or_else(|e| panic!("{e}"));
    let mut net = Net::new();
    // The token issued below names the enrolment endpoint: the same port after the restarts.
    let toml = std::fs::read_to_string(net.hub_toml()).unwrap();
    let any_port = "listen = \"127.0.0.1:0\"";
    assert!(
        toml.contains(any_port),
        "the enrolment endpoint on any port"
    );
    let fixed = format!("listen = \"127.0.0.1:{}\"", free_port());
    std::fs::write(net.hub_toml(), toml.replacen(any_port, &fixed, 1)).unwrap();
    // Phase 1: deliveries to X expire within seconds and bodies go at once.
    net.set_hub_config("expiry_secs", "2");
    net.set_hub_config("body_retention_secs", "0");
    net.set_hub_config("sweep_interval_secs", "1");
    for code in [A, B, C, X, E] {
        net.add_agent(code);
    }
    net.start_hub();
    net.start_agent(A);
    net.start_agent(B);
    let n1 = 1000;
    let phase1 = send_many(&net, A, &[B, X], n1, 50, "expiring");
    assert_eq!(phase1.len(), n1);
    let wait = Duration::from_secs(120);
    wait_metric(&net, "poros_deliveries_delivered_total", n1 as u64, wait);
    wait_metric(&net, "poros_deliveries_expired_total", n1 as u64, wait);
    // Every phase-1 body released (retention 0): no body file left.
    wait_until("phase-1 bodies released", wait, || {
        net.hub_body_files().is_empty()
    });
    eprintln!("phase 1 done after {:?}", t0.elapsed());

    // Phase 2: nothing expires any more; bodies stay.
    net.stop_hub();
    net.set_hub_config("expiry_secs", "86400");
    net.set_hub_config("body_retention_secs", "86400");
    net.start_hub();
    wait_until("A and B connected again", DEADLINE, || {
        net.metric("poros_connected_nodes") >= 2
    });
    // More documents for a measurement: POROS_MIGRATE_EXTRA more to B.
    let extra: usize = std::env::var("POROS_MIGRATE_EXTRA")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let (n_b, n_c) = (1500 + extra, 500);
    let to_b = send_many(&net, A, &[B], n_b, 50, "answered");
    let to_c = send_many(&net, A, &[C], n_c, 50, "pending");
    let held_body = body_for("held", 7, true);
    let held = net.send(A, &[C], "held for repair", &held_body);
    wait_metric(
        &net,
        "poros_deliveries_delivered_total",
        (n1 + n_b) as u64,
        wait,
    );
    // Statements: B registers 200 documents and completes 100 of them; relayed to A.
    progress_many(&net, B, &to_b[..200], "registered");
    progress_many(&net, B, &to_b[..100], "completed");
    wait_metric(&net, "poros_statements_accepted_total", 300, wait);
    wait_metric(&net, "poros_statement_relay_depth", 0, wait);
    // A revoked node and an unredeemed token.
    assert_ok(&net.node_action("revoke", E), "node revoke");
    let token = net.issue_token(F);
    // A body found missing while its sender is offline: its delivery is held.
    let digest = sha256_hex(&held_body);
    let file = net
        .hub_body_files()
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy() == digest))
        .expect("the held document's body file");
    std::fs::remove_file(&file).unwrap();
    net.stop_agent(A);
    let scrub = net.hub_cli(&["scrub", "--dir", &s(&net.hub_dir)]);
    assert_ok(&scrub, "poros-hub scrub");
    wait_metric(&net, "poros_deliveries_held_for_repair", 1, DEADLINE);
    assert_eq!(net.metric("poros_queue_depth"), n_c as u64);
    eprintln!("deployment built after {:?}", t0.elapsed());

    // The running hub holds its store: refused, nothing written.
    let (out, _) = migrate(&net, &url, &[]);
    assert!(!out.status.success(), "migrated while the hub ran");
    assert!(
        stderr(&out).contains("stop the hub first"),
        "{}",
        stderr(&out)
    );

    net.stop_hub();
    let started = Instant::now();
    let (out, report) = migrate(&net, &url, &[]);
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "store migrate failed: {}",
        stderr(&out)
    );
    let report = report.expect("a JSON report");
    eprintln!(
        "store migrate: {took:?}, {} docs/s, peak RSS {} KiB ({} KiB after the copy), \
         redb file {} bytes, copy {} s, verify {} s, large bodies {} bytes",
        report["docs_per_sec"],
        report["peak_rss_kib"],
        report["peak_rss_copy_kib"],
        report["source_db_bytes"],
        report["copy_secs"],
        report["verify_secs"],
        report["bodies"]["bytes"]
    );
    assert_eq!(report["verified"], true, "{report:#}");
    let docs = 3001 + extra as u64;
    assert_eq!(report["documents"], docs);
    let t = tables(&report);
    for (name, (src, dst, equal)) in &t {
        assert!(*equal && src == dst, "{name}: {src} vs {dst}");
    }
    assert_eq!(t["docs"].0, docs);
    assert_eq!(t["deliveries"].0, (2 * n1 + n_b + n_c + 1) as u64);
    assert_eq!(t["queue"].0, (n_c + 1) as u64, "pending and held");
    assert_eq!(t["nodes"].0, 6, "A, B, C, X, E and F (pending)");
    assert_eq!(t["revoked_serials"].0, 2, "E's TLS and signing serials");
    assert_eq!(t["enrolment_tokens"].0, 1);
    assert!(t["statements"].0 > docs + n1 as u64 + n_b as u64);
    assert!(t["retention"].0 > 0 && t["relays"].0 == 0);
    assert_eq!(t["damaged_bodies"].0, 1);
    assert_eq!(t["repairs"].0, 1);
    // Large bodies: phase 2's (one in 50 to B and to C) copied; the held one is missing at
    // the source.
    let large = (n_b.div_ceil(50) + n_c.div_ceil(50)) as u64;
    assert_eq!(report["bodies"]["intact"], large, "{:#}", report["bodies"]);
    assert_eq!(report["bodies"]["missing"], serde_json::json!([digest]));
    assert_eq!(t["bodies"].0, large);

    // Into the same database again: refused, naming what it found.
    let (again, _) = migrate(&net, &url, &[]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already holds Poros data") && stderr(&again).contains("docs"),
        "{}",
        stderr(&again)
    );

    // The deployment on PostgreSQL.
    switch_to_postgres(&net, &url);
    net.start_hub();
    // B kept running and reconnects by itself; C connects for the first time.
    net.start_agent(C);
    wait_until("C's pending documents delivered", wait, || {
        net.inbox_counts(C).map(|m| m.len()) == Some(n_c)
    });
    assert_eq!(net.metric("poros_deliveries_held_for_repair"), 1);
    // The sender back: the body is uploaded again and the held document delivered.
    net.start_agent(A);
    wait_until("the held document repaired and delivered", wait, || {
        net.inbox_counts(C).is_some_and(|m| m.contains_key(&held))
    });
    net.wait_state(A, &held, "delivered");
    net.wait_state(A, &to_c[n_c - 1], "delivered");
    assert_eq!(net.metric("poros_queue_depth"), 0);
    let check = net.admin_get("/admin/v1/stats/check");
    assert_eq!(check["equal"], true, "{check:#}");
    let national = &check["recount"]["national"];
    assert_eq!(national["sent"], docs, "{national:#}");
    assert_eq!(national["in_expired"], n1, "{national:#}");
    // The revoked node stays refused.
    let refused = net.metric("poros_handshake_failures_total{reason=\"revoked\"}");
    net.start_agent_opts(E, false);
    wait_until("E's handshake refused as revoked", DEADLINE, || {
        net.metric("poros_handshake_failures_total{reason=\"revoked\"}") > refused
    });
    // The token issued before the move redeems, once.
    let first = net.enroll_dir(&net.agent_dir(F), &token);
    assert_ok(&first, "enrolment with the migrated token");
    let second = net.enroll_dir(&net.root.join("f-again"), &token);
    assert!(!second.status.success(), "the token redeemed twice");
    eprintln!("whole test {:?}", t0.elapsed());
}

#[test]
fn a_copy_that_differs_is_named() {
    let url = poros_harness::fresh_database("migrate_tamper").unwrap_or_else(|e| panic!("{e}"));
    let mut net = Net::running(&[A, B]);
    let ids = send_many(&net, A, &[B], 40, 4, "small");
    net.wait_state(A, &ids[39], "delivered");
    wait_metric(&net, "poros_deliveries_delivered_total", 40, DEADLINE);
    net.stop_hub();

    let (out, report) = migrate(&net, &url, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = report.unwrap();
    assert_eq!(report["verified"], true);
    assert_eq!(report["bodies"]["intact"], 10);
    let (out, report) = migrate(&net, &url, &["--verify-only"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(report.unwrap()["copied"], false);

    // One delivery's answer time and one chunk of one body changed in the database.
    let sql = |q: &str| poros_harness::psql(&url, q).unwrap_or_else(|e| panic!("{q}: {e}"));
    sql("UPDATE deliveries SET answered_ms = answered_ms + 1 \
         WHERE doc = (SELECT doc FROM deliveries ORDER BY doc LIMIT 1)");
    sql(
        "UPDATE body_chunks SET data = 'x'::bytea || substr(data, 2) \
         WHERE seq = 0 AND digest = (SELECT digest FROM body_chunks ORDER BY digest LIMIT 1)",
    );
    let (out, report) = migrate(&net, &url, &["--verify-only"]);
    assert!(!out.status.success(), "a tampered copy verified");
    let report = report.expect("a JSON report even when it fails");
    assert_eq!(report["verified"], false);
    let differ: Vec<String> = tables(&report)
        .into_iter()
        .filter(|(_, (_, _, eq))| !eq)
        .map(|(n, _)| n)
        .collect();
    assert_eq!(differ, ["bodies", "deliveries"]);
    let err = stderr(&out);
    assert!(
        err.contains("deliveries") && err.contains("bodies"),
        "{err}"
    );

    // A deployment whose hub was never set up is no source.
    let empty = net.root.join("nothing");
    std::fs::create_dir_all(&empty).unwrap();
    let out = net.hub_cli(&["store", "migrate", "--dir", &s(&empty), "--to", &url]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not a Poros deployment"),
        "{}",
        stderr(&out)
    );
}
