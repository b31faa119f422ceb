//! Documents, pending deliveries, answers and their relays, expiry and retention.

use super::helpers::*;
use poros_hub::state::{AcceptOutcome, AnswerOutcome, BodyAt, DeliveryEnd, DeliveryState};
use poros_protocol::{Outcome, Party, Reason, ReasonCode};
use poros_store::ReceivedBody;

/// Ported from `state/tests.rs`: a document is stored once with one pending delivery per
/// recipient; the same ID with another payload is refused.
pub async fn accept_is_idempotent_and_conflicts_are_refused(b: B) {
    let k = key();
    let d = doc(&k, 1, b"body", &[H1, H2]);
    assert!(matches!(accept(&b, &d).await, AcceptOutcome::Stored));
    assert!(matches!(
        accept(&b, &d).await,
        AcceptOutcome::Duplicate { accepted_ms: 5_000 }
    ));
    let mut other = doc(&k, 1, b"other", &[H1]);
    other.rec.acceptance = d.rec.acceptance.clone();
    assert!(matches!(accept(&b, &other).await, AcceptOutcome::Conflict));
    // One pending delivery per recipient, stored once.
    assert_eq!(pending_docs(&b, H1, 10, &[]).await, [d.id]);
    assert_eq!(pending_docs(&b, H2, 10, &[]).await, [d.id]);
    assert_eq!(b.queue_depth().await.unwrap(), 2);
    assert_eq!(count(&counters(&b).await, "documents_accepted"), 1);
    // The acceptance is the first statement of the history, stored once and relayed to no one.
    let h = b.statement_history(&d.id).await.unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].statement.from, Party::Hub);
    assert_eq!(h[0].statement.kind.label(), "hub_accepted");
    assert_eq!(b.statement_relay_depth().await.unwrap(), 0);
}

/// The same document submitted again (its record made anew at a later time) is a duplicate
/// answered with the first acceptance time, and changes nothing; another payload under the
/// same ID is a conflict and stores nothing of it.
pub async fn accepting_twice_keeps_the_first(b: B) {
    let k = key();
    let d = doc(&k, 1, b"body", &[H1, H2]);
    accept_new(&b, &d).await;
    let again = doc_from(&k, 1, G, b"body", &[H1, H2], 9_000);
    match accept(&b, &again).await {
        AcceptOutcome::Duplicate { accepted_ms } => assert_eq!(accepted_ms, 5_000),
        o => panic!("expected a duplicate, got {o:?}"),
    }
    let stored = b.doc(&d.id).await.unwrap().expect("stored");
    assert_eq!(stored.accepted_ms, 5_000);
    assert_eq!(stored.envelope.0.payload, d.rec.envelope.0.payload);
    assert_eq!(stored.body_at, BodyAt::Inline);

    let other = doc_from(&k, 1, G, b"another body", &[H3], 9_000);
    assert!(matches!(accept(&b, &other).await, AcceptOutcome::Conflict));
    let stored = b.doc(&d.id).await.unwrap().expect("still stored");
    assert_eq!(stored.envelope.0.payload, d.rec.envelope.0.payload);
    assert_eq!(stored.recipients, vec![a(H1), a(H2)]);
    assert!(b.inline_body(&other.digest()).await.unwrap().is_none());
    assert_eq!(b.body_refs(&other.digest()).await.unwrap(), 0);
    assert_eq!(b.pending_count(&a(H3)).await.unwrap(), 0);

    // Everything of the first acceptance exactly once.
    assert_eq!(b.body_refs(&d.digest()).await.unwrap(), 1);
    assert_eq!(
        b.inline_body(&d.digest()).await.unwrap().as_deref(),
        Some(&b"body"[..])
    );
    let dels = b.deliveries(&d.id).await.unwrap();
    let mut who: Vec<_> = dels.iter().map(|(r, _)| r.to_string()).collect();
    who.sort();
    assert_eq!(who, [H1, H2]);
    assert!(dels.iter().all(|(_, d)| d.state.is_pending()));
    assert_eq!(b.queue_depth().await.unwrap(), 2);
    assert_eq!(history_labels(&b, &d.id).await, ["hub_accepted"]);
    let c = counters(&b).await;
    assert_eq!(count(&c, "documents_accepted"), 1);
    assert_eq!(count(&c, "deliveries_queued"), 2);
    assert_eq!(count(&c, "body_bytes_accepted"), 4);
    let live = live_sums(&b).await;
    assert_eq!(fig(&live, G, "sent"), 1);
    assert_eq!(fig(&live, "national", "in_due"), 2);
}

/// Ported from `state/tests.rs`: a receipt is recorded once and travels the statement path;
/// an unanswered delivery expires and the sender is told; the body goes after retention.
pub async fn answers_relay_once_expiry_notifies_and_retention_frees_bodies(b: B) {
    let k = key();
    let d = doc(&k, 2, b"payload", &[H1, H2]);
    accept_new(&b, &d).await;
    let r = receipt(&d, H1, Outcome::Delivered, 6_000);
    let answer = said(&k, r.as_statement());
    assert_eq!(
        b.record_answer(d.id, a(H1), answer.clone(), 6_000)
            .await
            .unwrap(),
        AnswerOutcome::Recorded { sender: a(G) }
    );
    // A second answer for the same delivery is ignored (no second relay).
    assert_eq!(
        b.record_answer(d.id, a(H1), answer, 6_001).await.unwrap(),
        AnswerOutcome::AlreadyAnswered
    );
    // The receipt travels the statement path to the sender, none the old relays.
    let pairs = std::collections::HashSet::new();
    assert!(b.relays_for(&a(G), 10, &pairs).await.unwrap().is_empty());
    let queued = b.statement_relays_for(&a(G), 10, &none()).await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].signed.statement().unwrap(), r.as_statement());
    b.statement_relay_done(a(G), queued[0].seq, false)
        .await
        .unwrap();

    // H2 never answers: it expires once older than the cutoff, and the sender is told.
    assert!(b.expired_before(5_000, 10).await.unwrap().is_empty());
    assert_eq!(
        b.expired_before(5_001, 10).await.unwrap(),
        vec![(d.id, a(H2))]
    );
    let n = notice(&d, H2, expired(), 7_000);
    // A notice must come from the hub: signed as an agency's, the rules refuse it.
    let mut forged = n.clone();
    forged.from = a(H1).into();
    assert!(matches!(
        b.record_answer(d.id, a(H2), said(&k, forged), 7_000)
            .await
            .unwrap(),
        AnswerOutcome::Refused(_)
    ));
    b.record_answer(d.id, a(H2), said(&k, n.clone()), 7_000)
        .await
        .unwrap();
    assert!(pending_docs(&b, H2, 10, &[]).await.is_empty());
    let relays = b.statement_relays_for(&a(G), 10, &none()).await.unwrap();
    assert_eq!(relays.len(), 1);
    assert_eq!(relays[0].signed.statement().unwrap(), n);
    assert_eq!(
        history_labels(&b, &d.id).await,
        ["hub_accepted", "delivered", "expired"]
    );

    // Every recipient answered at 7 000: the body goes only after retention.
    assert!(b.release_bodies(7_000, 10).await.unwrap().is_empty());
    assert!(b.inline_body(&d.digest()).await.unwrap().is_some());
    b.release_bodies(7_001, 10).await.unwrap();
    assert!(b.inline_body(&d.digest()).await.unwrap().is_none());
    assert_eq!(b.doc(&d.id).await.unwrap().unwrap().body_at, BodyAt::Gone);
    // Metadata and receipts stay.
    assert_eq!(b.deliveries(&d.id).await.unwrap().len(), 2);
}

/// An answer ends a delivery once, whatever comes after it and in whichever form: the sender's
/// queue holds one item per delivery, and it is counted once.
pub async fn an_answer_ends_a_delivery_once(b: B) {
    let k = key();
    let d = doc(&k, 3, b"payload", &[H1, H2]);
    accept_new(&b, &d).await;
    let first = delivered(&k, &d, H1, 6_000);
    assert_eq!(
        b.record_answer(d.id, a(H1), first.clone(), 6_000)
            .await
            .unwrap(),
        AnswerOutcome::Recorded { sender: a(G) }
    );
    for (answer, at) in [
        (first, 6_500),
        (
            said(
                &k,
                receipt(
                    &d,
                    H1,
                    Outcome::RejectedFor(Reason::new(ReasonCode::TooLarge, "too large")),
                    6_600,
                )
                .as_statement(),
            ),
            6_600,
        ),
        (said(&k, notice(&d, H1, expired(), 6_700)), 6_700),
        (delivered_legacy(&k, &d, H1, 6_800), 6_800),
    ] {
        assert_eq!(
            b.record_answer(d.id, a(H1), answer, at).await.unwrap(),
            AnswerOutcome::AlreadyAnswered,
            "answered again at {at}"
        );
    }
    assert_eq!(b.statement_relay_docs(&a(G)).await.unwrap(), [d.id]);
    assert_eq!(b.statement_relay_depth().await.unwrap(), 1);
    let dels = b.deliveries(&d.id).await.unwrap();
    let h1 = &dels.iter().find(|(r, _)| r == &a(H1)).expect("H1").1;
    assert_eq!(h1.answered_ms, Some(6_000));
    assert_eq!(h1.state.end(), Some(DeliveryEnd::Delivered));

    // The `poros/1` form: one relay in the old queue, once.
    let legacy = delivered_legacy(&k, &d, H2, 7_000);
    assert_eq!(
        b.record_answer(d.id, a(H2), legacy.clone(), 7_000)
            .await
            .unwrap(),
        AnswerOutcome::Recorded { sender: a(G) }
    );
    assert_eq!(
        b.record_answer(d.id, a(H2), legacy, 7_001).await.unwrap(),
        AnswerOutcome::AlreadyAnswered
    );
    let pairs = std::collections::HashSet::new();
    let old = b.relays_for(&a(G), 10, &pairs).await.unwrap();
    assert_eq!(old.len(), 1);
    assert_eq!((old[0].0, &old[0].1), (d.id, &a(H2)));
    let dels = b.deliveries(&d.id).await.unwrap();
    let h2 = &dels.iter().find(|(r, _)| r == &a(H2)).expect("H2").1;
    assert!(matches!(h2.state, DeliveryState::Delivered(_)));
    assert_eq!(h2.answered_ms, Some(7_000));

    // No delivery, or no document: nothing to answer.
    assert_eq!(
        b.record_answer(d.id, a(H3), delivered(&k, &d, H3, 7_100), 7_100)
            .await
            .unwrap(),
        AnswerOutcome::AlreadyAnswered
    );
    let ghost = doc(&k, 4, b"never", &[H1]);
    assert_eq!(
        b.record_answer(ghost.id, a(H1), delivered(&k, &ghost, H1, 7_200), 7_200)
            .await
            .unwrap(),
        AnswerOutcome::AlreadyAnswered
    );

    assert_eq!(b.queue_depth().await.unwrap(), 0);
    assert_eq!(
        history_labels(&b, &d.id).await,
        ["hub_accepted", "delivered"]
    );
    let c = counters(&b).await;
    assert_eq!(count(&c, "deliveries_delivered"), 2);
    assert_eq!(count(&c, "deliveries_rejected"), 0);
    assert_eq!(count(&c, "deliveries_expired"), 0);
    let live = assert_live_equals_recount(&b).await;
    assert_eq!(fig(&live, G, "out_ontime"), 2);

    // Acknowledged, the old relay goes; acknowledging again changes nothing.
    b.relay_done(a(G), d.id, a(H2)).await.unwrap();
    b.relay_done(a(G), d.id, a(H2)).await.unwrap();
    assert!(b.relays_for(&a(G), 10, &pairs).await.unwrap().is_empty());
}

/// Pending deliveries are listed oldest first, `limit` counting only those returned and
/// `skip` leaving some out; answered ones are gone from the list and the counts.
pub async fn pending_deliveries_are_listed_oldest_first(b: B) {
    let k = key();
    let docs: Vec<Doc> = (1..=4)
        .map(|n| {
            let to: &[&str] = if n % 2 == 0 { &[H1, H2] } else { &[H1] };
            doc_from(&k, n, G, &[n; 5], to, 5_000 + n as u64 * 10)
        })
        .collect();
    // Accepted in another order than their age.
    for i in [2, 0, 3, 1] {
        accept_new(&b, &docs[i]).await;
    }
    let id = |i: usize| docs[i].id;
    assert_eq!(
        pending_docs(&b, H1, 10, &[]).await,
        [id(0), id(1), id(2), id(3)]
    );
    let listed = b.pending_for(&a(H1), 10, &none()).await.unwrap();
    let times: Vec<u64> = listed.iter().map(|p| p.accepted_ms).collect();
    assert_eq!(times, [5_010, 5_020, 5_030, 5_040]);
    assert_eq!(pending_docs(&b, H1, 2, &[]).await, [id(0), id(1)]);
    assert_eq!(
        pending_docs(&b, H1, 10, &[id(0), id(2)]).await,
        [id(1), id(3)]
    );
    assert_eq!(pending_docs(&b, H1, 2, &[id(0)]).await, [id(1), id(2)]);
    assert_eq!(pending_docs(&b, H2, 10, &[]).await, [id(1), id(3)]);
    assert!(pending_docs(&b, H3, 10, &[]).await.is_empty());
    assert_eq!(b.pending_count(&a(H1)).await.unwrap(), 4);
    assert_eq!(b.pending_count(&a(H2)).await.unwrap(), 2);
    assert_eq!(b.pending_count(&a(H3)).await.unwrap(), 0);
    assert_eq!(b.queue_depth().await.unwrap(), 6);

    b.record_answer(id(1), a(H1), delivered(&k, &docs[1], H1, 6_000), 6_000)
        .await
        .unwrap();
    assert_eq!(pending_docs(&b, H1, 10, &[]).await, [id(0), id(2), id(3)]);
    assert_eq!(pending_docs(&b, H2, 10, &[]).await, [id(1), id(3)]);
    assert_eq!(b.pending_count(&a(H1)).await.unwrap(), 3);
    assert_eq!(b.queue_depth().await.unwrap(), 5);
}

/// `expired_before` lists pending deliveries accepted before the cutoff, oldest first (by
/// acceptance, not by document ID), at most `limit`, and none once answered.
pub async fn expiry_lists_the_oldest_pending_deliveries_first(b: B) {
    let k = key();
    // IDs sort d1 < d2 < d3; ages d2 (7 000) < d3 (8 000) < d1 (9 000).
    let d1 = doc_from(&k, 1, G, b"one", &[H1], 9_000);
    let d2 = doc_from(&k, 2, G, b"two", &[H1, H2], 7_000);
    let d3 = doc_from(&k, 3, G, b"three", &[H2], 8_000);
    for d in [&d1, &d2, &d3] {
        accept_new(&b, d).await;
    }
    let docs_of = |v: &[(poros_protocol::DocumentId, poros_protocol::AgencyId)]| {
        v.iter().map(|(d, _)| *d).collect::<Vec<_>>()
    };
    let set_of = |v: Vec<(poros_protocol::DocumentId, poros_protocol::AgencyId)>| {
        v.into_iter().collect::<std::collections::HashSet<_>>()
    };

    assert!(b.expired_before(7_000, 10).await.unwrap().is_empty());
    assert_eq!(
        set_of(b.expired_before(7_001, 10).await.unwrap()),
        set_of(vec![(d2.id, a(H1)), (d2.id, a(H2))])
    );
    let all = b.expired_before(u64::MAX, 10).await.unwrap();
    assert_eq!(docs_of(&all), [d2.id, d2.id, d3.id, d1.id]);
    assert_eq!(
        set_of(all),
        set_of(vec![
            (d1.id, a(H1)),
            (d2.id, a(H1)),
            (d2.id, a(H2)),
            (d3.id, a(H2))
        ])
    );
    assert_eq!(
        docs_of(&b.expired_before(u64::MAX, 2).await.unwrap()),
        [d2.id, d2.id]
    );
    assert_eq!(
        docs_of(&b.expired_before(u64::MAX, 3).await.unwrap()),
        [d2.id, d2.id, d3.id]
    );
    assert_eq!(
        b.expired_before(8_001, 10).await.unwrap().len(),
        3,
        "d2's two and d3's one"
    );

    // Answered (a receipt, an expiry): no longer due.
    b.record_answer(d2.id, a(H1), delivered(&k, &d2, H1, 9_500), 9_500)
        .await
        .unwrap();
    b.record_answer(
        d2.id,
        a(H2),
        said(&k, notice(&d2, H2, expired(), 9_600)),
        9_600,
    )
    .await
    .unwrap();
    assert_eq!(
        b.expired_before(u64::MAX, 10).await.unwrap(),
        vec![(d3.id, a(H2)), (d1.id, a(H1))]
    );
    assert!(b.expired_before(8_000, 10).await.unwrap().is_empty());
    let c = counters(&b).await;
    assert_eq!(count(&c, "deliveries_expired"), 1);
    assert_eq!(count(&c, "deliveries_delivered"), 1);
}

/// A body shared by several documents is released only once every document using it is
/// answered and past the cutoff; a body file's digest is returned when its last use goes.
pub async fn retention_frees_a_body_only_when_every_document_is_done(b: B) {
    let k = key();
    let da = doc(&k, 1, b"shared", &[H1]);
    let db = doc(&k, 2, b"shared", &[H1, H2]);
    assert_eq!(da.digest(), db.digest());
    accept_new(&b, &da).await;
    accept_new(&b, &db).await;
    let big = vec![7u8; 70_000];
    let df = doc(&k, 3, &big, &[H1]);
    let file = ReceivedBody::File {
        digest: df.digest(),
        len: big.len() as u64,
        guard: None,
    };
    assert!(matches!(
        b.accept(df.rec.clone(), file).await.unwrap(),
        AcceptOutcome::Stored
    ));
    assert_eq!(b.body_refs(&da.digest()).await.unwrap(), 2);
    assert_eq!(b.body_refs(&df.digest()).await.unwrap(), 1);
    assert_eq!(b.doc(&df.id).await.unwrap().unwrap().body_at, BodyAt::File);
    assert!(b.inline_body(&df.digest()).await.unwrap().is_none());

    // Nothing answered: nothing to release.
    assert!(b.release_bodies(u64::MAX, 10).await.unwrap().is_empty());
    let at = |b: &B, id| {
        let b = b.clone();
        async move { b.doc(&id).await.unwrap().unwrap().body_at }
    };

    // da answered: its use of the body ends, the body stays for db.
    b.record_answer(da.id, a(H1), delivered(&k, &da, H1, 6_000), 6_000)
        .await
        .unwrap();
    assert!(b.release_bodies(u64::MAX, 10).await.unwrap().is_empty());
    assert_eq!(at(&b, da.id).await, BodyAt::Gone);
    assert_eq!(at(&b, db.id).await, BodyAt::Inline);
    assert_eq!(b.body_refs(&da.digest()).await.unwrap(), 1);
    assert_eq!(
        b.inline_body(&da.digest()).await.unwrap().as_deref(),
        Some(&b"shared"[..])
    );

    // db half answered: not yet.
    b.record_answer(db.id, a(H1), delivered(&k, &db, H1, 7_000), 7_000)
        .await
        .unwrap();
    assert!(b.release_bodies(u64::MAX, 10).await.unwrap().is_empty());
    assert_eq!(at(&b, db.id).await, BodyAt::Inline);

    // db all answered at 8 000: released only by a cutoff after that.
    b.record_answer(
        db.id,
        a(H2),
        said(&k, notice(&db, H2, expired(), 8_000)),
        8_000,
    )
    .await
    .unwrap();
    assert!(b.release_bodies(8_000, 10).await.unwrap().is_empty());
    assert_eq!(at(&b, db.id).await, BodyAt::Inline);
    assert!(b.inline_body(&db.digest()).await.unwrap().is_some());
    assert!(b.release_bodies(8_001, 10).await.unwrap().is_empty());
    assert_eq!(at(&b, db.id).await, BodyAt::Gone);
    assert!(b.inline_body(&db.digest()).await.unwrap().is_none());
    assert_eq!(b.body_refs(&db.digest()).await.unwrap(), 0);

    // The file body: its digest is handed back once, for the caller to delete the file.
    b.record_answer(df.id, a(H1), delivered(&k, &df, H1, 9_000), 9_000)
        .await
        .unwrap();
    assert!(b.release_bodies(9_000, 10).await.unwrap().is_empty());
    assert_eq!(at(&b, df.id).await, BodyAt::File);
    assert_eq!(
        b.release_bodies(u64::MAX, 10).await.unwrap(),
        vec![df.digest()]
    );
    assert_eq!(at(&b, df.id).await, BodyAt::Gone);
    assert_eq!(b.body_refs(&df.digest()).await.unwrap(), 0);
    assert!(b.release_bodies(u64::MAX, 10).await.unwrap().is_empty());

    // The records stay.
    assert_eq!(b.deliveries(&db.id).await.unwrap().len(), 2);
    assert_eq!(b.doc(&da.id).await.unwrap().unwrap().accepted_ms, 5_000);
}

/// `release_bodies` releases at most `limit` documents per call, the earliest answered first.
pub async fn retention_releases_in_answer_order_up_to_the_limit(b: B) {
    let k = key();
    let docs: Vec<Doc> = (1..=3).map(|n| doc(&k, n, &[n; 3], &[H1])).collect();
    for d in &docs {
        accept_new(&b, d).await;
    }
    // Answered in the order d3, d1, d2.
    for (i, at) in [(2, 6_000), (0, 6_100), (1, 6_200)] {
        b.record_answer(docs[i].id, a(H1), delivered(&k, &docs[i], H1, at), at)
            .await
            .unwrap();
    }
    let gone = |b: &B| {
        let b = b.clone();
        let ids: Vec<_> = docs.iter().map(|d| d.id).collect();
        async move {
            let mut out = Vec::new();
            for id in ids {
                out.push(b.doc(&id).await.unwrap().unwrap().body_at == BodyAt::Gone);
            }
            out
        }
    };
    b.release_bodies(u64::MAX, 1).await.unwrap();
    assert_eq!(gone(&b).await, [false, false, true]);
    b.release_bodies(u64::MAX, 1).await.unwrap();
    assert_eq!(gone(&b).await, [true, false, true]);
    b.release_bodies(u64::MAX, 5).await.unwrap();
    assert_eq!(gone(&b).await, [true, true, true]);
}
