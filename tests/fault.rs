//! The reproducible fault suite: kill -9 of the hub and of agents at random moments under
//! concurrent load, round after round, then an audit of everything that was acknowledged.
//!
//! Parameters (environment): `POROS_FAULT_SEED` (u64; printed at start when derived from the
//! clock, so a failing run can be repeated), `POROS_FAULT_ROUNDS` (default 3) and
//! `POROS_FAULT_BUDGET_SECS` (no new round starts once spent; default 40). Every random choice
//! (victim, moment, downtime, body size, recipients) comes from the seed; thread timing does
//! not, so a rerun repeats the schedule, not every interleaving. A long run (README, "Fault
//! suite"): `POROS_FAULT_ROUNDS=60 POROS_FAULT_BUDGET_SECS=1800 cargo test --test fault kill9 -- --nocapture`

#[path = "fault/audit.rs"]
mod audit;
mod common;

use audit::{audit, Listed, Observed, Post, Receipt, Told};
use common::*;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Agencies that send (and also receive) and agencies that only receive.
const SENDERS: [&str; 2] = [A, B];
const RECEIVERS: [&str; 2] = [C, D];
const ALL: [&str; 4] = [A, B, C, D];
/// Load threads per sending agency.
const THREADS_PER_SENDER: usize = 2;
/// The drain gives up when the number of undelivered answers has not fallen for this long.
const STALL: Duration = Duration::from_secs(90);

/// A tiny seeded PRNG (splitmix64 to spread the seed, then xorshift64*).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    /// True with probability `num / den`.
    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next() % den < num
    }
    fn pick<'a>(&mut self, of: &[&'a str]) -> &'a str {
        of[(self.next() % of.len() as u64) as usize]
    }
}

struct Params {
    seed: u64,
    rounds: usize,
    budget: Duration,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid number")),
        Err(_) => default,
    }
}

impl Params {
    fn from_env() -> Params {
        let clock = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Params {
            seed: env_or("POROS_FAULT_SEED", clock),
            rounds: env_or("POROS_FAULT_ROUNDS", 3),
            budget: Duration::from_secs(env_or("POROS_FAULT_BUDGET_SECS", 40)),
        }
    }
}

/// One load thread: posts through `from`'s API until told to stop, recording every outcome.
fn load_thread(
    net: &Net,
    from: &'static str,
    n: usize,
    seed: u64,
    stop: &Arc<AtomicBool>,
    done: &Arc<AtomicUsize>,
) -> thread::JoinHandle<Vec<Post>> {
    let (agent, stop, done) = (net.handle(from), stop.clone(), done.clone());
    thread::spawn(move || {
        let mut rng = Rng::new(seed ^ (n as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407));
        let others: Vec<&str> = ALL.iter().copied().filter(|c| *c != from).collect();
        let mut posts = Vec::new();
        for i in 0.. {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            // 1 to 3 distinct recipients among the other agencies.
            let mut to = others.clone();
            while to.len() > 1 && (to.len() > 3 || rng.chance(1, 2)) {
                to.remove((rng.next() % to.len() as u64) as usize);
            }
            let len = if rng.chance(1, 4) {
                // Above the inline limit: a body file at every hop.
                rng.range(poros_agent::state::INLINE_MAX + 1, 384 * 1024)
            } else {
                rng.range(16, 8 * 1024)
            } as usize;
            let subject = format!("fault {seed:x} {from} t{n} #{i}");
            let mut body = format!("{subject}\n").into_bytes();
            body.extend(pseudo_random(len, rng.next()));
            let told = match agent.post(&to, &subject, &body) {
                PostOutcome::Acknowledged(id) => Told::Acknowledged(id),
                PostOutcome::Unknown(_) => Told::Unknown,
                PostOutcome::Refused(e) => {
                    eprintln!("POST {subject:?} refused: {e}");
                    Told::Refused
                }
                PostOutcome::NotSent(_) => {
                    // The agent is down (killed, not yet restarted): pace the retries.
                    thread::sleep(Duration::from_millis(20));
                    continue;
                }
            };
            posts.push(Post {
                from: from.to_string(),
                to: to.iter().map(|t| t.to_string()).collect(),
                subject,
                sha: sha256_hex(&body),
                told,
            });
            done.fetch_add(1, Ordering::SeqCst);
        }
        posts
    })
}

/// Wait until `more` further POSTs have completed (acknowledged or not): a moment inside the
/// load that does not depend on the machine's speed.
fn after_posts(done: &AtomicUsize, more: u64) {
    let target = done.load(Ordering::SeqCst) + more as usize;
    wait_until(&format!("{target} POSTs completed"), DEADLINE, || {
        done.load(Ordering::SeqCst) >= target
    });
}

fn wait_all_connected(net: &Net) {
    for c in ALL {
        wait_until(&format!("{c} connected to the hub"), DEADLINE, || {
            net.api_get(c, "/v1/health")
                .is_some_and(|h| h["connected"] == true)
        });
    }
}

/// Kills by kind.
#[derive(Default, Debug)]
struct Kills {
    hub: usize,
    sender: usize,
    receiver: usize,
}

/// The process a round kills.
#[derive(Debug, Clone, Copy)]
enum Victim {
    Hub,
    Sender(&'static str),
    Receiver(&'static str),
}

/// One round: let the load run to a random moment, kill -9 a random process, leave it down for
/// a random stretch of load, restart it. Sometimes the next round starts before every agent
/// has reconnected, so a kill can land in the middle of a recovery.
fn round(net: &mut Net, rng: &mut Rng, done: &AtomicUsize, kills: &mut Kills) -> Victim {
    after_posts(done, rng.range(1, 120));
    let victim = match rng.next() % 3 {
        0 => Victim::Hub,
        1 => Victim::Sender(rng.pick(&SENDERS)),
        _ => Victim::Receiver(rng.pick(&RECEIVERS)),
    };
    match victim {
        Victim::Hub => {
            net.kill_hub();
            kills.hub += 1;
        }
        Victim::Sender(c) => {
            net.kill_agent(c);
            kills.sender += 1;
        }
        Victim::Receiver(c) => {
            net.kill_agent(c);
            kills.receiver += 1;
        }
    }
    after_posts(done, rng.range(0, 60));
    match victim {
        Victim::Hub => net.start_hub(),
        Victim::Sender(c) | Victim::Receiver(c) => net.start_agent(c),
    }
    if rng.chance(3, 4) {
        wait_all_connected(net);
    }
    victim
}

/// Documents as an agent lists them (`/v1/inbox`, `/v1/quarantine`, `/v1/documents`).
fn listed(net: &Net, code: &str, path: &str) -> Option<Vec<Listed>> {
    // Every page: the listings are paged.
    let v = net.api_list_get(code, path)?;
    let text = |d: &Value, k: &str| d[k].as_str().unwrap_or("").to_string();
    Some(
        v.as_array()?
            .iter()
            .map(|d| Listed {
                id: text(d, "id"),
                sender: d["sender"].as_str().unwrap_or(code).to_string(),
                subject: text(d, "subject"),
                sha: text(d, "body_sha256"),
                states: recipient_states(d),
                served: None,
            })
            .collect(),
    )
}

/// (document, recipient) answers still missing at the senders; `None` if one is not answering.
fn undelivered(net: &Net) -> Option<usize> {
    let mut n = 0;
    for c in ALL {
        for d in listed(net, c, "/v1/documents")? {
            n += d.states.values().filter(|s| *s != "delivered").count();
            n += usize::from(d.states.is_empty());
        }
    }
    Some(n)
}

/// Wait until every sent document has every answer back, as long as that number keeps
/// falling (a stall of [`STALL`] ends the wait; the audit then reports what is missing).
fn drain(net: &Net) -> Duration {
    let t = Instant::now();
    let (mut best, mut progress) = (usize::MAX, Instant::now());
    loop {
        match undelivered(net) {
            Some(0) => return t.elapsed(),
            Some(n) if n < best => (best, progress) = (n, Instant::now()),
            _ => {}
        }
        if progress.elapsed() > STALL {
            eprintln!("drain stalled with {best} answers missing");
            return t.elapsed();
        }
        thread::sleep(Duration::from_millis(250));
    }
}

fn observe(net: &Net) -> Observed {
    let mut o = Observed::default();
    let get = |c: &str, p: &str| listed(net, c, p).unwrap_or_else(|| panic!("GET {p} at {c}"));
    for c in ALL {
        let mut inbox = get(c, "/v1/inbox");
        for d in &mut inbox {
            d.served = Some(net.fetch_sha256(c, &d.id));
        }
        o.inbox.insert(c.into(), inbox);
        o.quarantined
            .insert(c.into(), get(c, "/v1/quarantine").len());
        o.outbox.insert(c.into(), get(c, "/v1/documents"));
        let receipts = net.api_list(c, "/v1/receipts");
        let text = |r: &Value, k: &str| r[k].as_str().unwrap_or("").to_string();
        let list = receipts.as_array().into_iter().flatten();
        o.receipts.insert(
            c.into(),
            list.map(|r| Receipt {
                id: text(r, "id"),
                recipient: text(r, "recipient"),
                outcome: text(r, "outcome"),
                verified: r["signature_verified"] == true,
                sha: text(r, "body_sha256"),
            })
            .collect(),
        );
    }
    let chk = net.admin_get("/admin/v1/stats/check");
    o.stats_equal = chk["equal"] == true;
    o.stats_mismatches = chk["mismatches"].to_string();
    for (scope, metrics) in chk["recount"].as_object().into_iter().flatten() {
        let m = metrics.as_object().into_iter().flatten();
        let m = m.filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)));
        o.recount.insert(scope.clone(), m.collect());
    }
    o
}

/// kill -9 of the hub, a sending agent or a receiving agent at random moments under
/// concurrent load; afterwards every acknowledged document is in each recipient's inbox
/// exactly once with a verified receipt at its sender, and the statistics equal a recount.
#[test]
fn kill9_rounds_under_load_lose_and_double_nothing() {
    let p = Params::from_env();
    eprintln!(
        "fault suite: POROS_FAULT_SEED={} POROS_FAULT_ROUNDS={} POROS_FAULT_BUDGET_SECS={}",
        p.seed,
        p.rounds,
        p.budget.as_secs()
    );
    let t = Instant::now();
    let mut rng = Rng::new(p.seed);
    let mut net = Net::new();
    net.start_hub();
    for c in ALL {
        net.add_agent(c);
    }
    for c in ALL {
        net.start_agent(c);
    }

    let (stop, done) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut load = Vec::new();
    for (s, from) in SENDERS.into_iter().enumerate() {
        for k in 0..THREADS_PER_SENDER {
            let n = s * THREADS_PER_SENDER + k;
            load.push(load_thread(&net, from, n, p.seed, &stop, &done));
        }
    }
    let mut kills = Kills::default();
    let mut rounds = 0;
    while rounds < p.rounds && t.elapsed() < p.budget {
        let victim = round(&mut net, &mut rng, &done, &mut kills);
        rounds += 1;
        eprintln!(
            "round {rounds}: killed {victim:?}; {} POSTs so far",
            done.load(Ordering::SeqCst)
        );
    }
    // Some load with nothing killed, then no more.
    after_posts(&done, 20);
    stop.store(true, Ordering::SeqCst);
    let ledger: Vec<Post> = load
        .into_iter()
        .flat_map(|h| h.join().expect("load thread panicked"))
        .collect();
    wait_all_connected(&net);
    let drained_in = drain(&net);
    let report = audit(&ledger, &observe(&net));

    eprintln!(
        "fault suite: seed {} rounds {rounds} acknowledged {} delivered {} lost {} doubled {} \
         (unacknowledged {}, of which appeared {}; refused {}; bodies read back {}) kills hub {} sender {} receiver {} \
         drained in {:.1} s, elapsed {:.1} s",
        p.seed,
        report.acknowledged,
        report.delivered,
        report.lost,
        report.doubled,
        report.unacknowledged,
        report.unacknowledged_appeared,
        report.refused,
        report.bodies_read_back,
        kills.hub,
        kills.sender,
        kills.receiver,
        drained_in.as_secs_f64(),
        t.elapsed().as_secs_f64()
    );
    for f in report.faults.iter().take(40) {
        eprintln!("FAULT {f}");
    }
    assert!(report.acknowledged > 0 && rounds > 0, "the run did nothing");
    assert_eq!(
        report.lost, 0,
        "acknowledged documents lost (seed {})",
        p.seed
    );
    assert_eq!(report.doubled, 0, "documents doubled (seed {})", p.seed);
    assert!(
        report.faults.is_empty(),
        "{} faults (seed {}); the first: {}",
        report.faults.len(),
        p.seed,
        report.faults[0]
    );
}
