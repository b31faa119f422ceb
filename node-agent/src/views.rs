//! JSON views of documents with their statements, for the local API: per-recipient business
//! state and signed timelines of a sent document, the same for a received one, and the fields
//! an inbox item gains. Every statement's signature is verified again when its view is built.

use crate::agent::Agent;
use crate::api_types::{InboxState, PendingChange};
use crate::state::statements::{Direction, HubState, StoredStatement};
use crate::state::RecipientStatus;
use crate::statements::signature_verified;
use poros_protocol::{
    AgencyId, Change, DocState, DocumentId, NoticeKind, SignedStatement, Statement, StatementKind,
    Track,
};
use serde_json::{json, Value};

fn change_json(change: &Change) -> Value {
    match change {
        Change::TakeBack => json!({}),
        Change::Update { add, remove, meta } => json!({
            "add": add, "remove": remove,
            "subject": meta.as_ref().map(|m| m.subject.clone()),
            "number": meta.as_ref().and_then(|m| m.number.clone()),
        }),
        Change::Replace { successor } => json!({ "successor": successor }),
    }
}

fn reason_json(kind: &StatementKind) -> Value {
    match kind {
        StatementKind::Status { reason, .. } | StatementKind::Answer { reason, .. } => {
            reason.as_ref().map_or(
                Value::Null,
                |r| json!({"code": r.code.label(), "text": r.text}),
            )
        }
        StatementKind::Change { reason, .. } => json!({"code": null, "text": reason}),
        StatementKind::Receipt { outcome, .. } => outcome.rejection().map_or(
            Value::Null,
            |r| json!({"code": r.code.label(), "text": r.text}),
        ),
        StatementKind::Reminder
        | StatementKind::Accepted { .. }
        | StatementKind::Notice { .. }
        | StatementKind::PaperCount { .. } => Value::Null,
    }
}

/// One timeline entry.
pub fn entry(a: &Agent, s: &StoredStatement, stmt: &Statement) -> Value {
    let mut v = json!({
        "label": stmt.kind.label(),
        "code": stmt.kind.code(),
        "time_ms": stmt.time_ms,
        "from": stmt.from,
        "to": stmt.to,
        "staff": stmt.staff,
        "note": stmt.note,
        "reason": reason_json(&stmt.kind),
        "statement": hex::encode(s.signed.payload_digest()),
        "signature_verified": signature_verified(a, &s.signed, stmt),
        "direction": s.direction.label(),
        "hub": s.hub.label(),
        "hub_reason": match &s.hub { HubState::Refused(r) => json!({"code": r.code.label(), "text": r.text}), _ => Value::Null },
        "stored_ms": s.stored_ms,
    });
    match &stmt.kind {
        StatementKind::Answer { request, .. } => v["answers"] = json!(hex::encode(request)),
        StatementKind::Change { change, .. } => v["change"] = change_json(change),
        StatementKind::Notice { recipient, notice } => {
            v["about"] = json!(recipient);
            if let NoticeKind::Delayed { reason } = notice {
                v["delay"] = json!(reason.label());
            }
            if let NoticeKind::BodyLost { reason } = notice {
                v["body_lost"] = json!(reason.code());
            }
        }
        _ => {}
    }
    v
}

/// Statements decoded; one that no longer decodes is skipped with a warning (never silently
/// lost: the view says how many were skipped).
fn decoded(stmts: &[StoredStatement]) -> (Vec<(&StoredStatement, Statement)>, usize) {
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

fn pending_json(t: &Track, stmts: &[(&StoredStatement, Statement)]) -> Value {
    let Some((digest, change)) = &t.pending else {
        return Value::Null;
    };
    let made = stmts
        .iter()
        .find(|(s, _)| &s.signed.payload_digest() == digest);
    let mut v = json!({
        "statement": hex::encode(digest),
        "label": change.label(),
        "reason": made.map(|(_, st)| reason_json(&st.kind)["text"].clone()),
        "time_ms": made.map(|(_, st)| st.time_ms),
    });
    if let Change::Replace { successor } = change {
        v["successor"] = json!(successor);
    }
    v
}

fn track_fields(v: &mut Value, t: Option<&Track>, stmts: &[(&StoredStatement, Statement)]) {
    v["business"] = json!(t.and_then(|t| t.status).map(|s| s.label()));
    v["withdrawn"] = json!(t.is_some_and(|t| t.withdrawn));
    v["replaced_by"] = json!(t.and_then(|t| t.replaced_by));
    v["removed"] = json!(t.is_some_and(|t| t.removed));
    v["pending_change"] = t.map_or(Value::Null, |t| pending_json(t, stmts));
}

/// A timeline entry for a statement kept with its record rather than in the statement store
/// (the hub's acceptance in the outbox record, an answer in the recipient's status).
fn kept_entry(a: &Agent, signed: &SignedStatement) -> Option<Value> {
    let stmt = signed.statement().ok()?;
    let kept = StoredStatement {
        seq: 0,
        signed: signed.clone(),
        direction: Direction::Received,
        hub: HubState::Accepted,
        stored_ms: stmt.time_ms,
    };
    let mut v = entry(a, &kept, &stmt);
    v["stored_ms"] = Value::Null;
    Some(v)
}

/// Adds statement fields to a sent document's status JSON (`base` from the outbox view).
/// Each recipient's timeline: the hub's acceptance, the hub's delay notices about it, its
/// answer (receipt, rejection, or the hub's expiry or body-lost notice), then its own
/// statements and the sender's reminders to it.
pub fn sent(
    a: &Agent,
    base: &mut Value,
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
    if let Some(list) = base["recipients"].as_array_mut() {
        for r in list.iter_mut() {
            let Some(agency) = r["agency"].as_str().and_then(|s| AgencyId::parse(s).ok()) else {
                continue;
            };
            track_fields(r, state.and_then(|s| s.track(&agency)), &stmts);
            let mut timeline = Vec::new();
            if let Some((entry, queued)) = &accepted {
                if queued.contains(&agency) {
                    timeline.push(entry.clone());
                }
            }
            for (s, st) in &stmts {
                if matches!(&st.kind, StatementKind::Notice { recipient, .. } if recipient == &agency)
                {
                    timeline.push(entry(a, s, st));
                }
            }
            match statuses.iter().find(|(x, _)| x == &agency).map(|(_, s)| s) {
                // A receipt of `poros/1` is shown from the status as the statement it is.
                Some(RecipientStatus::Delivered(rc)) => timeline.push(json!({
                    "label": "delivered",
                    "time_ms": rc.receipt().ok().map(|r| r.time_ms),
                    "form": "poros/1",
                })),
                Some(st) => {
                    if let Some(e) = st.signed_statement().and_then(|s| kept_entry(a, s)) {
                        timeline.push(e);
                    }
                }
                None => {}
            }
            for (s, st) in &stmts {
                // A recipient's own statements and the sender's reminders to it.
                let about_it =
                    matches!(st.kind, StatementKind::Reminder) && st.to.contains(&agency);
                if st.from == agency || about_it {
                    timeline.push(entry(a, s, st));
                }
            }
            r["timeline"] = json!(timeline);
        }
    }
    let mut replaced_by = None;
    let changes: Vec<Value> = stmts
        .iter()
        .filter_map(|(s, st)| match &st.kind {
            StatementKind::Change { change, reason } => {
                if let (Change::Replace { successor }, false) =
                    (change, matches!(s.hub, HubState::Refused(_)))
                {
                    replaced_by = Some(*successor);
                }
                Some(json!({
                    "statement": hex::encode(s.signed.payload_digest()),
                    "label": change.label(),
                    "code": st.kind.code(),
                    "to": st.to,
                    "time_ms": st.time_ms,
                    "reason": reason,
                    "change": change_json(change),
                    "hub": s.hub.label(),
                    "signature_verified": signature_verified(a, &s.signed, st),
                }))
            }
            _ => None,
        })
        .collect();
    base["direction"] = json!("sent");
    base["changes"] = json!(changes);
    base["replaces"] = json!(replaces);
    base["replaced_by"] = json!(replaced_by);
    if bad > 0 {
        base["undecodable_statements"] = json!(bad);
    }
}

/// Adds statement fields to a received document's JSON (`base` from the inbox view).
pub fn received(
    a: &Agent,
    base: &mut Value,
    state: Option<&DocState>,
    stmts: &[StoredStatement],
    replaces: Option<DocumentId>,
) {
    let (stmts, bad) = decoded(stmts);
    base["direction"] = json!("received");
    track_fields(base, state.and_then(|s| s.track(a.agency())), &stmts);
    base["replaces"] = json!(replaces);
    base["timeline"] = json!(stmts
        .iter()
        .map(|(s, st)| entry(a, s, st))
        .collect::<Vec<_>>());
    if bad > 0 {
        base["undecodable_statements"] = json!(bad);
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
