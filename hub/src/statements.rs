//! The statement path on the wire: statements an agency makes (verified, checked and stored
//! by the store in one transaction, answered `Ack` once durable) and their relay to each
//! addressee, one per document at a time, in acceptance order.
//!
//! Receipts and rejections arrive as answers to deliveries and the hub makes its acceptances
//! and notices itself (see `server::push`, `server::submit`, `server::sweep`); all are stored
//! and relayed by the same store path. A paper count, about a month rather than a document, is
//! stored with the statistics.
//!
//! The protocol version is the connection's ALPN: `poros/1` agents know neither `Statement`
//! nor `DeliverAdded`, so nothing of this path is ever sent to them (it stays queued until the
//! agency connects with a newer agent). See ARCHITECTURE.md, "Protocol versions".

use crate::hub::{AgencyCheck, Hub};
use crate::server::inflight::InFlight;
use crate::state::{DocRecord, StatementOutcome, StatementRelay};
use anyhow::{Context, Result};
use poros_protocol::{
    AgencyId, DocumentId, Frame, HubNotice, Reason, ReasonCode, Refusal, SignedStatement,
    StatementKind, STATEMENT_CONTEXT,
};
use poros_transport::loglimit::LogLimiter;
use poros_transport::{warn_limited, write_frame};
use std::sync::Arc;
use tokio::sync::{Notify, Semaphore};
use tracing::{debug, info, info_span, warn, Instrument};

/// Whether a connection negotiated the current protocol version (`poros/3`), which carries
/// statements; else it is `poros/1`.
pub fn speaks_statements(conn: &quinn::Connection) -> bool {
    conn.handshake_data()
        .and_then(|h| h.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|h| h.protocol.clone())
        .is_some_and(|p| p.as_slice() == poros_protocol::ALPN)
}

/// Why a statement is not the connected agency's own, as a rule reason.
fn signer_reason(e: AgencyCheck) -> Reason {
    let code = match &e {
        AgencyCheck::OtherSigner(_) | AgencyCheck::NotCurrent(_) => ReasonCode::SignerNotForAgency,
        AgencyCheck::Invalid(v) => v.reason_code(),
    };
    Reason::new(code, format!("statement {e}"))
}

/// A `Frame::Statement` from `agency` on its own connection: verify, check, store, answer.
pub(crate) async fn handle(
    hub: &Arc<Hub>,
    agency: &AgencyId,
    log: &LogLimiter,
    send: &mut quinn::SendStream,
    signed: SignedStatement,
) {
    let reply = accept(hub, agency, log, signed).await;
    let _ = write_frame(send, &reply).await;
    let _ = send.finish();
}

async fn accept(
    hub: &Arc<Hub>,
    agency: &AgencyId,
    log: &LogLimiter,
    signed: SignedStatement,
) -> Frame {
    let refuse = |label: &str, refusal: Refusal, doc: Option<DocumentId>| {
        hub.metrics.refuse(label);
        let doc = doc.map(|d| d.to_string()).unwrap_or_default();
        warn_limited!(log, %doc, reason = %refusal, "statement refused");
        Frame::Refused(refusal)
    };
    let rule = |r: Reason, doc: Option<DocumentId>| refuse(r.code.label(), Refusal::rule(r), doc);
    if let Err(e) = hub.verify_agency(&signed.0, STATEMENT_CONTEXT, agency) {
        return rule(signer_reason(e), None);
    }
    let stmt = match signed.statement() {
        Ok(s) => s,
        Err(e) => {
            let r = Reason::new(ReasonCode::Other, format!("statement does not decode: {e}"));
            return rule(r, None);
        }
    };
    let doc = stmt.doc_id;
    if &stmt.from != agency {
        let r = Reason::new(
            ReasonCode::SignerNotForAgency,
            format!(
                "statement is made by {} but this connection is {agency}",
                stmt.from
            ),
        );
        return rule(r, Some(doc));
    }
    match &stmt.kind {
        StatementKind::PaperCount {
            month,
            sent,
            received,
        } => {
            // A month as `YYYY-MM`, no document, no addressee.
            if let Err(r) = stmt.validate() {
                return rule(r, None);
            }
            return match crate::server::store_paper(hub, agency, month, *sent, *received, &signed)
                .await
            {
                Ok(()) => Frame::Ack { doc_id: doc },
                Err(m) => rule(Reason::new(ReasonCode::Other, m), None),
            };
        }
        k if k.is_automatic() => {
            let r = Reason::new(
                ReasonCode::IllegalTransition,
                format!(
                    "a {} is not said on its own: receipts answer deliveries and the hub makes \
                     its acceptances and notices",
                    k.label()
                ),
            );
            return rule(r, Some(doc));
        }
        _ => {}
    }
    let kind = stmt.kind.label();
    let span = info_span!("statement", doc = %doc, agency = %agency, kind);
    match hub
        .store
        .accept_statement(signed, stmt, crate::hub::now_ms())
        .instrument(span.clone())
        .await
    {
        Ok(StatementOutcome::Accepted { seq, wake }) => {
            span.in_scope(|| info!(seq, "statement accepted"));
            for a in &wake {
                hub.wake(a);
            }
            Frame::Ack { doc_id: doc }
        }
        Ok(StatementOutcome::Duplicate) => {
            span.in_scope(|| debug!("statement resubmitted; already stored"));
            Frame::Ack { doc_id: doc }
        }
        Ok(StatementOutcome::Refused(r)) => refuse(r.label(), r.refusal(), Some(doc)),
        Err(e) => {
            let (code, message, metric) = hub.store_refusal(&e);
            refuse(metric, Refusal { code, message }, Some(doc))
        }
    }
}

/// The frame that delivers `rec` to `agency`: `DeliverAdded` with the update when an update
/// added the agency, else `Deliver`.
pub(crate) async fn delivery_frame(hub: &Hub, agency: &AgencyId, rec: &DocRecord) -> Result<Frame> {
    let doc = rec.envelope.envelope()?.id;
    Ok(match hub.store.added_by(&doc, agency).await? {
        Some(update) => Frame::DeliverAdded {
            envelope: rec.envelope.clone(),
            update,
        },
        None => Frame::Deliver {
            envelope: rec.envelope.clone(),
        },
    })
}

/// One scan of `agency`'s statement relay queue: starts a relay for each statement ready.
/// `current`: the connection speaks this version; a `poros/1` one is sent only the hub's
/// notices, signed again in that version's form. Returns how many were started, or `None`
/// when the connection's work is over.
pub(crate) async fn relay_scan(
    hub: &Arc<Hub>,
    agency: &AgencyId,
    conn: &quinn::Connection,
    current: bool,
    permits: &Arc<Semaphore>,
    in_flight: &InFlight<DocumentId>,
    wake: &Arc<Notify>,
) -> Option<usize> {
    let skip = in_flight.snapshot();
    let ready = if current {
        hub.store.statement_relays_for(agency, SCAN, &skip).await
    } else {
        hub.store
            .hub_statement_relays_for(agency, SCAN, &skip)
            .await
    };
    let ready = match ready {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "reading the statement relay queue failed");
            return Some(0);
        }
    };
    let mut started = 0;
    for relay in ready {
        let permit = permits.clone().acquire_owned().await.ok()?;
        started += 1;
        let doc = relay.doc;
        let (hub, agency, conn) = (hub.clone(), agency.clone(), conn.clone());
        let work = async move { relay_one(&hub, &agency, &conn, current, relay).await };
        in_flight.spawn(doc, doc, "statement relay", permit, wake, work);
    }
    Some(started)
}

/// Most statement relays one scan takes.
const SCAN: usize = 256;

async fn relay_one(
    hub: &Arc<Hub>,
    addressee: &AgencyId,
    conn: &quinn::Connection,
    current: bool,
    relay: StatementRelay,
) -> Result<()> {
    let StatementRelay { seq, doc, signed } = relay;
    let frame = if current {
        Frame::Statement { statement: signed }
    } else {
        let stmt = signed.statement()?;
        let notice = HubNotice::of_statement(&stmt)
            .with_context(|| format!("statement {seq} is not a hub notice"))?;
        Frame::Notice {
            notice: hub.sign_notice(&notice)?,
        }
    };
    let refused = match poros_transport::request(conn, &frame).await? {
        Frame::Ack { doc_id } if doc_id == doc => false,
        Frame::Refused(r) if !r.code.is_retryable() => {
            // The addressee's agent checked and refused it; retrying cannot change that.
            warn!(doc = %doc, seq, refusal = %r, "addressee refused a relayed statement; dropping it");
            true
        }
        Frame::Refused(r) => anyhow::bail!("addressee cannot store the statement now: {r}"),
        _ => anyhow::bail!("addressee answered a statement with an unexpected frame"),
    };
    hub.store
        .statement_relay_done(addressee.clone(), seq, refused)
        .await?;
    debug!(doc = %doc, seq, "statement relayed");
    Ok(())
}
