//! The statement path: statements checked and stored once, relayed per addressee in order,
//! and the deliveries updates add.

use super::helpers::*;
use poros_hub::state::{AnswerOutcome, BodyAt, NodeState, StatementOutcome, StatementRefusal};
use poros_protocol::{
    BusinessStatus, Change, DocumentId, Outcome, Party, ReasonCode, RefusalCode, SigningKey,
    StatementKind,
};

/// The registry the statement scenarios of `state/statements.rs` start from.
async fn nodes(b: &B) {
    for (code, state) in [
        (G, NodeState::Active),
        (H1, NodeState::Active),
        (H2, NodeState::Active),
        (H3, NodeState::Active),
        (P, NodeState::Pending),
    ] {
        put_node(b, code, state).await;
    }
}

/// A document from G to H1 and H2 (body `[n; 8]`), accepted at 5 000 ms; H1 has signed its
/// receipt in the `poros/1` form at 6 000 ms (whose old relay gates H1's statements).
async fn delivered_doc(b: &B, k: &SigningKey, n: u8) -> Doc {
    let d = doc(k, n, &[n; 8], &[H1, H2]);
    accept_new(b, &d).await;
    deliver_legacy(b, k, &d, H1, 6_000).await;
    d
}

async fn deliver_legacy(b: &B, k: &SigningKey, d: &Doc, who: &str, at: u64) {
    let out = b
        .record_answer(d.id, a(who), delivered_legacy(k, d, who, at), at)
        .await
        .unwrap();
    assert_eq!(out, AnswerOutcome::Recorded { sender: a(G) });
}

fn sign(k: &SigningKey, doc: DocumentId, from: &str, to: &[&str], kind: StatementKind) -> Signed {
    statement(k, doc, from, to, kind, 7_000)
}

type Signed = poros_protocol::SignedStatement;

async fn refused_code(b: &B, s: &Signed) -> ReasonCode {
    match submit(b, s, 8_000).await {
        StatementOutcome::Refused(StatementRefusal::Rule(r)) => r.code,
        o => panic!("expected a refusal, got {o:?}"),
    }
}

/// Ported from `state/statements.rs`: a statement is checked against the rules and stored
/// once; refusals store nothing.
pub async fn statements_are_checked_and_stored_once(b: B) {
    nodes(&b).await;
    let k = key();
    let d = delivered_doc(&b, &k, 1).await.id;
    // H2's receipt is not recorded yet: retried, not refused for good; nothing stored.
    let early = sign(&k, d, H2, &[G], status(BusinessStatus::Registered));
    match submit(&b, &early, 8_000).await {
        StatementOutcome::Refused(r @ StatementRefusal::ReceiptNotYetRecorded(_)) => {
            assert_eq!(r.refusal().code, RefusalCode::Unavailable);
            assert!(r.refusal().code.is_retryable());
        }
        o => panic!("expected a retry, got {o:?}"),
    }
    // Unknown document; a recipient's change.
    let unknown = DocumentId::new_v7(99, [9; 10]);
    let c = refused_code(
        &b,
        &sign(&k, unknown, H1, &[G], status(BusinessStatus::Arrived)),
    )
    .await;
    assert_eq!(c, ReasonCode::UnknownDocument);
    let takeback = StatementKind::Change {
        change: Change::TakeBack,
        reason: "error".into(),
    };
    let c = refused_code(&b, &sign(&k, d, H1, &[H2], takeback)).await;
    assert_eq!(c, ReasonCode::IllegalTransition);
    // Nothing but the hub's acceptance, the first statement of every history.
    assert_eq!(history_labels(&b, &d).await, ["hub_accepted"]);

    let reg = sign(&k, d, H1, &[G], status(BusinessStatus::Registered));
    assert!(matches!(
        submit(&b, &reg, 8_000).await,
        StatementOutcome::Accepted { .. }
    ));
    // Same payload again (a retry after a lost Ack): acknowledged, not stored twice.
    assert_eq!(submit(&b, &reg, 8_100).await, StatementOutcome::Duplicate);
    // Applied in the same transaction: 01 cannot follow 03 now.
    let c = refused_code(&b, &sign(&k, d, H1, &[G], status(BusinessStatus::Arrived))).await;
    assert_eq!(c, ReasonCode::IllegalTransition);
    let h = b.statement_history(&d).await.unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[1].digest, reg.payload_digest());
    assert_eq!(h[1].accepted_ms, 8_000);
    assert!(h[1].seq > h[0].seq);
    assert_eq!(
        b.statement_counts().await.unwrap(),
        vec![("registered".to_string(), 1)]
    );
    assert_eq!(count(&counters(&b).await, "statements_accepted"), 1);
}

/// Ported from `state/statements.rs`: a recipient's statements wait for its receipt's relay,
/// then go one per document, in acceptance order.
pub async fn statements_wait_for_the_receipt_and_go_one_per_document_in_order(b: B) {
    nodes(&b).await;
    let k = key();
    let (d1, d2) = (
        delivered_doc(&b, &k, 1).await.id,
        delivered_doc(&b, &k, 2).await.id,
    );
    for d in [d1, d2] {
        for s in [BusinessStatus::Registered, BusinessStatus::Assigned] {
            submit_ok(&b, &sign(&k, d, H1, &[G], status(s)), 8_000).await;
        }
    }
    // The receipt relays (G, d, H1) are still queued: the sender learns "delivered" first.
    assert!(relays(&b, G, &[]).await.is_empty());
    b.relay_done(a(G), d1, a(H1)).await.unwrap();
    // One per document, the first accepted first.
    let r = relays(&b, G, &[]).await;
    assert_eq!(r.len(), 1);
    let (first, doc) = r[0];
    assert_eq!(doc, d1);
    assert!(
        relays(&b, G, &[d1]).await.is_empty(),
        "in flight: nothing else of d1"
    );
    b.relay_done(a(G), d2, a(H1)).await.unwrap();
    assert_eq!(
        relays(&b, G, &[])
            .await
            .iter()
            .map(|r| r.1)
            .collect::<Vec<_>>(),
        [d1, d2]
    );
    b.statement_relay_done(a(G), first, false).await.unwrap();
    let r = relays(&b, G, &[]).await;
    assert_eq!(r.len(), 2);
    assert!(
        r[0].0 > first && r[0].1 == d1,
        "the next statement of d1: {r:?}"
    );
    let h = b.statement_history(&d1).await.unwrap();
    // After the hub's acceptance and the first statement.
    assert_eq!(h.iter().map(|e| e.seq).collect::<Vec<_>>()[2], r[0].0);
}

/// Ported from `state/statements.rs`: a recipient an update adds gets a delivery like any
/// other: queued, held for a damaged body, keeping the body, counted.
pub async fn added_recipients_get_a_delivery_counted_like_any_other(b: B) {
    nodes(&b).await;
    let k = key();
    let dd = delivered_doc(&b, &k, 1).await;
    let d = dd.id;
    match submit(&b, &sign(&k, d, G, &[H1], update_adding(P)), 8_000).await {
        StatementOutcome::Refused(r) => assert_eq!(r.label(), "unknown_recipient"),
        o => panic!("{o:?}"),
    }
    let up = sign(&k, d, G, &[H1], update_adding(H3));
    let StatementOutcome::Accepted { wake, .. } = submit(&b, &up, 8_000).await else {
        panic!("update refused")
    };
    assert_eq!(wake, vec![a(H1), a(H3)]);
    assert_eq!(pending_docs(&b, H3, 10, &[]).await, [d]);
    // A poros/1 connection is never offered it; the envelope's recipients still are.
    assert!(b
        .pending_without_added(&a(H3), 10, &none())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        b.pending_without_added(&a(H2), 10, &none()).await.unwrap()[0].doc,
        d
    );
    assert_eq!(b.added_by(&d, &a(H3)).await.unwrap(), Some(up));
    assert_eq!(b.added_by(&d, &a(H2)).await.unwrap(), None);
    // Due from the update's time.
    assert!(b
        .expired_before(8_000, 10)
        .await
        .unwrap()
        .iter()
        .all(|(_, r)| r != &a(H3)));
    assert!(b
        .expired_before(8_001, 10)
        .await
        .unwrap()
        .contains(&(d, a(H3))));
    // A body found damaged holds the added delivery too, and the repair requeues it.
    let digest = b.doc(&d).await.unwrap().unwrap().body_sha256;
    b.hold_damaged(d, "test".into(), 8_200).await.unwrap();
    assert!(pending_docs(&b, H3, 10, &[]).await.is_empty());
    let held: Vec<_> = b
        .held_for(&digest)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.recipient)
        .collect();
    assert!(held.contains(&a(H3)), "held: {held:?}");
    let body = b.inline_body(&digest).await.unwrap();
    let woken = b.body_repaired(digest, body).await.unwrap();
    assert!(woken.contains(&a(H3)), "requeued: {woken:?}");
    assert_eq!(pending_docs(&b, H3, 10, &[]).await, [d]);
    // The envelope's recipients have both answered, the added one not yet: the body stays.
    deliver_legacy(&b, &k, &dd, H2, 8_500).await;
    b.release_bodies(u64::MAX, 10).await.unwrap();
    assert_eq!(b.doc(&d).await.unwrap().unwrap().body_at, BodyAt::Inline);
    deliver_legacy(&b, &k, &dd, H3, 9_000).await;
    b.release_bodies(u64::MAX, 10).await.unwrap();
    assert_eq!(b.doc(&d).await.unwrap().unwrap().body_at, BodyAt::Gone);

    // Live counters (every period of 1970) equal the recount, with H03's delivery due.
    let recount = assert_live_equals_recount(&b).await;
    assert_eq!(fig(&recount, G, "out_due"), 3);
    assert_eq!(fig(&recount, H3, "in_due"), 1);
    assert_eq!(fig(&recount, H3, "in_ontime"), 1);
    let c = counters(&b).await;
    assert_eq!(count(&c, "deliveries_queued"), 3);
}

/// Statements to an addressee are relayed in the order the hub accepted them (one per
/// document at a time), whatever the order of their documents.
pub async fn relays_to_an_addressee_go_in_acceptance_order(b: B) {
    nodes(&b).await;
    let k = key();
    let docs: Vec<Doc> = (1..=3).map(|n| doc(&k, n, &[n; 4], &[H1])).collect();
    for d in &docs {
        accept_new(&b, d).await;
    }
    let id = |i: usize| docs[i].id;
    // Receipts (statements) in the order d2, d3, d1.
    for (i, at) in [(1, 6_000), (2, 6_100), (0, 6_200)] {
        let out = b
            .record_answer(id(i), a(H1), delivered(&k, &docs[i], H1, at), at)
            .await
            .unwrap();
        assert_eq!(out, AnswerOutcome::Recorded { sender: a(G) });
    }
    let r = relays(&b, G, &[]).await;
    assert_eq!(
        r.iter().map(|x| x.1).collect::<Vec<_>>(),
        [id(1), id(2), id(0)]
    );
    assert!(r.windows(2).all(|w| w[0].0 < w[1].0), "seqs rise: {r:?}");
    assert_eq!(
        b.statement_relay_docs(&a(G)).await.unwrap(),
        [id(1), id(2), id(0)]
    );
    let two: Vec<_> = b
        .statement_relays_for(&a(G), 2, &none())
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.doc)
        .collect();
    assert_eq!(two, [id(1), id(2)]);
    assert_eq!(
        relays(&b, G, &[id(1)])
            .await
            .iter()
            .map(|x| x.1)
            .collect::<Vec<_>>(),
        [id(2), id(0)]
    );
    for (seq, _) in &r {
        b.statement_relay_done(a(G), *seq, false).await.unwrap();
    }
    assert!(relays(&b, G, &[]).await.is_empty());
    assert_eq!(b.statement_relay_depth().await.unwrap(), 0);

    // Registered on d3, d1, d2, then Assigned on d3: one per document, acceptance order.
    for i in [2, 0, 1] {
        submit_ok(
            &b,
            &sign(&k, id(i), H1, &[G], status(BusinessStatus::Registered)),
            8_000,
        )
        .await;
    }
    submit_ok(
        &b,
        &sign(&k, id(2), H1, &[G], status(BusinessStatus::Assigned)),
        8_100,
    )
    .await;
    assert_eq!(b.statement_relay_depth().await.unwrap(), 4);
    let queued = b.statement_relays_for(&a(G), 10, &none()).await.unwrap();
    let kinds: Vec<_> = queued
        .iter()
        .map(|q| (q.doc, q.signed.statement().unwrap().kind))
        .collect();
    assert_eq!(
        kinds,
        [
            (id(2), status(BusinessStatus::Registered)),
            (id(0), status(BusinessStatus::Registered)),
            (id(1), status(BusinessStatus::Registered)),
        ]
    );
    // d3's first acknowledged (refused for good counts as done too): its next comes last.
    b.statement_relay_done(a(G), queued[0].seq, true)
        .await
        .unwrap();
    let next: Vec<_> = b
        .statement_relays_for(&a(G), 10, &none())
        .await
        .unwrap()
        .into_iter()
        .map(|q| (q.doc, q.signed.statement().unwrap().kind))
        .collect();
    assert_eq!(
        next,
        [
            (id(0), status(BusinessStatus::Registered)),
            (id(1), status(BusinessStatus::Registered)),
            (id(2), status(BusinessStatus::Assigned)),
        ]
    );
    let c = counters(&b).await;
    assert_eq!(count(&c, "statements_relayed"), 3);
    assert_eq!(count(&c, "statements_relay_refused"), 1);
    // Done twice: counted once.
    b.statement_relay_done(a(G), queued[0].seq, false)
        .await
        .unwrap();
    assert_eq!(count(&counters(&b).await, "statements_relayed"), 3);

    // For a `poros/1` sender only the hub's own statements: a notice about a fresh document
    // is offered, the agencies' statements are not.
    let d4 = doc(&k, 4, b"four", &[H1, H2]);
    accept_new(&b, &d4).await;
    b.record_answer(
        d4.id,
        a(H2),
        said(&k, notice(&d4, H2, expired(), 9_000)),
        9_000,
    )
    .await
    .unwrap();
    let hub_only = b
        .hub_statement_relays_for(&a(G), 10, &none())
        .await
        .unwrap();
    assert_eq!(hub_only.len(), 1);
    assert_eq!(hub_only[0].doc, d4.id);
    assert_eq!(hub_only[0].signed.statement().unwrap().from, Party::Hub);
    assert_eq!(
        b.statement_relays_for(&a(G), 10, &none())
            .await
            .unwrap()
            .len(),
        4
    );
}

/// A statement addressed to several agencies is queued once for each, and each queue is
/// drained on its own.
pub async fn a_statement_is_relayed_to_each_addressee(b: B) {
    nodes(&b).await;
    let k = key();
    let d = doc(&k, 1, b"body", &[H1, H2]);
    accept_new(&b, &d).await;
    for (who, at) in [(H1, 6_000), (H2, 6_100)] {
        b.record_answer(d.id, a(who), delivered(&k, &d, who, at), at)
            .await
            .unwrap();
    }
    let mut said = statement(&k, d.id, G, &[H1, H2], StatementKind::Reminder, 7_000)
        .statement()
        .unwrap();
    said.note = Some("please register it".into());
    let reminder = poros_protocol::SignedStatement::sign(&said, &k, b"c").unwrap();
    let (seq, wake) = match submit(&b, &reminder, 7_000).await {
        StatementOutcome::Accepted { seq, wake } => (seq, wake),
        o => panic!("reminder not accepted: {o:?}"),
    };
    assert_eq!(wake, vec![a(H1), a(H2)]);
    for who in [H1, H2] {
        assert_eq!(relays(&b, who, &[]).await, [(seq, d.id)], "{who}");
    }
    b.statement_relay_done(a(H1), seq, false).await.unwrap();
    assert!(relays(&b, H1, &[]).await.is_empty());
    assert_eq!(relays(&b, H2, &[]).await, [(seq, d.id)]);
    assert_eq!(b.statement_relay_docs(&a(H2)).await.unwrap(), [d.id]);
    // G has the two receipts queued, H2 the reminder.
    assert_eq!(b.statement_relay_depth().await.unwrap(), 3);
    assert_eq!(
        b.statement_counts().await.unwrap(),
        vec![("reminder".to_string(), 1)]
    );
    let receipt_kind = |o| StatementKind::Receipt {
        body_sha256: d.digest(),
        outcome: o,
    };
    let h: Vec<_> = b
        .statement_history(&d.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.statement.kind)
        .collect();
    assert_eq!(h.len(), 4);
    assert_eq!(h[1], receipt_kind(Outcome::Delivered));
    assert_eq!(h[3], StatementKind::Reminder);
}
