//! Many tasks doing the same thing at once (as several hub instances, or one hub's connections
//! retrying, would): each effect happens once, and the counters say so.

use super::helpers::*;
use poros_hub::state::{AcceptOutcome, AnswerOutcome, NodeState, StatementOutcome};
use poros_protocol::BusinessStatus;
use poros_store::StoreError;
use std::sync::Arc;

const TASKS: usize = 8;

/// Run `TASKS` copies of `f` at once (released together) and collect their results; none may
/// fail (the backend retries its own conflicts). A failure shows the backend's own figures
/// (for PostgreSQL: how often transactions were run again).
async fn race<T, F, Fut>(b: &B, f: F) -> Vec<T>
where
    T: Send + std::fmt::Debug + 'static,
    F: Fn(B, usize) -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
{
    let start = Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let start = start.clone();
        let fut = f(b.clone(), i);
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            fut.await
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("the task ran"));
    }
    if out.iter().any(Result::is_err) {
        panic!(
            "{} of {TASKS} failed: {out:?}\n{}",
            out.iter().filter(|r| r.is_err()).count(),
            b.health_metrics()
        );
    }
    out.into_iter().map(Result::unwrap).collect()
}

/// Eight tasks accepting the same document at once: exactly one stores it, the others are
/// told it is a duplicate accepted at the first time; everything of it exists once.
pub async fn concurrent_accepts_store_once(b: B) {
    let k = key();
    let d = Arc::new(doc(&k, 1, b"racing", &[H1, H2]));
    let outs = race(&b, |b, _| {
        let d = d.clone();
        async move { b.accept(d.rec.clone(), d.inline()).await }
    })
    .await;
    let stored = outs
        .iter()
        .filter(|o| matches!(o, AcceptOutcome::Stored))
        .count();
    let dups = outs
        .iter()
        .filter(|o| matches!(o, AcceptOutcome::Duplicate { accepted_ms: 5_000 }))
        .count();
    assert_eq!((stored, dups), (1, TASKS - 1), "{outs:?}");
    assert_eq!(b.queue_depth().await.unwrap(), 2);
    assert_eq!(b.body_refs(&d.digest()).await.unwrap(), 1);
    assert_eq!(b.deliveries(&d.id).await.unwrap().len(), 2);
    assert_eq!(b.expired_before(u64::MAX, 100).await.unwrap().len(), 2);
    assert_eq!(history_labels(&b, &d.id).await, ["hub_accepted"]);
    let c = counters(&b).await;
    assert_eq!(count(&c, "documents_accepted"), 1);
    assert_eq!(count(&c, "deliveries_queued"), 2);
    let recount = assert_live_equals_recount(&b).await;
    assert_eq!(fig(&recount, G, "sent"), 1);
}

/// Eight different documents accepted at once all count, each once.
pub async fn concurrent_accepts_of_different_documents_all_count(b: B) {
    let k = key();
    let docs: Arc<Vec<Doc>> = Arc::new(
        (0..TASKS as u8)
            .map(|n| doc(&k, n + 1, &[n; 6], &[H1, H2]))
            .collect(),
    );
    let outs = race(&b, |b, i| {
        let docs = docs.clone();
        async move {
            let d = &docs[i];
            b.accept(d.rec.clone(), d.inline()).await
        }
    })
    .await;
    assert!(
        outs.iter().all(|o| matches!(o, AcceptOutcome::Stored)),
        "{outs:?}"
    );
    assert_eq!(b.queue_depth().await.unwrap(), 2 * TASKS as u64);
    assert_eq!(
        pending_docs(&b, H1, 100, &[]).await,
        docs.iter().map(|d| d.id).collect::<Vec<_>>()
    );
    let c = counters(&b).await;
    assert_eq!(count(&c, "documents_accepted"), TASKS as u64);
    assert_eq!(count(&c, "deliveries_queued"), 2 * TASKS as u64);
    assert_eq!(count(&c, "body_bytes_accepted"), 6 * TASKS as u64);
    let recount = assert_live_equals_recount(&b).await;
    assert_eq!(fig(&recount, "national", "sent"), TASKS as u64);
}

/// Eight tasks answering the same delivery at once: exactly one records it; the sender gets
/// one relay, the history one receipt, the counters one delivery.
pub async fn concurrent_answers_record_once(b: B) {
    let k = Arc::new(key());
    let d = Arc::new(doc(&k, 1, b"answer me", &[H1]));
    accept_new(&b, &d).await;
    let outs = race(&b, |b, i| {
        let (k, d) = (k.clone(), d.clone());
        async move {
            let at = 6_000 + i as u64;
            b.record_answer(d.id, a(H1), delivered(&k, &d, H1, at), at)
                .await
        }
    })
    .await;
    let recorded = outs
        .iter()
        .filter(|o| **o == AnswerOutcome::Recorded { sender: a(G) })
        .count();
    let already = outs
        .iter()
        .filter(|o| **o == AnswerOutcome::AlreadyAnswered)
        .count();
    assert_eq!((recorded, already), (1, TASKS - 1), "{outs:?}");
    assert_eq!(b.statement_relay_docs(&a(G)).await.unwrap(), [d.id]);
    assert_eq!(
        history_labels(&b, &d.id).await,
        ["hub_accepted", "delivered"]
    );
    assert_eq!(b.queue_depth().await.unwrap(), 0);
    assert!(b.expired_before(u64::MAX, 10).await.unwrap().is_empty());
    let c = counters(&b).await;
    assert_eq!(count(&c, "deliveries_delivered"), 1);
    let recount = assert_live_equals_recount(&b).await;
    assert_eq!(fig(&recount, H1, "in_ontime"), 1);
}

/// Eight tasks submitting the same statement at once: one accepts it, the others are told it
/// is a duplicate; it is stored, queued and counted once.
pub async fn concurrent_statements_store_once(b: B) {
    for code in [G, H1] {
        put_node(&b, code, NodeState::Active).await;
    }
    let k = key();
    let d = doc(&k, 1, b"statement", &[H1]);
    accept_new(&b, &d).await;
    b.record_answer(d.id, a(H1), delivered(&k, &d, H1, 6_000), 6_000)
        .await
        .unwrap();
    let reg = Arc::new(statement(
        &k,
        d.id,
        H1,
        &[G],
        status(BusinessStatus::Registered),
        7_000,
    ));
    let outs = race(&b, |b, i| {
        let reg = reg.clone();
        async move {
            let stmt = reg.statement().unwrap();
            b.accept_statement((*reg).clone(), stmt, 8_000 + i as u64)
                .await
        }
    })
    .await;
    let accepted = outs
        .iter()
        .filter(|o| matches!(o, StatementOutcome::Accepted { .. }))
        .count();
    let dups = outs
        .iter()
        .filter(|o| **o == StatementOutcome::Duplicate)
        .count();
    assert_eq!((accepted, dups), (1, TASKS - 1), "{outs:?}");
    assert_eq!(
        history_labels(&b, &d.id).await,
        ["hub_accepted", "delivered", "registered"]
    );
    assert_eq!(b.statement_relay_depth().await.unwrap(), 2);
    assert_eq!(
        b.statement_counts().await.unwrap(),
        vec![("registered".to_string(), 1)]
    );
    assert_eq!(count(&counters(&b).await, "statements_accepted"), 1);
}

/// Eight redemptions of one token at once: exactly one succeeds, and its node record is the
/// one stored.
pub async fn concurrent_redeems_use_a_token_once(b: B) {
    use super::registry::{active, add_with_token, audit};
    add_with_token(&b, H2, "race").await;
    let outs = race(&b, |b, i| async move {
        let mut rec = active(H2);
        rec.tls_serial = format!("serial-{i}");
        b.redeem_token("race".into(), rec, 2_000 + i as u64, audit("enrol", &a(H2)))
            .await
    })
    .await;
    let won: Vec<usize> = (0..TASKS).filter(|i| outs[*i]).collect();
    assert_eq!(won.len(), 1, "exactly one redemption wins: {outs:?}");
    let w = won[0];
    assert_eq!(
        b.token("race").await.unwrap().unwrap().used_ms,
        Some(2_000 + w as u64)
    );
    let nodes = b.nodes().await.unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(
        nodes[0].tls_serial,
        format!("serial-{w}"),
        "the winner's record"
    );
    assert_eq!(b.audit_log(Some(&a(H2))).await.unwrap().len(), 2);
}
