//! What the exchange refuses, and that refusing never stops it serving everyone else:
//! tampered bodies, forged senders, bad certificates, oversized documents, malformed frames
//! and broken configuration.

mod common;
use common::raw::*;
use common::*;
use poros_protocol::{DocumentId, Frame, RefusalCode, SignedEnvelope};
use std::time::Duration;
use time::OffsetDateTime;

/// A normal A → B exchange through the agents still works.
fn exchange_still_works(net: &Net, what: &str) {
    let body = format!("still serving after {what}").into_bytes();
    let id = net.send(A, &[B], "Still serving", &body);
    net.wait_state(A, &id, "delivered");
    assert_eq!(net.fetch(B, &id), body);
}

// ---------------------------------------------------------------------------------------------

/// A body altered on its way (by a hub that misbehaves) is detected by the receiver,
/// quarantined, and answered with a signed rejection naming the SHA-256 mismatch.
#[test]
fn body_altered_on_the_way_is_rejected_by_the_receiver() {
    // The hub itself now stops a body damaged on its disk (tests/bodyloss.rs), so the
    // receiver's own check is shown against a hub that misbehaves: a stand-in endpoint with the
    // hub's identity delivers a validly signed envelope followed by one altered byte.
    let mut net = Net::new();
    net.add_agent(A);
    net.add_agent(B);
    net.start_hub();
    net.stop_hub();
    let keys =
        poros_hub::deployment::load_keys(&poros_hub::deployment::HubPaths::new(&net.hub_dir), None)
            .expect("hub keys");
    let body = pseudo_random(100 * 1024, 7);
    let (key, cert) = signing_key(&net.agent_dir(A));
    let env = envelope(A, B, &body, 9);
    let id = env.id.to_string();
    let signed = SignedEnvelope::sign(&env, &key, &cert).unwrap();
    let mut altered = body.clone();
    altered[50_000] ^= 0x01;

    let rt = rt();
    let ep = {
        let _rt = rt.enter();
        poros_transport::server_endpoint(
            net.quic_addr(),
            keys.server_tls.clone(),
            &poros_transport::Limits::default(),
            &keys.reset_key,
        )
        .expect("stand-in hub binds the hub's address")
    };
    net.start_agent_opts(B, false);
    let receipt = rt.block_on(async {
        let inc = tokio::time::timeout(DEADLINE, ep.accept())
            .await
            .expect("B connects to the stand-in hub")
            .expect("endpoint open");
        let conn = inc.await.expect("handshake with B");
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        poros_transport::write_frame(&mut send, &Frame::Deliver { envelope: signed })
            .await
            .unwrap();
        send.write_all(&altered).await.unwrap();
        send.finish().unwrap();
        let f = tokio::time::timeout(DEADLINE, poros_transport::read_frame(&mut recv))
            .await
            .expect("B answers")
            .expect("answer frame");
        conn.close(0u32.into(), b"done");
        f
    });
    // The receiving agent answers with its signed `Receipt` statement.
    let Frame::Statement { statement } = &receipt else {
        panic!("expected a signed rejection statement, got {receipt:?}");
    };
    let r = statement.statement().unwrap();
    let reason = match &r.kind {
        poros_protocol::StatementKind::Receipt {
            outcome: poros_protocol::Outcome::RejectedFor(reason),
            ..
        } => reason.clone(),
        o => panic!("altered body accepted, or rejected without a reason code: {o:?}"),
    };
    assert_eq!(reason.code, poros_protocol::ReasonCode::BodyHashMismatch);
    assert!(
        reason.text.contains("SHA-256") && reason.text.contains("body"),
        "{reason}"
    );
    assert_eq!(r.from.as_str(), B);

    let q = net.api_list(B, "/v1/quarantine");
    let qe = q
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == id.as_str());
    let qe = qe.unwrap_or_else(|| panic!("{id} not quarantined at B: {q}"));
    assert!(
        qe["reason"].as_str().unwrap_or("").contains("SHA-256"),
        "{qe}"
    );
    assert!(
        !net.inbox_counts(B).unwrap().contains_key(&id),
        "tampered document in B's inbox"
    );
}

/// An envelope claiming another sender is refused with SenderMismatch; a bad signature with
/// BadSignature; the same connection then submits a valid document, and A's agent works.
#[test]
fn forged_sender_and_bad_signature_are_refused() {
    let mut net = Net::new();
    net.add_agent(A);
    net.add_agent(B);
    net.start_hub();
    net.start_agent(B);
    // A's agent is not running: the raw client below is A (same certificate), and the hub keeps
    // one connection per agency.
    let (key, cert) = signing_key(&net.agent_dir(A));
    let tls = agent_tls(&net.agent_dir(A));
    let addr = net.quic_addr();
    let body = b"forged".to_vec();
    let valid = envelope(A, B, b"valid raw body", 3);
    let rt = rt();
    rt.block_on(async {
        let conn = connect(tls, addr).await.expect("A's credentials connect");

        // Claims sender B, signed with A's key, over A's connection.
        let forged = SignedEnvelope::sign(&envelope(B, A, &body, 1), &key, &cert).unwrap();
        let f = request(&conn, &submit_bytes(&forged, &body)).await.unwrap();
        let (code, msg) = refused(&f).unwrap_or_else(|| panic!("not refused: {f:?}"));
        assert_eq!(code, RefusalCode::SenderMismatch, "{msg}");
        assert!(msg.contains(B) && msg.contains(A), "{msg}");

        // A's own envelope with a broken signature.
        let mut bad = SignedEnvelope::sign(&envelope(A, B, &body, 2), &key, &cert).unwrap();
        let n = bad.0.signature.len();
        bad.0.signature[n - 3] ^= 0x55;
        let f = request(&conn, &submit_bytes(&bad, &body)).await.unwrap();
        let (code, msg) = refused(&f).unwrap_or_else(|| panic!("not refused: {f:?}"));
        assert_eq!(code, RefusalCode::BadSignature, "{msg}");

        // The same connection still works: a valid submission is accepted.
        let ok = SignedEnvelope::sign(&valid, &key, &cert).unwrap();
        let f = request(&conn, &submit_bytes(&ok, b"valid raw body"))
            .await
            .unwrap();
        assert!(accepted(&f), "{f:?}");
        conn.close(0u32.into(), b"done");
    });
    let valid_id = valid.id.to_string();
    wait_until("the raw-submitted document at B", DEADLINE, || {
        net.inbox_counts(B)
            .is_some_and(|m| m.contains_key(&valid_id))
    });
    assert_eq!(net.fetch(B, &valid_id), b"valid raw body");
    // Nothing forged reached B.
    assert_eq!(net.inbox_counts(B).unwrap().len(), 1);
    assert_eq!(
        net.api_list(B, "/v1/quarantine").as_array().unwrap().len(),
        0
    );

    net.start_agent(A);
    exchange_still_works(&net, "forged submissions");
}

/// Certificates from a foreign CA, expired ones and ones for unregistered agencies are refused;
/// the hub keeps serving the registered agencies throughout.
#[test]
fn foreign_expired_and_unregistered_certificates_are_refused() {
    let net = Net::running(&[A, B]);
    let now = OffsetDateTime::now_utc();
    let day = time::Duration::days(1);
    let foreign = poros_certs::Ca::new_root("Foreign CA", now - day, now + day * 30).unwrap();
    let real = network_ca(&net);
    let cases = [
        (
            "foreign CA",
            forged_tls(&net, &foreign, A, now - day, now + day * 30),
        ),
        (
            "expired",
            forged_tls(&net, &real, A, now - day * 10, now - day),
        ),
        (
            "unregistered agency",
            forged_tls(&net, &real, "000.00.00.Z99", now - day, now + day * 30),
        ),
    ];
    let addr = net.quic_addr();
    let rt = rt();
    for (what, tls) in cases {
        let outcome: Result<quinn::ConnectionError, String> = rt.block_on(async {
            // TLS 1.3: the client may finish its side before the hub judges its certificate;
            // the hub then closes the connection. Nothing may get through in any case.
            let conn = connect(tls, addr).await?;
            let body = b"should not pass";
            let env = envelope(A, B, body, 9);
            let (key, cert) = signing_key(&net.agent_dir(A));
            let signed = SignedEnvelope::sign(&env, &key, &cert).unwrap();
            let r = request(&conn, &submit_bytes(&signed, body)).await;
            assert!(r.is_err(), "{what}: a request got an answer: {r:?}");
            let reason = tokio::time::timeout(Duration::from_secs(20), conn.closed())
                .await
                .unwrap_or_else(|_| panic!("{what}: connection not closed by the hub"));
            Ok(reason)
        });
        eprintln!("{what}: {outcome:?}");
        let text = match &outcome {
            Ok(e) => e.to_string(),
            Err(e) => e.clone(),
        };
        match (what, &outcome) {
            ("unregistered agency", Ok(quinn::ConnectionError::ApplicationClosed(c))) => {
                assert_eq!(c.error_code, quinn::VarInt::from_u32(0x10), "{what}: {c}");
                let reason = String::from_utf8_lossy(&c.reason);
                assert!(reason.contains("not registered"), "{what}: {reason}");
            }
            ("unregistered agency", _) => panic!("{what}: expected application close 0x10: {text}"),
            (_, Ok(quinn::ConnectionError::ApplicationClosed(c))) => {
                panic!("{what}: got past the handshake (application close {c})")
            }
            _ => {
                let expected = if what == "expired" {
                    "expired"
                } else {
                    "UnknownIssuer"
                };
                assert!(
                    text.contains("handshake") && text.contains(expected),
                    "{what}: {text}"
                );
            }
        }
        // The registered agencies are unaffected.
        wait_until("A still connected", DEADLINE, || {
            net.api_get(A, "/v1/health")
                .is_some_and(|h| h["connected"] == true)
        });
    }
    let m = reqwest::blocking::get(format!("http://127.0.0.1:{}/metrics", net.ops_port))
        .unwrap()
        .text()
        .unwrap();
    assert!(m.contains("unknown_agency"), "metrics: {m}");
    exchange_still_works(&net, "refused certificates");
    assert_eq!(
        net.inbox_counts(B).unwrap().len(),
        1,
        "nothing else reached B"
    );
}

/// The hub's size limit refuses a larger document (status "refused" naming the limit); the
/// agent's own limit makes `poros-agent send` fail naming it.
#[test]
fn documents_over_the_size_limits_are_refused() {
    let mut net = Net::new();
    net.add_agent(A);
    net.add_agent(B);
    net.add_agent(C);
    net.set_hub_config("max_body_bytes", "1000");
    set_toml_key(
        &net.agent_dir(C).join("agent.toml"),
        "max_body_bytes",
        "500",
    );
    net.start_hub();
    net.start_agent(A);
    net.start_agent(B);
    net.start_agent(C);

    let big = pseudo_random(2000, 11);
    let id = net.send(A, &[B], "Too big for the hub", &big);
    let st = net.wait_state(A, &id, "refused");
    let reason = st["recipients"][0]["reason"].as_str().unwrap_or("");
    assert!(reason.contains("limit of 1000 bytes"), "{st}");
    assert!(reason.contains("2000"), "{st}");

    // Within the limit still flows.
    let small = pseudo_random(1000, 12);
    let id2 = net.send(A, &[B], "Fits", &small);
    net.wait_state(A, &id2, "delivered");
    assert!(!net.inbox_counts(B).unwrap().contains_key(&id));

    // The agent's own limit: the CLI fails and names it; nothing is queued.
    let f = net.write_file("c-big.bin", &pseudo_random(800, 13));
    let out = net.agent_cli(&[
        "send",
        "--dir",
        &s(&net.agent_dir(C)),
        &s(&f),
        "--to",
        B,
        "--subject",
        "Too big for C",
    ]);
    assert!(!out.status.success(), "send over the agent limit succeeded");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("limit of 500 bytes"), "stderr: {err}");
    assert_eq!(
        net.api_list(C, "/v1/documents").as_array().unwrap().len(),
        0
    );
}

/// Garbage, oversized length prefixes, empty and truncated frames and unexpected frame types
/// are each answered with Refused(Malformed); the connection and the hub keep working.
#[test]
fn malformed_frames_are_refused_and_hub_keeps_serving() {
    let mut net = Net::new();
    net.add_agent(A);
    net.add_agent(B);
    net.start_hub();
    net.start_agent(B);
    let tls = agent_tls(&net.agent_dir(A));
    let (key, cert) = signing_key(&net.agent_dir(A));
    let addr = net.quic_addr();
    let mut truncated = 100u32.to_be_bytes().to_vec();
    truncated.extend_from_slice(b"0123456789");
    let ack = Frame::Ack {
        doc_id: DocumentId::new_v7(1, [1; 10]),
    }
    .encode()
    .unwrap();
    let deliver = Frame::Deliver {
        envelope: SignedEnvelope::sign(&envelope(A, B, b"x", 4), &key, &cert).unwrap(),
    }
    .encode()
    .unwrap();
    let mut garbage = 8u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(b"garbage!");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("undecodable payload", garbage),
        ("random bytes", pseudo_random(300, 5)),
        (
            "oversized length prefix",
            vec![0x7f, 0xff, 0xff, 0xff, 1, 2, 3],
        ),
        (
            "length prefix over the 256 KiB limit",
            (256 * 1024 + 1u32).to_be_bytes().to_vec(),
        ),
        ("empty frame", vec![0, 0, 0, 0]),
        ("truncated frame", truncated),
        ("unexpected frame type Ack", ack),
        ("unexpected frame type Deliver", deliver),
    ];
    let valid = envelope(A, B, b"after the garbage", 6);
    let rt = rt();
    rt.block_on(async {
        let conn = connect(tls, addr).await.expect("connect");
        for (what, bytes) in &cases {
            let f = request(&conn, bytes)
                .await
                .unwrap_or_else(|e| panic!("{what}: no refusal frame: {e}"));
            let (code, msg) = refused(&f).unwrap_or_else(|| panic!("{what}: answered {f:?}"));
            assert_eq!(code, RefusalCode::Malformed, "{what}: {msg}");
            eprintln!("{what}: Refused(Malformed): {msg}");
        }
        assert!(
            conn.close_reason().is_none(),
            "connection closed: {:?}",
            conn.close_reason()
        );
        let ok = SignedEnvelope::sign(&valid, &key, &cert).unwrap();
        let f = request(&conn, &submit_bytes(&ok, b"after the garbage"))
            .await
            .unwrap();
        assert!(accepted(&f), "{f:?}");
        conn.close(0u32.into(), b"done");
    });
    let valid_id = valid.id.to_string();
    wait_until("the valid raw document at B", DEADLINE, || {
        net.inbox_counts(B)
            .is_some_and(|m| m.contains_key(&valid_id))
    });
    net.start_agent(A);
    exchange_still_works(&net, "malformed frames");
}

/// A bad value in hub.toml or agent.toml stops `run` with a message naming the file and key.
#[test]
fn broken_config_fails_naming_file_and_key() {
    let mut net = Net::new();
    let toml = net.hub_toml();
    let original = std::fs::read_to_string(&toml).unwrap();
    let cases = [
        ("max_streams_per_node", "0", "limits.max_streams_per_node"),
        ("max_body_bytes", "\"big\"", "max_body_bytes"),
        ("listen", "\"nowhere\"", "listen"),
    ];
    for (key, value, named) in cases {
        std::fs::write(&toml, &original).unwrap();
        set_toml_key(&toml, key, value);
        let out = run(HUB_EXE, &["run", "--dir", &s(&net.hub_dir)]);
        assert!(!out.status.success(), "hub ran with {key} = {value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("hub.toml") && err.contains(named),
            "{key} = {value}: {err}"
        );
    }
    std::fs::write(&toml, original.clone() + "\n[bogus]\nx = 1\n").unwrap();
    let out = run(HUB_EXE, &["run", "--dir", &s(&net.hub_dir)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("hub.toml") && err.contains("bogus"), "{err}");
    std::fs::write(&toml, &original).unwrap();

    net.add_agent(A);
    let at = net.agent_dir(A).join("agent.toml");
    set_toml_key(&at, "api_listen", "\"0.0.0.0:0\"");
    let out = run(AGENT_EXE, &["run", "--dir", &s(&net.agent_dir(A))]);
    assert!(!out.status.success(), "agent ran with a non-loopback API");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("agent.toml") && err.contains("api_listen"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------

/// A client whose check of the hub's certificate takes `stall`: it holds its half of the
/// handshake back that long (a slow or overloaded agent in a reconnect storm).
#[derive(Debug)]
struct SlowCheck {
    stall: Duration,
}

impl rustls::client::danger::ServerCertVerifier for SlowCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        std::thread::sleep(self.stall);
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &rustls::pki_types::CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &rustls::pki_types::CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        vec![
            rustls::SignatureScheme::ECDSA_NISTP256_SHA256,
            rustls::SignatureScheme::ECDSA_NISTP384_SHA384,
            rustls::SignatureScheme::ED25519,
            rustls::SignatureScheme::RSA_PSS_SHA256,
        ]
    }
}

/// Admission control (a reconnect storm in miniature): with one handshake admitted at a time,
/// a client that holds its handshake back keeps the slot; an agent that connects meanwhile
/// is refused at once (counted as `handshake_limit`), backs off and connects once the slot
/// is free, and the agents already connected go on exchanging throughout.
#[test]
fn attempts_beyond_the_handshakes_in_flight_are_refused_and_retried_while_exchange_goes_on() {
    let mut net = Net::new();
    for code in [A, B, C] {
        net.add_agent(code);
    }
    net.set_hub_config("handshakes_in_flight", "1");
    net.start_hub();
    // One at a time: two agents knocking together already overflow a window of one.
    net.start_agent(A);
    net.start_agent(B);
    let refused = "poros_refusals_total{reason=\"handshake_limit\"}";
    let before = net.metric(refused);

    let stall = Duration::from_secs(6);
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(SlowCheck { stall }))
        .with_no_client_auth();
    tls.alpn_protocols = vec![poros_protocol::ALPN.to_vec()];
    let rt = rt();
    let slow = {
        let _rt = rt.enter();
        let ep = poros_transport::client_endpoint(tls, &poros_transport::Limits::default(), false)
            .unwrap();
        let hub = net.quic_addr();
        rt.spawn(async move { ep.connect(hub, "localhost").unwrap().await })
    };
    // The slow client holds the only slot: C is turned away at the door, again and again.
    net.start_agent_opts(C, false);
    wait_until(
        "C's attempts refused by admission control",
        DEADLINE,
        || net.metric(refused) > before,
    );
    assert!(
        net.log_text("hub")
            .contains("too many handshakes in flight"),
        "the hub says why it refused"
    );
    // Those already connected are not held up by the storm at the door.
    exchange_still_works(&net, "a full handshake slot");
    // The slow client finishes and frees the slot. It has no certificate: a TLS 1.3 client
    // completes its side before the hub checks it, and the hub then closes the connection.
    if let Ok(conn) = rt.block_on(slow).unwrap() {
        let closed = rt.block_on(async { tokio::time::timeout(DEADLINE, conn.closed()).await });
        assert!(
            closed.is_ok(),
            "the hub closes a connection without a certificate"
        );
    }
    wait_until("C connected after backing off", DEADLINE, || {
        net.api_get(C, "/v1/health")
            .is_some_and(|h| h["connected"] == true)
    });
    let id = net.send(C, &[A], "After the storm", b"admitted in turn");
    net.wait_state(C, &id, "delivered");
}
