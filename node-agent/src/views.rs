//! Typed views of documents with their statements, for the local API: per-recipient business
//! state and signed timelines of a sent document, the same for a received one, and the fields
//! an inbox item gains. Every statement's signature is verified again when its view is built.

use crate::agent::Agent;
use crate::api_types::{
    BusinessState, ChangeAsked, ChangeView, InboxState, PendingChange, PendingChangeView,
    ReasonView, ReceivedDoc, ReceivedDocumentView, RecipientDetail, SentDocument, SentStatements,
    StatementEntry, TimelineEntry,
};
use crate::state::statements::{Direction, HubState, StoredStatement};
use crate::state::RecipientStatus;
use crate::statements::signature_verified;
use poros_protocol::{
    AgencyId, Change, DocState, DocumentId, NoticeKind, Reason, SignedStatement, Statement,
    StatementKind, Track,
};

fn change_asked(change: &Change) -> ChangeAsked {
    match change {
        Change::TakeBack => ChangeAsked::TakeBack {},
        Change::Update { add, remove, meta } => ChangeAsked::Update {
            add: add.clone(),
            remove: remove.clone(),
            subject: meta.as_ref().map(|m| m.subject.clone()),
            number: meta.as_ref().and_then(|m| m.number.clone()),
        },
        Change::Replace { successor } => ChangeAsked::Replace {
            successor: *successor,
        },
    }
}

fn coded(r: &Reason) -> ReasonView {
    ReasonView {
        code: Some(r.code.label().to_string()),
        text: r.text.clone(),
    }
}

fn reason_view(kind: &StatementKind) -> Option<ReasonView> {
    match kind {
        StatementKind::Status { reason, .. } | StatementKind::Answer { reason, .. } => {
            reason.as_ref().map(coded)
        }
        StatementKind::Change { reason, .. } => Some(ReasonView {
            code: None,
            text: reason.clone(),
        }),
        StatementKind::Receipt { outcome, .. } => outcome.rejection().as_ref().map(coded),
        StatementKind::Reminder
        | StatementKind::Accepted { .. }
        | StatementKind::Notice { .. }
        | StatementKind::PaperCount { .. } => None,
    }
}

/// One timeline entry.
pub fn entry(a: &Agent, s: &StoredStatement, stmt: &Statement) -> TimelineEntry {
    let mut e = StatementEntry {
        code: stmt.kind.code().map(str::to_string),
        from: stmt.from.clone(),
        to: stmt.to.clone(),
        staff: stmt.staff.clone(),
        note: stmt.note.clone(),
        reason: reason_view(&stmt.kind),
        digest: hex::encode(s.signed.payload_digest()),
        signature_verified: signature_verified(a, &s.signed, stmt),
        direction: s.direction.label().to_string(),
        hub: s.hub.label().to_string(),
        hub_reason: match &s.hub {
            HubState::Refused(r) => Some(coded(r)),
            _ => None,
        },
        stored_ms: Some(s.stored_ms),
        answers: None,
        change: None,
        about: None,
        delay: None,
        body_lost: None,
    };
    match &stmt.kind {
        StatementKind::Answer { request, .. } => e.answers = Some(hex::encode(request)),
        StatementKind::Change { change, .. } => e.change = Some(change_asked(change)),
        StatementKind::Notice { recipient, notice } => {
            e.about = Some(recipient.clone());
            match notice {
                NoticeKind::Delayed { reason } => e.delay = Some(reason.label().to_string()),
                NoticeKind::BodyLost { reason } => e.body_lost = Some(reason.code().to_string()),
                NoticeKind::Expired => {}
            }
        }
        _ => {}
    }
    TimelineEntry {
        label: stmt.kind.label().to_string(),
        time_ms: Some(stmt.time_ms),
        statement: Some(e),
        form: None,
    }
}

/// Statements decoded; one that no longer decodes is skipped with a warning (never silently
/// lost: the view says how many were skipped).
fn decoded(stmts: &[StoredStatement]) -> (Vec<(&StoredStatement, Statement)>, u64) {
    let mut out = Vec::new();
    let mut bad = 0;
    for s in stmts {
        match s.statement() {
            Ok(st) => out.push((s, st)),
            Err(e) => {
                tracing::warn!(seq = s.seq, error = %e, "stored statement does not decode");
                bad += 1;
            }
        }
    }
    (out, bad)
}

fn pending_view(t: &Track, stmts: &[(&StoredStatement, Statement)]) -> Option<PendingChangeView> {
    let (digest, change) = t.pending.as_ref()?;
    let made = stmts
        .iter()
        .find(|(s, _)| &s.signed.payload_digest() == digest);
    Some(PendingChangeView {
        statement: hex::encode(digest),
        label: change.label().to_string(),
        reason: made.and_then(|(_, st)| reason_view(&st.kind).map(|r| r.text)),
        time_ms: made.map(|(_, st)| st.time_ms),
        successor: match change {
            Change::Replace { successor } => Some(*successor),
            _ => None,
        },
    })
}

fn business_state(t: Option<&Track>, stmts: &[(&StoredStatement, Statement)]) -> BusinessState {
    BusinessState {
        business: t.and_then(|t| t.status).map(|s| s.label().to_string()),
        withdrawn: t.is_some_and(|t| t.withdrawn),
        replaced_by: t.and_then(|t| t.replaced_by),
        removed: t.is_some_and(|t| t.removed),
        pending_change: t.and_then(|t| pending_view(t, stmts)),
    }
}

/// A timeline entry for a statement kept with its record rather than in the statement store
/// (the hub's acceptance in the outbox record, an answer in the recipient's status).
fn kept_entry(a: &Agent, signed: &SignedStatement) -> Option<TimelineEntry> {
    let stmt = signed.statement().ok()?;
    let kept = StoredStatement {
        seq: 0,
        signed: signed.clone(),
        direction: Direction::Received,
        hub: HubState::Accepted,
        stored_ms: stmt.time_ms,
    };
    let mut e = entry(a, &kept, &stmt);
    if let Some(s) = e.statement.as_mut() {
        s.stored_ms = None;
    }
    Some(e)
}

/// Adds statement fields to a sent document's view (`base` from the outbox view).
/// Each recipient's timeline: the hub's acceptance, the hub's delay notices about it, its
/// answer (receipt, rejection, or the hub's expiry or body-lost notice), then its own
/// statements and the sender's reminders to it.
pub fn sent(
    a: &Agent,
    base: &mut SentDocument,
    accepted: Option<&SignedStatement>,
    statuses: &[(AgencyId, RecipientStatus)],
    state: Option<&DocState>,
    stmts: &[StoredStatement],
    replaces: Option<DocumentId>,
) {
    let (stmts, bad) = decoded(stmts);
    // The acceptance, shown under each recipient it queued (one an update added has none).
    let accepted = accepted.and_then(|s| {
        let queued = match s.statement().ok()?.kind {
            StatementKind::Accepted { recipients, .. } => recipients,
            _ => return None,
        };
        Some((kept_entry(a, s)?, queued))
    });
    for r in base.recipients.iter_mut() {
        let agency = &r.agency;
        let mut timeline = Vec::new();
        if let Some((entry, queued)) = &accepted {
            if queued.contains(agency) {
                timeline.push(entry.clone());
            }
        }
        for (s, st) in &stmts {
            if matches!(&st.kind, StatementKind::Notice { recipient, .. } if recipient == agency) {
                timeline.push(entry(a, s, st));
            }
        }
        match statuses.iter().find(|(x, _)| x == agency).map(|(_, s)| s) {
            // A receipt of `poros/1` is shown from the status as the statement it is.
            Some(RecipientStatus::Delivered(rc)) => timeline.push(TimelineEntry {
                label: "delivered".into(),
                time_ms: rc.receipt().ok().map(|r| r.time_ms),
                statement: None,
                form: Some("poros/1".into()),
            }),
            Some(st) => {
                if let Some(e) = st.signed_statement().and_then(|s| kept_entry(a, s)) {
                    timeline.push(e);
                }
            }
            None => {}
        }
        for (s, st) in &stmts {
            // A recipient's own statements and the sender's reminders to it.
            let about_it = matches!(st.kind, StatementKind::Reminder) && st.to.contains(agency);
            if st.from == *agency || about_it {
                timeline.push(entry(a, s, st));
            }
        }
        r.detail = Some(RecipientDetail {
            business: business_state(state.and_then(|s| s.track(agency)), &stmts),
            timeline,
        });
    }
    let mut replaced_by = None;
    let changes: Vec<ChangeView> = stmts
        .iter()
        .filter_map(|(s, st)| match &st.kind {
            StatementKind::Change { change, reason } => {
                if let (Change::Replace { successor }, false) =
                    (change, matches!(s.hub, HubState::Refused(_)))
                {
                    replaced_by = Some(*successor);
                }
                Some(ChangeView {
                    statement: hex::encode(s.signed.payload_digest()),
                    label: change.label().to_string(),
                    code: st.kind.code().map(str::to_string),
                    to: st.to.clone(),
                    time_ms: st.time_ms,
                    reason: reason.clone(),
                    change: change_asked(change),
                    hub: s.hub.label().to_string(),
                    signature_verified: signature_verified(a, &s.signed, st),
                })
            }
            _ => None,
        })
        .collect();
    base.statements = Some(SentStatements {
        changes,
        replaces,
        replaced_by,
        undecodable_statements: (bad > 0).then_some(bad),
    });
}

/// A received document's view: `doc` (from the inbox view) with its statements.
pub fn received(
    a: &Agent,
    doc: ReceivedDoc,
    state: Option<&DocState>,
    stmts: &[StoredStatement],
    replaces: Option<DocumentId>,
) -> ReceivedDocumentView {
    let (stmts, bad) = decoded(stmts);
    ReceivedDocumentView {
        doc,
        business: business_state(state.and_then(|s| s.track(a.agency())), &stmts),
        replaces,
        timeline: stmts.iter().map(|(s, st)| entry(a, s, st)).collect(),
        undecodable_statements: (bad > 0).then_some(bad),
    }
}

/// The business state an inbox item shows.
pub fn inbox_state(
    me: &AgencyId,
    state: Option<&DocState>,
    replaces: Option<DocumentId>,
) -> InboxState {
    let t = state.and_then(|s| s.track(me));
    InboxState {
        business: t.and_then(|t| t.status).map(|s| s.label().to_string()),
        pending_change: t
            .and_then(|t| t.pending.as_ref())
            .map(|(d, c)| PendingChange {
                statement: hex::encode(d),
                label: c.label().to_string(),
                successor: match c {
                    Change::Replace { successor } => Some(*successor),
                    _ => None,
                },
            }),
        replaced_by: t.and_then(|t| t.replaced_by),
        replaces,
    }
}

/// Whether a received document stays out of the inbox listing: this agency accepted its
/// take-back, or its removal by an update (kept, never deleted).
pub fn hidden_from_inbox(me: &AgencyId, state: Option<&DocState>) -> bool {
    state
        .and_then(|s| s.track(me))
        .is_some_and(|t| t.withdrawn || t.removed)
}
