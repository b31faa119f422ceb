//! Statements on the agent: making one (the agent is the authority: it refuses to sign what
//! the rules forbid), submitting those made here to the hub in order, and receiving those the
//! hub relays (verified, checked, stored before they are acknowledged). Relayed receipts and
//! hub notices about a sent document also set its recipient's status
//! (`Agent::store_delivery_answer`); a relayed acceptance is taken as the submission's.
//!
//! Storage is [`crate::state::statements`]; the rules are [`poros_protocol::rules`].

use crate::agent::{now_ms, Agent, SendError};
use crate::api_types::{MetaPatch, StatementMade};
use crate::state::statements::{Check, Direction, HubState, Stored, StoredStatement};
use anyhow::Context;
use poros_certs::Signer;
use poros_protocol::{
    AgencyId, BusinessStatus, Change, Digest, DocState, DocumentId, Effects, Envelope, Frame,
    Party, Reason, ReasonCode, Refusal, RefusalCode, SignedStatement, Staff, Statement,
    StatementKind, Track, STATEMENT_CONTEXT,
};
use poros_store::StoreError;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn, Instrument};

/// Why a statement was not made.
#[derive(Debug, thiserror::Error)]
pub enum MakeError {
    /// The exchange rules forbid it (nothing stored).
    #[error("{}", .0.text)]
    Rule(Reason),
    /// The request itself is wrong (a missing field, a bad value).
    #[error("{0}")]
    Invalid(String),
    /// Creating a replacement document failed.
    #[error(transparent)]
    Send(#[from] SendError),
    /// Storage failure.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// What the agency says, before its addressees are worked out.
#[derive(Clone, Debug)]
pub enum Say {
    /// A business status on a received document.
    Progress {
        /// The status reached.
        status: BusinessStatus,
        /// Why (for `rejected`).
        reason: Option<String>,
    },
    /// Ask recipients of a sent document to withdraw it.
    TakeBack {
        /// Addressees (default: every current recipient it was delivered to).
        to: Option<Vec<AgencyId>>,
        /// Why.
        reason: String,
    },
    /// Add or remove recipients, or correct metadata.
    Update {
        /// Added.
        add: Vec<AgencyId>,
        /// Removed.
        remove: Vec<AgencyId>,
        /// Corrected fields.
        meta: MetaPatch,
        /// Why.
        reason: String,
    },
    /// A document already created here supersedes this one.
    Replace {
        /// The new document.
        successor: DocumentId,
        /// Its recipients.
        successor_recipients: Vec<AgencyId>,
        /// Why.
        reason: String,
    },
    /// Urge recipients of a sent document that have not completed it to act (the note says
    /// what is expected).
    Remind {
        /// Addressees (default: every current recipient it was delivered to that has not
        /// completed or rejected it).
        to: Option<Vec<AgencyId>>,
    },
    /// Answer the pending change request on a received document.
    Answer {
        /// Accept (`15`) or refuse (`16`).
        accept: bool,
        /// Why (for a refusal).
        reason: Option<String>,
    },
}

fn illegal(text: String) -> Reason {
    Reason::new(ReasonCode::IllegalTransition, text)
}

fn other(text: impl Into<String>) -> Reason {
    Reason::new(ReasonCode::Other, text)
}

/// Recipients still holding the document that signed a receipt for it.
fn delivered_current(state: &DocState) -> Vec<AgencyId> {
    state
        .current_recipients()
        .filter(|a| state.track(a).is_some_and(|t| t.delivered))
        .cloned()
        .collect()
}

/// The staff member who acts and their note.
pub type Acting = (Staff, Option<String>);

/// The statement `say` means on a document in `state` (whose envelope this agency signed, if
/// it sent it), made by `me` at `now`.
pub fn build(
    state: &DocState,
    envelope: Option<&Envelope>,
    doc: DocumentId,
    me: &AgencyId,
    say: Say,
    (staff, note): Acting,
    now: u64,
) -> Result<Statement, Reason> {
    let (to, kind) = match say {
        Say::Progress { status, reason } => (
            vec![state.sender.clone()],
            StatementKind::Status {
                status,
                reason: reason.map(other),
            },
        ),
        Say::Answer { accept, reason } => {
            let request = match state.track(me).and_then(|t| t.pending.as_ref()) {
                Some((d, _)) => *d,
                None => {
                    return Err(illegal(format!(
                        "{me} has no change request on {doc} to answer"
                    )))
                }
            };
            (
                vec![state.sender.clone()],
                StatementKind::Answer {
                    request,
                    accept,
                    reason: reason.map(other),
                },
            )
        }
        Say::Remind { to } => (
            to.unwrap_or_else(|| {
                delivered_current(state)
                    .into_iter()
                    .filter(|a| {
                        state
                            .track(a)
                            .is_some_and(|t| !t.status.is_some_and(|s| s.is_final()))
                    })
                    .collect()
            }),
            StatementKind::Reminder,
        ),
        Say::TakeBack { to, reason } => (
            to.unwrap_or_else(|| delivered_current(state)),
            StatementKind::Change {
                change: Change::TakeBack,
                reason,
            },
        ),
        Say::Update {
            add,
            remove,
            meta,
            reason,
        } => {
            let meta = match (meta.is_empty(), envelope) {
                (true, _) => None,
                (false, Some(env)) => Some(meta.apply(env.meta.clone()).map_err(other)?),
                (false, None) => {
                    return Err(illegal(format!(
                        "{me} did not send {doc} and cannot correct it"
                    )))
                }
            };
            (
                delivered_current(state),
                StatementKind::Change {
                    change: Change::Update { add, remove, meta },
                    reason,
                },
            )
        }
        Say::Replace {
            successor,
            successor_recipients,
            reason,
        } => (
            delivered_current(state)
                .into_iter()
                .filter(|a| successor_recipients.contains(a))
                .collect(),
            StatementKind::Change {
                change: Change::Replace { successor },
                reason,
            },
        ),
    };
    if to.is_empty() {
        return Err(illegal(format!(
            "{doc} has no current recipient it was delivered to that this could be addressed to"
        )));
    }
    Ok(Statement {
        doc_id: doc,
        from: me.clone().into(),
        to,
        kind,
        staff,
        note,
        time_ms: now,
    })
}

/// The check of a statement received about a document in `state`, held by `me`. The sender
/// holds every recipient's track; a recipient holds only its own, so a change request
/// addressed to others too is checked as if their copies were delivered and free (the hub,
/// which holds them all, has checked those).
pub fn check_received(
    state: &DocState,
    me: &AgencyId,
    stmt: &Statement,
    digest: &Digest,
) -> Result<Effects, Reason> {
    if &state.sender != me
        && matches!(
            stmt.kind,
            StatementKind::Change { .. } | StatementKind::Reminder
        )
    {
        let mut view = state.clone();
        for a in stmt.to.iter().filter(|a| *a != me) {
            view.tracks.insert(
                a.clone(),
                Track {
                    delivered: true,
                    ..Track::default()
                },
            );
        }
        return view.check(stmt, digest);
    }
    state.check(stmt, digest)
}

/// Verify a statement's signature as of its own time: the signer must be its maker.
fn verify(
    agent: &Agent,
    signed: &SignedStatement,
    stmt: &Statement,
    now: u64,
) -> Result<(), Reason> {
    match agent.trust_verify_signed_at(
        &signed.0,
        STATEMENT_CONTEXT,
        now / 1000,
        stmt.time_ms / 1000,
    ) {
        Ok(signer) if signed_by_maker(&signer, &stmt.from) => Ok(()),
        Ok(Signer::Agency(a)) => Err(Reason::new(
            ReasonCode::SignerNotForAgency,
            format!(
                "statement claims to be from {} but is signed by {a}",
                stmt.from
            ),
        )),
        Ok(Signer::Hub) => Err(Reason::new(
            ReasonCode::SignerNotForAgency,
            format!(
                "statement claims to be from {} but is signed by the hub",
                stmt.from
            ),
        )),
        Err(e) => Err(Reason::new(
            e.reason_code(),
            format!("statement signature: {e}"),
        )),
    }
}

/// Whether `signer` is the party that makes the statement: the agency itself, or the hub
/// (certificate SAN `urn:poros:hub`) for the hub's own statements. A signer is a [`Party`].
pub(crate) fn signed_by_maker(signer: &Signer, maker: &Party) -> bool {
    signer == maker
}

/// Whether a stored statement's signature still verifies (re-checked for every view).
pub fn signature_verified(agent: &Agent, s: &SignedStatement, stmt: &Statement) -> bool {
    agent
        .trust_verify(&s.0, STATEMENT_CONTEXT, stmt.time_ms / 1000)
        .is_ok_and(|signer| signed_by_maker(&signer, &stmt.from))
}

/// Whether `update` proves that the document in `env` is addressed to this agency: signed by
/// the document's sender, about this document, an update that adds this agency.
pub(crate) fn adds_this_agency(
    agent: &Agent,
    env: &Envelope,
    update: &SignedStatement,
    now: u64,
) -> bool {
    let Ok(stmt) = update.statement() else {
        return false;
    };
    if stmt.from != env.sender || stmt.doc_id != env.id {
        return false;
    }
    let adds = matches!(&stmt.kind, StatementKind::Change { change: Change::Update { add, .. }, .. } if add.contains(agent.agency()));
    adds && verify(agent, update, &stmt, now).is_ok()
}

impl Agent {
    /// The statement `say` would make now on `doc`, checked under the rules but neither
    /// signed nor stored.
    pub fn prepare_statement(
        &self,
        doc: DocumentId,
        say: Say,
        staff: Staff,
        note: Option<String>,
        now: u64,
    ) -> Result<Statement, MakeError> {
        let state = self.store.doc_state(&doc)?.ok_or_else(|| {
            MakeError::Rule(Reason::new(
                ReasonCode::UnknownDocument,
                format!("document {doc} is not known here"),
            ))
        })?;
        let envelope = self
            .store
            .outgoing(&doc)?
            .and_then(|o| o.envelope.envelope().ok());
        let stmt = build(
            &state,
            envelope.as_ref(),
            doc,
            self.agency(),
            say,
            (staff, note),
            now,
        )
        .map_err(MakeError::Rule)?;
        // The digest only matters once signed; the check is repeated then, in the store.
        state.check(&stmt, &[0; 32]).map_err(MakeError::Rule)?;
        Ok(stmt)
    }

    /// Make a statement: built, checked under the rules, signed, stored durably (with its
    /// effect on the document's state and its event) and queued for the hub, all before this
    /// returns. A statement the rules forbid is refused and nothing is stored.
    pub async fn make_statement(
        &self,
        doc: DocumentId,
        say: Say,
        staff: Staff,
        note: Option<String>,
    ) -> Result<StatementMade, MakeError> {
        let span = tracing::info_span!("statement_out", doc = %doc, agency = %self.agency());
        async move {
            let now = now_ms();
            let successor = match &say {
                Say::Replace { successor, .. } => Some(*successor),
                _ => None,
            };
            let stmt = self.prepare_statement(doc, say, staff, note, now)?;
            let (key, cert) = self.signing();
            let signed = SignedStatement::sign(&stmt, &key, &cert)
                .map_err(|e| MakeError::Invalid(format!("signing failed: {e}")))?;
            let digest = signed.payload_digest();
            let check: Check = Box::new(|state, stmt, digest| state.check(stmt, digest));
            if let Err(r) = self
                .store
                .put_statement(signed, Direction::Made, now, check)
                .await?
            {
                return Err(MakeError::Rule(r));
            }
            info!(
                kind = stmt.kind.label(),
                to = stmt.to.len(),
                "statement signed, stored and queued"
            );
            self.statement_wake.notify_one();
            Ok(StatementMade {
                doc,
                statement: hex::encode(digest),
                kind: stmt.kind.label().to_string(),
                code: stmt.kind.code().map(str::to_string),
                to: stmt.to,
                successor,
            })
        }
        .instrument(span)
        .await
    }
}

/// Store a statement the hub relays; the answer to send back.
pub(crate) async fn receive(agent: &Agent, signed: SignedStatement) -> anyhow::Result<Frame> {
    let refuse = |r: Reason| Frame::Refused(Refusal::rule(r));
    let stmt = match signed.statement() {
        Ok(s) => s,
        Err(e) => return Ok(refuse(other(format!("statement does not decode: {e}")))),
    };
    let me = agent.agency().clone();
    let span =
        tracing::info_span!("statement_in", doc = %stmt.doc_id, agency = %me, from = %stmt.from);
    async move {
        let now = now_ms();
        if let Err(r) = verify(agent, &signed, &stmt, now) {
            warn!(reason = %r, "relayed statement refused");
            return Ok(refuse(r));
        }
        if !stmt.to.contains(&me) {
            return Ok(refuse(Reason::new(
                ReasonCode::NotAddressed,
                format!("statement is not addressed to {me}"),
            )));
        }
        match &stmt.kind {
            StatementKind::Receipt { .. } | StatementKind::Notice { .. } => {
                return agent.store_delivery_answer(signed, stmt, now).await;
            }
            StatementKind::Accepted { .. } => {
                // Normally the answer to a submission; taken the same way if relayed.
                let Some(rec) = agent.store.outgoing(&stmt.doc_id)? else {
                    return Ok(refuse(Reason::new(
                        ReasonCode::UnknownDocument,
                        format!("{} is not in the outbox of {me}", stmt.doc_id),
                    )));
                };
                return Ok(match agent.record_acceptance(&rec, signed).await? {
                    Ok(()) => Frame::Ack {
                        doc_id: stmt.doc_id,
                    },
                    Err(r) => refuse(r),
                });
            }
            _ => {}
        }
        let who = me.clone();
        let check: Check = Box::new(move |state, s, d| check_received(state, &who, s, d));
        let doc_id = stmt.doc_id;
        match agent
            .store
            .put_statement(signed, Direction::Received, now, check)
            .await?
        {
            Ok(Stored::New(seq)) => {
                info!(
                    kind = stmt.kind.label(),
                    seq, "statement received and stored"
                )
            }
            Ok(Stored::AlreadyHeld) => debug!("statement already held; acknowledged again"),
            Err(r) => {
                warn!(reason = %r, kind = stmt.kind.label(), "relayed statement refused");
                return Ok(refuse(r));
            }
        }
        Ok(Frame::Ack { doc_id })
    }
    .instrument(span)
    .await
}

/// Longest wait before a statement the hub did not take is offered again.
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Sends the statements made here to the hub, in store order: for one document strictly one
/// after another (the next only once the hub answered the previous), documents side by side.
pub(crate) async fn submitter(agent: Arc<Agent>) {
    let mut conn_rx = agent.connection();
    // Documents whose head statement the hub did not take: when to try again, and the wait.
    let mut backoff: HashMap<DocumentId, (Instant, Duration)> = HashMap::new();
    loop {
        let Some(conn) = crate::agent::connected(&mut conn_rx).await else {
            return;
        };
        // Enabled before the queue is read: a statement queued meanwhile wakes us again.
        let notified = agent.statement_wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let queue = agent.store.statement_queue(4096).unwrap_or_else(|e| {
            warn!(error = %e, "reading the statement queue failed");
            Vec::new()
        });
        let now = Instant::now();
        let mut seen = HashSet::new();
        let mut heads = Vec::new();
        let mut next_try: Option<Instant> = None;
        for (seq, doc) in queue {
            if !seen.insert(doc) {
                continue;
            }
            match backoff.get(&doc) {
                Some((at, _)) if *at > now => {
                    next_try = Some(next_try.map_or(*at, |n| n.min(*at)));
                }
                _ => heads.push((seq, doc)),
            }
            if heads.len() >= 64 {
                break;
            }
        }
        let results = futures_util::future::join_all(heads.iter().map(|(seq, doc)| {
            let (agent, conn) = (agent.clone(), conn.clone());
            let span =
                tracing::info_span!("statement_submit", doc = %doc, agency = %agent.agency());
            let (seq, doc) = (*seq, *doc);
            async move { submit_one(&agent, &conn, doc, seq).await }.instrument(span)
        }))
        .await;
        let mut progressed = false;
        for ((_, doc), r) in heads.iter().zip(results) {
            match r {
                Ok(true) => {
                    backoff.remove(doc);
                    progressed = true;
                }
                Ok(false) | Err(_) => {
                    if let Err(e) = r {
                        warn!(doc = %doc, error = %e, "statement submission failed; will retry");
                    }
                    let wait = backoff
                        .get(doc)
                        .map_or(Duration::from_millis(500), |(_, w)| (*w * 2).min(RETRY_MAX));
                    let at = Instant::now() + wait;
                    backoff.insert(*doc, (at, wait));
                    next_try = Some(next_try.map_or(at, |n| n.min(at)));
                }
            }
        }
        if !progressed {
            let wait = next_try
                .map(|t| t.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_secs(5));
            tokio::select! {
                _ = notified => {}
                _ = conn_rx.changed() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Offer one queued statement to the hub. `Ok(true)`: answered for good (accepted, or
/// refused under the rules); `Ok(false)`: still queued (a replacement waiting for its new
/// document, or a refusal that may pass later).
async fn submit_one(
    agent: &Agent,
    conn: &quinn::Connection,
    doc: DocumentId,
    seq: u64,
) -> anyhow::Result<bool> {
    let Some(mut rec) = agent.store.statement(&doc, seq)? else {
        agent
            .store
            .statement_done(doc, seq, HubState::Accepted)
            .await?;
        return Ok(true);
    };
    match rec.hub {
        HubState::Queued => {}
        // Queued again by a hub restore: offered as it is, its state here unchanged.
        HubState::Accepted => return resubmit_accepted(agent, conn, doc, rec).await,
        HubState::Refused(_) => {
            agent
                .store
                .statement_done(doc, seq, rec.hub.clone())
                .await?;
            return Ok(true);
        }
    }
    let stmt = rec.statement()?;
    if let StatementKind::Change {
        change: Change::Replace { successor },
        ..
    } = &stmt.kind
    {
        // The request goes only once the hub accepted the document it names.
        let refused = match agent.store.outgoing(successor)? {
            Some(o) if o.is_accepted() => None,
            Some(o) => match o.refused {
                Some(why) => Some(format!(
                    "the new document {successor} was refused by the hub: {why}"
                )),
                None => return Ok(false),
            },
            None => Some(format!("the new document {successor} is not held here")),
        };
        if let Some(why) = refused {
            warn!(%why, "replace request not submitted");
            let r = Reason::new(ReasonCode::UnknownDocument, why);
            agent
                .store
                .statement_done(doc, seq, HubState::Refused(r))
                .await?;
            return Ok(true);
        }
    }
    let (key, cert) = agent.signing();
    if rec.signed.0.signer_cert != cert {
        // Signed before a renewal: the hub refuses a superseded certificate once the new one
        // is in use; the same payload (same digest) is signed again.
        let resigned = rec.signed.resign(&key, &cert)?;
        rec = agent
            .store
            .resign_statement(doc, seq, resigned)
            .await?
            .with_context(|| format!("queued statement {seq} on {doc} has no record"))?;
        debug!(seq, "statement signed again with the renewed certificate");
    }
    let answer = poros_transport::request(
        conn,
        &Frame::Statement {
            statement: rec.signed.clone(),
        },
    )
    .await?;
    match answer {
        Frame::Ack { .. } => {
            agent
                .store
                .statement_done(doc, seq, HubState::Accepted)
                .await?;
            info!(seq, kind = stmt.kind.label(), "statement accepted by hub");
            Ok(true)
        }
        Frame::Refused(Refusal {
            code: RefusalCode::Rule(code),
            message,
        }) => {
            let r = Reason::new(code, message);
            warn!(seq, reason = %r, "statement refused by hub; its effects are undone here");
            agent
                .store
                .statement_done(doc, seq, HubState::Refused(r))
                .await?;
            Ok(true)
        }
        Frame::Refused(r) => {
            // Not a judgement on the statement (storage, an older hub, ...): kept and retried.
            debug!(seq, refusal = %r, "hub did not take the statement now; will retry");
            Ok(false)
        }
        _ => anyhow::bail!("hub answered a statement with an unexpected frame"),
    }
}

/// Offer again a statement the hub had accepted before it was restored from a backup (the
/// hub's `Resync`). The restored hub stores it if it lacks it and answers a duplicate with an
/// ack; either way it leaves the queue and keeps its state here. A refusal because the hub
/// does not hold the document (yet: its sender gives it back when it connects) keeps it
/// queued; another refusal means the restored hub judges it differently from the hub that
/// accepted it, which is logged and not undone here (its effects happened).
async fn resubmit_accepted(
    agent: &Agent,
    conn: &quinn::Connection,
    doc: DocumentId,
    rec: StoredStatement,
) -> anyhow::Result<bool> {
    let (key, cert) = agent.signing();
    // Signed again with a renewed certificate when needed; the payload, hence the digest the
    // hub deduplicates on, is the same.
    let signed = if rec.signed.0.signer_cert != cert {
        rec.signed.resign(&key, &cert)?
    } else {
        rec.signed.clone()
    };
    let answer = poros_transport::request(conn, &Frame::Statement { statement: signed }).await?;
    let seq = rec.seq;
    match answer {
        Frame::Ack { .. } => {
            debug!(seq, "statement given back to the restored hub");
        }
        Frame::Refused(Refusal {
            code: RefusalCode::Rule(ReasonCode::UnknownDocument),
            message,
        }) => {
            debug!(seq, %message, "restored hub lacks the document yet; offered again later");
            return Ok(false);
        }
        Frame::Refused(Refusal {
            code: RefusalCode::Rule(code),
            message,
        }) => {
            warn!(seq, reason = %Reason::new(code, message), "the restored hub refuses a statement it had accepted before its restore; kept as accepted here");
        }
        Frame::Refused(r) => {
            debug!(seq, refusal = %r, "hub did not take the statement now; will retry");
            return Ok(false);
        }
        _ => anyhow::bail!("hub answered a statement with an unexpected frame"),
    }
    agent
        .store
        .statement_done(doc, seq, HubState::Accepted)
        .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::statements::tests::{a, stmt, R1, R2, S};

    fn staff() -> Acting {
        (
            Staff {
                department: "Văn thư".into(),
                name: "Phạm Thị D".into(),
                email: None,
                phone: None,
            },
            None,
        )
    }

    fn doc() -> DocumentId {
        DocumentId::new_v7(20, [5; 10])
    }

    #[test]
    fn change_requests_go_to_the_recipients_holding_the_document() {
        let mut st = DocState::new(a(S), &[a(R1), a(R2)]);
        let tb = || Say::TakeBack {
            to: None,
            reason: "sent in error".into(),
        };
        // Delivered to nobody yet: nobody to ask.
        let e = build(&st, None, doc(), &a(S), tb(), staff(), 1).unwrap_err();
        assert_eq!(e.code, ReasonCode::IllegalTransition);
        st.delivered(&a(R2));
        let s = build(&st, None, doc(), &a(S), tb(), staff(), 1).unwrap();
        assert_eq!(s.to, vec![a(R2)]);
        assert!(st.check(&s, &[1; 32]).is_ok());
        // A recipient cannot ask for a change: the rules refuse it.
        let mut r = DocState::new(a(S), &[a(R1), a(R2)]);
        r.delivered(&a(R1));
        r.delivered(&a(R2));
        let to_r2 = Say::TakeBack {
            to: Some(vec![a(R2)]),
            reason: "mine".into(),
        };
        let s = build(&r, None, doc(), &a(R1), to_r2, staff(), 1).unwrap();
        assert_eq!(
            r.check(&s, &[1; 32]).unwrap_err().code,
            ReasonCode::IllegalTransition
        );
    }

    #[test]
    fn an_answer_names_the_pending_request() {
        let mut st = DocState::new(a(S), &[a(R1)]);
        st.delivered(&a(R1));
        let ans = || Say::Answer {
            accept: true,
            reason: None,
        };
        let e = build(&st, None, doc(), &a(R1), ans(), staff(), 1).unwrap_err();
        assert_eq!(e.code, ReasonCode::IllegalTransition);
        let req = stmt(
            doc(),
            S,
            &[R1],
            StatementKind::Change {
                change: Change::TakeBack,
                reason: "typo".into(),
            },
        );
        st.apply(&req, &[7; 32]);
        let s = build(&st, None, doc(), &a(R1), ans(), staff(), 1).unwrap();
        assert!(matches!(s.kind, StatementKind::Answer { request, .. } if request == [7; 32]));
        assert_eq!(s.to, vec![a(S)]);
        st.check(&s, &[8; 32]).unwrap();
        st.apply(&s, &[8; 32]);
        assert!(st.track(&a(R1)).unwrap().withdrawn);
    }

    #[test]
    fn a_recipient_checks_a_request_to_several_on_its_own_copy() {
        // At R1: the envelope lists R1 and R2, only R1's own delivery is known here.
        let mut st = DocState::new(a(S), &[a(R1), a(R2)]);
        st.delivered(&a(R1));
        let req = stmt(
            doc(),
            S,
            &[R1, R2],
            StatementKind::Change {
                change: Change::TakeBack,
                reason: "typo".into(),
            },
        );
        assert!(st.check(&req, &[1; 32]).is_err());
        check_received(&st, &a(R1), &req, &[1; 32]).unwrap();
        // Not delivered here: refused.
        let mut quarantined = DocState::new(a(S), &[a(R1), a(R2)]);
        quarantined.delivered(&a(R2));
        assert_eq!(
            check_received(&quarantined, &a(R1), &req, &[1; 32])
                .unwrap_err()
                .code,
            ReasonCode::IllegalTransition
        );
        // A status about the document from another agency is refused at its sender.
        let s = stmt(
            doc(),
            "000.00.00.H09",
            &[S],
            StatementKind::Status {
                status: BusinessStatus::Registered,
                reason: None,
            },
        );
        assert_eq!(
            check_received(&st, &a(S), &s, &[2; 32]).unwrap_err().code,
            ReasonCode::IllegalTransition
        );
    }
}
