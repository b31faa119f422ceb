//! The enrolment endpoint cannot be starved: idle connections are closed at the step deadline,
//! each source address gets a few connections at most, processing slots are held only while a
//! request is processed, and an agent is told when the service is busy and retries.

mod common;
use common::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Step deadline configured for these tests.
const STEP_SECS: u64 = 2;
/// The enrolment endpoint's close code for a connection that sent no request in time.
const IDLE_CLOSE: u32 = 0x30;
/// An agency that enrols by token in these tests.
const N: &str = "000.00.00.H09";

fn net_with_short_steps() -> Net {
    let mut net = Net::new();
    net.set_hub_config("step_timeout_secs", &STEP_SECS.to_string());
    net.set_hub_config("max_per_source", "4");
    net.start_hub();
    net
}

/// `n` connections that complete the handshake with the enrolment endpoint from `source`
/// and then say nothing (keep-alives keep them open); how many were established and refused.
async fn idle_connections(
    token: &str,
    source: &str,
    n: usize,
) -> (Vec<quinn::Connection>, usize, quinn::Endpoint) {
    let token = poros_protocol::EnrollToken::decode(token).unwrap();
    let tls = poros_certs::enroll_client_config(token.ca_pin).unwrap();
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut cc = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(Duration::from_millis(300)));
    cc.transport_config(Arc::new(transport));
    let mut ep = quinn::Endpoint::client(format!("{source}:0").parse().unwrap()).unwrap();
    ep.set_default_client_config(cc);
    let addr: std::net::SocketAddr = token.hub.parse().unwrap();
    let attempts: Vec<_> = (0..n)
        .map(|_| {
            let c = ep.connect(addr, &token.server_name).unwrap();
            tokio::time::timeout(Duration::from_secs(10), c)
        })
        .collect();
    let mut open = Vec::new();
    let mut refused = 0;
    for a in attempts {
        match a.await {
            Ok(Ok(c)) => open.push(c),
            Ok(Err(_)) => refused += 1,
            Err(_) => panic!("an enrolment handshake neither completed nor was refused"),
        }
    }
    (open, refused, ep)
}

/// 40 idle connections from one address do not block a real enrolment from another, get at
/// most the per-source allowance, and are closed by the hub at the step deadline.
#[test]
fn idle_connections_from_one_host_cannot_starve_enrolment() {
    let mut net = net_with_short_steps();
    let token = net.issue_token(N);
    let rt = rt();
    let (open, refused, _ep) = rt.block_on(idle_connections(&token, "127.0.0.2", 40));
    assert!(open.len() <= 4, "{} idle connections admitted", open.len());
    assert_eq!(open.len() + refused, 40);

    // A real agency enrols at once from another address while those are held open.
    let t0 = Instant::now();
    let out = net.enroll_dir(&net.agent_dir(N), &token);
    assert_ok(&out, "poros-agent enroll beside 40 idle connections");
    assert!(
        t0.elapsed() < Duration::from_secs(STEP_SECS),
        "enrolment waited {:?}",
        t0.elapsed()
    );
    net.start_agent(N);
    wait_until("N connected", DEADLINE, || {
        net.api_get(N, "/v1/health")
            .is_some_and(|h| h["connected"] == true)
    });

    // The hub closes the idle ones at the step deadline, naming why.
    rt.block_on(async {
        for c in &open {
            let why = tokio::time::timeout(Duration::from_secs(STEP_SECS * 5), c.closed())
                .await
                .expect("an idle enrolment connection was kept open");
            match why {
                quinn::ConnectionError::ApplicationClosed(a) => {
                    assert_eq!(a.error_code, quinn::VarInt::from_u32(IDLE_CLOSE), "{a}");
                    assert!(String::from_utf8_lossy(&a.reason).contains("no enrolment request"));
                }
                other => panic!("idle connection closed by {other}"),
            }
        }
    });
    assert!(net.metric("poros_refusals_total{reason=\"enrol_per_source_limit\"}") >= 36);
    assert!(net.metric("poros_refusals_total{reason=\"enrol_idle\"}") >= open.len() as u64);
}

/// An agent whose address has used up its allowance is told that the enrolment service is
/// busy (not that the hub failed to authenticate), retries, and enrols once a slot frees.
#[test]
fn busy_enrolment_service_is_reported_and_retried() {
    let mut net = net_with_short_steps();
    let token = net.issue_token(N);
    let rt = rt();
    let (open, _, _ep) = rt.block_on(idle_connections(&token, "127.0.0.1", 4));
    assert_eq!(open.len(), 4);
    let out = net.enroll_dir(&net.agent_dir(N), &token);
    assert_ok(
        &out,
        "poros-agent enroll while its address is at its allowance",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("enrolment service is busy"), "{err}");
    assert!(!err.contains("cannot authenticate"), "{err}");
    net.start_agent(N);
    wait_until("N connected", DEADLINE, || {
        net.api_get(N, "/v1/health")
            .is_some_and(|h| h["connected"] == true)
    });
    drop(open);
}
