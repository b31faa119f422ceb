//! Counters and statistics: equal to a recount after a mixed history; connections, paper
//! counts and overdue deliveries.

use super::helpers::*;
use poros_hub::state::{DeliveryState, NodeState};
use poros_hub::stats::{Day, PaperCount, NATIONAL};
use poros_protocol::{
    BodyLostReason, BusinessStatus, NoticeKind, Outcome, Reason, ReasonCode, SignedReceipt,
};
use std::collections::HashSet;

/// After a history of every kind of event (accepts, receipts on time and late, in both forms,
/// rejections with codes, expiries, a body lost, business statements, an update adding a
/// recipient), the live statistics equal a recount and the counters the events.
pub async fn counters_equal_a_recount(b: B) {
    for code in [G, G2, H1, H2, H3, K1] {
        put_node(&b, code, NodeState::Active).await;
    }
    let k = key();
    let answer = |d: &Doc, who: &str, ans, at| {
        let b = b.clone();
        let (id, who) = (d.id, a(who));
        async move {
            let out = b.record_answer(id, who.clone(), ans, at).await.unwrap();
            assert!(
                matches!(out, poros_hub::state::AnswerOutcome::Recorded { .. }),
                "{id} {who} at {at}: {out:?}"
            );
        }
    };
    let rejected = |code| Outcome::RejectedFor(Reason::new(code, "refused"));

    // d1: G → H1 (on time), H2 (late); H1 then registers and completes, H2 registers.
    let d1 = doc_from(&k, 1, G, b"one", &[H1, H2], 5_000);
    accept_new(&b, &d1).await;
    answer(&d1, H1, delivered(&k, &d1, H1, 6_000), 6_000).await;
    let late = 5_000 + ON_TIME_MS + 1;
    answer(&d1, H2, delivered(&k, &d1, H2, late), late).await;
    // d2: G → H1 (rejected, too large), K1 (expired).
    let d2 = doc_from(&k, 2, G, b"two", &[H1, K1], 10_000);
    accept_new(&b, &d2).await;
    let rej = said(
        &k,
        receipt(&d2, H1, rejected(ReasonCode::TooLarge), 11_000).as_statement(),
    );
    answer(&d2, H1, rej, 11_000).await;
    answer(
        &d2,
        K1,
        said(&k, notice(&d2, K1, expired(), 20_000)),
        20_000,
    )
    .await;
    // d3: G2 → H1, delivered in the `poros/1` form; d4: G2 → H2, rejected in that form, its
    // reason only a text (counted by the code the text stands for).
    let d3 = doc_from(&k, 3, G2, b"three", &[H1], 30_000);
    accept_new(&b, &d3).await;
    answer(&d3, H1, delivered_legacy(&k, &d3, H1, 31_000), 31_000).await;
    let d4 = doc_from(&k, 4, G2, b"four", &[H2], 30_500);
    accept_new(&b, &d4).await;
    let why = "body of 102400 bytes exceeds this agency's limit of 65536 bytes";
    let r4 = SignedReceipt::sign(
        &receipt(&d4, H2, Outcome::Rejected { reason: why.into() }, 32_000),
        &k,
        b"c",
    )
    .unwrap();
    answer(
        &d4,
        H2,
        poros_hub::state::Answer::Legacy(DeliveryState::Rejected(r4, why.into())),
        32_000,
    )
    .await;
    // d5: G → H3, never answered.
    let d5 = doc_from(&k, 5, G, b"five", &[H3], 35_000);
    accept_new(&b, &d5).await;
    // d6: G → H2, its body lost.
    let d6 = doc_from(&k, 6, G, b"six", &[H2], 36_000);
    accept_new(&b, &d6).await;
    b.hold_damaged(d6.id, "missing".into(), 36_500)
        .await
        .unwrap();
    let notices = b
        .held_for(&d6.digest())
        .await
        .unwrap()
        .into_iter()
        .map(|h| {
            let n = notice(
                &d6,
                h.recipient.as_str(),
                NoticeKind::BodyLost {
                    reason: BodyLostReason::RepairAttemptsExhausted,
                },
                37_000,
            );
            (h, said(&k, n))
        })
        .collect();
    assert_eq!(
        b.body_lost(d6.digest(), notices, 37_000).await.unwrap(),
        vec![a(G)]
    );

    // Business statements and an update adding H3 to d1, which H3 then receives.
    let st = |from: &str, kind| statement(&k, d1.id, from, &[G], kind, 40_000);
    submit_ok(&b, &st(H1, status(BusinessStatus::Registered)), 40_000).await;
    submit_ok(&b, &st(H2, status(BusinessStatus::Registered)), 40_100).await;
    submit_ok(&b, &st(H1, status(BusinessStatus::Completed)), 40_200).await;
    let up = statement(&k, d1.id, G, &[H1], update_adding(H3), 41_000);
    submit_ok(&b, &up, 41_000).await;
    answer(&d1, H3, delivered(&k, &d1, H3, 42_000), 42_000).await;

    let recount = assert_live_equals_recount(&b).await;
    // The history happened, as counted (so an empty recount of empty counters cannot pass).
    for (scope, metric, n) in [
        (NATIONAL, "sent", 6),
        (NATIONAL, "in_due", 9),
        (NATIONAL, "in_ontime", 3),
        (NATIONAL, "in_late", 1),
        (NATIONAL, "in_rejected", 2),
        (NATIONAL, "in_expired", 2),
        (G, "sent", 4),
        (G, "out_due", 7),
        (G, "out_late", 1),
        (G, "out_expired", 2),
        (G2, "out_rejected", 1),
        (H1, "rej:too_large", 1),
        (H2, "rej:too_large", 1),
        (H3, "in_due", 2),
        (H3, "in_ontime", 1),
        (K1, "in_expired", 1),
        ("group:K", "in_due", 1),
        ("group:H", "in_rejected", 2),
    ] {
        assert_eq!(fig(&recount, scope, metric), n, "{scope} {metric}");
    }
    // Figures the recount does not cover, counted live.
    let live = live_sums(&b).await;
    assert_eq!(
        fig(&live, H1, "in_latency_ms"),
        1_000 + 1_000,
        "d1 and d3 took 1 s each"
    );
    let c = counters(&b).await;
    for (name, n) in [
        ("documents_accepted", 6),
        ("deliveries_queued", 9),
        ("deliveries_delivered", 4),
        ("deliveries_rejected", 2),
        ("deliveries_expired", 1),
        ("deliveries_lost", 1),
        ("statements_accepted", 4),
        ("bodies_lost", 1),
        ("body_bytes_accepted", 3 + 3 + 5 + 4 + 4 + 3),
    ] {
        assert_eq!(count(&c, name), n, "counter {name}");
    }
    let mut kinds = b.statement_counts().await.unwrap();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            ("completed".to_string(), 1),
            ("registered".to_string(), 2),
            ("update".to_string(), 1)
        ]
    );
    // The on-time target is the recount's argument: with a longer one, the late one is not.
    let generous = b.recount(ON_TIME_MS * 2).await.unwrap();
    assert_eq!(fig(&generous, NATIONAL, "in_late"), 0);
    assert_eq!(fig(&generous, NATIONAL, "in_ontime"), 4);
}

/// Agencies seen per day, month and year; paper counts replaced, not added; overdue
/// deliveries counted per recipient over a window of acceptance times.
pub async fn connections_paper_counts_and_overdue(b: B) {
    // Seen: on 1970-01-02 (one day in ms = 86 400 000) and on 1970-02-01.
    let jan2 = 86_400_000 + 5;
    let feb1 = 31 * 86_400_000 + 5;
    b.mark_seen(vec![a(H1), a(H2)], jan2).await.unwrap();
    b.mark_seen(vec![a(H1)], jan2 + 1).await.unwrap();
    b.mark_seen(vec![a(G)], feb1).await.unwrap();
    let snap = b.stats_snapshot().await.unwrap();
    let set = |v: &[&str]| -> HashSet<String> { v.iter().map(|s| s.to_string()).collect() };
    assert_eq!(
        snap.seen(&[Day::of_ms(jan2).key()]).await.unwrap(),
        set(&[H1, H2])
    );
    assert_eq!(snap.seen(&["M1970-02".into()]).await.unwrap(), set(&[G]));
    assert_eq!(
        snap.seen(&["Y1970".into()]).await.unwrap(),
        set(&[G, H1, H2])
    );
    assert!(snap.seen(&[Day::of_ms(5).key()]).await.unwrap().is_empty());
    drop(snap);

    // Paper counts: a corrected report replaces the earlier one in every aggregate.
    let paper = |sent, received| PaperCount {
        sent,
        received,
        signed: vec![1, 2, 3],
    };
    b.put_paper(a(H1), "1970-01".into(), paper(3, 4))
        .await
        .unwrap();
    b.put_paper(a(H2), "1970-01".into(), paper(10, 0))
        .await
        .unwrap();
    b.put_paper(a(H1), "1970-01".into(), paper(5, 1))
        .await
        .unwrap();
    b.put_paper(a(H1), "1970-02".into(), paper(1, 1))
        .await
        .unwrap();
    let snap = b.stats_snapshot().await.unwrap();
    let p = snap.paper_sums(&["1970-01".into()]).await.unwrap();
    assert_eq!(fig(&p, H1, "paper_sent"), 5);
    assert_eq!(fig(&p, H1, "paper_received"), 1);
    assert_eq!(fig(&p, "group:H", "paper_sent"), 15);
    assert_eq!(fig(&p, NATIONAL, "paper_received"), 1);
    let both = snap
        .paper_sums(&["1970-01".into(), "1970-02".into()])
        .await
        .unwrap();
    assert_eq!(fig(&both, H1, "paper_sent"), 6);
    let year = snap.sums(&["Y1970".into()], Some(H1)).await.unwrap();
    assert_eq!(fig(&year, H1, "paper_sent"), 6);
    assert_eq!(fig(&year, H1, "paper_received"), 2);
    assert_eq!(year.len(), 1, "only the scope asked: {year:?}");
    let month = snap.sums(&["M1970-01".into()], None).await.unwrap();
    assert_eq!(fig(&month, "group:H", "paper_sent"), 15);
    assert_eq!(fig(&month, NATIONAL, "paper_received"), 1);
    drop(snap);

    // Overdue: pending deliveries by acceptance time in [from, min(to, older_than)).
    let k = key();
    let d1 = doc_from(&k, 1, G, b"1", &[H1, H2], 1_000);
    let d2 = doc_from(&k, 2, G, b"2", &[H1], 2_000);
    let d3 = doc_from(&k, 3, G, b"3", &[H1], 3_000);
    for d in [&d1, &d2, &d3] {
        accept_new(&b, d).await;
    }
    b.record_answer(d2.id, a(H1), delivered(&k, &d2, H1, 2_500), 2_500)
        .await
        .unwrap();
    let od = b.overdue(0, 10_000, 10_000).await.unwrap();
    assert_eq!(od.get(H1), Some(&2));
    assert_eq!(od.get(H2), Some(&1));
    assert_eq!(od.len(), 2);
    let od = b.overdue(0, 10_000, 3_000).await.unwrap();
    assert_eq!((od.get(H1), od.get(H2)), (Some(&1), Some(&1)));
    let od = b.overdue(1_001, 10_000, 10_000).await.unwrap();
    assert_eq!((od.get(H1), od.get(H2)), (Some(&1), None));
    assert!(b.overdue(5_000, 1_000, 10_000).await.unwrap().is_empty());
}
