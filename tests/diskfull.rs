//! Full disks (issue 7, findings 6 and 7): the hub's, a sending agent's or a receiving agent's
//! data directory is put on a small tmpfs, filled until ENOSPC and freed again, while every
//! process keeps running. Writes are refused with a clear, retryable reason that reaches the
//! sender; readiness and metrics say the store cannot write; once space is freed the exchange
//! resumes by itself, and every acknowledged document arrives exactly once.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Size of each test filesystem.
const DISK_MIB: u32 = 24;
/// Over the 64 KiB inline limit: stored as a body file.
const BIG: usize = 100 * 1024;
/// Stored inside redb.
const SMALL: usize = 12 * 1024;
/// Enough time for recovery backoff and the hub's 2 s delivery retry, several times over.
const RECOVERY: Duration = Duration::from_secs(90);

/// A file that takes every free byte of a filesystem, until freed.
struct Filler(PathBuf);

impl Filler {
    fn fill(dir: &Path) -> Filler {
        let path = dir.join("filler");
        let mut f = std::fs::File::create(&path).expect("create filler");
        for chunk in [1024 * 1024, 4096] {
            let buf = vec![0x5a; chunk];
            loop {
                match f.write(&buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                    Err(e) => panic!("filling {}: {e}", dir.display()),
                }
            }
        }
        let _ = f.sync_all();
        Filler(path)
    }

    fn free(self) {
        std::fs::remove_file(&self.0).expect("remove filler");
    }
}

/// Acknowledged documents: ID → body.
type Sent = BTreeMap<String, Vec<u8>>;

fn body(len: usize, seed: u64) -> Vec<u8> {
    pseudo_random(len, seed)
}

/// A hub and two connected agents, with `dir_of(net)` moved onto a tmpfs before any start.
fn network(dir_of: impl Fn(&Net) -> PathBuf) -> (Net, PathBuf) {
    let mut net = Net::new();
    net.add_agent(A);
    net.add_agent(B);
    let dir = dir_of(&net);
    net.mount_tmpfs(&dir, DISK_MIB);
    net.start_hub();
    net.start_agent(A);
    net.start_agent(B);
    (net, dir)
}

fn readyz(net: &Net) -> (u16, String) {
    let r = reqwest::blocking::get(format!("http://127.0.0.1:{}/readyz", net.ops_port))
        .expect("GET /readyz");
    (r.status().as_u16(), r.text().unwrap_or_default())
}

fn agent_metrics(net: &Net, code: &str) -> String {
    let addr = std::fs::read_to_string(net.agent_dir(code).join("run/api.addr")).expect("addr");
    reqwest::blocking::get(format!("http://{}/metrics", addr.trim()))
        .and_then(|r| r.text())
        .expect("GET agent /metrics")
}

/// The one recipient's entry in the sender's status of `id`.
fn recipient(net: &Net, from: &str, id: &str) -> serde_json::Value {
    net.status(from, id)["recipients"][0].clone()
}

/// Every acknowledged document is in B's inbox exactly once with its body, and delivered
/// at A; no process was restarted.
fn check_delivered_once(net: &mut Net, sent: &Sent) {
    for id in sent.keys() {
        wait_until(&format!("{id} delivered"), RECOVERY, || {
            let st = net.states(A, id);
            !st.is_empty() && st.values().all(|s| s == "delivered")
        });
    }
    let counts = net.inbox_counts(B).expect("B's inbox");
    for (id, b) in sent {
        assert_eq!(counts.get(id), Some(&1), "{id} must be in B's inbox once");
        assert_eq!(&net.fetch(B, id), b, "body of {id}");
    }
    assert_eq!(counts.len(), sent.len(), "nothing else in B's inbox");
    assert!(net.hub_alive(), "the hub must not have been restarted");
    assert!(
        net.agent_alive(A) && net.agent_alive(B),
        "agents must not have been restarted"
    );
}

#[test]
fn hub_disk_full_refuses_with_reason_then_resumes_without_restart() {
    let (mut net, disk) = network(|n| n.hub_dir.join("data"));
    let mut sent = Sent::new();
    let first = body(SMALL, 1);
    sent.insert(net.send(A, &[B], "before", &first), first);
    let id = sent.keys().next().cloned().unwrap();
    net.wait_state(A, &id, "delivered");

    let filler = Filler::fill(&disk);
    // A's own disk is fine: it acknowledges, and the hub refuses the submission for now.
    let big = body(BIG, 2);
    let big_id = net.send(A, &[B], "big while the hub is full", &big);
    sent.insert(big_id.clone(), big);
    wait_until("the hub's reason at the sender", RECOVERY, || {
        let r = recipient(&net, A, &big_id);
        r["state"] == "pending" && r["reason"] == "hub storage is full, retrying"
    });
    let st = net.agent_cli(&["status", "--dir", &s(&net.agent_dir(A)), &big_id]);
    assert_ok(&st, "poros-agent status");
    let text = String::from_utf8_lossy(&st.stdout);
    assert!(
        text.contains("hub storage is full, retrying"),
        "status must show the hub's reason: {text}"
    );
    let (code, why) = readyz(&net);
    assert_eq!(code, 503, "/readyz while the hub's disk is full: {why}");
    assert!(why.contains("storage is full"), "{why}");
    let m = net.metrics();
    assert!(m.contains("poros_store_writable 0"), "{m}");
    assert!(net.metric("poros_refusals_total{reason=\"storage_full\"}") >= 1);
    // Small documents meet the full disk inside redb (once its free pages are used up).
    for i in 0..20 {
        let b = body(SMALL, 10 + i);
        sent.insert(net.send(A, &[B], &format!("small {i}"), &b), b);
    }
    wait_until("refused writes counted", RECOVERY, || {
        net.metric("poros_store_write_failures_total") >= 1
    });

    filler.free();
    wait_until("/readyz to be ready again", RECOVERY, || {
        readyz(&net).0 == 200
    });
    check_delivered_once(&mut net, &sent);
    assert!(net.metrics().contains("poros_store_writable 1"));
    // New work flows too.
    let after = body(SMALL, 99);
    let id = net.send(A, &[B], "after", &after);
    net.wait_state(A, &id, "delivered");
}

#[test]
fn sending_agent_disk_full_answers_507_without_paths_then_resumes() {
    let (mut net, disk) = network(|n| n.agent_dir(A).join("data"));
    let mut sent = Sent::new();
    let filler = Filler::fill(&disk);

    let err = net
        .try_send(A, &[B], "big while A is full", &body(BIG, 3))
        .expect_err("a send to a full disk must be refused");
    assert!(
        err.starts_with("507"),
        "expected 507 Insufficient Storage: {err}"
    );
    assert!(err.contains("storage is full"), "{err}");
    let root = s(&net.root);
    assert!(
        !err.contains(&root) && !err.contains("data/") && !err.contains("bodies"),
        "no internal path in the answer: {err}"
    );
    wait_until("A's health to report the full store", RECOVERY, || {
        let h = net.api(A, "/v1/health");
        h["store"]["writable"] == false && h["store"]["reason"] == "storage is full"
    });
    assert!(agent_metrics(&net, A).contains("poros_store_writable 0"));
    // Small sends reach redb's commit: refused the same way once its free pages run out;
    // any acknowledged before that must still be delivered.
    let mut refused_small = None;
    for i in 0..200 {
        let b = body(SMALL, 100 + i);
        match net.try_send(A, &[B], &format!("small {i}"), &b) {
            Ok(id) => {
                sent.insert(id, b);
            }
            Err(e) => {
                refused_small = Some(e);
                break;
            }
        }
    }
    let e = refused_small.expect("a small send must be refused on a full disk");
    assert!(e.starts_with("507"), "small send on a full disk: {e}");
    assert!(!e.contains(&root), "{e}");

    filler.free();
    wait_until("A's store to be writable again", RECOVERY, || {
        net.api(A, "/v1/health")["store"]["writable"] == true
    });
    for i in 0..3 {
        let b = body(if i == 0 { BIG } else { SMALL }, 300 + i);
        sent.insert(net.send(A, &[B], &format!("after {i}"), &b), b);
    }
    check_delivered_once(&mut net, &sent);
    let m = agent_metrics(&net, A);
    assert!(m.contains("poros_store_writable 1"), "{m}");
}

#[test]
fn receiving_agent_disk_full_shows_recipient_reason_at_sender_then_delivers_once() {
    let (mut net, disk) = network(|n| n.agent_dir(B).join("data"));
    let mut sent = Sent::new();
    let filler = Filler::fill(&disk);

    let big = body(BIG, 4);
    let big_id = net.send(A, &[B], "big while B is full", &big);
    sent.insert(big_id.clone(), big);
    wait_until("the recipient's reason at the sender", RECOVERY, || {
        let r = recipient(&net, A, &big_id);
        r["state"] == "accepted" && r["reason"] == "recipient storage full"
    });
    let admin = net.admin_get(&format!("/admin/v1/documents/{big_id}"));
    assert_eq!(admin["deliveries"][0]["state"], "pending", "{admin}");
    assert_eq!(
        admin["deliveries"][0]["reason"], "recipient storage full",
        "{admin}"
    );
    assert!(net.metric("poros_delivery_delays_total{reason=\"recipient_storage_full\"}") >= 1);
    assert_eq!(net.api(B, "/v1/health")["store"]["writable"], false);
    for i in 0..5 {
        let b = body(SMALL, 400 + i);
        sent.insert(net.send(A, &[B], &format!("small {i}"), &b), b);
    }

    filler.free();
    check_delivered_once(&mut net, &sent);
    // The delay was advisory: the receipt replaced it.
    let r = recipient(&net, A, &big_id);
    assert_eq!(r["state"], "delivered");
    assert!(r["reason"].is_null(), "{r}");
}
