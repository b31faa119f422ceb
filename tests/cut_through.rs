//! Cut-through of large bodies: the hub forwards a body to the recipients connected to it while
//! it is still receiving it, holds the last piece back until the document is accepted and
//! durable, and resets the forward when the upload does not end in an acceptance, so a
//! recipient keeps nothing of a document the hub did not accept.

mod common;
use common::raw::*;
use common::*;
use poros_protocol::{Frame, RefusalCode, SignedEnvelope};
use std::time::Duration;

const FORWARDED: &str = "poros_cut_through_total{outcome=\"forwarded\"}";
const ABANDONED: &str = "poros_cut_through_total{outcome=\"abandoned\"}";

/// A large document to two recipients, one connected and one not: the connected one gets it
/// by cut-through, the other by store-and-forward when it connects; both bodies are
/// byte-identical and each recipient has it once.
#[test]
fn a_connected_recipient_gets_a_large_body_while_the_hub_receives_it() {
    let mut net = Net::running(&[A, B, C]);
    net.stop_agent(C);
    let body = pseudo_random(6 * 1024 * 1024 + 5, 11);
    let id = net.send(A, &[B, C], "Large, cut through", &body);
    wait_until("B's receipt", Duration::from_secs(60), || {
        net.states(A, &id).get(B).map(String::as_str) == Some("delivered")
    });
    assert_eq!(net.metric(FORWARDED), 1, "{}", net.metrics());
    assert_eq!(net.metric(ABANDONED), 0, "{}", net.metrics());
    assert!(
        net.log_text("hub").contains("delivered by cut-through"),
        "the hub did not log the cut-through delivery"
    );
    net.start_agent(C);
    net.wait_state(A, &id, "delivered");
    // C was not connected while the body came in: the pusher delivered it from the hub's copy.
    assert_eq!(net.metric(FORWARDED), 1, "{}", net.metrics());
    for r in [B, C] {
        assert_eq!(net.fetch_sha256(r, &id), Ok(sha256_hex(&body)), "{r}");
        assert_eq!(net.inbox_counts(r).unwrap().get(&id), Some(&1), "{r}");
        assert!(
            !net.agent_body_files(r)
                .iter()
                .any(|p| p.starts_with(net.agent_dir(r).join("data/bodies/tmp"))),
            "{r} kept a staging file"
        );
    }
}

/// A body whose upload fails part-way, or whose bytes do not match the envelope's hash, was
/// already being forwarded to the connected recipient: that forward is reset before its last
/// piece, the recipient keeps nothing (no inbox entry, no quarantined copy, no staging file)
/// and signs nothing; the document sent again whole is delivered once.
#[test]
fn an_upload_that_does_not_end_in_an_acceptance_leaves_nothing_at_the_recipient() {
    let mut net = Net::running(&[A, B]);
    // A's own agent is stopped: the raw client below is A's only connection.
    net.stop_agent(A);
    let dir = net.agent_dir(A);
    let (key, cert) = signing_key(&dir);
    let body = pseudo_random(8 * 1024 * 1024, 12);
    let env = envelope(A, B, &body, 12);
    let id = env.id.to_string();
    let signed = SignedEnvelope::sign(&env, &key, &cert).unwrap();
    let staging = net.agent_dir(B).join("data/bodies/tmp");
    let staged = || -> u64 {
        std::fs::read_dir(&staging)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    };
    let nothing_at_b = |net: &Net, what: &str| {
        wait_until(
            &format!("{what}: B's staging file removed"),
            Duration::from_secs(20),
            || {
                std::fs::read_dir(&staging)
                    .map(|rd| rd.count() == 0)
                    .unwrap_or(true)
            },
        );
        assert_eq!(
            net.inbox_counts(B),
            Some(Default::default()),
            "{what}: B kept a document the hub did not accept"
        );
        assert_eq!(
            net.api_list(B, "/v1/quarantine"),
            serde_json::json!([]),
            "{what}: B quarantined a body the hub did not accept"
        );
    };
    let addr = net.quic_addr();
    let rt = rt();

    // 1. The bytes do not match the envelope: the hub refuses the upload. Without the piece
    //    held back, B would have the whole body, find the mismatch and quarantine it.
    let mut altered = body.clone();
    *altered.last_mut().unwrap() ^= 1;
    let answer = rt.block_on(async {
        let conn = connect(agent_tls(&dir), addr).await.expect("connect as A");
        request(&conn, &submit_bytes(&signed, &altered)).await
    });
    let (code, msg) = refused(&answer.expect("an answer")).expect("a refusal");
    assert_eq!(code, RefusalCode::BodyMismatch, "{msg}");
    wait_until("the forward abandoned", Duration::from_secs(20), || {
        net.metric(ABANDONED) == 1
    });
    nothing_at_b(&net, "altered body");
    assert_eq!(net.metric(FORWARDED), 0);

    // 2. The sender goes away half-way, after B has started writing what was forwarded.
    rt.block_on(async {
        let conn = connect(agent_tls(&dir), addr).await.expect("connect as A");
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        let frame = Frame::Submit {
            envelope: signed.clone(),
        };
        send.write_all(&frame.encode().unwrap()).await.unwrap();
        send.write_all(&body[..body.len() / 2]).await.unwrap();
        let started = tokio::time::Instant::now();
        while staged() == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "nothing was forwarded to B while the hub received the body"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        conn.close(0u32.into(), b"gone");
    });
    wait_until(
        "the second forward abandoned",
        Duration::from_secs(20),
        || net.metric(ABANDONED) == 2,
    );
    nothing_at_b(&net, "upload cut half-way");
    assert!(
        net.log_text(B).contains("abandoned a delivery part-way"),
        "B did not say why it kept nothing"
    );

    // 3. The same envelope, whole: accepted, forwarded and delivered once.
    let answer = rt.block_on(async {
        let conn = connect(agent_tls(&dir), addr).await.expect("connect as A");
        request(&conn, &submit_bytes(&signed, &body)).await
    });
    assert!(
        accepted(&answer.expect("an answer")),
        "the whole body was not accepted"
    );
    wait_until("B has the document", Duration::from_secs(30), || {
        net.inbox_counts(B).is_some_and(|m| m.get(&id) == Some(&1))
    });
    assert_eq!(net.fetch_sha256(B, &id), Ok(sha256_hex(&body)));
    wait_until("the forward recorded", Duration::from_secs(20), || {
        net.metric(FORWARDED) == 1
    });
    assert_eq!(net.metric(ABANDONED), 2);
}
