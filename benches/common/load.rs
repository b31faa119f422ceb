//! The load generator both exchange benchmarks use: unique 4 KiB documents posted to the
//! senders' local APIs (closed or open loop), and followers of the senders' event logs that
//! see each signed receipt stored.

use serde_json::Value;
use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The sending agencies: each posts to the receivers round-robin.
pub const SENDERS: [&str; 3] = ["000.00.00.G01", "000.00.00.G02", "000.00.00.G03"];
/// The receiving agencies.
pub const RECEIVERS: [&str; 3] = ["000.00.00.H01", "000.00.00.H02", "000.00.00.H03"];
/// Size of every small document's body.
pub const DOC_BYTES: usize = 4096;

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Receipts seen at each sender: doc id -> (stored_ms, state).
pub type Seen = Arc<Mutex<HashMap<String, (u64, String)>>>;

/// Follows each sender's /v1/events cursor until `stop` is set.
pub fn start_followers(
    rt: &tokio::runtime::Runtime,
    apis: Vec<String>,
    seen: Seen,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    apis.into_iter()
        .map(|api| {
            let (seen, stop) = (seen.clone(), stop.clone());
            rt.spawn(async move {
                let client = reqwest::Client::new();
                let mut cursor = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let url = format!("http://{api}/v1/events?after={cursor}&limit=5000");
                    let v: Option<Value> = match client.get(&url).send().await {
                        Ok(r) => r.json().await.ok(),
                        Err(_) => None,
                    };
                    let mut n = 0;
                    if let Some(v) = v {
                        if let Some(evs) = v["events"].as_array() {
                            n = evs.len();
                            let mut s = seen.lock().unwrap();
                            for e in evs {
                                if e["type"] == "statement" && e["direction"] == "received" {
                                    if let (Some(d), Some(ms)) =
                                        (e["statement"].as_str(), e["stored_ms"].as_u64())
                                    {
                                        let label = e["label"].as_str().unwrap_or("?");
                                        s.insert(format!("stmt:{d}"), (ms, label.to_string()));
                                    }
                                } else if let (Some(id), Some(ms)) =
                                    (e["id"].as_str(), e["stored_ms"].as_u64())
                                {
                                    let st = e["state"].as_str().unwrap_or("?").to_string();
                                    s.insert(id.to_string(), (ms, st));
                                }
                            }
                        }
                        if let Some(next) = v["next"].as_u64() {
                            cursor = next;
                        }
                    }
                    if n < 5000 {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            })
        })
        .collect()
}

/// A unique 4 KiB body (unique so no two documents share a digest).
pub fn body(phase: u8, sender: usize, k: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(DOC_BYTES);
    let head = format!("POROS BENCH phase={phase} sender={sender} doc={k}\n");
    b.extend_from_slice(head.as_bytes());
    let mut x: u64 =
        0x9E37_79B9_7F4A_7C15 ^ ((phase as u64) << 56 | (sender as u64) << 40 | k as u64);
    while b.len() < DOC_BYTES {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b.push(b'a' + (x % 26) as u8);
    }
    b
}

#[derive(Default)]
pub struct Submitted {
    /// (doc id, POST start in Unix ms, schedule lag in ms for open loop)
    pub docs: Vec<(String, u64, u64)>,
    pub errors: Vec<String>,
    pub first_start_ms: u64,
    pub last_reply_ms: u64,
}

pub async fn post_one(
    client: &reqwest::Client,
    api: &str,
    to: &str,
    subject: &str,
    body: Vec<u8>,
) -> Result<String, String> {
    let url = format!("http://{api}/v1/documents?to={to}&subject={subject}");
    let r = client
        .post(url)
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let v: Value = r.json().await.map_err(|e| e.to_string())?;
    if status.as_u16() != 201 {
        return Err(format!("{status}: {v}"));
    }
    v["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("no id in {v}"))
}

/// Submit `per_sender` docs from each sender. Closed loop with `in_flight` workers per sender
/// when `rate_total` is None; otherwise open loop at `rate_total` docs/s over all senders
/// (at most `in_flight` outstanding per sender; later starts are counted as lag).
pub fn submit(
    rt: &tokio::runtime::Runtime,
    apis: &[String],
    phase: u8,
    per_sender: usize,
    in_flight: usize,
    rate_total: Option<f64>,
) -> Submitted {
    let out = Arc::new(Mutex::new(Submitted {
        first_start_ms: u64::MAX,
        ..Default::default()
    }));
    rt.block_on(async {
        let mut handles = Vec::new();
        let t_start = tokio::time::Instant::now() + Duration::from_millis(20);
        for (si, api) in apis.iter().enumerate() {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(in_flight)
                .build()
                .expect("http client");
            let api = api.clone();
            let out = out.clone();
            match rate_total {
                None => {
                    let next = Arc::new(AtomicUsize::new(0));
                    for _ in 0..in_flight {
                        let (client, api, out, next) =
                            (client.clone(), api.clone(), out.clone(), next.clone());
                        handles.push(tokio::spawn(async move {
                            loop {
                                let k = next.fetch_add(1, Ordering::Relaxed);
                                if k >= per_sender {
                                    break;
                                }
                                let to = RECEIVERS[(k + si) % RECEIVERS.len()];
                                let b = body(phase, si, k);
                                let t0 = now_ms();
                                let r =
                                    post_one(&client, &api, to, &format!("Bench-{phase}-{k}"), b)
                                        .await;
                                let t1 = now_ms();
                                let mut o = out.lock().unwrap();
                                o.first_start_ms = o.first_start_ms.min(t0);
                                o.last_reply_ms = o.last_reply_ms.max(t1);
                                match r {
                                    Ok(id) => o.docs.push((id, t0, 0)),
                                    Err(e) => o.errors.push(e),
                                }
                            }
                        }));
                    }
                }
                Some(rate) => {
                    let per_sender_rate = rate / apis.len() as f64;
                    let sem = Arc::new(tokio::sync::Semaphore::new(in_flight));
                    handles.push(tokio::spawn(async move {
                        let mut inner = Vec::new();
                        for k in 0..per_sender {
                            // Stagger senders inside one period.
                            let at = t_start
                                + Duration::from_secs_f64(
                                    (k as f64 + si as f64 / 3.0) / per_sender_rate,
                                );
                            tokio::time::sleep_until(at).await;
                            let permit = sem.clone().acquire_owned().await.expect("semaphore");
                            let lag = tokio::time::Instant::now()
                                .saturating_duration_since(at)
                                .as_millis() as u64;
                            let (client, api, out) = (client.clone(), api.clone(), out.clone());
                            inner.push(tokio::spawn(async move {
                                let to = RECEIVERS[(k + si) % RECEIVERS.len()];
                                let b = body(phase, si, k);
                                let t0 = now_ms();
                                let r =
                                    post_one(&client, &api, to, &format!("Bench-{phase}-{k}"), b)
                                        .await;
                                let t1 = now_ms();
                                drop(permit);
                                let mut o = out.lock().unwrap();
                                o.first_start_ms = o.first_start_ms.min(t0);
                                o.last_reply_ms = o.last_reply_ms.max(t1);
                                match r {
                                    Ok(id) => o.docs.push((id, t0, lag)),
                                    Err(e) => o.errors.push(e),
                                }
                            }));
                        }
                        for h in inner {
                            let _ = h.await;
                        }
                    }));
                }
            }
        }
        for h in handles {
            let _ = h.await;
        }
    });
    Arc::try_unwrap(out)
        .ok()
        .expect("all tasks done")
        .into_inner()
        .unwrap()
}

/// Wait until every submitted doc has an answer in `seen` (or the deadline passes); returns
/// how many have none. Each poll looks only from the first doc still unanswered on (answers
/// come roughly in submission order), so waiting costs the load generator about one lookup
/// per doc in all, not one per doc per poll: it shares the machine with what it measures,
/// and a whole scan every 20 ms held the followers' lock and cost 5% of the machine's
/// samples in a phase A profile.
pub fn wait_answers(seen: &Seen, docs: &[(String, u64, u64)], timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    let mut first_missing = 0;
    loop {
        {
            let s = seen.lock().unwrap();
            while first_missing < docs.len() && s.contains_key(&docs[first_missing].0) {
                first_missing += 1;
            }
            if first_missing == docs.len() {
                return 0;
            }
            if Instant::now() > deadline {
                return docs[first_missing..]
                    .iter()
                    .filter(|(id, _, _)| !s.contains_key(id))
                    .count();
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[idx.min(sorted.len() - 1)] as f64
}

/// Flush dirty pages and pause briefly so one phase's writeback does not land in the next.
pub fn settle() {
    let _ = Command::new("sync").status();
    std::thread::sleep(Duration::from_secs(1));
}
