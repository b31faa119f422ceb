//! Expiry and retention end to end: a delivery pending past `expiry_secs` becomes a hub-signed
//! expiry notice at the sender and is never delivered; once every recipient has answered and
//! the retention has passed, the body leaves the hub's disk while metadata and receipts stay.

mod common;

use common::*;
use std::time::Duration;

const A: &str = "000.00.00.G01";
const B: &str = "000.00.00.H05";
const C: &str = "000.00.00.H07";

#[test]
fn pending_delivery_expires_and_body_is_released_after_retention() {
    let mut net = Net::new();
    net.set_hub_config("expiry_secs", "3");
    net.set_hub_config("body_retention_secs", "0");
    net.set_hub_config("sweep_interval_secs", "1");
    for code in [A, B, C] {
        net.add_agent(code);
    }
    net.start_hub();
    net.start_agent(A);
    net.start_agent(C);

    // Large enough to be a body file at the hub (bodies up to 64 KiB are stored inline).
    let body = pseudo_random(200 * 1024, 7);
    let id = net.send(A, &[B, C], "expires for the offline agency", &body);

    // C answers at once; B never connects, so its delivery expires and A is told.
    wait_until(
        "C's receipt and B's expiry at the sender",
        Duration::from_secs(60),
        || {
            let st = net.states(A, &id);
            st.get(C).map(String::as_str) == Some("delivered")
                && st.get(B).map(String::as_str) == Some("expired")
        },
    );
    let doc = net.admin_get(&format!("/admin/v1/documents/{id}"));
    let hub_states = recipient_states_hub(&doc);
    assert_eq!(
        hub_states.get(B).map(String::as_str),
        Some("expired"),
        "{doc}"
    );
    assert_eq!(
        hub_states.get(C).map(String::as_str),
        Some("delivered"),
        "{doc}"
    );

    // Everyone answered and retention is 0: the body file goes, the record stays.
    wait_until(
        "the body to leave the hub's disk",
        Duration::from_secs(60),
        || net.hub_body_files().is_empty(),
    );
    let doc = net.admin_get(&format!("/admin/v1/documents/{id}"));
    assert_eq!(doc["body_at"], "removed", "{doc}");
    assert_eq!(doc["deliveries"].as_array().map(Vec::len), Some(2), "{doc}");

    // B comes online later: a newer document reaches it, the expired one never does.
    net.start_agent(B);
    let later = net.send(A, &[B], "after B came online", b"hello");
    net.wait_state(A, &later, "delivered");
    let inbox = net.inbox_counts(B).expect("B's inbox");
    assert_eq!(inbox.get(&later), Some(&1));
    assert!(
        !inbox.contains_key(&id),
        "expired document was delivered: {inbox:?}"
    );

    // The expiry shown at A is backed by the hub's signature, which A verified before storing;
    // the receipt from C is listed with a verified signature.
    let receipts = net.agent_json(A, "receipts", &[]);
    let from_c = receipts
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id.as_str() && r["recipient"] == C)
        .expect("C's receipt listed");
    assert_eq!(from_c["signature_verified"], true);
}

fn recipient_states_hub(doc: &serde_json::Value) -> std::collections::BTreeMap<String, String> {
    doc["deliveries"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            (
                d["recipient"].as_str().unwrap_or("?").to_string(),
                d["state"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect()
}
