//! The fault suite's audit: what the senders were told (the ledger) against what the agents and
//! the hub hold afterwards (the observation), as a pure function so it can be tested on its own.
//!
//! A document is matched by its ID when it was acknowledged, and by its subject (unique per
//! POST) otherwise; the body hash must agree either way. "Doubled" counts every extra copy of
//! one POST in one inbox, whether under the same ID or under another one.

use std::collections::{BTreeMap, BTreeSet};

/// What one POST was told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Told {
    /// Acknowledged with this document ID: it must be delivered to every recipient once.
    Acknowledged(String),
    /// No answer came back (the agent was killed mid-request): it may legitimately appear.
    Unknown,
    /// The agent answered with an error: it must not appear.
    Refused,
}

/// One POST the load made.
#[derive(Debug, Clone)]
pub struct Post {
    pub from: String,
    pub to: Vec<String>,
    /// Unique per POST, so a copy can be recognised whatever ID it carries.
    pub subject: String,
    pub sha: String,
    pub told: Told,
}

/// A document as an agent lists it (inbox or outbox).
#[derive(Debug, Clone)]
pub struct Listed {
    pub id: String,
    pub sender: String,
    pub subject: String,
    pub sha: String,
    /// Per-recipient states (outbox only).
    pub states: BTreeMap<String, String>,
    /// SHA-256 of the body as the agent serves it (inbox only), or why it could not be read.
    pub served: Option<Result<String, String>>,
}

/// A receipt as the sender lists it.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub id: String,
    pub recipient: String,
    pub outcome: String,
    pub verified: bool,
    pub sha: String,
}

/// Everything read back after the queues drained.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub inbox: BTreeMap<String, Vec<Listed>>,
    pub quarantined: BTreeMap<String, usize>,
    pub outbox: BTreeMap<String, Vec<Listed>>,
    pub receipts: BTreeMap<String, Vec<Receipt>>,
    /// `equal` of `GET /admin/v1/stats/check`, with its mismatches as text.
    pub stats_equal: bool,
    pub stats_mismatches: String,
    /// The hub's recount (`recount` of the same answer): scope → metric → value.
    pub recount: BTreeMap<String, BTreeMap<String, u64>>,
}

/// The audit's figures and every fault found.
#[derive(Debug, Default)]
pub struct Report {
    pub acknowledged: usize,
    pub unacknowledged: usize,
    /// Unacknowledged POSTs that the agent had stored after all (and delivered).
    pub unacknowledged_appeared: usize,
    pub refused: usize,
    /// (acknowledged document, recipient) pairs found in the recipient's inbox.
    pub delivered: usize,
    /// (acknowledged document, recipient) pairs missing from the recipient's inbox.
    pub lost: usize,
    /// Extra copies of one POST in one inbox.
    pub doubled: usize,
    /// Inbox bodies read back from the agents whose hash matched.
    pub bodies_read_back: usize,
    /// Every fault, lost and doubled included, one line each.
    pub faults: Vec<String>,
}

fn metric(o: &Observed, scope: &str, m: &str) -> u64 {
    o.recount
        .get(scope)
        .and_then(|x| x.get(m))
        .copied()
        .unwrap_or(0)
}

/// Compare the ledger with what is held. Every rule the suite promises is checked here.
pub fn audit(ledger: &[Post], o: &Observed) -> Report {
    let mut r = Report::default();
    let by_subject: BTreeMap<&str, &Post> =
        ledger.iter().map(|p| (p.subject.as_str(), p)).collect();
    let fault = |r: &mut Report, f: String| r.faults.push(f);
    for p in ledger {
        match p.told {
            Told::Acknowledged(_) => r.acknowledged += 1,
            Told::Unknown => r.unacknowledged += 1,
            Told::Refused => r.refused += 1,
        }
    }
    let mut appeared: BTreeSet<&str> = BTreeSet::new();

    // Each listed document must be one the load posted, as it was posted; in an inbox, only
    // to its recipients and at most once.
    let mut check_listed = |r: &mut Report, where_: &str, holder: &str, d: &Listed| -> bool {
        let Some(p) = by_subject.get(d.subject.as_str()) else {
            fault(
                r,
                format!(
                    "{where_} of {holder} holds {} ({:?}), which nobody posted",
                    d.id, d.subject
                ),
            );
            return false;
        };
        let mut ok = d.sender == p.from && d.sha == p.sha;
        ok &= match &p.told {
            Told::Acknowledged(id) => *id == d.id,
            Told::Unknown => true,
            Told::Refused => false,
        };
        ok &= where_ == "outbox" || p.to.iter().any(|t| t == holder);
        if !ok {
            fault(r, format!(
                "{where_} of {holder} holds {} (sender {}, sha {}) for POST {:?} from {} to {:?} told {:?} (sha {})",
                d.id, d.sender, d.sha, p.subject, p.from, p.to, p.told, p.sha
            ));
            return false;
        }
        if p.told == Told::Unknown {
            appeared.insert(p.subject.as_str());
        }
        true
    };
    for (agency, list) in &o.inbox {
        let mut copies: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for d in list {
            check_listed(&mut r, "inbox", agency, d);
            copies.entry(&d.subject).or_default().push(&d.id);
            match &d.served {
                Some(Ok(sha)) if *sha == d.sha => r.bodies_read_back += 1,
                served => fault(
                    &mut r,
                    format!(
                        "body of {} at {agency} is served as {served:?}, listed as {}",
                        d.id, d.sha
                    ),
                ),
            }
        }
        for (subject, ids) in copies.iter().filter(|(_, ids)| ids.len() > 1) {
            r.doubled += ids.len() - 1;
            fault(
                &mut r,
                format!(
                    "doubled: {subject:?} is in {agency}'s inbox {} times: {ids:?}",
                    ids.len()
                ),
            );
        }
    }
    for (agency, list) in &o.outbox {
        for d in list {
            if !check_listed(&mut r, "outbox", agency, d) {
                continue;
            }
            let waiting: Vec<_> = d.states.iter().filter(|(_, s)| *s != "delivered").collect();
            if d.states.is_empty() || !waiting.is_empty() {
                fault(
                    &mut r,
                    format!(
                        "{} at {agency} not delivered everywhere: {:?}",
                        d.id, d.states
                    ),
                );
            }
        }
    }
    for (agency, n) in o.quarantined.iter().filter(|(_, n)| **n > 0) {
        fault(&mut r, format!("{n} documents quarantined at {agency}"));
    }
    r.unacknowledged_appeared = appeared.len();

    // Every acknowledged document: in each recipient's inbox, with exactly one verified
    // "delivered" receipt for it at the sender.
    let (no_receipts, no_docs) = (Vec::new(), Vec::new());
    for p in ledger {
        let Told::Acknowledged(id) = &p.told else {
            continue;
        };
        let receipts = o.receipts.get(&p.from).unwrap_or(&no_receipts);
        for to in &p.to {
            let inbox = o.inbox.get(to).unwrap_or(&no_docs);
            if inbox.iter().any(|d| d.id == *id) {
                r.delivered += 1;
            } else {
                r.lost += 1;
                fault(
                    &mut r,
                    format!(
                        "lost: {id} ({:?}) from {} is not in {to}'s inbox",
                        p.subject, p.from
                    ),
                );
            }
            let mine: Vec<&Receipt> = receipts
                .iter()
                .filter(|x| x.id == *id && x.recipient == *to)
                .collect();
            let good = mine.len() == 1
                && mine[0].outcome == "delivered"
                && mine[0].verified
                && mine[0].sha == p.sha;
            if !good {
                fault(
                    &mut r,
                    format!("receipt for {id} from {to} at {}: {mine:?}", p.from),
                );
            }
        }
    }

    // The hub's statistics: its live counters equal its recount, and the recount equals what
    // the agents hold (every document stored anywhere was accepted and delivered once).
    if !o.stats_equal {
        fault(
            &mut r,
            format!(
                "hub counters differ from its recount: {}",
                o.stats_mismatches
            ),
        );
    }
    let docs: Vec<&Listed> = o.outbox.values().flatten().collect();
    let pairs: u64 = docs.iter().map(|d| d.states.len() as u64).sum();
    let n = "national";
    let delivered = metric(o, n, "in_ontime") + metric(o, n, "in_late");
    let want = [
        ("sent", metric(o, n, "sent"), docs.len() as u64),
        ("in_due", metric(o, n, "in_due"), pairs),
        ("in_ontime + in_late", delivered, pairs),
        ("in_rejected", metric(o, n, "in_rejected"), 0),
        ("in_expired", metric(o, n, "in_expired"), 0),
    ];
    for (what, hub, agents) in want {
        if hub != agents {
            fault(
                &mut r,
                format!("statistics: national {what} is {hub}, the agents hold {agents}"),
            );
        }
    }
    for (agency, list) in &o.inbox {
        let hub = metric(o, agency, "in_due");
        if hub != list.len() as u64 {
            fault(
                &mut r,
                format!(
                    "statistics: {agency} in_due is {hub}, its inbox holds {}",
                    list.len()
                ),
            );
        }
    }
    r
}

/// The audit itself must be able to fail: each kind of fault, injected into a consistent
/// picture, is reported.
mod tests {
    use super::*;
    use crate::common::{A, B, C, D};

    /// Two acknowledged POSTs (one to two recipients) and one unacknowledged that appeared, all
    /// delivered, with receipts and matching statistics.
    fn consistent() -> (Vec<Post>, Observed) {
        let post = |subject: &str, to: &[&str], told: Told| Post {
            from: A.into(),
            to: to.iter().map(|t| t.to_string()).collect(),
            subject: subject.into(),
            sha: format!("sha-{subject}"),
            told,
        };
        let ledger = vec![
            post("s1", &[B, C], Told::Acknowledged("id1".into())),
            post("s2", &[C], Told::Acknowledged("id2".into())),
            post("s3", &[D], Told::Unknown),
            post("s4", &[D], Told::Unknown),
            post("s5", &[B], Told::Refused),
        ];
        let entry = |id: &str, subject: &str, states: &[&str]| Listed {
            id: id.into(),
            sender: A.into(),
            subject: subject.into(),
            sha: format!("sha-{subject}"),
            states: states
                .iter()
                .map(|s| (s.to_string(), "delivered".to_string()))
                .collect(),
            served: states.is_empty().then(|| Ok(format!("sha-{subject}"))),
        };
        let mut o = Observed {
            stats_equal: true,
            ..Observed::default()
        };
        o.inbox.insert(A.into(), vec![]);
        o.inbox.insert(B.into(), vec![entry("id1", "s1", &[])]);
        o.inbox.insert(
            C.into(),
            vec![entry("id1", "s1", &[]), entry("id2", "s2", &[])],
        );
        o.inbox.insert(D.into(), vec![entry("id3", "s3", &[])]);
        o.outbox.insert(
            A.into(),
            vec![
                entry("id1", "s1", &[B, C]),
                entry("id2", "s2", &[C]),
                entry("id3", "s3", &[D]),
            ],
        );
        let receipt = |id: &str, to: &str, sha: &str| Receipt {
            id: id.into(),
            recipient: to.into(),
            outcome: "delivered".into(),
            verified: true,
            sha: format!("sha-{sha}"),
        };
        o.receipts.insert(
            A.into(),
            vec![
                receipt("id1", B, "s1"),
                receipt("id1", C, "s1"),
                receipt("id2", C, "s2"),
                receipt("id3", D, "s3"),
            ],
        );
        let counts =
            |pairs: &[(&str, u64)]| pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        o.recount.insert(
            "national".into(),
            counts(&[("sent", 3), ("in_due", 4), ("in_ontime", 3), ("in_late", 1)]),
        );
        o.recount.insert(B.into(), counts(&[("in_due", 1)]));
        o.recount.insert(C.into(), counts(&[("in_due", 2)]));
        o.recount.insert(D.into(), counts(&[("in_due", 1)]));
        (ledger, o)
    }

    /// A named fault to inject into [`consistent`]'s observation.
    type Injection = (&'static str, fn(&mut Observed));

    #[test]
    fn audit_passes_a_consistent_picture() {
        let (ledger, o) = consistent();
        let r = audit(&ledger, &o);
        assert!(r.faults.is_empty(), "{:?}", r.faults);
        assert_eq!(
            (
                r.acknowledged,
                r.unacknowledged,
                r.refused,
                r.unacknowledged_appeared
            ),
            (2, 2, 1, 1)
        );
        assert_eq!((r.delivered, r.lost, r.doubled), (3, 0, 0));
        assert_eq!(r.bodies_read_back, 4);
    }

    #[test]
    fn audit_reports_a_lost_document() {
        let (ledger, mut o) = consistent();
        o.inbox.get_mut(C).unwrap().remove(1);
        o.recount.get_mut(C).unwrap().insert("in_due".into(), 1);
        let r = audit(&ledger, &o);
        assert_eq!((r.delivered, r.lost), (2, 1), "{:?}", r.faults);
    }

    #[test]
    fn audit_reports_a_doubled_document_under_the_same_or_another_id() {
        for id in ["id2", "id9"] {
            let (ledger, mut o) = consistent();
            let mut copy = o.inbox[C][1].clone();
            copy.id = id.into();
            o.inbox.get_mut(C).unwrap().push(copy);
            let r = audit(&ledger, &o);
            assert_eq!(r.doubled, 1, "{id}: {:?}", r.faults);
            assert_eq!(r.lost, 0);
        }
    }

    #[test]
    fn audit_reports_phantoms_wrong_bodies_and_misrouted_documents() {
        let cases: [Injection; 4] = [
            ("nobody posted it", |o| {
                let mut d = o.inbox[C][0].clone();
                (d.id, d.subject) = ("idX".into(), "never posted".into());
                o.inbox.get_mut(C).unwrap().push(d);
            }),
            ("other body", |o| {
                o.inbox.get_mut(C).unwrap()[1].sha = "sha-other".into()
            }),
            ("not a recipient", |o| {
                let d = o.inbox[C][1].clone();
                o.inbox.get_mut(D).unwrap().push(d);
            }),
            ("refused POST delivered", |o| {
                let mut d = o.inbox[B][0].clone();
                (d.id, d.subject, d.sha) = ("id5".into(), "s5".into(), "sha-s5".into());
                o.inbox.get_mut(B).unwrap().push(d);
            }),
        ];
        for (what, inject) in cases {
            let (ledger, mut o) = consistent();
            inject(&mut o);
            let r = audit(&ledger, &o);
            assert!(
                r.faults.iter().any(|f| f.contains("inbox")),
                "{what}: {:?}",
                r.faults
            );
        }
    }

    #[test]
    fn audit_reports_body_receipt_quarantine_and_statistics_faults() {
        let cases: [Injection; 8] = [
            ("body served differs", |o| {
                o.inbox.get_mut(C).unwrap()[1].served = Some(Ok("sha-other".into()))
            }),
            ("body unreadable", |o| {
                o.inbox.get_mut(D).unwrap()[0].served = Some(Err("HTTP 500".into()))
            }),
            ("unverified receipt", |o| {
                o.receipts.get_mut(A).unwrap()[0].verified = false
            }),
            ("missing receipt", |o| {
                o.receipts.get_mut(A).unwrap().remove(2);
            }),
            ("still pending", |o| {
                let d = &mut o.outbox.get_mut(A).unwrap()[0];
                d.states.insert(B.into(), "accepted".into());
            }),
            ("quarantined", |o| {
                o.quarantined.insert(D.into(), 1);
            }),
            ("live counters differ", |o| o.stats_equal = false),
            ("recount differs", |o| {
                o.recount
                    .get_mut("national")
                    .unwrap()
                    .insert("sent".into(), 4);
            }),
        ];
        for (what, inject) in cases {
            let (ledger, mut o) = consistent();
            inject(&mut o);
            let r = audit(&ledger, &o);
            assert!(!r.faults.is_empty(), "{what} not reported");
            assert_eq!((r.lost, r.doubled), (0, 0), "{what}: {:?}", r.faults);
        }
    }
}
