//! Tests of the store seam: registry records, acceptance, answers, expiry, retention and
//! held deliveries.

use super::registry::audit_in;
use super::*;
use poros_protocol::{
    Acceptance, Envelope, HubNotice, Metadata, NoticeKind, Outcome, Receipt, SignedEnvelope,
    SignedStatement, SigningKey, Statement,
};
use poros_store::ReceivedBody;

/// A fresh signing key (also used by the statement store's tests).
pub(super) fn key() -> SigningKey {
    SigningKey::generate().unwrap()
}

pub(super) fn a(s: &str) -> AgencyId {
    AgencyId::parse(s).unwrap()
}

#[test]
fn serial_checks_follow_renewal_and_overlap() {
    let mut n = NodeRecord::pending(&a("000.00.00.G01"), "G01", 0);
    assert_eq!(
        n.check_tls_serial("", 0, 10),
        SerialCheck::Unknown,
        "pending: none holds"
    );
    n.tls_serial = "aa01".into();
    n.sign_serial = "bb01".into();
    assert_eq!(n.check_tls_serial("AA01", 5, 10), SerialCheck::Current);
    assert_eq!(
        n.check_sign_serial("aa01", 5, 10),
        SerialCheck::Unknown,
        "TLS serial as signer"
    );
    assert_eq!(
        n.check_tls_serial("cc99", 5, 10),
        SerialCheck::Unknown,
        "never issued"
    );
    // Renewed at t = 1000 with a 10 ms overlap: the old pair is admitted until t = 1010.
    n.superseded = Some(Superseded {
        tls_serial: "aa01".into(),
        sign_serial: "bb01".into(),
        at_ms: 1000,
    });
    n.tls_serial = "aa02".into();
    n.sign_serial = "bb02".into();
    assert_eq!(n.check_tls_serial("aa02", 1005, 10), SerialCheck::Current);
    assert_eq!(
        n.check_tls_serial("aa01", 1009, 10),
        SerialCheck::Superseded
    );
    assert_eq!(
        n.check_sign_serial("bb01", 1009, 10),
        SerialCheck::Superseded
    );
    assert_eq!(
        n.check_tls_serial("aa01", 1010, 10),
        SerialCheck::Unknown,
        "overlap over"
    );
    assert_eq!(n.check_sign_serial("bb01", 1010, 10), SerialCheck::Unknown);
}

#[test]
fn node_records_of_earlier_versions_still_decode() {
    #[derive(Serialize)]
    struct V1<'a> {
        agency: &'a AgencyId,
        name: &'a str,
        state: NodeState,
        tls_serial: &'a str,
        sign_serial: &'a str,
        tls_not_after: i64,
        registered_ms: u64,
        tls_not_before: i64,
        last_seen_ms: Option<u64>,
    }
    let g = a("000.00.00.G01");
    let old = postcard::to_allocvec(&V1 {
        agency: &g,
        name: "Ministry",
        state: NodeState::Active,
        tls_serial: "aa01",
        sign_serial: "bb01",
        tls_not_after: 99,
        registered_ms: 7,
        tls_not_before: 9,
        last_seen_ms: Some(8),
    })
    .unwrap();
    let n = dec_node(&old).unwrap();
    assert_eq!(
        (n.name.as_str(), n.tls_serial.as_str(), n.last_seen_ms),
        ("Ministry", "aa01", Some(8))
    );
    assert_eq!(
        (n.superseded.clone(), n.conflicts, n.last_conflict.clone()),
        (None, 0, None)
    );
    // And a current record round-trips with its new fields.
    let mut cur = n.clone();
    cur.conflicts = 3;
    assert_eq!(dec_node(&enc(&cur).unwrap()).unwrap(), cur);
}

pub(super) fn doc(
    k: &SigningKey,
    n: u8,
    body: &[u8],
    recipients: &[&str],
) -> (DocumentId, DocRecord) {
    let env = Envelope {
        id: DocumentId::new_v7(1000 + n as u64, [n; 10]),
        sender: a("000.00.00.G01"),
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
        accepted_ms: 5_000,
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
        accepted_ms: 5_000,
    };
    (env.id, rec)
}

/// `stmt` signed, as an answer that ends a delivery.
pub(super) fn said(k: &SigningKey, stmt: Statement) -> Answer {
    Answer::Said(
        SignedStatement::sign(&stmt, k, b"c").unwrap(),
        Box::new(stmt),
    )
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn accept_is_idempotent_and_conflicts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = HubStore::open(Db::open(&dir.path().join("h.redb")).unwrap()).unwrap();
    let k = key();
    let (id, rec) = doc(&k, 1, b"body", &["000.00.00.H01", "000.00.00.H02"]);
    let rt = rt();
    let first = rt
        .block_on(store.accept(rec.clone(), ReceivedBody::inline(b"body".to_vec())))
        .unwrap();
    assert!(matches!(first, AcceptOutcome::Stored));
    let again = rt
        .block_on(store.accept(rec.clone(), ReceivedBody::inline(b"body".to_vec())))
        .unwrap();
    assert!(matches!(
        again,
        AcceptOutcome::Duplicate { accepted_ms: 5_000 }
    ));
    let (_, mut other) = doc(&k, 1, b"other", &["000.00.00.H01"]);
    other.acceptance = rec.acceptance.clone();
    let c = rt
        .block_on(store.accept(other.clone(), ReceivedBody::inline(b"other".to_vec())))
        .unwrap();
    assert!(matches!(c, AcceptOutcome::Conflict));
    // One pending delivery per recipient, stored once.
    let none = std::collections::HashSet::new();
    assert_eq!(
        store
            .pending_for(&a("000.00.00.H01"), 10, &none)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store.pending_for(&a("000.00.00.H02"), 10, &none).unwrap()[0].doc,
        id
    );
    assert_eq!(store.queue_depth().unwrap(), 2);
    let counters: HashMap<String, u64> = store.counters().unwrap().into_iter().collect();
    assert_eq!(counters["documents_accepted"], 1);
    // The acceptance is the first statement of the history, stored once and relayed to no one.
    let h = store.statement_history(&id).unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].statement.from, poros_protocol::Party::Hub);
    assert_eq!(h[0].statement.kind.label(), "hub_accepted");
    assert_eq!(store.statement_relay_depth().unwrap(), 0);
}

use std::collections::HashMap;

#[test]
fn answers_relay_once_expiry_notifies_and_retention_frees_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let store = HubStore::open(Db::open(&dir.path().join("h.redb")).unwrap()).unwrap();
    let k = key();
    let (id, rec) = doc(&k, 2, b"payload", &["000.00.00.H01", "000.00.00.H02"]);
    let rt = rt();
    rt.block_on(store.accept(rec.clone(), ReceivedBody::inline(b"payload".to_vec())))
        .unwrap();
    let receipt = Receipt {
        doc_id: id,
        sender: a("000.00.00.G01"),
        recipient: a("000.00.00.H01"),
        body_sha256: poros_protocol::sha256(b"payload"),
        outcome: Outcome::Delivered,
        time_ms: 6_000,
    };
    let answer = said(&k, receipt.as_statement());
    let outcome = rt
        .block_on(store.record_answer(id, a("000.00.00.H01"), answer.clone(), 6_000))
        .unwrap();
    assert_eq!(
        outcome,
        AnswerOutcome::Recorded {
            sender: a("000.00.00.G01")
        }
    );
    // A second answer for the same delivery is ignored (no second relay).
    assert_eq!(
        rt.block_on(store.record_answer(id, a("000.00.00.H01"), answer, 6_001))
            .unwrap(),
        AnswerOutcome::AlreadyAnswered
    );
    // The receipt travels the statement path to the sender, none the old relays.
    let none = std::collections::HashSet::new();
    assert!(store
        .relays_for(&a("000.00.00.G01"), 10, &none)
        .unwrap()
        .is_empty());
    let no_docs = std::collections::HashSet::new();
    let queued = store
        .statement_relays_for(&a("000.00.00.G01"), 10, &no_docs)
        .unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(
        queued[0].signed.statement().unwrap(),
        receipt.as_statement()
    );
    rt.block_on(store.statement_relay_done(a("000.00.00.G01"), queued[0].seq, false))
        .unwrap();

    // H02 never answers: it expires once older than the cutoff, and the sender is told.
    assert!(store.expired_before(5_000, 10).unwrap().is_empty());
    let due = store.expired_before(5_001, 10).unwrap();
    assert_eq!(due, vec![(id, a("000.00.00.H02"))]);
    let notice = HubNotice {
        doc_id: id,
        sender: a("000.00.00.G01"),
        recipient: a("000.00.00.H02"),
        kind: NoticeKind::Expired,
        time_ms: 7_000,
    }
    .as_statement();
    // A notice must come from the hub: signed as an agency's, the rules refuse it.
    let mut forged = notice.clone();
    forged.from = a("000.00.00.H01").into();
    assert!(matches!(
        rt.block_on(store.record_answer(id, a("000.00.00.H02"), said(&k, forged), 7_000))
            .unwrap(),
        AnswerOutcome::Refused(_)
    ));
    rt.block_on(store.record_answer(id, a("000.00.00.H02"), said(&k, notice.clone()), 7_000))
        .unwrap();
    assert!(store
        .pending_for(&a("000.00.00.H02"), 10, &std::collections::HashSet::new())
        .unwrap()
        .is_empty());
    let relays = store
        .statement_relays_for(&a("000.00.00.G01"), 10, &no_docs)
        .unwrap();
    assert_eq!(relays.len(), 1);
    assert_eq!(relays[0].signed.statement().unwrap(), notice);
    let labels: Vec<String> = store
        .statement_history(&id)
        .unwrap()
        .iter()
        .map(|h| h.statement.kind.label().to_string())
        .collect();
    assert_eq!(labels, ["hub_accepted", "delivered", "expired"]);

    // Every recipient answered at 7_000: the body goes only after retention.
    assert!(rt
        .block_on(store.release_bodies(7_000, 10))
        .unwrap()
        .is_empty());
    assert!(store
        .inline_body(&poros_protocol::sha256(b"payload"))
        .unwrap()
        .is_some());
    rt.block_on(store.release_bodies(7_001, 10)).unwrap();
    assert!(store
        .inline_body(&poros_protocol::sha256(b"payload"))
        .unwrap()
        .is_none());
    let d = store.doc(&id).unwrap().unwrap();
    assert_eq!(d.body_at, BodyAt::Gone);
    // Metadata and receipts stay.
    assert_eq!(store.deliveries(&id).unwrap().len(), 2);
}

#[test]
fn damaged_body_holds_deliveries_until_repaired_or_lost() {
    let dir = tempfile::tempdir().unwrap();
    let store = HubStore::open(Db::open(&dir.path().join("h.redb")).unwrap()).unwrap();
    let k = key();
    let (h1, h2) = (a("000.00.00.H01"), a("000.00.00.H02"));
    let (id, rec) = doc(&k, 3, b"payload", &["000.00.00.H01", "000.00.00.H02"]);
    let digest = rec.body_sha256;
    let rt = rt();
    rt.block_on(store.accept(rec.clone(), ReceivedBody::inline(b"payload".to_vec())))
        .unwrap();
    let none = std::collections::HashSet::new();
    let sender = a("000.00.00.G01");

    // Found damaged twice (two recipients' attempts): one request, both deliveries held.
    let asked = rt
        .block_on(store.hold_damaged(id, "missing".into(), 6_000))
        .unwrap();
    assert_eq!(asked, Some(sender.clone()));
    assert_eq!(
        rt.block_on(store.hold_damaged(id, "missing".into(), 6_001))
            .unwrap(),
        None
    );
    assert!(store.pending_for(&h1, 10, &none).unwrap().is_empty());
    assert_eq!(store.held_count(None).unwrap(), 2);
    assert_eq!(
        store.repairs_for(&sender, 10, &none).unwrap(),
        vec![(id, digest)]
    );

    // Repaired: back in both queues, request gone.
    let wake = rt
        .block_on(store.body_repaired(digest, Some(b"payload".to_vec())))
        .unwrap();
    assert_eq!(wake.len(), 2);
    assert_eq!(store.pending_for(&h2, 10, &none).unwrap()[0].doc, id);
    assert!(store.repairs_for(&sender, 10, &none).unwrap().is_empty());
    assert_eq!(store.held_count(None).unwrap(), 0);

    // Damaged again and lost: each held delivery ends with its notice, relayed like an
    // expiry and counted as one.
    rt.block_on(store.hold_damaged(id, "missing".into(), 7_000))
        .unwrap();
    let held = store.held_for(&digest).unwrap();
    assert_eq!(held.len(), 2);
    let notices = held
        .into_iter()
        .map(|h| {
            let n = HubNotice {
                doc_id: h.doc,
                sender: h.sender.clone(),
                recipient: h.recipient.clone(),
                kind: NoticeKind::BodyLost {
                    reason: poros_protocol::BodyLostReason::SenderHasNoCopy,
                },
                time_ms: 8_000,
            }
            .as_statement();
            (h, said(&k, n))
        })
        .collect();
    let wake = rt
        .block_on(store.body_lost(digest, notices, 8_000))
        .unwrap();
    assert_eq!(wake, vec![sender.clone(), sender.clone()]);
    assert_eq!(store.held_count(None).unwrap(), 0);
    assert!(store.damage(&digest).unwrap().is_none());
    assert!(store.expired_before(u64::MAX, 10).unwrap().is_empty());
    let no_relays = std::collections::HashSet::new();
    assert_eq!(
        store
            .statement_relays_for(&sender, 10, &no_relays)
            .unwrap()
            .len(),
        1,
        "two notices about one document: one relay at a time"
    );
    assert_eq!(store.statement_relay_docs(&sender).unwrap(), [id, id]);
    let counters: HashMap<String, u64> = store.counters().unwrap().into_iter().collect();
    assert_eq!(counters["deliveries_lost"], 2);
    assert_eq!(counters["bodies_lost"], 1);
    assert_eq!(counters["bodies_repaired"], 1);
    assert_eq!(counters["body_repairs_requested"], 2);
    let recount = store.recount(3_600_000).unwrap();
    assert_eq!(recount[sender.as_str()]["out_expired"], 2);
}

#[test]
fn audit_is_paged_from_a_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let store = HubStore::open(Db::open(&dir.path().join("h.redb")).unwrap()).unwrap();
    for i in 0..25 {
        let rec = AuditRecord {
            time_ms: i,
            actor: "admin@test".into(),
            action: format!("action {i}"),
            agency: None,
            detail: String::new(),
        };
        store
            .db
            .write_blocking(move |txn| audit_in(txn, &rec))
            .unwrap();
    }
    let (mut seen, mut after, mut pages) = (Vec::new(), 0, 0);
    loop {
        let (page, next) = store.audit_page(after, 10).unwrap();
        assert!(page.len() <= 10);
        seen.extend(page.into_iter().map(|a| a.time_ms));
        pages += 1;
        match next {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(seen, (0..25).collect::<Vec<_>>());
    assert_eq!(pages, 3);
}

/// A store written before rejections carried a code: its `rej:` counters were keyed by the
/// wording's category (an oversized body counted as `body_mismatch`). Opening it recounts them
/// once by the code each stored rejection stands for, and the check holds.
#[test]
fn rejection_counters_of_earlier_versions_are_recounted_by_code_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.redb");
    let k = key();
    let (id, rec) = doc(&k, 7, b"big", &["000.00.00.H01"]);
    let rt = rt();
    {
        let store = HubStore::open(Db::open(&path).unwrap()).unwrap();
        rt.block_on(store.accept(rec.clone(), ReceivedBody::inline(b"big".to_vec())))
            .unwrap();
        let reason = "body of 102400 bytes exceeds this agency's limit of 65536 bytes";
        let receipt = poros_protocol::SignedReceipt::sign(
            &Receipt {
                doc_id: id,
                sender: a("000.00.00.G01"),
                recipient: a("000.00.00.H01"),
                body_sha256: poros_protocol::sha256(b"big"),
                outcome: Outcome::Rejected {
                    reason: reason.into(),
                },
                time_ms: 6_000,
            },
            &k,
            b"c",
        )
        .unwrap();
        // The `poros/1` form still goes through the old relays, and counts the same.
        let st = Answer::Legacy(DeliveryState::Rejected(receipt, reason.into()));
        rt.block_on(store.record_answer(id, a("000.00.00.H01"), st, 6_000))
            .unwrap();
        let none = std::collections::HashSet::new();
        assert_eq!(
            store
                .relays_for(&a("000.00.00.G01"), 10, &none)
                .unwrap()
                .len(),
            1
        );
        // What an earlier version had written instead, and no record of the recount.
        store
            .db
            .write_blocking(|txn| {
                let mut t = txn.open_table(crate::stats::STATS)?;
                for p in crate::stats::periods(5_000) {
                    for s in crate::stats::scopes(&a("000.00.00.H01")) {
                        t.remove((p.as_str(), s.as_str(), "rej:too_large"))?;
                        t.insert((p.as_str(), s.as_str(), "rej:body_mismatch"), 1)?;
                    }
                }
                txn.open_table(super::statistics::STORE_META)?
                    .remove("rejection_counters_by_code")?;
                Ok(())
            })
            .unwrap();
    }
    let store = HubStore::open(Db::open(&path).unwrap()).unwrap();
    let live = {
        let r = store.db().read().unwrap();
        crate::stats::sums(&r, &["Y1970".to_string()], None).unwrap()
    };
    for s in ["000.00.00.H01", "group:H", "national"] {
        assert_eq!(live[s].get("rej:too_large"), Some(&1), "{s}: {:?}", live[s]);
        assert_eq!(live[s].get("rej:body_mismatch"), None, "{s}");
    }
    let recount = store.recount(3_600_000).unwrap();
    assert_eq!(recount["000.00.00.H01"]["rej:too_large"], 1);
}
