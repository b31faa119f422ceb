//! Small builders shared by the scenarios: agencies, signed documents, answers and statements
//! (as `hub/src/state/tests.rs` builds them), and short forms of the reads every scenario does.
//!
//! The store never verifies signatures (the hub does before calling it), so one test key signs
//! everything, as the hub's key and every agency's.

use poros_hub::state::{
    AcceptOutcome, Answer, BodyAt, DeliveryState, DocRecord, HubBackend, NodeRecord, NodeState,
    StatementOutcome,
};
use poros_protocol::{
    Acceptance, AgencyId, Digest, DocumentId, Envelope, HubNotice, Metadata, NoticeKind, Outcome,
    Receipt, SignedEnvelope, SignedReceipt, SignedStatement, SigningKey, Staff, Statement,
    StatementKind,
};
use poros_store::ReceivedBody;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The backend under test.
pub type B = Arc<dyn HubBackend>;

pub const G: &str = "000.00.00.G01";
pub const G2: &str = "000.00.00.G02";
pub const H1: &str = "000.00.00.H01";
pub const H2: &str = "000.00.00.H02";
pub const H3: &str = "000.00.00.H03";
pub const K1: &str = "000.00.00.K01";
/// Registered but pending (not an active agency).
pub const P: &str = "000.00.00.H09";

/// The on-time target both backends use by default (ms).
pub const ON_TIME_MS: u64 = 3_600_000;

pub fn a(s: &str) -> AgencyId {
    AgencyId::parse(s).unwrap()
}

/// A fresh signing key.
pub fn key() -> SigningKey {
    SigningKey::generate().unwrap()
}

/// No document to skip.
pub fn none() -> HashSet<DocumentId> {
    HashSet::new()
}

/// A document to accept: ID from `n` (IDs sort by `n`), body and acceptance as given.
pub struct Doc {
    pub id: DocumentId,
    pub rec: DocRecord,
    pub body: Vec<u8>,
}

impl Doc {
    /// The body as received inline.
    pub fn inline(&self) -> ReceivedBody {
        ReceivedBody::inline(self.body.clone())
    }

    pub fn digest(&self) -> Digest {
        self.rec.body_sha256
    }
}

/// A document from `sender` to `recipients` with `body`, accepted at `accepted_ms`.
pub fn doc_from(
    k: &SigningKey,
    n: u8,
    sender: &str,
    body: &[u8],
    recipients: &[&str],
    accepted_ms: u64,
) -> Doc {
    let env = Envelope {
        id: DocumentId::new_v7(1000 + n as u64, [n; 10]),
        sender: a(sender),
        recipients: recipients.iter().map(|r| a(r)).collect(),
        meta: Metadata {
            subject: "s".into(),
            ..Default::default()
        },
        created_ms: 1,
        body_len: body.len() as u64,
        body_sha256: poros_protocol::sha256(body),
        ext: Default::default(),
    };
    let acc = Acceptance {
        doc_id: env.id,
        sender: env.sender.clone(),
        recipients: env.recipients.clone(),
        body_sha256: env.body_sha256,
        body_len: env.body_len,
        accepted_ms,
    };
    let rec = DocRecord {
        envelope: SignedEnvelope::sign(&env, k, b"c").unwrap(),
        acceptance: SignedStatement::sign(&acc.as_statement(), k, b"c")
            .unwrap()
            .0,
        sender: env.sender.clone(),
        recipients: env.recipients.clone(),
        body_sha256: env.body_sha256,
        body_len: env.body_len,
        body_at: BodyAt::Inline,
        accepted_ms,
    };
    Doc {
        id: env.id,
        rec,
        body: body.to_vec(),
    }
}

/// A document from [`G`], accepted at 5 000 ms.
pub fn doc(k: &SigningKey, n: u8, body: &[u8], recipients: &[&str]) -> Doc {
    doc_from(k, n, G, body, recipients, 5_000)
}

/// Accept `d` with its body inline.
pub async fn accept(b: &B, d: &Doc) -> AcceptOutcome {
    b.accept(d.rec.clone(), d.inline()).await.unwrap()
}

/// Accept `d` (inline) and insist it is newly stored.
pub async fn accept_new(b: &B, d: &Doc) {
    let out = accept(b, d).await;
    assert!(
        matches!(out, AcceptOutcome::Stored),
        "{}: expected Stored, got {out:?}",
        d.id
    );
}

/// `stmt` signed, as an answer that ends a delivery.
pub fn said(k: &SigningKey, stmt: Statement) -> Answer {
    Answer::Said(
        SignedStatement::sign(&stmt, k, b"c").unwrap(),
        Box::new(stmt),
    )
}

/// The receipt `recipient` signs for `d` at `time_ms`.
pub fn receipt(d: &Doc, recipient: &str, outcome: Outcome, time_ms: u64) -> Receipt {
    Receipt {
        doc_id: d.id,
        sender: d.rec.sender.clone(),
        recipient: a(recipient),
        body_sha256: d.rec.body_sha256,
        outcome,
        time_ms,
    }
}

/// `recipient`'s delivery receipt for `d`, as a statement.
pub fn delivered(k: &SigningKey, d: &Doc, recipient: &str, time_ms: u64) -> Answer {
    said(
        k,
        receipt(d, recipient, Outcome::Delivered, time_ms).as_statement(),
    )
}

/// `recipient`'s delivery receipt for `d` in the `poros/1` form.
pub fn delivered_legacy(k: &SigningKey, d: &Doc, recipient: &str, time_ms: u64) -> Answer {
    let r = receipt(d, recipient, Outcome::Delivered, time_ms);
    Answer::Legacy(DeliveryState::Delivered(
        SignedReceipt::sign(&r, k, b"c").unwrap(),
    ))
}

/// The hub's notice about `recipient`'s delivery of `d`, as a statement.
pub fn notice(d: &Doc, recipient: &str, kind: NoticeKind, time_ms: u64) -> Statement {
    HubNotice {
        doc_id: d.id,
        sender: d.rec.sender.clone(),
        recipient: a(recipient),
        kind,
        time_ms,
    }
    .as_statement()
}

/// A statement about `doc` by `from` to `to`, signed.
pub fn statement(
    k: &SigningKey,
    doc: DocumentId,
    from: &str,
    to: &[&str],
    kind: StatementKind,
    time_ms: u64,
) -> SignedStatement {
    let s = Statement {
        doc_id: doc,
        from: a(from).into(),
        to: to.iter().map(|t| a(t)).collect(),
        kind,
        staff: Staff {
            department: "Văn thư".into(),
            name: "A".into(),
            email: None,
            phone: None,
        },
        note: None,
        time_ms,
    };
    SignedStatement::sign(&s, k, b"c").unwrap()
}

/// A business status.
pub fn status(s: poros_protocol::BusinessStatus) -> StatementKind {
    StatementKind::Status {
        status: s,
        reason: None,
    }
}

/// An update adding `add` to a document.
pub fn update_adding(add: &str) -> StatementKind {
    StatementKind::Change {
        change: poros_protocol::Change::Update {
            add: vec![a(add)],
            remove: vec![],
            meta: None,
        },
        reason: "also for another agency".into(),
    }
}

/// Submit a signed statement at `now_ms`.
pub async fn submit(b: &B, s: &SignedStatement, now_ms: u64) -> StatementOutcome {
    let stmt = s.statement().unwrap();
    b.accept_statement(s.clone(), stmt, now_ms).await.unwrap()
}

/// Submit and insist it is accepted; its sequence number.
pub async fn submit_ok(b: &B, s: &SignedStatement, now_ms: u64) -> u64 {
    match submit(b, s, now_ms).await {
        StatementOutcome::Accepted { seq, .. } => seq,
        o => panic!("expected the statement to be accepted, got {o:?}"),
    }
}

/// Register `code` in `state`.
pub async fn put_node(b: &B, code: &str, state: NodeState) {
    let mut n = NodeRecord::pending(&a(code), code, 1);
    n.state = state;
    b.put_node(n).await.unwrap();
}

/// The counters as a map (absent = 0 through [`count`]).
pub async fn counters(b: &B) -> HashMap<String, u64> {
    b.counters().await.unwrap().into_iter().collect()
}

/// One counter (0 when absent).
pub fn count(c: &HashMap<String, u64>, name: &str) -> u64 {
    c.get(name).copied().unwrap_or(0)
}

/// The kind labels of a document's history, in order.
pub async fn history_labels(b: &B, doc: &DocumentId) -> Vec<String> {
    b.statement_history(doc)
        .await
        .unwrap()
        .iter()
        .map(|h| h.statement.kind.label().to_string())
        .collect()
}

/// The documents of the statement relays waiting for `to`, and their sequence numbers.
pub async fn relays(b: &B, to: &str, in_flight: &[DocumentId]) -> Vec<(u64, DocumentId)> {
    let f = in_flight.iter().copied().collect();
    b.statement_relays_for(&a(to), 10, &f)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.seq, r.doc))
        .collect()
}

/// The documents of `to`'s pending deliveries, in the order listed.
pub async fn pending_docs(b: &B, to: &str, limit: usize, skip: &[DocumentId]) -> Vec<DocumentId> {
    let skip: HashSet<DocumentId> = skip.iter().copied().collect();
    b.pending_for(&a(to), limit, &skip)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.doc)
        .collect()
}

/// Every counter of every scope summed over the year 1970 (every event of the scenarios
/// happens in it; the year holds each event once).
pub async fn live_sums(b: &B) -> poros_hub::stats::Sums {
    let snap = b.stats_snapshot().await.unwrap();
    snap.sums(&["Y1970".to_string()], None).await.unwrap()
}

/// The metrics [`poros_hub::state::StatisticsBackend::recount`] recounts.
pub fn recounted_metric(m: &str) -> bool {
    matches!(m, "sent" | "out_due" | "in_due")
        || m.starts_with("rej:")
        || ["in_", "out_"].iter().any(|p| {
            m.strip_prefix(p)
                .is_some_and(|r| matches!(r, "ontime" | "late" | "rejected" | "expired"))
        })
}

/// The live statistics equal a recount: every recounted figure is live with the same value,
/// and no live figure of a recounted metric is missing from the recount.
pub async fn assert_live_equals_recount(b: &B) -> poros_hub::stats::Sums {
    let recount = b.recount(ON_TIME_MS).await.unwrap();
    let live = live_sums(b).await;
    for (scope, metrics) in &recount {
        for (m, v) in metrics {
            let got = live.get(scope).and_then(|s| s.get(m));
            assert_eq!(got, Some(v), "live {scope} {m} vs the recount");
        }
    }
    for (scope, metrics) in &live {
        for (m, v) in metrics.iter().filter(|(m, _)| recounted_metric(m)) {
            let want = recount.get(scope).and_then(|s| s.get(m)).copied();
            assert_eq!(
                want.unwrap_or(0),
                *v,
                "live {scope} {m} = {v}, the recount says {want:?}"
            );
        }
    }
    recount
}

/// One figure of a `Sums` (0 when absent).
pub fn fig(s: &poros_hub::stats::Sums, scope: &str, metric: &str) -> u64 {
    s.get(scope)
        .and_then(|m| m.get(metric))
        .copied()
        .unwrap_or(0)
}

/// `NoticeKind::Expired`, short.
pub fn expired() -> NoticeKind {
    NoticeKind::Expired
}
