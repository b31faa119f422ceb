//! Hostile text is neutralised: control characters in single-line metadata are refused by the
//! agent's API and by the hub, dates are calendar dates, names are bounded, invalid UTF-8 in a
//! query is a 400, and text from the network is escaped on the operator's terminal.

mod common;
use common::raw::*;
use common::*;
use poros_protocol::{Frame, Outcome, Receipt, RefusalCode, SignedEnvelope, SignedReceipt};
use std::time::Duration;

/// A raw POST to an agent's `/v1/documents` with an exact (already encoded) query string.
fn post_raw_query(net: &Net, from: &str, query: &str) -> (u16, String) {
    let addr = std::fs::read_to_string(net.agent_dir(from).join("run/api.addr")).unwrap();
    let r = net
        .http()
        .post(format!("http://{}/v1/documents?{query}", addr.trim()))
        .body(vec![1u8; 100])
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

#[test]
fn control_characters_bad_dates_and_bad_utf8_are_refused_at_every_edge() {
    let mut net = Net::new();
    net.add_agent(A);
    net.add_agent(B);
    net.add_agent(D);
    net.start_hub();
    net.start_agent(A);
    net.start_agent(B);

    // The agent's API: ESC and CR in the subject, NUL in the number, a right-to-left override.
    for (query, needle) in [
        (format!("to={B}&subject=Hello%1B%5B2J%0DFORGED"), "U+001B"),
        (format!("to={B}&subject=ok&number=12%00"), "U+0000"),
        (format!("to={B}&subject=pay%E2%80%AEgnp.exe"), "U+202E"),
        (format!("to={B}&subject=ok&due=2026-02-31"), "calendar date"),
        (format!("to={B}&subject=%FF%FE"), "not valid UTF-8"),
    ] {
        let (status, body) = post_raw_query(&net, A, &query);
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(needle), "{query}: {body}");
    }
    // None of the refused documents exists anywhere: B's inbox is empty and A's outbox too.
    assert_eq!(
        net.inbox_counts(B),
        Some(Default::default()),
        "a refused send was delivered"
    );
    assert_eq!(
        net.api_list(A, "/v1/documents"),
        serde_json::json!([]),
        "a refused send was kept"
    );

    // The hub refuses the same envelope from an agency that bypasses its agent.
    let dir = net.agent_dir(D);
    let (key, cert) = signing_key(&dir);
    let body = b"bypassing the agent";
    let mut env = envelope(D, B, body, 7);
    env.meta.subject = "Routine\u{1b}[2J\rFORGED LINE".into();
    let signed = SignedEnvelope::sign(&env, &key, &cert).unwrap();
    let addr = net.quic_addr();
    let answer = rt().block_on(async {
        let conn = connect(agent_tls(&dir), addr).await.expect("connect as D");
        request(&conn, &submit_bytes(&signed, body)).await
    });
    let (code, msg) = refused(&answer.expect("an answer")).expect("a refusal");
    assert_eq!(code, RefusalCode::InvalidEnvelope, "{msg}");
    assert!(msg.contains("U+001B") && msg.contains("subject"), "{msg}");

    // Names are bounded and single-line.
    for name in ["x".repeat(100_000), "Bộ\u{1b}]0;pwned\u{7}".to_string()] {
        let hub = s(&net.hub_dir);
        let out = net.hub_cli(&[
            "node",
            "add",
            "--dir",
            &hub,
            "--agency",
            "000.00.00.H30",
            "--name",
            &name,
        ]);
        assert!(
            !out.status.success(),
            "name {:?} accepted",
            &name[..20.min(name.len())]
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("agency name"), "{err}");
    }
    // The exchange itself is unaffected.
    let id = net.send(A, &[B], "Công văn số 12/BTC", b"fine");
    net.wait_state(A, &id, "delivered");
}

/// A recipient that answers with a rejection reason full of terminal control sequences cannot
/// repaint or forge lines on the sender's terminal: the CLI shows them escaped.
#[test]
fn hostile_rejection_reason_is_escaped_on_the_senders_terminal() {
    let mut net = Net::new();
    net.add_agent(A);
    net.add_agent(D);
    net.start_hub();
    net.start_agent(A);
    let id = net.send(A, &[D], "to a hostile recipient", b"payload");
    net.wait_state(A, &id, "accepted");

    // D answers the delivery by hand, with a signed rejection whose reason attacks terminals.
    // It uses the `poros/1` receipt form, whose free text no one validates (a `Receipt`
    // statement with such a reason is refused by the rules at the hub already).
    let dir = net.agent_dir(D);
    let (key, cert) = signing_key(&dir);
    let hostile = "\u{1b}[2J\u{1b}[H\rdelivered OK\nFORGED: all documents delivered";
    let addr = net.quic_addr();
    rt().block_on(async {
        let conn = connect(agent_tls(&dir), addr).await.expect("connect as D");
        loop {
            let (mut send, mut recv) =
                tokio::time::timeout(Duration::from_secs(30), conn.accept_bi())
                    .await
                    .expect("no delivery within 30 s")
                    .unwrap();
            let frame = poros_transport::read_frame(&mut recv).await.unwrap();
            let reply = match frame {
                Frame::Deliver { envelope } => {
                    let env = envelope.envelope().unwrap();
                    let _ = recv.read_to_end(1 << 20).await;
                    let r = Receipt {
                        doc_id: env.id,
                        sender: env.sender.clone(),
                        recipient: poros_protocol::AgencyId::parse(D).unwrap(),
                        body_sha256: env.body_sha256,
                        outcome: Outcome::Rejected {
                            reason: hostile.into(),
                        },
                        time_ms: env.created_ms + 1,
                    };
                    let receipt = SignedReceipt::sign(&r, &key, &cert).unwrap();
                    poros_transport::write_frame(&mut send, &Frame::Receipt { receipt })
                        .await
                        .unwrap();
                    let _ = send.finish();
                    break;
                }
                _ => Frame::Ack {
                    doc_id: poros_protocol::DocumentId::from_bytes([0; 16]),
                },
            };
            poros_transport::write_frame(&mut send, &reply)
                .await
                .unwrap();
            let _ = send.finish();
        }
        // Let the hub read the answer before the connection goes.
        tokio::time::sleep(Duration::from_millis(500)).await;
    });
    net.wait_state(A, &id, "rejected");

    let a = s(&net.agent_dir(A));
    for verb in [
        vec!["status", "--dir", &a, &id],
        vec!["receipts", "--dir", &a],
    ] {
        let out = net.agent_cli(&verb);
        assert_ok(&out, &verb.join(" "));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            !out.stdout.iter().any(|b| *b == 0x1b || *b == b'\r'),
            "{verb:?} printed raw control bytes: {text:?}"
        );
        assert!(text.contains("\\e[2J"), "{verb:?}: {text}");
        assert!(
            !text.lines().any(|l| l.starts_with("FORGED")),
            "{verb:?} printed a forged line: {text}"
        );
    }
}
