//! Who may say what about which document, and what is legal after what. Pure functions over
//! the state a party holds about one document; the hub applies them as defence in depth, the
//! agents as the authority (an agent refuses to sign, or to store, what they forbid).
//!
//! The state is folded from the document's envelope, its delivery receipts and every statement
//! accepted about it, in order: [`DocState::check`] says whether the next statement is legal and
//! what it changes in routing ([`Effects`]); [`DocState::apply`] records it.

use crate::ids::{AgencyId, DocumentId, Party};
use crate::reason::{Reason, ReasonCode};
use crate::statement::{BusinessStatus, Change, Statement, StatementKind};
use crate::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One recipient's copy of a document, as far as the rules care.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Track {
    /// The recipient signed a receipt saying it holds the document.
    pub delivered: bool,
    /// The last business status it reported.
    pub status: Option<BusinessStatus>,
    /// A change request awaiting its answer: the request's digest and what it asks.
    pub pending: Option<(Digest, Change)>,
    /// It accepted a take-back.
    pub withdrawn: bool,
    /// It accepted a replacement by this document.
    pub replaced_by: Option<DocumentId>,
    /// It accepted being removed by an update.
    pub removed: bool,
}

impl Track {
    fn closed(&self) -> bool {
        self.withdrawn || self.replaced_by.is_some() || self.removed
    }
}

/// What a legal statement changes beyond its own record: the hub acts on these without
/// looking at the statement's kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// Agencies that must now receive the document (each delivery carries the statement, the
    /// new recipient's proof that it is addressed).
    pub add_recipients: Vec<AgencyId>,
    /// Another document the statement names, which must exist and come from the same sender.
    pub names_document: Option<DocumentId>,
}

/// What the rules know about one document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocState {
    /// Its sender.
    pub sender: AgencyId,
    /// Every recipient, in order: the envelope's, then those added by updates.
    pub tracks: BTreeMap<AgencyId, Track>,
}

fn illegal(text: String) -> Reason {
    Reason::new(ReasonCode::IllegalTransition, text)
}

/// Whether a recipient may go from `prev` to `next`.
pub fn status_follows(prev: Option<BusinessStatus>, next: BusinessStatus) -> bool {
    use BusinessStatus::*;
    match next {
        Arrived => prev.is_none(),
        Rejected | Registered => matches!(prev, None | Some(Arrived)),
        Assigned => matches!(prev, Some(Registered | Assigned)),
        Processing | Completed => matches!(prev, Some(Registered | Assigned | Processing)),
    }
}

impl DocState {
    /// A document as accepted: its sender and the envelope's recipients, none delivered yet.
    pub fn new(sender: AgencyId, recipients: &[AgencyId]) -> Self {
        DocState {
            sender,
            tracks: recipients
                .iter()
                .map(|r| (r.clone(), Track::default()))
                .collect(),
        }
    }

    /// `recipient` signed a receipt saying it holds the document.
    pub fn delivered(&mut self, recipient: &AgencyId) {
        if let Some(t) = self.tracks.get_mut(recipient) {
            t.delivered = true;
        }
    }

    /// The recipient's track, if it is one.
    pub fn track(&self, recipient: &AgencyId) -> Option<&Track> {
        self.tracks.get(recipient)
    }

    /// Recipients that still hold the document (not removed, withdrawn or replaced).
    pub fn current_recipients(&self) -> impl Iterator<Item = &AgencyId> {
        self.tracks
            .iter()
            .filter(|(_, t)| !t.closed())
            .map(|(a, _)| a)
    }

    /// Whether `stmt` (whose signed payload hashes to `digest`) may be said now, and what it
    /// changes. The statement's own consistency ([`Statement::validate`]) is checked first.
    pub fn check(&self, stmt: &Statement, digest: &Digest) -> Result<Effects, Reason> {
        // Who may say it comes first: a change asked by a recipient is an illegal transition
        // whatever else is wrong with it.
        match &stmt.kind {
            StatementKind::Change { .. } if stmt.from != self.sender => {
                return Err(illegal(format!(
                    "only the sender {} may ask to change {}, not {}",
                    self.sender, stmt.doc_id, stmt.from
                )))
            }
            StatementKind::Reminder if stmt.from != self.sender => {
                return Err(illegal(format!(
                    "only the sender {} may send a reminder about {}, not {}",
                    self.sender, stmt.doc_id, stmt.from
                )))
            }
            StatementKind::Status { .. } => {
                self.recipient_track(&stmt.from, "report a status")?;
            }
            StatementKind::Answer { .. } => {
                self.recipient_track(&stmt.from, "answer a change request")?;
            }
            StatementKind::Receipt { .. } => {
                self.recipient_track(&stmt.from, "answer a delivery")?;
            }
            StatementKind::Accepted { .. } | StatementKind::Notice { .. }
                if stmt.from != Party::Hub =>
            {
                return Err(illegal(format!(
                    "only the hub makes a {}, not {}",
                    stmt.kind.label(),
                    stmt.from
                )))
            }
            StatementKind::PaperCount { .. } => {
                return Err(illegal(format!(
                    "a paper count is about a month, not about {}",
                    stmt.doc_id
                )))
            }
            StatementKind::Change { .. }
            | StatementKind::Reminder
            | StatementKind::Accepted { .. }
            | StatementKind::Notice { .. } => {}
        }
        stmt.validate()?;
        let _ = digest;
        match &stmt.kind {
            StatementKind::Status { status, .. } => {
                let t = self.recipient_track(&stmt.from, "report a status")?;
                self.to_sender_only(stmt)?;
                if !t.delivered {
                    return Err(illegal(format!(
                        "{} has not received {} and cannot report {} on it",
                        stmt.from,
                        stmt.doc_id,
                        status.code()
                    )));
                }
                if t.closed() {
                    return Err(illegal(format!(
                        "{} gave {} up (withdrawn, replaced or removed); no status follows",
                        stmt.from, stmt.doc_id
                    )));
                }
                if !status_follows(t.status, *status) {
                    return Err(illegal(match t.status {
                        Some(p) => format!(
                            "status {} ({}) cannot follow {} ({})",
                            status.code(),
                            status.label(),
                            p.code(),
                            p.label()
                        ),
                        None => format!(
                            "status {} ({}) needs an earlier status first",
                            status.code(),
                            status.label()
                        ),
                    }));
                }
                Ok(Effects::default())
            }
            StatementKind::Change { change, .. } => {
                if stmt.from != self.sender {
                    return Err(illegal(format!(
                        "only the sender {} may ask to change {}, not {}",
                        self.sender, stmt.doc_id, stmt.from
                    )));
                }
                for a in &stmt.to {
                    let t = self.tracks.get(a).ok_or_else(|| {
                        Reason::new(
                            ReasonCode::NotAddressed,
                            format!("{a} is not a recipient of {}", stmt.doc_id),
                        )
                    })?;
                    if t.closed() {
                        return Err(illegal(format!("{a} no longer holds {}", stmt.doc_id)));
                    }
                    if !t.delivered {
                        return Err(illegal(format!(
                            "{} was not delivered to {a} yet",
                            stmt.doc_id
                        )));
                    }
                    if t.pending.is_some() {
                        return Err(illegal(format!(
                            "{a} has not answered the previous change request on {} yet",
                            stmt.doc_id
                        )));
                    }
                }
                let mut fx = Effects::default();
                match change {
                    Change::TakeBack => {}
                    Change::Replace { successor } => fx.names_document = Some(*successor),
                    Change::Update { add, remove, .. } => {
                        for a in add {
                            if self.tracks.contains_key(a) {
                                return Err(illegal(format!(
                                    "{a} is already a recipient of {}",
                                    stmt.doc_id
                                )));
                            }
                        }
                        for r in remove {
                            if !stmt.to.contains(r) {
                                return Err(illegal(format!(
                                    "{r} is removed, so the update must be addressed to it"
                                )));
                            }
                        }
                        fx.add_recipients = add.clone();
                    }
                }
                Ok(fx)
            }
            StatementKind::Reminder => {
                for a in &stmt.to {
                    let t = self.tracks.get(a).ok_or_else(|| {
                        Reason::new(
                            ReasonCode::NotAddressed,
                            format!("{a} is not a recipient of {}", stmt.doc_id),
                        )
                    })?;
                    if !t.delivered || t.closed() || t.status.is_some_and(|s| s.is_final()) {
                        return Err(illegal(format!(
                            "{a} has nothing left to do on {} (not delivered, or already ended)",
                            stmt.doc_id
                        )));
                    }
                }
                Ok(Effects::default())
            }
            StatementKind::Accepted { recipients, .. } => {
                self.to_sender_only(stmt)?;
                let mut queued: Vec<&AgencyId> = recipients.iter().collect();
                queued.sort();
                let mut known: Vec<&AgencyId> = self.tracks.keys().collect();
                known.sort();
                if queued != known {
                    return Err(illegal(format!(
                        "the acceptance of {} does not name the document's recipients",
                        stmt.doc_id
                    )));
                }
                Ok(Effects::default())
            }
            StatementKind::Receipt { .. } => {
                let t = self.recipient_track(&stmt.from, "answer a delivery")?;
                self.to_sender_only(stmt)?;
                if t.delivered {
                    return Err(illegal(format!(
                        "{} already signed a receipt for {}",
                        stmt.from, stmt.doc_id
                    )));
                }
                Ok(Effects::default())
            }
            StatementKind::Notice { recipient, .. } => {
                self.to_sender_only(stmt)?;
                let t = self.tracks.get(recipient).ok_or_else(|| {
                    Reason::new(
                        ReasonCode::NotAddressed,
                        format!("{recipient} is not a recipient of {}", stmt.doc_id),
                    )
                })?;
                if t.delivered {
                    return Err(illegal(format!(
                        "{} was delivered to {recipient}; no delivery notice follows",
                        stmt.doc_id
                    )));
                }
                Ok(Effects::default())
            }
            StatementKind::PaperCount { .. } => Err(illegal(format!(
                "a paper count is about a month, not about {}",
                stmt.doc_id
            ))),
            StatementKind::Answer { request, .. } => {
                let t = self.recipient_track(&stmt.from, "answer a change request")?;
                self.to_sender_only(stmt)?;
                match &t.pending {
                    Some((d, _)) if d == request => Ok(Effects::default()),
                    Some(_) => Err(illegal(format!(
                        "{} answers a change request on {} that is not the pending one",
                        stmt.from, stmt.doc_id
                    ))),
                    None => Err(illegal(format!(
                        "{} has no change request on {} to answer",
                        stmt.from, stmt.doc_id
                    ))),
                }
            }
        }
    }

    /// Record a statement [`check`](Self::check) allowed.
    pub fn apply(&mut self, stmt: &Statement, digest: &Digest) {
        match &stmt.kind {
            // Change nothing in the rules' state: the statement itself is the record.
            StatementKind::Reminder
            | StatementKind::Accepted { .. }
            | StatementKind::Notice { .. }
            | StatementKind::PaperCount { .. } => {}
            StatementKind::Receipt { outcome, .. } => {
                if matches!(outcome, crate::Outcome::Delivered) {
                    if let Some(a) = stmt.from.agency() {
                        self.delivered(a);
                    }
                }
            }
            StatementKind::Status { status, .. } => {
                if let Some(t) = stmt.from.agency().and_then(|a| self.tracks.get_mut(a)) {
                    t.status = Some(*status);
                }
            }
            StatementKind::Change { change, .. } => {
                if let Change::Update { add, .. } = change {
                    for a in add {
                        self.tracks.entry(a.clone()).or_default();
                    }
                }
                for a in &stmt.to {
                    if let Some(t) = self.tracks.get_mut(a) {
                        t.pending = Some((*digest, change.clone()));
                    }
                }
            }
            StatementKind::Answer { accept, .. } => {
                let Some(from) = stmt.from.agency() else {
                    return;
                };
                if let Some(t) = self.tracks.get_mut(from) {
                    let pending = t.pending.take();
                    if *accept {
                        match pending {
                            Some((_, Change::TakeBack)) => t.withdrawn = true,
                            Some((_, Change::Replace { successor })) => {
                                t.replaced_by = Some(successor)
                            }
                            Some((_, Change::Update { remove, .. })) if remove.contains(from) => {
                                t.removed = true
                            }
                            Some((_, Change::Update { .. })) | None => {}
                        }
                    }
                }
            }
        }
    }

    fn recipient_track(&self, who: &Party, what: &str) -> Result<&Track, Reason> {
        let Party::Agency(who) = who else {
            return Err(illegal(format!("the hub cannot {what} on a document")));
        };
        if who == &self.sender {
            return Err(illegal(format!(
                "{who} is the sender of this document and cannot {what} on it"
            )));
        }
        self.tracks.get(who).ok_or_else(|| {
            illegal(format!(
                "{who} is not a recipient of this document and cannot {what} on it"
            ))
        })
    }

    fn to_sender_only(&self, stmt: &Statement) -> Result<(), Reason> {
        if stmt.to != [self.sender.clone()] {
            return Err(Reason::new(
                ReasonCode::NotAddressed,
                format!(
                    "a {} on {} is addressed to its sender {} only",
                    stmt.kind.label(),
                    stmt.doc_id,
                    self.sender
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statement::Staff;

    const S: &str = "000.00.00.G01";
    const R1: &str = "000.00.00.H02";
    const R2: &str = "000.00.00.H03";
    const X: &str = "000.00.00.H09";

    fn a(s: &str) -> AgencyId {
        AgencyId::parse(s).unwrap()
    }
    fn doc() -> DocumentId {
        DocumentId::new_v7(1, [1; 10])
    }
    fn stmt(from: &str, to: &[&str], kind: StatementKind) -> Statement {
        Statement {
            doc_id: doc(),
            from: a(from).into(),
            to: to.iter().map(|t| a(t)).collect(),
            kind,
            staff: Staff {
                department: "Văn thư".into(),
                name: "Trần Thị B".into(),
                email: None,
                phone: None,
            },
            note: None,
            time_ms: 1,
        }
    }
    fn status(from: &str, s: BusinessStatus) -> Statement {
        let reason =
            (s == BusinessStatus::Rejected).then(|| Reason::new(ReasonCode::Other, "not ours"));
        stmt(from, &[S], StatementKind::Status { status: s, reason })
    }
    fn change(to: &[&str], change: Change) -> Statement {
        stmt(
            S,
            to,
            StatementKind::Change {
                change,
                reason: "sent in error".into(),
            },
        )
    }
    fn answer(from: &str, request: Digest, accept: bool) -> Statement {
        let reason = (!accept).then(|| Reason::new(ReasonCode::Other, "already acted on"));
        stmt(
            from,
            &[S],
            StatementKind::Answer {
                request,
                accept,
                reason,
            },
        )
    }
    fn delivered() -> DocState {
        let mut d = DocState::new(a(S), &[a(R1), a(R2)]);
        d.delivered(&a(R1));
        d.delivered(&a(R2));
        d
    }
    /// Check then apply, as every party does.
    fn say(d: &mut DocState, s: &Statement) -> Result<Effects, Reason> {
        let digest = crate::sha256(&postcard::to_allocvec(s).unwrap());
        let fx = d.check(s, &digest)?;
        d.apply(s, &digest);
        Ok(fx)
    }
    fn code(r: Result<Effects, Reason>) -> ReasonCode {
        r.unwrap_err().code
    }

    fn machine(from: Party, kind: StatementKind) -> Statement {
        Statement {
            doc_id: doc(),
            from,
            to: vec![a(S)],
            kind,
            staff: Staff::default(),
            note: None,
            time_ms: 1,
        }
    }

    #[test]
    fn deliveries_are_answered_once_by_their_recipients_and_notices_come_from_the_hub() {
        let receipt = |from: &str| {
            machine(
                Party::Agency(a(from)),
                StatementKind::Receipt {
                    body_sha256: [1; 32],
                    outcome: crate::Outcome::Delivered,
                },
            )
        };
        let mut d = DocState::new(a(S), &[a(R1), a(R2)]);
        let accepted = machine(
            Party::Hub,
            StatementKind::Accepted {
                recipients: vec![a(R2), a(R1)],
                body_sha256: [1; 32],
                body_len: 3,
            },
        );
        say(&mut d, &accepted).unwrap();
        // A status needs the receipt first; the receipt makes it legal.
        assert_eq!(
            code(say(&mut d, &status(R1, BusinessStatus::Arrived))),
            ReasonCode::IllegalTransition
        );
        say(&mut d, &receipt(R1)).unwrap();
        assert!(d.track(&a(R1)).unwrap().delivered);
        say(&mut d, &status(R1, BusinessStatus::Arrived)).unwrap();
        assert_eq!(
            code(say(&mut d, &receipt(R1))),
            ReasonCode::IllegalTransition
        );
        assert_eq!(
            code(say(&mut d, &receipt(X))),
            ReasonCode::IllegalTransition
        );
        assert_eq!(
            code(say(&mut d, &receipt(S))),
            ReasonCode::IllegalTransition
        );
        // Only the hub makes acceptances and notices, and never receipts.
        let expired = |about: &str, from: Party| {
            machine(
                from,
                StatementKind::Notice {
                    recipient: a(about),
                    notice: crate::NoticeKind::Expired,
                },
            )
        };
        assert_eq!(
            code(say(&mut d, &expired(R2, Party::Agency(a(R1))))),
            ReasonCode::IllegalTransition
        );
        say(&mut d, &expired(R2, Party::Hub)).unwrap();
        // R1 has the document: a notice about its delivery is out of place.
        assert_eq!(
            code(say(&mut d, &expired(R1, Party::Hub))),
            ReasonCode::IllegalTransition
        );
        let mut forged = receipt(R2);
        forged.from = Party::Hub;
        assert!(say(&mut d, &forged).is_err());
        let mut wrong = accepted.clone();
        wrong.kind = StatementKind::Accepted {
            recipients: vec![a(R1)],
            body_sha256: [1; 32],
            body_len: 3,
        };
        assert_eq!(code(say(&mut d, &wrong)), ReasonCode::IllegalTransition);
        // A receipt names no staff member and is for the sender only.
        let mut r = receipt(R2);
        r.staff.name = "someone".into();
        assert!(say(&mut d, &r).is_err());
        let mut r = receipt(R2);
        r.to = vec![a(X)];
        assert_eq!(code(say(&mut d, &r)), ReasonCode::NotAddressed);
    }

    #[test]
    fn a_paper_count_is_about_a_month_and_no_document() {
        let mut p = machine(
            Party::Agency(a(R1)),
            StatementKind::PaperCount {
                month: "2026-11".into(),
                sent: 3,
                received: 4,
            },
        );
        assert!(p.validate().is_err(), "a document is named");
        p.doc_id = DocumentId::NIL;
        p.to.clear();
        p.validate().unwrap();
        assert!(delivered().check(&p, &[0; 32]).is_err());
        p.kind = StatementKind::PaperCount {
            month: "2026-13".into(),
            sent: 0,
            received: 0,
        };
        assert!(p.validate().unwrap_err().text.contains("YYYY-MM"));
        p.from = Party::Hub;
        assert!(p.validate().is_err());
    }

    #[test]
    fn the_whole_life_at_two_recipients() {
        use BusinessStatus::*;
        let mut d = delivered();
        for r in [R1, R2] {
            for s in [
                Arrived, Registered, Assigned, Processing, Processing, Completed,
            ] {
                say(&mut d, &status(r, s)).unwrap();
            }
            assert_eq!(d.track(&a(r)).unwrap().status, Some(Completed));
        }
    }

    #[test]
    fn no_going_back_and_nothing_after_the_end() {
        use BusinessStatus::*;
        let mut d = delivered();
        say(&mut d, &status(R1, Registered)).unwrap();
        say(&mut d, &status(R1, Completed)).unwrap();
        let e = say(&mut d, &status(R1, Assigned)).unwrap_err();
        assert_eq!(e.code, ReasonCode::IllegalTransition);
        assert!(e.text.contains("04") && e.text.contains("06"), "{e}");
        assert_eq!(
            code(say(&mut d, &status(R1, Completed))),
            ReasonCode::IllegalTransition
        );
        // Assignment needs registration; arrival only comes first; a rejection ends it.
        assert_eq!(
            code(say(&mut d, &status(R2, Assigned))),
            ReasonCode::IllegalTransition
        );
        say(&mut d, &status(R2, Rejected)).unwrap();
        assert_eq!(
            code(say(&mut d, &status(R2, Registered))),
            ReasonCode::IllegalTransition
        );
        assert!(!status_follows(Some(Registered), Arrived));
    }

    #[test]
    fn only_recipients_report_and_only_after_delivery() {
        let mut d = DocState::new(a(S), &[a(R1), a(R2)]);
        assert_eq!(
            code(say(&mut d, &status(R1, BusinessStatus::Registered))),
            ReasonCode::IllegalTransition
        );
        d.delivered(&a(R1));
        let e = say(&mut d, &status(X, BusinessStatus::Registered)).unwrap_err();
        assert_eq!(e.code, ReasonCode::IllegalTransition);
        assert!(e.text.contains("not a recipient"));
        // The sender cannot report on its own document.
        let mut s = status(S, BusinessStatus::Registered);
        s.to = vec![a(R1)];
        assert_eq!(code(say(&mut d, &s)), ReasonCode::IllegalTransition);
        // A status goes to the sender only.
        let mut s = status(R1, BusinessStatus::Registered);
        s.to = vec![a(R2)];
        assert_eq!(code(say(&mut d, &s)), ReasonCode::NotAddressed);
    }

    #[test]
    fn only_the_sender_asks_and_only_recipients_answer() {
        let mut d = delivered();
        let mut from_recipient = change(&[R2], Change::TakeBack);
        from_recipient.from = a(R1).into();
        assert_eq!(
            code(say(&mut d, &from_recipient)),
            ReasonCode::IllegalTransition
        );
        // Even addressed to every recipient, itself included: the role is judged first.
        let mut to_all = change(&[R1, R2], Change::TakeBack);
        to_all.from = a(R1).into();
        assert_eq!(code(say(&mut d, &to_all)), ReasonCode::IllegalTransition);
        let tb = change(&[R1, R2], Change::TakeBack);
        let digest = crate::sha256(&postcard::to_allocvec(&tb).unwrap());
        say(&mut d, &tb).unwrap();
        // A second request while one is pending is refused.
        assert_eq!(
            code(say(&mut d, &change(&[R1], Change::TakeBack))),
            ReasonCode::IllegalTransition
        );
        // An outsider, or an answer naming another request, is refused.
        assert_eq!(
            code(say(&mut d, &answer(X, digest, true))),
            ReasonCode::IllegalTransition
        );
        assert_eq!(
            code(say(&mut d, &answer(R1, [9; 32], true))),
            ReasonCode::IllegalTransition
        );
        say(&mut d, &answer(R1, digest, true)).unwrap();
        say(&mut d, &answer(R2, digest, false)).unwrap();
        assert!(d.track(&a(R1)).unwrap().withdrawn);
        assert!(!d.track(&a(R2)).unwrap().withdrawn);
        // Answered once: a second answer is refused; a withdrawn copy takes no status.
        assert_eq!(
            code(say(&mut d, &answer(R2, digest, true))),
            ReasonCode::IllegalTransition
        );
        assert_eq!(
            code(say(&mut d, &status(R1, BusinessStatus::Registered))),
            ReasonCode::IllegalTransition
        );
        assert_eq!(d.current_recipients().collect::<Vec<_>>(), vec![&a(R2)]);
    }

    #[test]
    fn reminders_come_from_the_sender_to_recipients_with_work_left() {
        let mut d = delivered();
        let mut r = stmt(S, &[R1, R2], StatementKind::Reminder);
        assert_eq!(
            code(say(&mut d, &r)),
            ReasonCode::Other,
            "a reminder needs a note"
        );
        r.note = Some("due Friday".into());
        say(&mut d, &r).unwrap();
        let mut from_recipient = r.clone();
        from_recipient.from = a(R1).into();
        from_recipient.to = vec![a(R2)];
        assert_eq!(
            code(say(&mut d, &from_recipient)),
            ReasonCode::IllegalTransition
        );
        say(&mut d, &status(R1, BusinessStatus::Registered)).unwrap();
        say(&mut d, &status(R1, BusinessStatus::Completed)).unwrap();
        assert_eq!(
            code(say(&mut d, &r)),
            ReasonCode::IllegalTransition,
            "R1 is done"
        );
        r.to = vec![a(R2)];
        say(&mut d, &r).unwrap();
    }

    #[test]
    fn a_completed_document_can_be_asked_back_and_must_be_answered() {
        let mut d = delivered();
        say(&mut d, &status(R1, BusinessStatus::Registered)).unwrap();
        say(&mut d, &status(R1, BusinessStatus::Completed)).unwrap();
        say(&mut d, &change(&[R1], Change::TakeBack)).unwrap();
        assert!(d.track(&a(R1)).unwrap().pending.is_some());
    }

    #[test]
    fn replace_and_update_name_their_effects() {
        let mut d = delivered();
        let succ = DocumentId::new_v7(2, [2; 10]);
        let fx = say(&mut d, &change(&[R1], Change::Replace { successor: succ })).unwrap();
        assert_eq!(fx.names_document, Some(succ));
        let up = Change::Update {
            add: vec![a(X)],
            remove: vec![],
            meta: None,
        };
        let fx = say(&mut d, &change(&[R2], up)).unwrap();
        assert_eq!(fx.add_recipients, vec![a(X)]);
        assert!(d.track(&a(X)).is_some());
        // Adding an existing recipient, or removing one the update is not addressed to, is not.
        let mut d = delivered();
        let again = Change::Update {
            add: vec![a(R1)],
            remove: vec![],
            meta: None,
        };
        assert_eq!(
            code(say(&mut d, &change(&[R2], again))),
            ReasonCode::IllegalTransition
        );
        let silent = Change::Update {
            add: vec![],
            remove: vec![a(R1)],
            meta: None,
        };
        assert_eq!(
            code(say(&mut d, &change(&[R2], silent))),
            ReasonCode::IllegalTransition
        );
        // A change to a stranger names it.
        assert_eq!(
            code(say(&mut d, &change(&[X], Change::TakeBack))),
            ReasonCode::NotAddressed
        );
    }
}
