//! Submission: a signed envelope and its body are admitted by the shared rules, stored with
//! one queue entry per recipient, and answered with the hub's signed acceptance: an
//! `Accepted` statement (also the first of the document's history), or for a `poros/1`
//! connection that version's acceptance form.

use crate::bodies::Settle;
use crate::hub::{now_ms, AgencyCheck, Hub};
use crate::state::{AcceptOutcome, DocRecord, NodeState};
use anyhow::Result;
use poros_protocol::admission::{admit_envelope, check_body};
use poros_protocol::envelope::ENVELOPE_CONTEXT;
use poros_protocol::{
    Acceptance, AgencyId, Frame, Reason, ReasonCode, RefusalCode, SignedAcceptance, SignedEnvelope,
};

use poros_store::{BodySink, Commit, StoreError};
use poros_transport::loglimit::LogLimiter;
use poros_transport::warn_limited;
use poros_transport::{recv_body_tapped, write_frame, RecvBodyError, WireError};
use std::sync::Arc;
use tracing::{debug, info, info_span, Instrument};

use super::cut_through::CutThrough;
use super::dispatch::refuse;

/// The hub's answer to a submission, in the form the connection speaks.
fn acceptance_frame(hub: &Hub, current: bool, acc: &Acceptance) -> Result<Frame> {
    Ok(if current {
        Frame::Statement {
            statement: hub.sign_statement(&acc.as_statement())?,
        }
    } else {
        Frame::Accepted {
            acceptance: SignedAcceptance::sign(
                acc,
                &hub.keys.hub_sign_key,
                &hub.keys.hub_sign_cert,
            )?,
        }
    })
}

/// Admit, store and answer one submission; refusals are answered on the stream and counted.
pub(super) async fn handle_submit(
    hub: &Arc<Hub>,
    agency: &AgencyId,
    log: &LogLimiter,
    current: bool,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    signed: SignedEnvelope,
) -> Result<(), WireError> {
    macro_rules! refuse {
        ($code:expr, $metric:expr, $($arg:tt)*) => {{
            hub.metrics.refuse($metric);
            let msg = format!($($arg)*);
            warn_limited!(log, reason = %msg, "submission refused");
            refuse(send, $code, msg).await;
            let _ = recv.stop(0u32.into());
            return Ok(());
        }};
    }
    match hub.verify_agency(&signed.0, ENVELOPE_CONTEXT, agency) {
        Ok(()) => {}
        Err(e @ AgencyCheck::OtherSigner(_)) => refuse!(
            RefusalCode::SenderMismatch,
            "sender_mismatch",
            "envelope is {e}"
        ),
        Err(e @ AgencyCheck::Invalid(_)) => {
            refuse!(RefusalCode::BadSignature, "bad_signature", "envelope {e}")
        }
        Err(e @ AgencyCheck::NotCurrent(_)) => refuse!(
            RefusalCode::BadSignature,
            "superseded_certificate",
            "envelope {e}"
        ),
    }
    let env = match signed.envelope() {
        Ok(e) => e,
        Err(e) => refuse!(RefusalCode::InvalidEnvelope, "invalid_envelope", "{e}"),
    };
    // Everything from here is about this document: its span follows the task across awaits.
    let span = info_span!("doc", doc = %env.id);
    async {
    // The signer is the connected agency (checked above), so the shared admission's signer
    // check is the envelope's sender against the connection.
    if let Err(r) = admit_envelope(&env, agency, hub.cfg.limits.max_body_bytes) {
        let (code, metric) = refusal_of(&r);
        refuse!(code, metric, "{}", r.text);
    }
    for r in &env.recipients {
        match hub.node_state(r) {
            Some(NodeState::Active) | Some(NodeState::Suspended) | Some(NodeState::Pending) => {}
            Some(NodeState::Revoked) => refuse!(
                RefusalCode::UnknownRecipient,
                "unknown_recipient",
                "recipient {r} is revoked"
            ),
            None => refuse!(
                RefusalCode::UnknownRecipient,
                "unknown_recipient",
                "recipient {r} is not registered at this hub"
            ),
        }
    }
    let acceptance = |accepted_ms| Acceptance {
        doc_id: env.id,
        sender: agency.clone(),
        recipients: env.recipients.clone(),
        body_sha256: env.body_sha256,
        body_len: env.body_len,
        accepted_ms,
    };
    // Resubmission: answer with the original acceptance (its time, signed again in the form
    // this connection speaks) without reading the body again.
    match hub.store.doc(&env.id).await {
        Ok(Some(old)) if old.envelope.0.payload == signed.0.payload => {
            let _ = recv.stop(0u32.into());
            let frame = match acceptance_frame(hub, current, &acceptance(old.accepted_ms)) {
                Ok(f) => f,
                Err(e) => refuse!(RefusalCode::Unavailable, "sign", "hub cannot sign: {e}"),
            };
            write_frame(send, &frame).await?;
            send.finish()?;
            debug!(doc = %env.id, "duplicate submission answered with original acceptance");
            return Ok(());
        }
        Ok(Some(_)) => refuse!(
            RefusalCode::Conflict,
            "conflict",
            "document ID {} is already used by a different document",
            env.id
        ),
        Ok(None) => {}
        Err(e) => {
            let (code, msg, metric) = hub.store_refusal(&e);
            refuse!(code, metric, "{msg}")
        }
    }

    // A body file is started before the body is read, so a full disk refuses at once.
    let sink = match BodySink::for_len(&hub.blobs, env.body_len).await {
        Ok(s) => s,
        Err(e) => {
            let (code, msg, metric) = hub.store_refusal(&e);
            refuse!(code, metric, "{msg}")
        }
    };
    // A large body goes on to the recipients connected here as it arrives (dropped unless the
    // document is accepted: then their streams are reset and they keep nothing).
    let mut tee = CutThrough::start(hub, &signed, &env);
    let expect = Commit::Expecting(env.body_sha256);
    let body = match recv_body_tapped(recv, env.body_len, sink, expect, &mut tee).await {
        Ok(b) => b,
        Err(RecvBodyError::Wire(e)) => return Err(e),
        Err(RecvBodyError::Store(StoreError::DigestMismatch { actual, .. })) => {
            // Exactly `body_len` bytes were read; only the hash can differ.
            let r = check_body(&env, &actual, env.body_len)
                .err()
                .unwrap_or_else(|| Reason::new(ReasonCode::BodyHashMismatch, "body hash"));
            let (code, metric) = refusal_of(&r);
            refuse!(code, metric, "{}", r.text)
        }
        Err(RecvBodyError::Store(e)) => {
            let (code, msg, metric) = hub.store_refusal(&e);
            refuse!(code, metric, "{msg}")
        }
    };
    // The body is durable where large bodies are kept before its document is accepted.
    let body = match hub.bodies.settle(body, Settle::New).await {
        Ok(b) => b,
        Err(e) => {
            let (code, msg, metric) = hub.store_refusal(&e);
            refuse!(code, metric, "{msg}")
        }
    };
    let acc = acceptance(now_ms());
    let stmt = acc.as_statement();
    let signed_acc = match hub.sign_statement(&stmt) {
        Ok(s) => s,
        Err(e) => refuse!(RefusalCode::Unavailable, "sign", "hub cannot sign: {e}"),
    };
    let rec = DocRecord {
        envelope: signed,
        acceptance: signed_acc.0.clone(),
        sender: agency.clone(),
        recipients: env.recipients.clone(),
        body_sha256: env.body_sha256,
        body_len: env.body_len,
        body_at: body.at(),
        accepted_ms: acc.accepted_ms,
    };
    let forwarded = (!tee.is_empty()).then(|| rec.clone());
    let frame = match hub.store.accept(rec, body).await {
        Ok(AcceptOutcome::Stored) => {
            info!(doc = %env.id, sender = %agency, recipients = env.recipients.len(), bytes = env.body_len, "accepted");
            if let Some(rec) = forwarded {
                // The forwards finish on their own; the sender's acceptance does not wait.
                tokio::spawn(tee.accepted(rec).in_current_span());
            }
            for r in &env.recipients {
                hub.wake(r);
            }
            if current {
                Ok(Frame::Statement {
                    statement: signed_acc,
                })
            } else {
                acceptance_frame(hub, current, &acc)
            }
        }
        Ok(AcceptOutcome::Duplicate { accepted_ms }) => {
            acceptance_frame(hub, current, &acceptance(accepted_ms))
        }
        Ok(AcceptOutcome::Conflict) => refuse!(
            RefusalCode::Conflict,
            "conflict",
            "document ID {} is already used by a different document",
            env.id
        ),
        Err(e) => {
            let (code, msg, metric) = hub.store_refusal(&e);
            refuse!(code, metric, "{msg}")
        }
    };
    let frame = match frame {
        Ok(f) => f,
        // Stored: the agent resubmits and gets the acceptance then.
        Err(e) => refuse!(RefusalCode::Unavailable, "sign", "hub cannot sign: {e}"),
    };
    write_frame(send, &frame).await?;
    send.finish()?;
    Ok(())
    }
    .instrument(span)
    .await
}

/// The wire refusal and metric label of a shared admission reason: the codes the hub has
/// always answered and counted, so agents and dashboards see no change.
fn refusal_of(r: &Reason) -> (RefusalCode, &'static str) {
    match r.code {
        ReasonCode::SignerNotForAgency => (RefusalCode::SenderMismatch, "sender_mismatch"),
        ReasonCode::TooLarge => (RefusalCode::TooLarge, "too_large"),
        ReasonCode::BodyHashMismatch => (RefusalCode::BodyMismatch, "body_mismatch"),
        _ => (RefusalCode::InvalidEnvelope, "invalid_envelope"),
    }
}
