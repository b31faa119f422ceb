//! Crash safety: SIGKILL of the hub, of a sending or of a receiving agent while hundreds of documents flow.
//! Every document the sender's agent acknowledged (its POST returned an ID) must end up in its
//! recipient's inbox exactly once, with the right body, and its signed receipt at the sender.

mod common;
use common::delivery::{check_all_delivered, Sent};
use common::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

const PER_SENDER: usize = 150;

/// One thread per (sender, recipient) pair, each posting `PER_SENDER` small documents.
fn spawn_senders(
    net: &Net,
    pairs: &[(&'static str, &'static str)],
    posted: &Arc<AtomicUsize>,
) -> Vec<thread::JoinHandle<Sent>> {
    pairs
        .iter()
        .enumerate()
        .map(|(n, &(from, to))| {
            let (agent, posted) = (net.handle(from), posted.clone());
            thread::spawn(move || {
                let mut sent = Sent::new();
                for i in 0..PER_SENDER {
                    let mut body = format!("document {i} from {from} to {to}\n").into_bytes();
                    body.extend(pseudo_random(300 + i, (n * 1000 + i + 1) as u64));
                    // An error means the agent did not acknowledge it: not counted.
                    match agent.try_send(&[to], &format!("Bulk {i}"), &body) {
                        Ok(id) => {
                            sent.insert(id, (from.into(), to.into(), sha256_hex(&body)));
                        }
                        Err(e) => eprintln!("POST {i} at {from} not acknowledged: {e}"),
                    }
                    posted.fetch_add(1, Ordering::SeqCst);
                }
                sent
            })
        })
        .collect()
}

fn wait_posted(posted: &AtomicUsize, n: usize) {
    wait_until(&format!("{n} documents posted"), DEADLINE, || {
        posted.load(Ordering::SeqCst) >= n
    });
}

fn collect(handles: Vec<thread::JoinHandle<Sent>>) -> Sent {
    let mut all = Sent::new();
    for h in handles {
        all.extend(h.join().expect("sender thread panicked"));
    }
    all
}

/// kill -9 of the hub while two agents push documents to each other; it restarts on the same
/// port and every acknowledged document is delivered exactly once, with every receipt.
#[test]
fn hub_kill9_during_bulk_exchange() {
    let mut net = Net::running(&[A, B]);
    let posted = Arc::new(AtomicUsize::new(0));
    let handles = spawn_senders(&net, &[(A, B), (B, A)], &posted);

    wait_posted(&posted, PER_SENDER * 2 / 3);
    net.kill_hub();
    let killed_at = posted.load(Ordering::SeqCst);
    // Documents keep being acknowledged by the agents while the hub is down.
    wait_posted(&posted, killed_at + 20);
    net.start_hub();
    let t = Instant::now();
    let sent = collect(handles);
    assert!(
        sent.len() >= 2 * PER_SENDER - 4,
        "only {} acknowledged",
        sent.len()
    );
    check_all_delivered(&net, &sent);
    eprintln!(
        "hub kill -9 after {killed_at} posts: {} documents recovered in {:?}",
        sent.len(),
        t.elapsed()
    );
}

/// kill -9 of the receiving agent while documents are being delivered to it; it restarts and
/// every acknowledged document is in its inbox exactly once, with every receipt at the senders.
#[test]
fn recipient_kill9_during_delivery() {
    let mut net = Net::running(&[A, B, C]);
    let posted = Arc::new(AtomicUsize::new(0));
    let handles = spawn_senders(&net, &[(A, C), (B, C)], &posted);

    wait_until(
        "C to have received a third of the documents",
        DEADLINE,
        || {
            net.inbox_counts(C)
                .is_some_and(|m| m.len() >= PER_SENDER * 2 / 3)
        },
    );
    net.kill_agent(C);
    let killed_at = posted.load(Ordering::SeqCst);
    net.start_agent(C);
    let t = Instant::now();
    let sent = collect(handles);
    assert_eq!(
        sent.len(),
        2 * PER_SENDER,
        "every POST is acknowledged by a running agent"
    );
    check_all_delivered(&net, &sent);
    eprintln!(
        "recipient kill -9 after {killed_at} posts: {} documents recovered in {:?}",
        sent.len(),
        t.elapsed()
    );
}

/// kill -9 of the sending agent with documents it acknowledged still only in its outbox (the
/// hub is down meanwhile, so nothing could be submitted); after a restart every acknowledged
/// document reaches the recipient exactly once, with the receipt back. The posts are made one
/// at a time so that no POST is in flight at the kill (one whose answer was lost may be
/// delivered without ever having been acknowledged, which the exactly-once check would flag).
#[test]
fn sender_kill9_with_acknowledged_documents_in_its_outbox() {
    let mut net = Net::running(&[A, B]);
    let mut sent = Sent::new();
    let mut post = |net: &Net, i: usize| {
        let mut body = format!("document {i} from {A} to {B}\n").into_bytes();
        body.extend(pseudo_random(300 + i, i as u64 + 7));
        let id = net.send(A, &[B], &format!("Outbox {i}"), &body);
        sent.insert(id, (A.into(), B.into(), sha256_hex(&body)));
    };
    for i in 0..30 {
        post(&net, i);
    }
    net.kill_hub();
    // Acknowledged by A while only its outbox holds them.
    for i in 30..90 {
        post(&net, i);
    }
    net.kill_agent(A);
    net.start_hub();
    net.start_agent(A);
    let t = Instant::now();
    check_all_delivered(&net, &sent);
    eprintln!(
        "sender kill -9 with 60 documents only in its outbox: {} documents delivered in {:?}",
        sent.len(),
        t.elapsed()
    );
}

/// kill -9 of the sending agent while its documents flow: acceptances arriving, receipts coming
/// back. The sender stores the hub's acceptance without a commit of its own (it joins the next
/// one), so an acceptance the hub sent may not be durable at the kill; such a document is still
/// queued after a restart, is submitted again and accepted as the duplicate it is. (The window
/// is a few milliseconds and the kill does not aim at it; what this checks is the outcome of a
/// kill at any point of the flow.) Every acknowledged document reaches the recipient exactly
/// once, and the sender ends with the hub's acceptance and one receipt for each.
#[test]
fn sender_kill9_while_its_documents_flow() {
    let mut net = Net::running(&[A, B]);
    let mut sent = Sent::new();
    // One POST at a time, so none is in flight at the kill.
    for i in 0..120 {
        let mut body = format!("document {i} from {A} to {B}\n").into_bytes();
        body.extend(pseudo_random(300 + i, i as u64 + 11));
        let id = net.send(A, &[B], &format!("In flight {i}"), &body);
        sent.insert(id, (A.into(), B.into(), sha256_hex(&body)));
    }
    // Killed right after the last acknowledgement, while the last documents are still in the
    // exchange (submitted, delivered, their receipts on the way back).
    thread::sleep(std::time::Duration::from_millis(10));
    net.kill_agent(A);
    net.start_agent(A);
    let t = Instant::now();
    check_all_delivered(&net, &sent);
    for id in sent.keys() {
        let doc = net.api(A, &format!("/v1/documents/{id}"));
        assert!(
            doc["accepted_ms"].as_u64().is_some(),
            "no acceptance stored at {A} for {id}: {doc}"
        );
    }
    eprintln!(
        "sender kill -9 while its documents flowed: {} documents delivered in {:?}",
        sent.len(),
        t.elapsed()
    );
}
