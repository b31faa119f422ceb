//! Simulated agents for the scale benchmark: each one an agency registered at the hub with
//! its own keys and certificates (made here, issued by the hub through its admin API, the
//! same issuance as `poros-hub node add --requests`), each keeping one real mutual-TLS QUIC
//! connection to the hub up the way `poros-agent` does: the agent's transport limits, its
//! attempt timeout and its backoff ([`poros_protocol::backoff`]). A simulated agent answers
//! what the hub asks of an idle agent (the revocation list pushed at connection, pings, a
//! resync) and sends nothing itself; the documents of the benchmark are sent by real agents.

use poros_protocol::backoff::Backoff;
use poros_protocol::{AgencyId, DocumentId, Frame, Refusal, RefusalCode};
use poros_transport::{read_frame, write_frame, Limits};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connections served per client UDP socket (an agent has its own; here they share a few
/// sockets so that the load generator does not need ten thousand endpoint drivers).
pub const AGENTS_PER_SOCKET: usize = 250;
/// Registrations in flight at once.
const ISSUE_IN_FLIGHT: usize = 32;

/// The code of simulated agency `i` (group letter X, outside the real agencies' groups).
pub fn code(i: usize) -> AgencyId {
    AgencyId::parse(&format!(
        "9{:02}.{:02}.{:02}.X{:02}",
        (i / 1_000_000) % 100,
        (i / 10_000) % 100,
        (i / 100) % 100,
        i % 100
    ))
    .expect("a well-formed agency code")
}

/// What one simulated agent connects with.
pub struct Identity {
    pub agency: AgencyId,
    pub tls: rustls::ClientConfig,
}

/// How long registering the agencies took, and their identities.
pub struct Issued {
    pub identities: Vec<Identity>,
    pub keygen: Duration,
    pub issue: Duration,
}

/// Make keys and certificate requests for `n` agencies (on every core), then register each
/// at the hub with its requests through the admin API (`POST /admin/v1/nodes`, as `node add
/// --requests` does) and build its TLS client configuration from what the hub issued.
pub fn issue(
    rt: &tokio::runtime::Runtime,
    ops: &str,
    admin_token: &str,
    n: usize,
) -> Result<Issued, String> {
    let t0 = Instant::now();
    let threads = std::thread::available_parallelism().map_or(2, |c| c.get());
    let requests: Vec<(AgencyId, String, String, Vec<u8>)> = std::thread::scope(|s| {
        let chunks: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    (t..n)
                        .step_by(threads)
                        .map(|i| {
                            let a = code(i);
                            let tls_key = poros_certs::generate_key().expect("key");
                            let sign_key = poros_certs::generate_key().expect("key");
                            let tls_csr = poros_certs::make_csr(&tls_key, &a).expect("csr");
                            let sign_csr = poros_certs::make_csr(&sign_key, &a).expect("csr");
                            (a, tls_csr, sign_csr, poros_certs::key_pkcs8_der(&tls_key))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        chunks
            .into_iter()
            .flat_map(|h| h.join().expect("key thread"))
            .collect()
    });
    let keygen = t0.elapsed();
    let t1 = Instant::now();
    let client = reqwest::Client::new();
    let url = format!("http://{ops}/admin/v1/nodes");
    let identities = rt.block_on(async {
        let sem = Arc::new(tokio::sync::Semaphore::new(ISSUE_IN_FLIGHT));
        let mut tasks = Vec::with_capacity(n);
        for (agency, tls_csr, sign_csr, key) in requests {
            let permit = sem.clone().acquire_owned().await.expect("semaphore");
            let (client, url, token) = (client.clone(), url.clone(), admin_token.to_string());
            tasks.push(tokio::spawn(async move {
                let body = serde_json::json!({
                    "agency": agency.as_str(),
                    "name": format!("Xã mô phỏng {}", agency.as_str()),
                    "tls_csr": tls_csr,
                    "sign_csr": sign_csr,
                });
                let r = client
                    .post(&url)
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await
                    .map_err(|e| format!("registering {agency}: {e}"))?;
                let status = r.status();
                let v: serde_json::Value = r
                    .json()
                    .await
                    .map_err(|e| format!("registering {agency}: {e}"))?;
                drop(permit);
                if !status.is_success() {
                    return Err(format!("registering {agency}: {status}: {v}"));
                }
                let creds: poros_protocol::Credentials =
                    serde_json::from_value(v["credentials"].clone())
                        .map_err(|e| format!("registering {agency}: {e}"))?;
                let first = |pem: &str| {
                    poros_certs::pem_to_der_certs(pem)
                        .ok()
                        .and_then(|v| v.into_iter().next())
                        .ok_or_else(|| format!("{agency}: no certificate in the hub's answer"))
                };
                let tls = poros_certs::agent_client_config(
                    &first(&creds.network_ca)?,
                    vec![first(&creds.tls_cert)?],
                    key,
                )
                .map_err(|e| format!("{agency}: {e}"))?;
                Ok(Identity { agency, tls })
            }));
        }
        let mut out = Vec::with_capacity(n);
        for t in tasks {
            out.push(t.await.map_err(|e| e.to_string())??);
        }
        Ok::<_, String>(out)
    })?;
    Ok(Issued {
        identities,
        keygen,
        issue: t1.elapsed(),
    })
}

/// What the simulated agents have done, shared with the benchmark's main thread.
#[derive(Default)]
pub struct Fleet {
    /// Agents connected now.
    pub connected: AtomicUsize,
    /// Handshakes completed since the start.
    pub handshakes: AtomicU64,
    /// Attempts the hub refused or closed during the handshake.
    pub failed_attempts: AtomicU64,
    /// Attempts that got no answer within the agent's attempt timeout.
    pub timed_out_attempts: AtomicU64,
    /// Requests from the hub answered.
    pub answered: AtomicU64,
    /// Connections that ended by a stateless reset (the hub restarted and said so).
    pub ended_by_reset: AtomicU64,
    /// Connections that ended by sitting out their idle timeout.
    pub ended_by_timeout: AtomicU64,
    /// The agents whose connection ended so.
    pub timed_out_agents: Mutex<Vec<usize>>,
    /// Each completed handshake: the agent's index, when (since `epoch`, the storm's
    /// timeline) and how long its attempt took.
    pub handshake_durations: Mutex<Vec<(usize, Duration, Duration)>>,
    /// Set to stop every agent.
    pub stop: AtomicBool,
}

/// Start one task per identity on `rt`, each keeping its connection to `hub` up, with the
/// idle timeout of an agent with one hub address unless `idle_secs` sets another.
pub fn start(
    rt: &tokio::runtime::Runtime,
    identities: Vec<Identity>,
    hub: SocketAddr,
    idle_secs: Option<u64>,
    epoch: Instant,
) -> Result<Arc<Fleet>, String> {
    let fleet = Arc::new(Fleet::default());
    let _guard = rt.enter();
    // The agent's own transport limits, from its default configuration.
    let defaults = poros_config::AgentConfig::new(code(0), hub);
    let idle = idle_secs.map_or(defaults.hub_idle_timeout(1), Duration::from_secs);
    let limits = Limits::agent(idle);
    let mut endpoint = None;
    for (i, id) in identities.into_iter().enumerate() {
        if i % AGENTS_PER_SOCKET == 0 {
            endpoint = Some(
                poros_transport::client_endpoint(id.tls.clone(), &limits, hub.is_ipv6())
                    .map_err(|e| format!("client endpoint: {e}"))?,
            );
        }
        let ep = endpoint.clone().expect("an endpoint");
        let config = poros_transport::quic_client_config(id.tls, &limits)
            .map_err(|e| format!("{}: {e}", id.agency))?;
        let (fleet, name) = (fleet.clone(), defaults.hub_server_name.clone());
        rt.spawn(run_agent(i, ep, config, hub, name, fleet, epoch));
    }
    Ok(fleet)
}

fn random_byte() -> u8 {
    let mut b = [0u8; 1];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    b[0]
}

/// One agent's connection loop: attempt, serve until closed, pace the next attempt.
async fn run_agent(
    index: usize,
    ep: quinn::Endpoint,
    config: quinn::ClientConfig,
    hub: SocketAddr,
    server_name: String,
    fleet: Arc<Fleet>,
    epoch: Instant,
) {
    let mut backoff = Backoff::default();
    // Agents start within the first second, as a fleet brought up together would not all
    // knock in the same millisecond.
    tokio::time::sleep(Duration::from_millis(u64::from(random_byte()) * 4)).await;
    while !fleet.stop.load(Ordering::Relaxed) {
        let began = Instant::now();
        let attempt = match ep.connect_with(config.clone(), hub, &server_name) {
            Ok(c) => tokio::time::timeout(Backoff::ATTEMPT_TIMEOUT, c).await,
            Err(_) => {
                fleet.failed_attempts.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(backoff.failed(random_byte())).await;
                continue;
            }
        };
        let conn = match attempt {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                fleet.failed_attempts.fetch_add(1, Ordering::Relaxed);
                let wait = if poros_transport::refused_by_peer(&e) {
                    backoff.refused(random_byte())
                } else {
                    backoff.failed(random_byte())
                };
                tokio::time::sleep(wait).await;
                continue;
            }
            Err(_) => {
                fleet.timed_out_attempts.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(backoff.failed(random_byte())).await;
                continue;
            }
        };
        fleet.handshakes.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut t) = fleet.handshake_durations.lock() {
            t.push((index, epoch.elapsed(), began.elapsed()));
        }
        fleet.connected.fetch_add(1, Ordering::Relaxed);
        let since = Instant::now();
        serve(index, &conn, &fleet).await;
        fleet.connected.fetch_sub(1, Ordering::Relaxed);
        let wait = if since.elapsed() >= Backoff::SERVED_AFTER {
            backoff.served(random_byte())
        } else {
            backoff.failed(random_byte())
        };
        tokio::time::sleep(wait).await;
    }
}

/// Answer the hub's requests until the connection closes (or the benchmark stops).
async fn serve(index: usize, conn: &quinn::Connection, fleet: &Arc<Fleet>) {
    loop {
        if fleet.stop.load(Ordering::Relaxed) {
            conn.close(0u32.into(), b"benchmark over");
            return;
        }
        let (mut send, mut recv) = match conn.accept_bi().await {
            Ok(s) => s,
            Err(quinn::ConnectionError::Reset) => {
                fleet.ended_by_reset.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(quinn::ConnectionError::TimedOut) => {
                fleet.ended_by_timeout.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut v) = fleet.timed_out_agents.lock() {
                    v.push(index);
                }
                return;
            }
            Err(_) => return,
        };
        let fleet = fleet.clone();
        tokio::spawn(async move {
            let reply = match read_frame(&mut recv).await {
                Ok(Frame::CrlUpdate { .. } | Frame::Ping | Frame::Resync { .. }) => Frame::Ack {
                    doc_id: DocumentId::from_bytes([0; 16]),
                },
                Ok(_) => Frame::Refused(Refusal {
                    code: RefusalCode::Malformed,
                    message: "a simulated agent takes no documents".into(),
                }),
                Err(_) => return,
            };
            let _ = recv.stop(0u32.into());
            if write_frame(&mut send, &reply).await.is_ok() {
                fleet.answered.fetch_add(1, Ordering::Relaxed);
            }
            let _ = send.finish();
        });
    }
}
