//! Node lifecycle end to end on a running hub: token enrolment, token refusals, suspension
//! and resumption, revocation of a connected sending node, certificate renewal with a short
//! lifetime, and the admin API's credential check.

mod common;
use common::*;
use poros_protocol::{AgencyId, EnrollToken};
use serde_json::Value;
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An agency enrolled by token in these tests.
const N: &str = "000.00.00.H09";
/// The agency revoked in the revocation test.
const R: &str = "000.00.00.G05";

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn assert_failed(o: &std::process::Output, what: &str, needle: &str) {
    assert!(
        !o.status.success(),
        "{what} unexpectedly succeeded: stdout: {} stderr: {}",
        String::from_utf8_lossy(&o.stdout),
        stderr(o)
    );
    assert!(
        stderr(o).contains(needle),
        "{what}: stderr does not mention {needle:?}: {}",
        stderr(o)
    );
}

/// The registry as the admin sees it, without fields that change on their own
/// (connection status, last seen, expiry warnings).
fn registry(net: &Net) -> Vec<(String, String, String, String, i64)> {
    net.node_list()
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["agency"].as_str().unwrap().to_string(),
                n["state"].as_str().unwrap().to_string(),
                n["tls_serial"].as_str().unwrap().to_string(),
                n["sign_serial"].as_str().unwrap().to_string(),
                n["tls_not_after"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn audit_records<'a>(audit: &'a Value, action: &str, agency: &str) -> Vec<&'a Value> {
    audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == action && a["agency"] == agency)
        .collect()
}

fn count_action(audit: &Value, action: &str) -> usize {
    audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == action)
        .count()
}

fn connected(net: &Net, code: &str) -> bool {
    net.node_entry(code)
        .is_some_and(|n| n["connected"] == Value::Bool(true))
}

fn fresh_dir(net: &Net, name: &str) -> std::path::PathBuf {
    net.root.join("enrol-attempts").join(name)
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

// ---------------------------------------------------------------------------------------------

/// A new agency enrols by token while the hub runs, and exchanges with an agency registered
/// by the offline flow in both directions, without any hub restart.
#[test]
fn token_enrolment_then_exchange_without_restart() {
    let mut net = Net::running(&[A]);

    net.enroll_agent(N);
    let d = net.agent_dir(N);
    for k in ["keys/tls.key", "keys/sign.key"] {
        assert_eq!(mode(&d.join(k)), 0o600, "{k} of the enrolled agent");
    }
    // The agent was told the hub's exchange address by the hub itself.
    let toml = std::fs::read_to_string(d.join("agent.toml")).unwrap();
    assert!(
        toml.contains(&format!("hub = \"127.0.0.1:{}\"", net.quic_port)),
        "agent.toml: {toml}"
    );
    net.start_agent(N);

    wait_until("N to be listed active and connected", DEADLINE, || {
        net.node_entry(N)
            .is_some_and(|n| n["state"] == "active" && n["connected"] == true)
    });
    let n = net.node_entry(N).unwrap();
    assert!(!n["tls_serial"].as_str().unwrap().is_empty(), "{n}");
    assert_eq!(n["expiring_soon"], false, "{n}");

    let audit = net.audit();
    assert_eq!(audit_records(&audit, "node add", N).len(), 1, "{audit:#}");
    let enrolled = audit_records(&audit, "enrolled", N);
    assert_eq!(enrolled.len(), 1, "{audit:#}");
    assert!(
        enrolled[0]["actor"]
            .as_str()
            .unwrap()
            .starts_with("enrolment@"),
        "{audit:#}"
    );
    assert!(
        enrolled[0]["detail"]
            .as_str()
            .unwrap()
            .contains(n["tls_serial"].as_str().unwrap()),
        "enrolled record does not name the issued serial: {audit:#}"
    );

    let to_n = pseudo_random(5_000, 11);
    let id1 = net.send(A, &[N], "to the new agency", &to_n);
    net.wait_state(A, &id1, "delivered");
    assert_eq!(net.fetch(N, &id1), to_n);

    let to_a = pseudo_random(100 * 1024, 12);
    let id2 = net.send(N, &[A], "from the new agency", &to_a);
    net.wait_state(N, &id2, "delivered");
    assert_eq!(net.fetch(A, &id2), to_a);
    let receipts = net.api_list(N, "/v1/receipts");
    assert!(
        receipts
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == id2.as_str()
                && r["recipient"] == A
                && r["signature_verified"] == true),
        "{receipts}"
    );
}

// ---------------------------------------------------------------------------------------------
// Token refusals: each with its own error, the registry untouched.

/// Runs `attempt` and checks the registry did not change and, if `audit_needle` is given,
/// that exactly one new "enrol refused" record mentioning it was written.
fn refused_without_change(
    net: &Net,
    attempt: impl FnOnce() -> std::process::Output,
    what: &str,
    stderr_needle: &str,
    audit_needle: Option<&str>,
) {
    let before = registry(net);
    let refused_before = count_action(&net.audit(), "enrol refused");
    let out = attempt();
    assert_failed(&out, what, stderr_needle);
    assert_eq!(registry(net), before, "{what} changed the registry");
    let audit = net.audit();
    let refused: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "enrol refused")
        .collect();
    match audit_needle {
        Some(needle) => {
            assert_eq!(
                refused.len(),
                refused_before + 1,
                "{what}: expected one new enrol-refused record: {audit:#}"
            );
            let last = refused.last().unwrap();
            assert!(
                last["detail"].as_str().unwrap().contains(needle),
                "{what}: audit detail does not mention {needle:?}: {last}"
            );
        }
        None => assert_eq!(
            refused.len(),
            refused_before,
            "{what} should not have reached the hub: {audit:#}"
        ),
    }
}

#[test]
fn token_reuse_is_refused() {
    let mut net = Net::new();
    net.start_hub();
    let token = net.issue_token(N);
    let first = fresh_dir(&net, "first");
    assert_ok(&net.enroll_dir(&first, &token), "first enrolment");
    assert!(first.join("certs/tls.crt").exists());

    let second = fresh_dir(&net, "second");
    refused_without_change(
        &net,
        || net.enroll_dir(&second, &token),
        "enrolment with a used token",
        "already used",
        Some("already used"),
    );
    assert!(!second.join("certs/tls.crt").exists());
    assert!(!second.join("agent.toml").exists());
}

#[test]
fn expired_token_is_refused() {
    let mut net = Net::new();
    net.set_hub_config("token_ttl_secs", "1");
    net.start_hub();
    let token = net.issue_token(N);
    let issued = Instant::now();
    // Let the token's lifetime pass (time passing, not synchronisation with any process).
    while issued.elapsed() < Duration::from_millis(1500) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let dir = fresh_dir(&net, "late");
    refused_without_change(
        &net,
        || net.enroll_dir(&dir, &token),
        "enrolment with an expired token",
        "expired",
        Some("expired"),
    );
    assert_eq!(net.node_entry(N).unwrap()["state"], "pending");
}

#[test]
fn tampered_tokens_are_refused() {
    let mut net = Net::new();
    net.start_hub();
    let token = net.issue_token(N);
    let decoded = EnrollToken::decode(&token).unwrap();

    // Another secret (last hex digit changed): unknown to the hub.
    let mut t = decoded.clone();
    let last = t.secret.pop().unwrap();
    t.secret.push(if last == '0' { '1' } else { '0' });
    let dir = fresh_dir(&net, "secret");
    refused_without_change(
        &net,
        || net.enroll_dir(&dir, &t.encode()),
        "enrolment with an altered secret",
        "not known to this hub",
        Some("not known"),
    );

    // Same secret, another agency: the hub knows whom it issued the token for.
    let mut t = decoded.clone();
    t.agency = AgencyId::parse(D).unwrap();
    let dir = fresh_dir(&net, "agency");
    refused_without_change(
        &net,
        || net.enroll_dir(&dir, &t.encode()),
        "enrolment with an altered agency",
        &format!("issued for {N}"),
        Some(&format!("issued for {N}")),
    );
    assert!(net.node_entry(D).is_none(), "D must not be registered");

    // A damaged token string is refused locally, before anything is generated or sent.
    let mut chars: Vec<char> = token.chars().collect();
    let mid = poros_protocol::token::TOKEN_PREFIX.len() + 7;
    chars[mid] = 'z';
    let damaged: String = chars.into_iter().collect();
    let dir = fresh_dir(&net, "damaged");
    refused_without_change(
        &net,
        || net.enroll_dir(&dir, &damaged),
        "enrolment with a damaged token",
        "damaged or altered",
        None,
    );
    assert!(
        !dir.join("keys").exists(),
        "keys generated for a damaged token"
    );
    // A truncated token too.
    let cut = &token[..token.len() - 6];
    let dir = fresh_dir(&net, "cut");
    refused_without_change(
        &net,
        || net.enroll_dir(&dir, cut),
        "enrolment with a truncated token",
        "damaged or altered",
        None,
    );

    // After all that, the genuine token still works.
    let ok = fresh_dir(&net, "genuine");
    assert_ok(
        &net.enroll_dir(&ok, &token),
        "enrolment with the genuine token",
    );
    assert_eq!(net.node_entry(N).unwrap()["state"], "active");
}

#[test]
fn wrong_ca_pin_is_refused_at_the_handshake() {
    let mut net = Net::new();
    net.start_hub();
    let token = net.issue_token(N);
    let mut t = EnrollToken::decode(&token).unwrap();
    t.ca_pin = [0; 32];
    let dir = fresh_dir(&net, "pin");
    refused_without_change(
        &net,
        || net.enroll_dir(&dir, &t.encode()),
        "enrolment with a wrong CA pin",
        "cannot authenticate the hub",
        None,
    );
    let o = net.enroll_dir(&fresh_dir(&net, "pin2"), &t.encode());
    assert!(
        stderr(&o).contains("network CA pinned in the enrolment token"),
        "the error should say why the hub is not trusted: {}",
        stderr(&o)
    );
    assert!(!dir.join("certs/tls.crt").exists());
    // The token was not consumed by the failed attempts.
    assert_ok(
        &net.enroll_dir(&fresh_dir(&net, "genuine"), &token),
        "enrolment with the genuine token",
    );
}

#[test]
fn adding_an_active_agency_is_refused() {
    let mut net = Net::new();
    net.start_hub();
    net.add_agent(A);
    net.enroll_agent(N);
    for code in [A, N] {
        let before = registry(&net);
        let o = net.try_issue_token(code);
        assert_failed(
            &o,
            "node add of an active agency",
            "already registered and active",
        );
        assert!(o.stdout.is_empty(), "a token was printed: {:?}", o.stdout);
        assert_eq!(
            registry(&net),
            before,
            "node add {code} changed the registry"
        );
    }
    assert_eq!(
        audit_records(&net.audit(), "node add", A).len(),
        1,
        "only the original registration is recorded"
    );
}

// ---------------------------------------------------------------------------------------------

/// A suspended node is disconnected; documents for it are held and flow after resumption.
#[test]
fn suspend_holds_documents_and_resume_delivers_them() {
    let net = Net::running(&[A, B]);
    wait_until("B listed as connected", DEADLINE, || connected(&net, B));

    assert_ok(&net.node_action("suspend", B), "node suspend");
    wait_until("B's connection to close", Duration::from_secs(10), || {
        !connected(&net, B)
    });
    assert_eq!(net.node_entry(B).unwrap()["state"], "suspended");
    wait_until("B's agent to see it is disconnected", DEADLINE, || {
        net.api_get(B, "/v1/health")
            .is_some_and(|h| h["connected"] == false)
    });

    let body = b"held while B is suspended".to_vec();
    let id = net.send(A, &[B], "Held for a suspended agency", &body);
    net.wait_state(A, &id, "accepted");
    let show = net.node_show(B);
    assert!(
        show["pending_deliveries"].as_u64().unwrap_or(0) >= 1,
        "{show:#}"
    );
    assert_eq!(show["connected"], false, "{show:#}");
    assert!(
        !net.inbox_counts(B).unwrap().contains_key(&id),
        "a suspended agency received a document"
    );
    // The suspended agent keeps trying and keeps being turned away.
    assert!(!connected(&net, B));

    assert_ok(&net.node_action("resume", B), "node resume");
    // The agent reconnects with a backoff of up to ~10 s.
    net.wait_state(A, &id, "delivered");
    assert_eq!(net.fetch(B, &id), body);
    let show = net.node_show(B);
    assert_eq!(show["state"], "active");
    assert_eq!(show["pending_deliveries"], 0, "{show:#}");
    let actions: Vec<&str> = show["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["node add", "suspend", "resume"], "{show:#}");

    // Suspending a suspended or resuming an active agency is refused.
    let o = net.node_action("resume", B);
    assert_failed(&o, "resume of an active agency", "cannot resume");
}

// ---------------------------------------------------------------------------------------------

/// Revoking a connected node that is sending: its connection goes at once, its handshakes
/// fail, receivers reject what it signed, and everyone else keeps exchanging.
#[test]
fn revoke_connected_sending_node() {
    let mut net = Net::new();
    for c in [A, B, R] {
        net.add_agent(c);
    }
    net.start_hub();
    for c in [A, B, R] {
        net.start_agent(c);
    }
    wait_until("R listed as connected", DEADLINE, || connected(&net, R));
    let crl = |code: &str| std::fs::read(net.agent_dir(code).join("certs/signing.crl")).unwrap();
    let (crl_a, crl_b) = (crl(A), crl(B));

    // R keeps sending to A from another thread.
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let sender = {
        let (h, stop, acked) = (net.handle(R), stop.clone(), acked.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let body = format!("R document {i}").into_bytes();
                if let Ok(id) = h.try_send(&[A], &format!("stream {i}"), &body) {
                    acked.lock().unwrap().push((id, Instant::now()));
                }
                std::thread::sleep(Duration::from_millis(20)); // pacing, not synchronisation
            }
        })
    };
    wait_until("some of R's stream to reach A", DEADLINE, || {
        let ids: Vec<String> = acked.lock().unwrap().iter().map(|x| x.0.clone()).collect();
        ids.iter()
            .filter(|id| net.states(R, id).get(A).map(String::as_str) == Some("delivered"))
            .count()
            >= 3
    });

    let revoked_before = net.metric("poros_handshake_failures_total{reason=\"revoked\"}");
    let t0 = Instant::now();
    let o = net.node_action("revoke", R);
    let revoked_at = Instant::now();
    let revoked_ms = now_ms();
    assert_ok(&o, "node revoke");
    wait_until("R's connection to close", Duration::from_secs(5), || {
        !connected(&net, R)
    });
    let gone = t0.elapsed();
    eprintln!(
        "revocation: CLI took {:?}, connection gone after {gone:?}",
        revoked_at - t0
    );
    assert!(
        gone < Duration::from_millis(1500),
        "R still connected {gone:?} after the revocation"
    );

    // Its next handshakes fail because its certificate is revoked.
    wait_until(
        "a handshake failure for a revoked certificate",
        Duration::from_secs(30),
        || net.metric("poros_handshake_failures_total{reason=\"revoked\"}") > revoked_before,
    );
    assert!(!connected(&net, R));
    let show = net.node_show(R);
    assert_eq!(show["state"], "revoked", "{show:#}");
    assert_eq!(show["connected"], false, "{show:#}");
    assert!(
        show["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["action"] == "revoke"),
        "{show:#}"
    );

    // Nothing else stalls: A <-> B while R is still trying to reconnect.
    let ab = net.send(A, &[B], "after the revocation", b"A to B");
    let ba = net.send(B, &[A], "after the revocation", b"B to A");
    net.wait_state(A, &ab, "delivered");
    net.wait_state(B, &ba, "delivered");

    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 3, "R sent only {}", acked.len());

    // Documents R's agent stored after the revocation never got through the hub.
    let mut after = 0;
    for (id, at) in &acked {
        if *at > revoked_at {
            after += 1;
            let st = net.states(R, id);
            assert_eq!(
                st.get(A).map(String::as_str),
                Some("pending"),
                "{id}, stored by R after its revocation, left R: {st:?}"
            );
        }
    }
    eprintln!(
        "R's agent acknowledged {} documents, {after} after the revocation",
        acked.len()
    );
    // Whatever of R's reached A's inbox arrived before A learnt of the revocation; what A
    // got afterwards is quarantined as signed by a revoked certificate.
    let inbox = net.api_list(A, "/v1/inbox");
    for d in inbox
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["sender"] == R)
    {
        let at = d["received_ms"].as_u64().unwrap();
        assert!(
            at <= revoked_ms + 1000,
            "A accepted a document from R {} ms after its revocation: {d}",
            at as i64 - revoked_ms as i64
        );
    }
    let q = net.api_list(A, "/v1/quarantine");
    for d in q.as_array().unwrap().iter().filter(|d| d["sender"] == R) {
        assert!(
            d["reason"].as_str().unwrap_or("").contains("revoked"),
            "quarantined for another reason: {d}"
        );
    }

    // Connected agents were sent the new signing CRL.
    for (code, crl) in [(A, &crl_a), (B, &crl_b)] {
        wait_until(
            &format!("{code} to store the pushed signing CRL"),
            DEADLINE,
            || std::fs::read(net.agent_dir(code).join("certs/signing.crl")).unwrap() != *crl,
        );
    }
    assert!(!connected(&net, R));
    // R's agent is still alive, disconnected.
    assert_eq!(net.api(R, "/v1/health")["connected"], false);
}

/// A document signed by R and held at the hub for C, which was offline during R's
/// revocation, is rejected by C when C comes online afterwards.
#[test]
fn held_document_of_revoked_sender_is_rejected_by_late_recipient() {
    let mut net = Net::new();
    for c in [A, C, R] {
        net.add_agent(c);
    }
    net.start_hub();
    net.start_agent(A);
    net.start_agent(R);
    let held: Vec<String> = (0..5)
        .map(|i| {
            let id = net.send(
                R,
                &[C],
                &format!("Held for C {i}"),
                b"signed by R before its revocation",
            );
            net.wait_state(R, &id, "accepted");
            id
        })
        .collect();
    let crl_c = std::fs::read(net.agent_dir(C).join("certs/signing.crl")).unwrap();
    assert_ok(&net.node_action("revoke", R), "node revoke");

    // C comes online after the revocation: the held documents signed by R are rejected.
    net.start_agent(C);
    wait_until(
        "C to store the signing CRL pushed at connection",
        DEADLINE,
        || std::fs::read(net.agent_dir(C).join("certs/signing.crl")).unwrap() != crl_c,
    );
    wait_until("C to answer every held document", DEADLINE, || {
        let (Some(inbox), Some(q)) = (net.inbox_counts(C), net.api_list_get(C, "/v1/quarantine"))
        else {
            return false;
        };
        held.iter().all(|id| {
            inbox.contains_key(id) || q.as_array().unwrap().iter().any(|d| d["id"] == id.as_str())
        })
    });
    let inbox = net.inbox_counts(C).unwrap();
    let accepted: Vec<&String> = held.iter().filter(|id| inbox.contains_key(*id)).collect();
    assert!(
        accepted.is_empty(),
        "C accepted {} of {} documents signed by R after R's revocation: {accepted:?}",
        accepted.len(),
        held.len()
    );
    let q = net.api_list(C, "/v1/quarantine");
    for id in &held {
        let entry = q
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == id.as_str())
            .unwrap();
        assert!(
            entry["reason"].as_str().unwrap().contains("revoked"),
            "{entry}"
        );
        wait_until("the hub to record C's rejection", DEADLINE, || {
            let doc = net.admin_get(&format!("/admin/v1/documents/{id}"));
            doc["deliveries"][0]["state"] == "rejected"
        });
        let doc = net.admin_get(&format!("/admin/v1/documents/{id}"));
        assert!(
            doc["deliveries"][0]["reason"]
                .as_str()
                .unwrap_or("")
                .contains("revoked"),
            "{doc}"
        );
    }
    // And C exchanges normally with the others.
    let ca = net.send(C, &[A], "C is fine", b"C to A");
    net.wait_state(C, &ca, "delivered");
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

// ---------------------------------------------------------------------------------------------

/// With 12 s certificates, agents renew over their connections while documents keep flowing.
#[test]
fn renewal_with_short_lifetime_keeps_exchanging() {
    let mut net = Net::new();
    net.set_hub_config("cert_lifetime_secs", "12");
    net.start_hub();
    net.add_agent(A);
    net.enroll_agent(N);
    net.start_agent(A);
    net.start_agent(N);

    let serials = |net: &Net| -> (String, String) {
        let a = net.node_show(A)["tls_serial"].as_str().unwrap().to_string();
        let n = net.node_show(N)["tls_serial"].as_str().unwrap().to_string();
        (a, n)
    };
    let mut seen_a: BTreeSet<String> = BTreeSet::new();
    let mut seen_n: BTreeSet<String> = BTreeSet::new();
    let (a0, n0) = serials(&net);
    seen_a.insert(a0);
    seen_n.insert(n0);

    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < Duration::from_secs(30) {
        sent += 1;
        let body = pseudo_random(2_000 + sent as usize, sent);
        let (from, to) = if sent.is_multiple_of(2) {
            (A, N)
        } else {
            (N, A)
        };
        let id = net.send(from, &[to], &format!("renewal round {sent}"), &body);
        net.wait_state(from, &id, "delivered");
        assert_eq!(net.fetch(to, &id), body, "document {sent}");
        let (a, n) = serials(&net);
        seen_a.insert(a);
        seen_n.insert(n);
    }
    let renewed = |code: &str| net.log_text(code).matches("certificates renewed").count();
    eprintln!(
        "{sent} documents in {:?}; renewals: A {} (serials {}), N {} (serials {})",
        start.elapsed(),
        renewed(A),
        seen_a.len(),
        renewed(N),
        seen_n.len()
    );
    for code in [A, N] {
        assert!(
            renewed(code) >= 2,
            "{code} renewed {} times in 30 s",
            renewed(code)
        );
    }
    assert!(
        seen_a.len() >= 3 && seen_n.len() >= 3,
        "{seen_a:?} {seen_n:?}"
    );
    let audit = net.audit();
    for code in [A, N] {
        assert!(
            audit_records(&audit, "renewed", code).len() >= 2,
            "{code}: {audit:#}"
        );
    }
    // Every document sent is delivered (checked one by one above) and the outboxes agree.
    for code in [A, N] {
        let out = net.api_list(code, "/v1/documents");
        for d in out.as_array().unwrap() {
            let st = recipient_states(d);
            assert!(st.values().all(|s| s == "delivered"), "{code}: {d}");
        }
    }
    let list = net.node_list();
    for n in list.as_array().unwrap() {
        assert_eq!(n["expiring_soon"], false, "{list:#}");
        assert_eq!(n["state"], "active", "{list:#}");
    }
}

// ---------------------------------------------------------------------------------------------

/// The admin API requires the admin credential; the CLI says clearly when it is wrong and
/// when the hub is not running.
#[test]
fn admin_api_requires_the_credential() {
    let mut net = Net::new();
    net.start_hub();
    net.add_agent(A);
    let base = format!("http://127.0.0.1:{}", net.ops_port);
    let http = net.http();
    let wrong = "Bearer not-the-admin-token";

    for path in [
        "/admin/v1/nodes",
        &format!("/admin/v1/nodes/{A}"),
        "/admin/v1/audit",
        "/admin/v1/stats",
    ] {
        let r = http.get(format!("{base}{path}")).send().unwrap();
        assert_eq!(r.status(), 401, "GET {path} without credential");
        let r = http
            .get(format!("{base}{path}"))
            .header("authorization", wrong)
            .send()
            .unwrap();
        assert_eq!(r.status(), 401, "GET {path} with a wrong credential");
        let v: Value = r.json().unwrap();
        assert!(
            v["error"].as_str().unwrap().contains("admin credential"),
            "{v}"
        );
    }
    let before = registry(&net);
    let add = serde_json::json!({"agency": N, "name": "intruder"});
    let r = http
        .post(format!("{base}/admin/v1/nodes"))
        .json(&add)
        .send()
        .unwrap();
    assert_eq!(r.status(), 401, "POST /admin/v1/nodes without credential");
    let r = http
        .post(format!("{base}/admin/v1/nodes"))
        .header("authorization", wrong)
        .json(&add)
        .send()
        .unwrap();
    assert_eq!(
        r.status(),
        401,
        "POST /admin/v1/nodes with a wrong credential"
    );
    for action in ["suspend", "revoke"] {
        let r = http
            .post(format!("{base}/admin/v1/nodes/{A}/{action}"))
            .header("authorization", wrong)
            .send()
            .unwrap();
        assert_eq!(r.status(), 401, "POST {action} with a wrong credential");
    }
    // The bare token without the Bearer scheme is not accepted either.
    let r = http
        .get(format!("{base}/admin/v1/nodes"))
        .header("authorization", net.admin_token())
        .send()
        .unwrap();
    assert_eq!(r.status(), 401, "token without the Bearer scheme");
    assert_eq!(
        registry(&net),
        before,
        "refused requests changed the registry"
    );
    assert_eq!(net.node_entry(A).unwrap()["state"], "active");

    // The CLI with a wrong admin.token.
    let tok_path = net.hub_dir.join("admin.token");
    let good = std::fs::read(&tok_path).unwrap();
    std::fs::write(&tok_path, "0123456789abcdef\n").unwrap();
    let o = net.hub_cli(&["node", "list", "--dir", &s(&net.hub_dir)]);
    let o2 = net.node_action("suspend", A);
    std::fs::write(&tok_path, &good).unwrap();
    assert_failed(&o, "node list with a wrong admin.token", "admin credential");
    assert_failed(
        &o2,
        "node suspend with a wrong admin.token",
        "admin credential",
    );
    assert_eq!(net.node_entry(A).unwrap()["state"], "active");

    // The CLI against a hub that was stopped cleanly, and one that was killed.
    net.stop_hub();
    let o = net.hub_cli(&["node", "list", "--dir", &s(&net.hub_dir)]);
    assert_failed(&o, "node list with the hub stopped", "is not running");
    assert_failed(
        &net.try_issue_token(N),
        "node add with the hub stopped",
        "is not running",
    );
    net.start_hub();
    net.kill_hub();
    assert!(
        net.hub_dir.join("run/ops.addr").exists(),
        "expected a stale ops.addr after SIGKILL"
    );
    let o = net.node_action("revoke", A);
    assert_failed(&o, "node revoke with the hub killed", "is not running");
    net.start_hub();
    assert_eq!(net.node_entry(A).unwrap()["state"], "active");
}

/// An unauthenticated POST is refused as unauthenticated whatever its body.
#[test]
fn unauthenticated_post_with_bad_body_is_401() {
    let mut net = Net::new();
    net.start_hub();
    let url = format!("http://127.0.0.1:{}/admin/v1/nodes", net.ops_port);
    let r = net.http().post(&url).send().unwrap();
    assert_eq!(r.status(), 401, "POST without credential and without body");
    let r = net
        .http()
        .post(&url)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .unwrap();
    assert_eq!(
        r.status(),
        401,
        "POST without credential with a malformed body"
    );
}
