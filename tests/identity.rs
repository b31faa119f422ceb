//! Identity is the certificate the hub holds now: a renewed node's old certificates and
//! certificates the hub never issued are refused, superseded signers stay valid only for what
//! they signed before, and two live connections claiming one agency are a recorded conflict.

mod common;
use common::raw::*;
use common::*;
use poros_protocol::{Frame, RefusalCode, SignedEnvelope};
use std::time::Duration;
use time::OffsetDateTime;

/// The hub's QUIC close code for a certificate that is not the agency's current one.
const NOT_CURRENT_CERT: u32 = 0x15;
/// The hub's QUIC close code for a second live connection of one agency.
const IDENTITY_CONFLICT: u32 = 0x16;

fn read(p: std::path::PathBuf) -> String {
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Connect with `tls`, then wait for the hub to close the connection; the close (or the
/// handshake failure) as text and, for an application close, its code.
fn refused_connection(net: &Net, tls: rustls::ClientConfig) -> (Option<u32>, String) {
    let addr = net.quic_addr();
    rt().block_on(async {
        let conn = match connect(tls, addr).await {
            Ok(c) => c,
            Err(e) => return (None, e),
        };
        let why = tokio::time::timeout(Duration::from_secs(20), conn.closed())
            .await
            .expect("the hub did not close the connection");
        match &why {
            quinn::ConnectionError::ApplicationClosed(c) => {
                (Some(c.error_code.into_inner() as u32), why.to_string())
            }
            _ => (None, why.to_string()),
        }
    })
}

/// A certificate made with the deployment's own network CA key for a registered agency, but
/// never issued by the hub, is refused; the agency's real connection is untouched.
#[test]
fn certificate_the_hub_never_issued_is_refused() {
    let net = Net::running(&[A, B]);
    let now = OffsetDateTime::now_utc();
    let day = time::Duration::days(1);
    let tls = forged_tls(&net, &network_ca(&net), A, now - day, now + day * 10);
    let (code, text) = refused_connection(&net, tls);
    assert_eq!(code, Some(NOT_CURRENT_CERT), "{text}");
    assert!(text.contains("not the current certificate"), "{text}");
    assert!(
        net.metrics()
            .contains("poros_refusals_total{reason=\"not_current_certificate\"} 1"),
        "{}",
        net.metrics()
    );
    // A was never displaced: mail for A reaches A.
    let id = net.send(B, &[A], "for the real A", b"real");
    net.wait_state(B, &id, "delivered");
    assert_eq!(net.fetch(A, &id), b"real");
    assert_eq!(net.node_show(A)["identity_conflicts"], 0);
}

/// After a renewal the old TLS and signing certificates are retired: the old TLS certificate
/// no longer connects, an envelope signed with the old signing key after the retirement is
/// refused, and a document signed with it before the renewal is still delivered to a
/// recipient that only comes online afterwards.
#[test]
fn renewed_nodes_old_certificates_are_retired() {
    let mut net = Net::new();
    // Renewal at two thirds of 30 s; the renewed certificate then outlives the checks below.
    net.set_hub_config("cert_lifetime_secs", "30");
    net.add_agent(A);
    net.add_agent(B);
    net.add_agent(C);
    net.start_hub();
    net.start_agent(A);
    net.start_agent(B);
    let dir = net.agent_dir(A);
    let old_tls = (
        read(dir.join("certs/tls.crt")),
        read(dir.join("keys/tls.key")),
    );
    let (old_key, old_cert) = signing_key(&dir);
    let old = net.node_show(A);
    let (old_tls_serial, old_sign_serial) = (
        old["tls_serial"].as_str().unwrap().to_string(),
        old["sign_serial"].as_str().unwrap().to_string(),
    );
    // Signed with the old key, held at the hub for C (offline) across A's renewal.
    let held = net.send(A, &[C], "held across the renewal", b"held body");
    net.wait_state(A, &held, "accepted");

    wait_until(
        "A renewed and retired its old certificates",
        DEADLINE,
        || {
            let audit = net.audit();
            audit.as_array().unwrap().iter().any(|r| {
                r["action"] == "retire superseded"
                    && r["agency"] == A
                    && r["detail"].as_str().is_some_and(|d| {
                        d.contains(&old_tls_serial) && d.contains(&old_sign_serial)
                    })
            })
        },
    );
    assert_ne!(net.node_show(A)["tls_serial"], old_tls_serial);

    // The old TLS certificate is refused (on the network CRL, or by the serial check).
    let hub_ca = read(net.hub_dir.join("pki/network-ca.crt"));
    let tls = client_tls(&hub_ca, &old_tls.0, &old_tls.1);
    let (code, text) = refused_connection(&net, tls);
    assert!(
        code == Some(NOT_CURRENT_CERT) || text.contains("revoked") || text.contains("Revoked"),
        "old TLS certificate: {code:?} {text}"
    );

    // The old signing certificate is on the signing CRL with reason "superseded": what it
    // signed before the retirement verifies, anything it signs later does not.
    let trust = poros_certs::SigningTrust::new(
        &poros_certs::pem_to_der_certs(&read(net.hub_dir.join("pki/signing-ca.crt"))).unwrap(),
        &[std::fs::read(net.hub_dir.join("pki/signing.crl")).unwrap()],
    )
    .unwrap();
    let blob =
        poros_protocol::SignedBlob::sign(b"test", b"x".to_vec(), &old_key, &old_cert).unwrap();
    let now_s = OffsetDateTime::now_utc().unix_timestamp() as u64;
    assert!(matches!(
        trust.verify(&blob, b"test", now_s),
        Err(poros_certs::VerifyError::Revoked)
    ));
    assert!(trust
        .verify_signed_at(&blob, b"test", now_s, now_s - 60)
        .is_ok());
    assert!(trust
        .verify_signed_at(&blob, b"test", now_s, now_s + 60)
        .is_err());

    // With A's current TLS certificate (A stopped, so no conflict), an envelope signed with
    // the retired signing key is refused; one signed with the current key is accepted.
    net.stop_agent(A);
    let cur_tls = agent_tls(&dir);
    let (cur_key, cur_cert) = signing_key(&dir);
    let addr = net.quic_addr();
    // A signing certificate made with the signing CA's key that the hub never issued.
    let signing_ca = poros_certs::Ca::load(
        &read(net.hub_dir.join("pki/signing-ca.crt")),
        &read(net.hub_dir.join("pki/signing-ca.key")),
    )
    .unwrap();
    let rogue = poros_certs::generate_key().unwrap();
    let agency = poros_protocol::AgencyId::parse(A).unwrap();
    let rogue_cert = signing_ca
        .issue_signing(
            &poros_certs::make_csr(&rogue, &agency).unwrap(),
            &poros_certs::SignerSubject::Agency(agency),
            OffsetDateTime::now_utc() - time::Duration::hours(1),
            OffsetDateTime::now_utc() + time::Duration::days(1),
        )
        .unwrap()
        .der;
    let rogue =
        poros_protocol::SigningKey::from_pkcs8(&poros_certs::key_pkcs8_der(&rogue)).unwrap();
    let (old_answer, rogue_answer, new_answer) = rt().block_on(async {
        let conn = connect(cur_tls, addr)
            .await
            .expect("connect with A's current cert");
        let body = b"signed after the renewal";
        let env = envelope(A, B, body, 1);
        let stale = SignedEnvelope::sign(&env, &old_key, &old_cert).unwrap();
        let a = request(&conn, &submit_bytes(&stale, body)).await;
        let env = envelope(A, B, body, 3);
        let forged = SignedEnvelope::sign(&env, &rogue, &rogue_cert).unwrap();
        let r = request(&conn, &submit_bytes(&forged, body)).await;
        let env = envelope(A, B, body, 2);
        let fresh = SignedEnvelope::sign(&env, &cur_key, &cur_cert).unwrap();
        let b = request(&conn, &submit_bytes(&fresh, body)).await;
        (a, r, b)
    });
    // Retired: on the signing CRL, so refused as revoked by the hub's clock.
    let (code, msg) = refused(&old_answer.expect("answer")).expect("a refusal");
    assert_eq!(code, RefusalCode::BadSignature, "{msg}");
    assert!(msg.contains("revoked"), "{msg}");
    // Never issued: refused by the registry's serial.
    let (code, msg) = refused(&rogue_answer.expect("answer")).expect("a refusal");
    assert_eq!(code, RefusalCode::BadSignature, "{msg}");
    assert!(
        msg.contains("not the agency's current signing certificate"),
        "{msg}"
    );
    assert!(new_answer.as_ref().is_ok_and(accepted), "{new_answer:?}");
    net.start_agent(A);

    // C comes online after the retirement and accepts the document signed before it.
    net.start_agent(C);
    net.wait_state(A, &held, "delivered");
    assert_eq!(net.fetch(C, &held), b"held body");
}

/// A second live connection presenting an agency's current certificate is an identity
/// conflict: refused, logged, counted and shown, and the agency's mail stays with the first.
#[test]
fn second_live_connection_is_an_identity_conflict() {
    let net = Net::running(&[A, B]);
    let (code, text) = refused_connection(&net, agent_tls(&net.agent_dir(A)));
    assert_eq!(code, Some(IDENTITY_CONFLICT), "{text}");
    assert!(net.metrics().contains("poros_identity_conflicts_total 1"));
    let show = net.node_show(A);
    assert_eq!(show["identity_conflicts"], 1, "{show:#}");
    assert!(show["last_conflict"]["refused"].is_string(), "{show:#}");
    assert!(net.log_text("hub").contains("identity conflict"));
    // The real agent keeps its connection and its mail.
    let id = net.send(B, &[A], "after the conflict", b"still A");
    net.wait_state(B, &id, "delivered");
    assert_eq!(net.fetch(A, &id), b"still A");
    assert!(net.api(A, "/v1/health")["connected"] == true);
}

/// A renewal whose new certificate is never used: the replaced certificate is admitted during
/// the configured overlap, then retired by the hub on its own and refused.
#[test]
fn superseded_certificate_is_refused_once_the_overlap_ends() {
    let mut net = Net::new();
    net.set_hub_config("renewal_overlap_secs", "3");
    net.set_hub_config("sweep_interval_secs", "1");
    net.add_agent(A);
    net.start_hub();
    let dir = net.agent_dir(A);
    let agency = poros_protocol::AgencyId::parse(A).unwrap();
    let csr = |k: &rcgen::KeyPair| poros_certs::make_csr(k, &agency).unwrap();
    let (tls_key, sign_key) = (
        poros_certs::generate_key().unwrap(),
        poros_certs::generate_key().unwrap(),
    );
    let addr = net.quic_addr();
    // Renew over A's connection (its agent is not running), then never use the new pair.
    let admitted_in_overlap = rt().block_on(async {
        let conn = connect(agent_tls(&dir), addr).await.expect("connect as A");
        let renew = Frame::Renew {
            tls_csr: csr(&tls_key),
            sign_csr: csr(&sign_key),
        };
        let answer = poros_transport::request(&conn, &renew).await.unwrap();
        assert!(matches!(answer, Frame::Credentials(_)), "{answer:?}");
        conn.close(0u32.into(), b"done");
        // Inside the overlap the replaced certificate still connects: any answer proves it.
        let conn = connect(agent_tls(&dir), addr)
            .await
            .expect("reconnect as A");
        let answered = poros_transport::request(&conn, &Frame::Ping).await.is_ok();
        conn.close(0u32.into(), b"done");
        answered
    });
    assert!(
        admitted_in_overlap,
        "the replaced certificate was refused inside the overlap"
    );
    wait_until(
        "the overlap ended and the old pair was retired",
        DEADLINE,
        || {
            net.audit().as_array().unwrap().iter().any(|r| {
                r["action"] == "retire superseded"
                    && r["agency"] == A
                    && r["detail"]
                        .as_str()
                        .is_some_and(|d| d.contains("renewal overlap ended"))
            })
        },
    );
    let (code, text) = refused_connection(&net, agent_tls(&dir));
    assert!(
        code == Some(NOT_CURRENT_CERT) || text.contains("revoked") || text.contains("Revoked"),
        "superseded certificate after the overlap: {code:?} {text}"
    );
}
