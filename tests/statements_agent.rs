//! Statements at the agent, through the real binaries: the agent is the authority on the rules
//! (it refuses to sign what they forbid, with the reason code, and stores nothing), and what it
//! makes is stored, listed in the document's timeline and in the events log before the verb
//! answers. These checks hold whatever the hub then does with the statements (relaying them
//! is the hub's side, tested end to end elsewhere).

mod common;
use common::*;
use serde_json::Value;
use std::process::Output;

const STAFF: [&str; 4] = ["--staff", "Nguyễn Văn A", "--department", "Văn thư"];

fn verb(net: &Net, code: &str, words: &[&str]) -> Output {
    let d = s(&net.agent_dir(code));
    let mut args = vec![words[0], "--dir", &d];
    args.extend_from_slice(&words[1..]);
    args.extend_from_slice(&STAFF);
    net.agent_cli(&args)
}

/// The verb fails with `error: <code>: ...` on stderr.
fn assert_refused(out: &Output, code: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected a refusal ({code}), got success: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        err.starts_with(&format!("error: {code}: ")),
        "expected `error: {code}: ...`, got: {err}"
    );
}

fn made(out: &Output) -> Value {
    assert_ok(out, "statement verb");
    serde_json::from_slice(&out.stdout).expect("JSON answer")
}

fn statement_events(net: &Net, code: &str) -> Vec<Value> {
    net.api(code, "/v1/events?after=0")["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "statement")
        .cloned()
        .collect()
}

#[test]
fn the_agent_refuses_what_the_rules_forbid_and_stores_what_it_makes() {
    let net = Net::running(&[A, B]);
    let id = net.send(A, &[B], "Công văn số 1", b"noi dung");
    net.wait_state(A, &id, "delivered");
    wait_until("the document in B's inbox", DEADLINE, || {
        net.inbox_counts(B).is_some_and(|m| m.contains_key(&id))
    });

    // An unknown document: 404 / unknown_document, nothing stored.
    let unknown = "01890a5d-ac96-774b-bcce-b302099a8057";
    assert_refused(
        &verb(&net, B, &["progress", unknown, "--code", "registered"]),
        "unknown_document",
    );
    assert!(net
        .api_get(B, &format!("/v1/documents/{unknown}"))
        .is_none());
    // Staff is required, and the error names the flag.
    let d = s(&net.agent_dir(B));
    let out = net.agent_cli(&["progress", "--dir", &d, &id, "--code", "03"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--staff"));

    // A recipient: assignment needs registration first.
    assert_refused(
        &verb(&net, B, &["progress", &id, "--code", "assigned"]),
        "illegal_transition",
    );
    assert!(
        statement_events(&net, B).is_empty(),
        "a refusal stored nothing"
    );

    let reg = made(&verb(
        &net,
        B,
        &[
            "progress",
            &id,
            "--code",
            "registered",
            "--note",
            "vào sổ",
            "--json",
        ],
    ));
    assert_eq!(reg["doc"], id);
    assert_eq!(reg["kind"], "registered");
    assert_eq!(reg["code"], "03");
    assert_eq!(reg["to"], serde_json::json!([A]));
    let done = made(&verb(&net, B, &["progress", &id, "--code", "06", "--json"]));
    assert_eq!(done["kind"], "completed");
    // 06 then 04: refused at the agent that would issue it.
    assert_refused(
        &verb(&net, B, &["progress", &id, "--code", "assigned"]),
        "illegal_transition",
    );
    // An answer needs a change request to answer.
    assert_refused(
        &verb(&net, B, &["answer", &id, "accept"]),
        "illegal_transition",
    );

    // The recipient's status shows its own timeline, signatures verified, in order.
    let st = net.agent_json(B, "status", &[&id]);
    assert_eq!(st["direction"], "received");
    assert_eq!(st["business"], "completed");
    assert_eq!(st["withdrawn"], false);
    assert!(st["pending_change"].is_null());
    let tl = st["timeline"].as_array().unwrap();
    let labels: Vec<&str> = tl.iter().map(|e| e["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["registered", "completed"]);
    assert_eq!(tl[0]["statement"], reg["statement"]);
    assert_eq!(tl[0]["code"], "03");
    assert_eq!(tl[0]["note"], "vào sổ");
    assert_eq!(tl[0]["staff"]["name"], "Nguyễn Văn A");
    assert!(tl.iter().all(|e| e["signature_verified"] == true));
    // The inbox shows the business state.
    let inbox = net.api_list(B, "/v1/inbox");
    let item = inbox
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == id)
        .expect("still listed");
    assert_eq!(item["business"], "completed");
    // Every statement made is an event, in store order.
    let ev = statement_events(&net, B);
    let ev_labels: Vec<&str> = ev.iter().map(|e| e["label"].as_str().unwrap()).collect();
    assert_eq!(ev_labels, ["registered", "completed"]);
    assert!(ev
        .iter()
        .all(|e| e["direction"] == "made" && e["doc"] == id.as_str()));
    assert_eq!(ev[0]["statement"], reg["statement"]);

    // The sender: no status on its own document, no answer without a request; a take-back
    // goes to the recipient it was delivered to and is listed as a change.
    assert_refused(
        &verb(&net, A, &["progress", &id, "--code", "registered"]),
        "illegal_transition",
    );
    let tb = made(&verb(
        &net,
        A,
        &["takeback", &id, "--reason", "gửi nhầm", "--json"],
    ));
    assert_eq!(tb["kind"], "takeback");
    assert_eq!(tb["code"], "13");
    assert_eq!(tb["to"], serde_json::json!([B]));
    // A second request while the first is unanswered is refused.
    assert_refused(
        &verb(&net, A, &["takeback", &id, "--reason", "again"]),
        "illegal_transition",
    );
    let sent = net.agent_json(A, "status", &[&id]);
    assert_eq!(sent["direction"], "sent");
    let changes = sent["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0]["statement"], tb["statement"]);
    assert_eq!(changes[0]["signature_verified"], true);
    let r = &sent["recipients"][0];
    assert_eq!(r["agency"], B);
    assert_eq!(r["pending_change"]["label"], "takeback");
    assert_eq!(r["timeline"][0]["label"], "hub_accepted");
    assert_eq!(r["timeline"][1]["label"], "delivered");
}
