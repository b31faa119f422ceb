//! The life of a document after delivery, end to end with the real binaries: business
//! statuses 01–06 flowing back to the sender with their signatures re-verified, illegal
//! statements refused at the agent that would make them, take-back, replace and update with
//! each recipient's answer, a sender that was offline, and `kill -9` of the hub and of a
//! recipient in the middle of a burst of statuses.

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const STAFF: [&str; 4] = ["--staff", "Nguyễn Văn An", "--department", "Văn thư"];

/// Run a statement verb at `code`; `Ok(json)` when the agent stored it, `Err(stderr)` when it
/// was refused.
fn verb(net: &Net, code: &str, args: &[&str]) -> Result<Value, String> {
    let d = s(&net.agent_dir(code));
    let mut all: Vec<&str> = vec![args[0], "--dir", &d];
    all.extend_from_slice(&args[1..]);
    all.extend_from_slice(&STAFF);
    all.push("--json");
    let out = net.agent_cli(&all);
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?} printed non-JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        }))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

fn progress(net: &Net, code: &str, id: &str, status: &str, note: Option<&str>) -> Value {
    let mut args = vec!["progress", id, "--code", status];
    if let Some(n) = note {
        args.extend(["--note", n]);
    }
    verb(net, code, &args).unwrap_or_else(|e| panic!("{code} progress {status}: {e}"))
}

/// A refusal naming `code` (the reason code) on stderr.
fn refused(r: Result<Value, String>, code: &str, what: &str) {
    match r {
        Ok(v) => panic!("{what} was accepted: {v}"),
        Err(e) => assert!(
            e.contains(code),
            "{what}: refusal does not name {code}: {e}"
        ),
    }
}

/// `status ID --json` at `code` (sent or received document).
fn status(net: &Net, code: &str, id: &str) -> Value {
    net.agent_json(code, "status", &[id])
}

fn recipient<'a>(st: &'a Value, rcpt: &str) -> &'a Value {
    st["recipients"]
        .as_array()
        .unwrap_or_else(|| panic!("no recipients in {st}"))
        .iter()
        .find(|r| r["agency"] == rcpt)
        .unwrap_or_else(|| panic!("{rcpt} not among the recipients: {st}"))
}

/// The labels of one recipient's timeline at the sender.
fn labels(st: &Value, rcpt: &str) -> Vec<String> {
    recipient(st, rcpt)["timeline"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|e| e["label"].as_str().unwrap_or("?").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Poll the sender's status until `rcpt`'s timeline has `n` entries; return the status.
fn wait_timeline(net: &Net, from: &str, id: &str, rcpt: &str, n: usize) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let st = status(net, from, id);
        if labels(&st, rcpt).len() >= n {
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {n} timeline entries of {rcpt} on {id} at {from}: {st}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_pending_change(net: &Net, code: &str, id: &str) -> Value {
    let mut last = Value::Null;
    wait_until(
        &format!("a pending change request on {id} at {code}"),
        DEADLINE,
        || {
            last = status(net, code, id);
            !last["pending_change"].is_null()
        },
    );
    last["pending_change"].clone()
}

fn inbox_ids(net: &Net, code: &str) -> Vec<String> {
    net.api_list(code, "/v1/inbox")
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_document_goes_from_arrival_to_completion_at_two_recipients() {
    let net = Net::running(&[A, B, C]);
    let id = net.send(A, &[B, C], "Kế hoạch 2027", b"ke hoach");
    net.wait_state(A, &id, "delivered");
    let steps = [
        ("arrived", "01", None),
        ("registered", "03", None),
        ("assigned", "04", None),
        ("processing", "05", Some("draft reply")),
        ("processing", "05", Some("awaiting signature")),
        ("completed", "06", None),
    ];
    for r in [B, C] {
        for (st, code, note) in steps {
            let v = progress(&net, r, &id, st, note);
            assert_eq!(v["code"], code, "{v}");
            assert_eq!(v["to"], serde_json::json!([A]), "{v}");
        }
    }
    for r in [B, C] {
        let st = wait_timeline(&net, A, &id, r, 8);
        assert_eq!(
            labels(&st, r),
            [
                "hub_accepted",
                "delivered",
                "arrived",
                "registered",
                "assigned",
                "processing",
                "processing",
                "completed"
            ],
            "timeline of {r}: {st}"
        );
        let rc = recipient(&st, r);
        assert_eq!(rc["business"], "completed");
        let t = rc["timeline"].as_array().unwrap();
        let codes: Vec<_> = t[2..].iter().map(|e| e["code"].clone()).collect();
        assert_eq!(
            codes,
            ["01", "03", "04", "05", "05", "06"].map(Value::from),
            "{st}"
        );
        // Every entry, the hub's acceptance and the receipt included, re-verified.
        for e in t {
            assert_eq!(e["signature_verified"], true, "not re-verified: {e}");
        }
        assert_eq!(
            (t[0]["from"].as_str(), t[1]["from"].as_str()),
            (Some("hub"), Some(r))
        );
        // The business statuses name their staff; the automatic ones name none.
        for e in &t[2..] {
            assert_eq!(e["staff"]["name"], "Nguyễn Văn An", "{e}");
            assert_eq!(e["staff"]["department"], "Văn thư", "{e}");
        }
        assert_eq!(t[1]["staff"]["name"], "", "{}", t[1]);
        assert_eq!(t[5]["note"], "draft reply");
        assert_eq!(t[6]["note"], "awaiting signature");
    }
    // The business figures: both recipients registered in time and completed; nothing is
    // outstanding; on the API (admin token), the CSV, /metrics and `poros-hub stats`.
    let token = net.admin_token();
    let get = |path: &str| {
        let r = net
            .http()
            .get(format!("http://127.0.0.1:{}{path}", net.ops_port))
            .bearer_auth(&token)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.text().unwrap()
    };
    let stats: Value = serde_json::from_str(&get("/api/v1/stats")).unwrap();
    let n = &stats["national"];
    assert_eq!(n["business_delivered"], 2, "{n}");
    assert_eq!(n["registered_in_time"], 2, "{n}");
    assert_eq!(n["registered_in_time_rate"], 100.0, "{n}");
    assert_eq!(n["completed"], 2, "{n}");
    assert_eq!(n["outstanding"], 0, "{n}");
    assert!(n["median_completion_secs"].is_u64(), "{n}");
    let b = stats["agencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["scope"] == B)
        .unwrap();
    assert_eq!(
        (b["completed"].as_u64(), b["outstanding"].as_u64()),
        (Some(1), Some(0))
    );
    let csv = get("/api/v1/stats?format=csv");
    assert!(
        csv.lines().next().unwrap().contains(&poros_i18n::tr(
            poros_i18n::Lang::En,
            "dashboard-csv-registered-in-time-rate"
        )),
        "{csv}"
    );
    let metrics = net.metrics();
    assert!(
        metrics.contains(&format!(
            "poros_agency_completion_seconds_count{{agency=\"{B}\"}} 1"
        )),
        "{metrics}"
    );
    let out = net.hub_cli(&["stats", "--dir", &s(&net.hub_dir)]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("registered in time         100.00 %"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The hub keeps the same history per recipient.
    let doc = net.hub_json(&["doc"], &[&id]);
    let deliveries = doc["deliveries"].as_array().expect("deliveries");
    for r in [B, C] {
        let d = deliveries
            .iter()
            .find(|d| d["recipient"] == r)
            .unwrap_or_else(|| panic!("{r} missing at the hub: {doc}"));
        let labels: Vec<_> = d["statements"]
            .as_array()
            .unwrap_or_else(|| panic!("no statements at the hub: {doc}"))
            .iter()
            .map(|s| s["label"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            labels,
            [
                "hub_accepted",
                "delivered",
                "arrived",
                "registered",
                "assigned",
                "processing",
                "processing",
                "completed"
            ]
        );
    }
}

#[test]
fn illegal_statements_are_refused_by_the_agent_that_would_make_them() {
    let net = Net::running(&[A, B, C]);
    let id = net.send(A, &[B], "Công văn", b"cong van");
    net.wait_state(A, &id, "delivered");
    progress(&net, B, &id, "registered", None);
    progress(&net, B, &id, "completed", None);
    let before_b = status(&net, B, &id);

    // 06 → 04.
    refused(
        verb(&net, B, &["progress", &id, "--code", "assigned"]),
        "illegal_transition",
        "06 then 04",
    );
    // A status from an agency that is not a recipient (it does not hold the document).
    refused(
        verb(&net, C, &["progress", &id, "--code", "registered"]),
        "unknown_document",
        "a status from a non-recipient",
    );
    // A change request from a recipient.
    refused(
        verb(&net, B, &["takeback", &id, "--reason", "not mine"]),
        "illegal_transition",
        "a take-back asked by a recipient",
    );
    // An answer from a non-recipient, and an answer with no request pending.
    refused(
        verb(&net, C, &["answer", &id, "accept"]),
        "unknown_document",
        "an answer from a non-recipient",
    );
    refused(
        verb(&net, B, &["answer", &id, "accept"]),
        "illegal_transition",
        "an answer with nothing to answer",
    );
    // A sender cannot report a business status on its own document.
    refused(
        verb(&net, A, &["progress", &id, "--code", "registered"]),
        "illegal_transition",
        "a status from the sender",
    );

    // Nothing was stored: the recipient's own timeline and the sender's view are unchanged,
    // and the hub holds only the two legal statements.
    // (Compared by statement digest and label: the hub's acknowledgement of the legal ones
    // may land between the two reads.)
    let said = |v: &Value| -> Vec<(Value, Value)> {
        v["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["statement"].clone(), e["label"].clone()))
            .collect()
    };
    assert_eq!(said(&status(&net, B, &id)), said(&before_b));
    let st = wait_timeline(&net, A, &id, B, 4);
    assert_eq!(
        labels(&st, B),
        ["hub_accepted", "delivered", "registered", "completed"]
    );
    let doc = net.hub_json(&["doc"], &[&id]);
    assert_eq!(
        doc["history"].as_array().map(Vec::len),
        Some(4),
        "hub history (acceptance, receipt, two statuses): {doc}"
    );
}

#[test]
fn take_back_is_accepted_by_one_recipient_and_refused_by_another() {
    let net = Net::running(&[A, B, C]);
    let body = b"sent in error".to_vec();
    let id = net.send(A, &[B, C], "Quyết định (nhầm)", &body);
    net.wait_state(A, &id, "delivered");
    progress(&net, C, &id, "registered", None);

    let req = verb(&net, A, &["takeback", &id, "--reason", "gửi nhầm"]).expect("take-back");
    assert_eq!(req["code"], "13");
    let digest = req["statement"].as_str().unwrap().to_string();
    for r in [B, C] {
        let p = wait_pending_change(&net, r, &id);
        assert_eq!(p["label"], "takeback", "{p}");
        assert_eq!(p["statement"], digest.as_str(), "{p}");
    }
    // Both show the pending request in their inbox listing.
    let inbox_c = net.api_list(C, "/v1/inbox");
    let item = inbox_c
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == id.as_str())
        .unwrap();
    assert_eq!(item["pending_change"]["label"], "takeback", "{item}");

    assert_eq!(
        verb(&net, B, &["answer", &id, "accept"]).unwrap()["code"],
        "15"
    );
    let no = verb(
        &net,
        C,
        &["answer", &id, "refuse", "--reason", "đã vào sổ và xử lý"],
    )
    .unwrap();
    assert_eq!(no["code"], "16");

    // The sender sees both answers, each in its recipient's timeline.
    let st = wait_timeline(&net, A, &id, B, 3);
    assert_eq!(labels(&st, B), ["hub_accepted", "delivered", "accepted"]);
    let st = wait_timeline(&net, A, &id, C, 4);
    assert_eq!(
        labels(&st, C),
        ["hub_accepted", "delivered", "registered", "refused"]
    );
    let refusal = &recipient(&st, C)["timeline"][3];
    assert_eq!(refusal["code"], "16");
    assert!(
        refusal["reason"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("đã vào sổ")),
        "{refusal}"
    );
    assert_eq!(recipient(&st, B)["withdrawn"], true);
    assert_eq!(recipient(&st, C)["withdrawn"], false);

    // B no longer lists it, but keeps it, marked withdrawn; C still lists it.
    assert!(!inbox_ids(&net, B).contains(&id));
    assert!(inbox_ids(&net, C).contains(&id));
    let at_b = status(&net, B, &id);
    assert_eq!(at_b["withdrawn"], true, "{at_b}");
    assert_eq!(net.fetch(B, &id), body);
}

#[test]
fn replace_delivers_the_new_document_and_links_both_ways() {
    let net = Net::running(&[A, B, C]);
    let old = net.send(A, &[B, C], "Thông báo v1", b"version 1");
    net.wait_state(A, &old, "delivered");
    let f = net.write_file("v2.txt", b"version 2");
    let r = verb(
        &net,
        A,
        &[
            "replace",
            &old,
            &s(&f),
            "--subject",
            "Thông báo v2",
            "--reason",
            "sửa số liệu",
        ],
    )
    .expect("replace");
    let new = r["successor"].as_str().expect("successor").to_string();
    assert_ne!(new, old);
    net.wait_state(A, &new, "delivered");
    for rc in [B, C] {
        let p = wait_pending_change(&net, rc, &old);
        assert_eq!(p["label"], "replace", "{p}");
        verb(&net, rc, &["answer", &old, "accept"]).unwrap();
        assert_eq!(net.fetch(rc, &new), b"version 2");
        let o = status(&net, rc, &old);
        assert_eq!(o["replaced_by"], new.as_str(), "old at {rc}: {o}");
        let n = status(&net, rc, &new);
        assert_eq!(n["replaces"], old.as_str(), "new at {rc}: {n}");
    }
    for rc in [B, C] {
        let st = wait_timeline(&net, A, &old, rc, 3);
        assert_eq!(labels(&st, rc), ["hub_accepted", "delivered", "accepted"]);
        assert_eq!(recipient(&st, rc)["replaced_by"], new.as_str());
    }
    assert_eq!(status(&net, A, &old)["replaced_by"], new.as_str());
    assert_eq!(status(&net, A, &new)["replaces"], old.as_str());
}

#[test]
fn an_update_adds_a_recipient_who_then_receives_the_document() {
    let net = Net::running(&[A, B, C]);
    let body = b"thieu noi nhan".to_vec();
    let id = net.send(A, &[B], "Giấy mời", &body);
    net.wait_state(A, &id, "delivered");
    assert!(!inbox_ids(&net, C).contains(&id));
    verb(
        &net,
        A,
        &["update", &id, "--add", C, "--reason", "bổ sung nơi nhận"],
    )
    .expect("update");
    wait_until(
        "C to receive the document it was added to",
        DEADLINE,
        || inbox_ids(&net, C).contains(&id),
    );
    assert_eq!(net.fetch(C, &id), body);
    net.wait_state(A, &id, "delivered");
    assert_eq!(
        recipient(&status(&net, A, &id), C)["state"],
        "delivered",
        "C is a recipient at the sender"
    );
    // B is asked to acknowledge the update; the added recipient can now report statuses.
    let p = wait_pending_change(&net, B, &id);
    assert_eq!(p["label"], "update");
    verb(&net, B, &["answer", &id, "accept"]).unwrap();
    progress(&net, C, &id, "registered", None);
    let st = wait_timeline(&net, A, &id, C, 2);
    assert_eq!(labels(&st, C), ["delivered", "registered"]);
}

#[test]
fn a_sender_that_was_offline_gets_every_status_in_order() {
    let mut net = Net::running(&[A, B]);
    let id = net.send(A, &[B], "Báo cáo", b"bao cao");
    net.wait_state(A, &id, "delivered");
    net.stop_agent(A);
    for st in ["registered", "assigned", "processing", "completed"] {
        progress(&net, B, &id, st, None);
    }
    net.start_agent(A);
    let st = wait_timeline(&net, A, &id, B, 6);
    assert_eq!(
        labels(&st, B),
        [
            "hub_accepted",
            "delivered",
            "registered",
            "assigned",
            "processing",
            "completed"
        ]
    );
}

/// The statuses of the burst, in order.
const STEPS: [&str; 4] = ["registered", "assigned", "processing", "completed"];

/// Statements acknowledged by B's agent (the CLI returned their digest), per document.
type Acked = BTreeMap<String, Vec<String>>;

/// Say `st` on `id` at B until B's agent acknowledges it: a call that fails because B or the
/// hub is down is repeated once B answers again, unless B stored it before dying (then its own
/// timeline already ends with that status and the digest is taken from there).
fn say_until_stored(net: &Net, id: &str, st: &str, acked: &mut Acked) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match verb(net, B, &["progress", id, "--code", st]) {
            Ok(v) => {
                acked
                    .entry(id.to_string())
                    .or_default()
                    .push(v["statement"].as_str().unwrap().to_string());
                return;
            }
            Err(e) => {
                let d = s(&net.agent_dir(B));
                let o = net.agent_cli(&["status", "--dir", &d, id, "--json"]);
                if let Ok(v) = serde_json::from_slice::<Value>(&o.stdout) {
                    let made = v["timeline"]
                        .as_array()
                        .map(|t| {
                            t.iter()
                                .filter(|e| STEPS.iter().any(|s| e["label"] == *s))
                                .count()
                        })
                        .unwrap_or(0);
                    if made > acked.get(id).map(Vec::len).unwrap_or(0) {
                        // Stored before the agent died: said (though not acknowledged, so not
                        // required below), and it must not be said twice.
                        return;
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "B never stored {st} on {id}: {e}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

#[test]
fn kill_9_of_the_hub_and_of_a_recipient_during_a_burst_loses_and_repeats_nothing() {
    let mut net = Net::running(&[A, B]);
    let ids: Vec<String> = (0..6)
        .map(|i| {
            net.send(
                A,
                &[B],
                &format!("Văn bản {i}"),
                format!("doc {i}").as_bytes(),
            )
        })
        .collect();
    for id in &ids {
        net.wait_state(A, id, "delivered");
    }
    let steps = STEPS;
    let mut acked = Acked::new();
    for (round, st) in steps.iter().enumerate() {
        for (i, id) in ids.iter().enumerate() {
            if round == 1 && i == 2 {
                net.kill_hub();
            }
            if round == 1 && i == 4 {
                net.start_hub();
            }
            if round == 2 && i == 3 {
                net.kill_agent(B);
                net.start_agent_opts(B, false);
            }
            say_until_stored(&net, id, st, &mut acked);
        }
    }
    for id in &ids {
        let st = wait_timeline(&net, A, id, B, 6);
        let t = recipient(&st, B)["timeline"].as_array().unwrap().clone();
        // After the hub's acceptance and B's receipt.
        let got: Vec<String> = t[2..]
            .iter()
            .map(|e| e["statement"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            labels(&st, B)[2..],
            steps.map(String::from),
            "order on {id}"
        );
        // Every acknowledged statement arrived, exactly once, in the order it was made.
        let want = &acked[id];
        let positions: Vec<usize> = want
            .iter()
            .map(|d| {
                let n = got.iter().filter(|g| *g == d).count();
                assert_eq!(n, 1, "statement {d} on {id} arrived {n} times");
                got.iter().position(|g| g == d).unwrap()
            })
            .collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "out of order on {id}"
        );
    }
}

#[test]
fn a_reminder_reaches_only_recipients_with_work_left() {
    let net = Net::running(&[A, B, C]);
    let id = net.send(A, &[B, C], "Báo cáo quý IV", b"bao cao quy");
    net.wait_state(A, &id, "delivered");
    progress(&net, C, &id, "registered", None);
    progress(&net, C, &id, "completed", None);
    wait_timeline(&net, A, &id, C, 4);
    // A recipient cannot remind; the sender reminds by default only those with work left.
    refused(
        verb(&net, B, &["remind", &id, "--note", "hurry"]),
        "illegal_transition",
        "a reminder from a recipient",
    );
    let r = verb(&net, A, &["remind", &id, "--note", "hạn trả lời 15/12"]).expect("remind");
    assert_eq!(r["to"], serde_json::json!([B]), "{r}");
    assert_eq!(r["kind"], "reminder", "{r}");
    // Naming C explicitly is refused: it has completed.
    refused(
        verb(&net, A, &["remind", &id, "--to", C, "--note", "again"]),
        "illegal_transition",
        "a reminder to a recipient that completed",
    );
    let mut seen = Value::Null;
    wait_until("B to hold the reminder", DEADLINE, || {
        seen = status(&net, B, &id);
        seen["timeline"]
            .as_array()
            .is_some_and(|t| t.iter().any(|e| e["label"] == "reminder"))
    });
    let e = seen["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["label"] == "reminder")
        .unwrap();
    assert_eq!(e["note"], "hạn trả lời 15/12");
    assert_eq!(e["signature_verified"], true);
    let at_a = status(&net, A, &id);
    assert_eq!(labels(&at_a, B), ["hub_accepted", "delivered", "reminder"]);
    // B still has the document to handle: one outstanding, delivered today; C's has ended.
    let r = net
        .http()
        .get(format!("http://127.0.0.1:{}/api/v1/stats", net.ops_port))
        .bearer_auth(net.admin_token())
        .send()
        .unwrap();
    let stats: Value = r.json().unwrap();
    let n = &stats["national"];
    assert_eq!(n["outstanding"], 1, "{n}");
    assert_eq!(n["outstanding_by_age"]["under_1d"], 1, "{n}");
    assert_eq!(n["completed"], 1, "{n}");
    assert_eq!(
        labels(&at_a, C),
        ["hub_accepted", "delivered", "registered", "completed"]
    );
}
