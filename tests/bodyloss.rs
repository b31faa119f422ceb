//! Bodies lost on the hub's disk, end to end: a deleted, truncated or altered body file is
//! noticed before it reaches a recipient, asked again from the sender's agent and delivered
//! exactly once; a sender without its copy gets a hub-signed notice with a reason code; the
//! scrub (on demand and periodic) finds damage; a vanished blob `tmp/` does not stop large
//! documents.

mod common;

use common::*;
use std::path::{Path, PathBuf};

/// Large enough to be a body file at the hub and at the agents (inline up to 64 KiB).
const LARGE: usize = 200 * 1024;

/// The hub's body file for `body`.
fn hub_file(net: &Net, body: &[u8]) -> PathBuf {
    let files = net.hub_body_files();
    let hex = sha256_hex(body);
    files
        .into_iter()
        .find(|f| f.ends_with(&hex))
        .unwrap_or_else(|| panic!("no hub body file for {hex}"))
}

/// An agent's own body file for `body` (`data/bodies/<2 hex>/<64 hex>`).
fn agent_file(net: &Net, code: &str, body: &[u8]) -> PathBuf {
    let hex = sha256_hex(body);
    net.agent_dir(code)
        .join("data/bodies")
        .join(&hex[..2])
        .join(&hex)
}

fn make_writable(f: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
}

/// Whether the hub's copy of `body` is back and intact.
fn hub_copy_intact(net: &Net, body: &[u8]) -> bool {
    net.hub_body_files()
        .iter()
        .any(|f| f.ends_with(sha256_hex(body)) && std::fs::read(f).is_ok_and(|d| d == body))
}

fn assert_stats_equal_recount(net: &Net) {
    let chk = net.admin_get("/admin/v1/stats/check");
    assert_eq!(chk["equal"], true, "stats check: {chk}");
}

#[test]
fn deleted_body_is_repaired_from_the_sender_and_delivered_once() {
    let mut net = Net::new();
    for code in [A, B, C] {
        net.add_agent(code);
    }
    net.start_hub();
    net.start_agent(A);
    let body = pseudo_random(LARGE, 31);
    let id = net.send(A, &[B, C], "deleted on the hub", &body);
    net.wait_state(A, &id, "accepted");

    std::fs::remove_file(hub_file(&net, &body)).unwrap();

    // Two recipients, one body: one repair request to the sender.
    net.start_agent(B);
    net.start_agent(C);
    net.wait_state(A, &id, "delivered");
    for code in [B, C] {
        assert_eq!(net.inbox_counts(code).unwrap().get(&id), Some(&1), "{code}");
        assert!(net.fetch(code, &id) == body, "body at {code} differs");
    }
    assert!(
        hub_copy_intact(&net, &body),
        "the hub's copy was not restored"
    );
    assert_eq!(net.metric("poros_bodies_damaged_total"), 1);
    assert_eq!(net.metric("poros_body_repairs_requested_total"), 1);
    assert_eq!(net.metric("poros_bodies_repaired_total"), 1);
    assert_eq!(net.metric("poros_deliveries_held_for_repair"), 0);
    assert_stats_equal_recount(&net);
}

#[test]
fn truncated_or_altered_body_is_repaired_and_never_delivered_wrong() {
    let mut net = Net::new();
    net.add_agent(A);
    net.add_agent(B);
    net.start_hub();
    net.start_agent(A);
    let short = pseudo_random(LARGE, 41);
    let flipped = pseudo_random(LARGE + 1, 42);
    let id_short = net.send(A, &[B], "truncated on the hub", &short);
    let id_flip = net.send(A, &[B], "one byte altered on the hub", &flipped);
    net.wait_state(A, &id_short, "accepted");
    net.wait_state(A, &id_flip, "accepted");

    let f = hub_file(&net, &short);
    make_writable(&f);
    std::fs::write(&f, &short[..1000]).unwrap();
    // Same length, one bit different: only the hash shows it.
    let f = hub_file(&net, &flipped);
    make_writable(&f);
    let mut data = flipped.clone();
    data[150_000] ^= 0x01;
    std::fs::write(&f, &data).unwrap();

    net.start_agent(B);
    net.wait_state(A, &id_short, "delivered");
    net.wait_state(A, &id_flip, "delivered");
    let inbox = net.inbox_counts(B).unwrap();
    assert_eq!(inbox.get(&id_short), Some(&1));
    assert_eq!(inbox.get(&id_flip), Some(&1));
    assert!(net.fetch(B, &id_short) == short);
    assert!(net.fetch(B, &id_flip) == flipped);
    // The altered copy was stopped by the hub before the recipient completed it.
    let q = net.api(B, "/v1/quarantine");
    assert_eq!(q.as_array().map(Vec::len), Some(0), "quarantined at B: {q}");
    assert_eq!(net.metric("poros_bodies_repaired_total"), 2);
    assert!(hub_copy_intact(&net, &short) && hub_copy_intact(&net, &flipped));
}

#[test]
fn sender_without_its_copy_gets_a_signed_body_lost_notice_with_reason() {
    let mut net = Net::new();
    net.add_agent(A);
    net.add_agent(B);
    net.start_hub();
    net.start_agent(A);
    let body = pseudo_random(LARGE, 51);
    let id = net.send(A, &[B], "lost everywhere", &body);
    net.wait_state(A, &id, "accepted");

    // Lost on the hub, and the sender's outbox lost it too.
    std::fs::remove_file(hub_file(&net, &body)).unwrap();
    std::fs::remove_file(agent_file(&net, A, &body)).unwrap();

    net.start_agent(B);
    let st = net.wait_state(A, &id, "lost");
    let reason = st["recipients"][0]["reason"].as_str().unwrap_or("");
    assert!(reason.starts_with("sender_has_no_copy"), "{st}");

    // The sender's CLI shows it with the reason; the hub's admin view shows it too.
    let out = net.agent_cli(&["status", "--dir", &s(&net.agent_dir(A)), &id]);
    assert_ok(&out, "poros-agent status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("body lost at hub") && text.contains("sender_has_no_copy"),
        "{text}"
    );
    let doc = net.admin_get(&format!("/admin/v1/documents/{id}"));
    assert_eq!(doc["deliveries"][0]["state"], "lost", "{doc}");
    assert!(
        doc["deliveries"][0]["reason"]
            .as_str()
            .unwrap_or("")
            .starts_with("sender_has_no_copy"),
        "{doc}"
    );
    assert_eq!(net.node_show(B)["held_for_repair"], 0);
    assert!(!net.inbox_counts(B).unwrap().contains_key(&id));
    assert_eq!(net.metric("poros_deliveries_lost_total"), 1);
    assert_eq!(net.metric("poros_bodies_lost_total"), 1);
    // Counted like an expiry, and the counters still equal a recount.
    assert_stats_equal_recount(&net);

    // The exchange goes on.
    let later = net.send(A, &[B], "after the loss", &pseudo_random(LARGE, 52));
    net.wait_state(A, &later, "delivered");
}

#[test]
fn scrub_reports_damaged_and_missing_bodies_and_they_are_repaired() {
    let net = Net::running(&[A, B]);
    let damaged = pseudo_random(LARGE, 61);
    let missing = pseudo_random(LARGE, 62);
    let intact = pseudo_random(LARGE, 63);
    for (body, subject) in [(&damaged, "d"), (&missing, "m"), (&intact, "i")] {
        let id = net.send(A, &[B], subject, body);
        net.wait_state(A, &id, "delivered");
    }
    // Delivered, but kept for the retention period: the scrub still checks them.
    let f = hub_file(&net, &damaged);
    make_writable(&f);
    let mut data = damaged.clone();
    data[10] ^= 0x80;
    std::fs::write(&f, &data).unwrap();
    std::fs::remove_file(hub_file(&net, &missing)).unwrap();

    let report = net.hub_json(&["scrub"], &[]);
    assert_eq!(report["bodies_checked"], 3, "{report}");
    assert_eq!(report["bytes_checked"], 2 * LARGE as u64, "{report}");
    assert_eq!(report["damaged"], serde_json::json!([sha256_hex(&damaged)]));
    assert_eq!(report["missing"], serde_json::json!([sha256_hex(&missing)]));
    assert_eq!(report["repairs_requested"], 2, "{report}");
    assert!(report["error"].is_null(), "{report}");

    wait_until("the sender to repair both bodies", DEADLINE, || {
        hub_copy_intact(&net, &damaged) && hub_copy_intact(&net, &missing)
    });
    wait_until("the repairs to be counted", DEADLINE, || {
        net.metric("poros_bodies_repaired_total") == 2
    });
    assert_eq!(net.metric("poros_bodies_checked_total"), 3);

    // The text report, on a clean store.
    let out = net.hub_cli(&["scrub", "--dir", &s(&net.hub_dir)]);
    assert_ok(&out, "poros-hub scrub");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("3 bodies checked") && text.contains("0 missing, 0 damaged"),
        "{text}"
    );
}

#[test]
fn periodic_scrub_finds_and_repairs_a_damaged_body() {
    let mut net = Net::new();
    net.set_hub_config("scrub_interval_secs", "1");
    net.add_agent(A);
    net.add_agent(B);
    net.start_hub();
    net.start_agent(A);
    net.start_agent(B);
    let body = pseudo_random(LARGE, 71);
    let id = net.send(A, &[B], "scrubbed in the background", &body);
    net.wait_state(A, &id, "delivered");
    let f = hub_file(&net, &body);
    make_writable(&f);
    std::fs::write(&f, &body[..LARGE / 2]).unwrap();
    wait_until("the background scrub to repair the body", DEADLINE, || {
        net.metric("poros_bodies_repaired_total") == 1 && hub_copy_intact(&net, &body)
    });
}

#[test]
fn blob_tmp_removed_while_running_large_documents_still_flow() {
    let net = Net::running(&[A, B]);
    for dir in [
        net.hub_dir.join("data/bodies/tmp"),
        net.agent_dir(A).join("data/bodies/tmp"),
        net.agent_dir(B).join("data/bodies/tmp"),
    ] {
        std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    }
    let body = pseudo_random(LARGE, 81);
    let id = net
        .try_send(A, &[B], "after tmp/ vanished", &body)
        .unwrap_or_else(|e| panic!("large send after tmp/ vanished: {e}"));
    net.wait_state(A, &id, "delivered");
    assert!(net.fetch(B, &id) == body);
    assert!(net.hub_dir.join("data/bodies/tmp").is_dir());
}
