//! High availability, end to end with real processes: three hub instances sharing a
//! PostgreSQL store managed by Patroni (a primary and a synchronous standby, etcd as its
//! store), four agents each sending to the next and receiving from the previous, all the
//! time. One fault after another, and after each the network must have delivered every
//! document an agent acknowledged exactly once, with its receipt at the sender, and every hub
//! must find its statistics equal to a recount (and all hubs the same recount):
//!
//! 0. Enrolment by token through another hub instance than the one that issued it (once).
//! 1. `kill -9` of the hub instance most agents are connected to: they move to the others
//!    within seconds.
//! 2. `kill -9` of the database primary (its Patroni and postgres): the standby is promoted
//!    and the hubs follow it; while no synchronous standby exists the hubs refuse, with a
//!    retryable reason the senders show, and acknowledge nothing; once the old primary is
//!    back as standby everything flows again.
//! 3. `SIGSTOP` of the busiest hub for longer than its agency leases, then `SIGCONT`: its
//!    agents' work is taken over by the others while it is stopped, and on waking it neither
//!    delivers twice nor loses anything.
//! 4. Revocation of an agency through one hub while it is connected to another: its
//!    connection is cut within a second, and no hub admits it again.
//!
//! One test (one cluster) runs the phases in order: each starts from the state the previous
//! one left, as a real deployment would.

mod common;
use common::delivery::{check_all_delivered, Sent};
use common::*;
use poros_harness::PatroniCluster;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Hub instances.
const HUBS: usize = 3;
/// An agency enrolled by token through another hub than the one that issued it.
const E: &str = "000.00.00.H03";
/// Who sends to whom: everyone sends and everyone receives.
const PAIRS: [(&str, &str); 4] = [(A, B), (B, C), (C, D), (D, A)];
/// Between two posts of one sender (a steady stream, not a flood: the machine also runs
/// three hubs, four agents and two database nodes).
const PACE: Duration = Duration::from_millis(100);
/// How long a moved agent may take to be connected to another hub.
const MOVE_WITHIN: Duration = Duration::from_secs(20);

/// Senders posting continuously until stopped.
struct Senders {
    stop: Arc<AtomicBool>,
    posted: Arc<AtomicUsize>,
    threads: Vec<thread::JoinHandle<Sent>>,
}

impl Senders {
    fn start(net: &Net, phase: &str) -> Senders {
        let stop = Arc::new(AtomicBool::new(false));
        let posted = Arc::new(AtomicUsize::new(0));
        let threads = PAIRS
            .iter()
            .enumerate()
            .map(|(n, &(from, to))| {
                let (agent, stop, posted) = (net.handle(from), stop.clone(), posted.clone());
                let phase = phase.to_string();
                thread::spawn(move || {
                    let mut sent = Sent::new();
                    let mut i = 0usize;
                    while !stop.load(Ordering::SeqCst) {
                        let mut body = format!("{phase} {i} from {from} to {to}\n").into_bytes();
                        body.extend(pseudo_random(200 + i % 500, (n * 100_000 + i + 1) as u64));
                        match agent.post(&[to], &format!("{phase} {i}"), &body) {
                            PostOutcome::Acknowledged(id) => {
                                sent.insert(id, (from.into(), to.into(), sha256_hex(&body)));
                            }
                            other => {
                                panic!("{phase}: agent {from} did not take POST {i}: {other:?}")
                            }
                        }
                        posted.fetch_add(1, Ordering::SeqCst);
                        i += 1;
                        thread::sleep(PACE);
                    }
                    sent
                })
            })
            .collect();
        Senders {
            stop,
            posted,
            threads,
        }
    }

    /// Wait until `n` more documents are acknowledged by the agents than now.
    fn wait_more(&self, n: usize) {
        let target = self.posted.load(Ordering::SeqCst) + n;
        wait_until(&format!("{n} more documents posted"), DEADLINE, || {
            self.posted.load(Ordering::SeqCst) >= target
        });
    }

    fn finish(self) -> Sent {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = Sent::new();
        for t in self.threads {
            all.extend(t.join().expect("sender thread panicked"));
        }
        all
    }
}

/// Admin GET on instance `i`; `None` if it does not answer.
fn admin(net: &mut Net, i: usize, path: &str) -> Option<Value> {
    let token = net.admin_token();
    let base = net.deployment().instances()[i].ops_base();
    let r = net
        .http()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .timeout(Duration::from_secs(5))
        .send()
        .ok()?;
    r.status().is_success().then(|| r.json().ok()).flatten()
}

/// The agencies connected to instance `i` (empty if it does not answer).
fn connected_to(net: &mut Net, i: usize) -> BTreeSet<String> {
    admin(net, i, "/admin/v1/stats")
        .and_then(|v| {
            v["connected"].as_array().map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(String::from))
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// Which instance each agency is connected to, asking only the instances in `ask`.
fn placement(net: &mut Net, ask: &[usize]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for &i in ask {
        for a in connected_to(net, i) {
            m.insert(a, i);
        }
    }
    m
}

/// Every agency connected, to one of the instances in `ask`.
fn wait_all_placed(net: &mut Net, ask: &[usize], what: &str, within: Duration) -> Duration {
    let t = Instant::now();
    let mut last = BTreeMap::new();
    let done = poros_harness::wait_until(what, within, || {
        last = placement(net, ask);
        PAIRS.iter().all(|(a, _)| last.contains_key(*a))
    });
    if let Err(e) = done {
        panic!("{e}; connected: {last:?}");
    }
    t.elapsed()
}

/// The instance most agencies are connected to, and those agencies.
fn busiest(net: &mut Net) -> (usize, BTreeSet<String>) {
    let all: Vec<usize> = (0..HUBS).collect();
    let p = placement(net, &all);
    let mut by: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for (a, i) in p {
        by.entry(i).or_default().insert(a);
    }
    by.into_iter()
        .max_by_key(|(_, s)| s.len())
        .expect("agencies connected somewhere")
}

/// Every instance in `ask` finds its live statistics equal to a recount, and all find the
/// same recount (they read one shared store).
fn stats_agree(net: &mut Net, ask: &[usize], phase: &str) {
    let mut recounts = Vec::new();
    for &i in ask {
        let chk = admin(net, i, "/admin/v1/stats/check")
            .unwrap_or_else(|| panic!("{phase}: hub instance {i} did not answer the stats check"));
        assert_eq!(
            chk["equal"], true,
            "{phase}: stats check on instance {i}: {chk}"
        );
        recounts.push(chk["recount"].clone());
    }
    assert!(
        recounts.windows(2).all(|w| w[0] == w[1]),
        "{phase}: the instances' recounts differ: {recounts:?}"
    );
    // The counters behind /metrics and the dashboard are the shared ones: the same
    // everywhere (nothing is sent meanwhile).
    let counters: Vec<Value> = ask
        .iter()
        .map(|&i| {
            admin(net, i, "/admin/v1/stats")
                .unwrap_or_else(|| panic!("{phase}: instance {i} did not answer /admin/v1/stats"))
                ["counters"]
                .clone()
        })
        .collect();
    assert!(
        counters.windows(2).all(|w| w[0] == w[1]),
        "{phase}: the instances' counters differ: {counters:?}"
    );
}

/// Documents at `from`'s side with at least one recipient past "pending" (the hub took
/// them), among `ids`.
fn taken_by_hub(net: &Net, from: &str) -> BTreeSet<String> {
    net.api_list_get(from, "/v1/documents")
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter(|d| recipient_states(d).values().any(|s| s != "pending"))
        .filter_map(|d| d["id"].as_str().map(String::from))
        .collect()
}

/// The reasons senders show for documents still pending.
fn pending_reasons(net: &Net) -> Vec<String> {
    let mut out = Vec::new();
    for (from, _) in PAIRS {
        let docs = net
            .api_list_get(from, "/v1/documents")
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default();
        for d in docs {
            for r in d["recipients"].as_array().into_iter().flatten() {
                if r["state"] == "pending" {
                    if let Some(why) = r["reason"].as_str() {
                        out.push(why.to_string());
                    }
                }
            }
        }
    }
    out
}

fn all_taken(net: &Net) -> BTreeSet<String> {
    PAIRS
        .iter()
        .flat_map(|(from, _)| taken_by_hub(net, from))
        .collect()
}

#[test]
fn three_hubs_on_patroni_survive_hub_database_and_stall_faults() {
    let tmp = tempfile::Builder::new()
        .prefix("poros-ha-")
        .tempdir()
        .unwrap();
    // Declared first, dropped last: the hubs go before their database.
    let mut cluster = ok(PatroniCluster::start(tmp.path(), 2));
    let mut net = Net::new();
    let every: Vec<usize> = (0..HUBS).collect();
    ok(net.deployment().share_store(&cluster.url(), HUBS));
    net.start_hub();
    for (a, _) in PAIRS {
        net.add_agent(a);
        ok(net.deployment().give_agent_every_hub(a));
    }
    for i in 1..HUBS {
        ok(net.deployment().start_instance(i));
    }
    for (a, _) in PAIRS {
        net.start_agent(a);
    }
    wait_all_placed(&mut net, &every, "every agent connected", DEADLINE);
    let mut sent = Sent::new();

    // 0. Enrolment through any hub: a token issued through instance 0 is redeemed through
    // instance 2, once; the new agency exchanges at once.
    let phase = "enrolment";
    let token = net.issue_token(E);
    let via = |net: &mut Net, i: usize| {
        let dir = net.deployment().instances()[i].dir.clone();
        std::fs::read_to_string(dir.join("run/enroll.addr"))
            .unwrap()
            .trim()
            .to_string()
    };
    let through = via(&mut net, 2);
    let dir = s(&net.agent_dir(E));
    let out = net.agent_cli(&[
        "enroll", "--dir", &dir, "--token", &token, "--via", &through,
    ]);
    assert_ok(&out, "poros-agent enroll through instance 2");
    let again = net.root.join("agents/again");
    let through_1 = via(&mut net, 1);
    let twice = net.agent_cli(&[
        "enroll",
        "--dir",
        &s(&again),
        "--token",
        &token,
        "--via",
        &through_1,
    ]);
    assert!(
        !twice.status.success(),
        "{phase}: the token was redeemed a second time through instance 1"
    );
    ok(net.deployment().give_agent_every_hub(E));
    net.start_agent(E);
    let id = net.send(
        A,
        &[E],
        "to the agency enrolled through another hub",
        b"welcome\n",
    );
    net.wait_state(A, &id, "delivered");
    sent.insert(id, (A.into(), E.into(), sha256_hex(b"welcome\n")));
    eprintln!("{phase}: token from instance 0 redeemed through instance 2, once");

    // 1. kill -9 of the busiest hub instance.
    let phase = "hub kill -9";
    let senders = Senders::start(&net, "k");
    senders.wait_more(40);
    let (victim, on_it) = busiest(&mut net);
    net.deployment().kill_instance(victim);
    let others: Vec<usize> = every.iter().copied().filter(|&i| i != victim).collect();
    let moved = wait_all_placed(&mut net, &others, "agents on the other hubs", MOVE_WITHIN);
    eprintln!("{phase}: instance {victim} had {on_it:?}; all on the others after {moved:?}");
    senders.wait_more(40);
    ok(net.deployment().start_instance(victim));
    sent.extend(senders.finish());
    check_all_delivered(&net, &sent);
    stats_agree(&mut net, &every, phase);
    eprintln!("{phase}: {} documents delivered exactly once", sent.len());

    // 2. kill -9 of the database primary.
    let phase = "database primary kill -9";
    let senders = Senders::start(&net, "p");
    senders.wait_more(40);
    let old = cluster.primary().expect("a primary");
    let t = Instant::now();
    cluster.kill9_patroni(old);
    let mut new = None;
    ok(poros_harness::wait_until(
        "the standby promoted",
        Duration::from_secs(60),
        || {
            new = cluster.primary().filter(|&p| p != old);
            new.is_some()
        },
    ));
    eprintln!(
        "{phase}: node {} promoted after {:?}",
        new.unwrap(),
        t.elapsed()
    );
    // No synchronous standby now: the hubs must refuse, retryably, and take nothing.
    let mut reasons = Vec::new();
    let refused = poros_harness::wait_until(
        "senders showing the hubs' refusal while no standby confirms",
        Duration::from_secs(60),
        || {
            reasons = pending_reasons(&net);
            reasons.iter().any(|r| r.contains("standby"))
        },
    );
    if let Err(e) = refused {
        let distinct: BTreeSet<&String> = reasons.iter().collect();
        panic!("{phase}: {e}; reasons shown: {distinct:?}");
    }
    let before = all_taken(&net);
    senders.wait_more(40);
    let after = all_taken(&net);
    let taken: Vec<_> = after.difference(&before).collect();
    assert!(
        taken.is_empty(),
        "{phase}: the hubs took {} documents while no synchronous standby existed: {taken:?}",
        taken.len()
    );
    eprintln!(
        "{phase}: refused while alone ({} pending with a reason, e.g. {:?})",
        reasons.len(),
        reasons.iter().find(|r| r.contains("standby"))
    );
    ok(cluster.start_node(old));
    ok(cluster.wait_sync_standby(Duration::from_secs(120)));
    eprintln!(
        "{phase}: node {old} back as synchronous standby after {:?}",
        t.elapsed()
    );
    senders.wait_more(40);
    sent.extend(senders.finish());
    check_all_delivered(&net, &sent);
    stats_agree(&mut net, &every, phase);
    eprintln!("{phase}: {} documents delivered exactly once", sent.len());

    // 3. SIGSTOP of the busiest hub for longer than its leases, then SIGCONT.
    let phase = "hub SIGSTOP";
    let senders = Senders::start(&net, "s");
    senders.wait_more(40);
    let (stalled, on_it) = busiest(&mut net);
    ok(net.deployment().signal_instance(stalled, "STOP"));
    let t = Instant::now();
    let others: Vec<usize> = every.iter().copied().filter(|&i| i != stalled).collect();
    let moved = wait_all_placed(
        &mut net,
        &others,
        "agents on the running hubs",
        Duration::from_secs(60),
    );
    // Work for the stalled hub's agencies is delivered by the others while it is stopped.
    let to_stalled: Vec<(String, String)> = PAIRS
        .iter()
        .filter(|(_, to)| on_it.contains(*to))
        .map(|(from, to)| (from.to_string(), to.to_string()))
        .collect();
    for (from, to) in &to_stalled {
        let id = net.send(from, &[to.as_str()], "while stalled", b"taken over\n");
        sent.insert(
            id.clone(),
            (from.clone(), to.clone(), sha256_hex(b"taken over\n")),
        );
        net.wait_state(from, &id, "delivered");
    }
    // Stopped past its lease (10 s) whatever the reconnection took.
    while t.elapsed() < Duration::from_secs(15) {
        thread::sleep(Duration::from_millis(200));
    }
    assert!(
        !to_stalled.is_empty() || on_it.is_empty(),
        "{phase}: nobody sends to {on_it:?}"
    );
    ok(net.deployment().signal_instance(stalled, "CONT"));
    eprintln!(
        "{phase}: instance {stalled} stopped {:?} (its agents {on_it:?} moved after {moved:?})",
        t.elapsed()
    );
    senders.wait_more(40);
    sent.extend(senders.finish());
    check_all_delivered(&net, &sent);
    stats_agree(&mut net, &every, phase);
    eprintln!("{phase}: {} documents delivered exactly once", sent.len());

    // 4. Revocation through one hub of an agency connected to another.
    let phase = "revocation";
    let p = placement(&mut net, &every);
    let (agency, on) = p
        .iter()
        .next()
        .map(|(a, i)| (a.clone(), *i))
        .expect("placed");
    let through = if on == 0 { 1 } else { 0 };
    let dir = net.deployment().instances()[through].dir.clone();
    let t = Instant::now();
    let out = net.hub_cli(&["node", "revoke", "--dir", &s(&dir), &agency]);
    assert_ok(&out, "poros-hub node revoke");
    let returned = t.elapsed();
    let mut cut = None;
    ok(poros_harness::wait_until(
        "the revoked agency cut",
        Duration::from_secs(10),
        || {
            let gone = !connected_to(&mut net, on).contains(&agency)
                && net
                    .api_get(&agency, "/v1/health")
                    .is_some_and(|h| h["connected"] == false);
            if gone {
                cut = Some(t.elapsed());
            }
            gone
        },
    ));
    let cut = cut.unwrap();
    eprintln!(
        "{phase}: {agency} on instance {on}, revoked through {through} (command took {returned:?}); cut after {cut:?}"
    );
    assert!(
        cut - returned < Duration::from_secs(1),
        "{phase}: cut {:?} after the revocation returned",
        cut - returned
    );
    // No instance admits it again.
    let since = Instant::now();
    while since.elapsed() < Duration::from_secs(3) {
        let p = placement(&mut net, &every);
        assert!(
            !p.contains_key(&agency),
            "{phase}: {agency} connected again: {p:?}"
        );
        thread::sleep(Duration::from_millis(200));
    }
    stats_agree(&mut net, &every, phase);
}
