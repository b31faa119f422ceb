//! The outbox: signing a new document and storing it with its send queue, submitting the
//! queue to the hub (checking each hub-signed acceptance: the `Accepted` statement of
//! `poros/3`, or the acceptance of `poros/1`), and the monthly paper count.

use super::{now_ms, Agent, SendError};
use crate::state::{BodyAt, OutRecord};
use anyhow::{Context, Result};
use poros_certs::Signer;
use poros_protocol::envelope::ENVELOPE_CONTEXT;
use poros_protocol::receipt::ACCEPTANCE_CONTEXT;
use poros_protocol::{
    AgencyId, DocumentId, Envelope, EnvelopeExt, Frame, Metadata, Party, Reason, ReasonCode,
    SignedEnvelope, SignedStatement, Statement, StatementKind, STATEMENT_CONTEXT,
};
use poros_store::ReceivedBody;
use poros_transport::{send_blob, write_body_read_answer, write_frame};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

/// The `PaperCount` statement of `me` for `month`: about no document ([`DocumentId::NIL`]),
/// said to the hub alone, naming no staff member.
pub(crate) fn paper_count(
    me: &AgencyId,
    month: &str,
    sent: u64,
    received: u64,
    now: u64,
) -> Result<Statement, Reason> {
    let stmt = Statement {
        doc_id: DocumentId::NIL,
        from: Party::Agency(me.clone()),
        to: Vec::new(),
        kind: StatementKind::PaperCount {
            month: month.to_string(),
            sent,
            received,
        },
        staff: Default::default(),
        note: None,
        time_ms: now,
    };
    stmt.validate()?;
    Ok(stmt)
}

/// Whether an `Accepted` statement is the hub's acceptance of `rec` as this agency sent it:
/// made by the hub, for this document, to this agency only, naming the envelope's recipients
/// and the body as it was signed.
pub(crate) fn check_acceptance(
    stmt: &Statement,
    me: &AgencyId,
    rec: &OutRecord,
) -> Result<(), Reason> {
    let wrong = |what: &str| {
        Err(Reason::new(
            ReasonCode::Other,
            format!("the hub's acceptance of {} {what}", stmt.doc_id),
        ))
    };
    let env = rec
        .envelope
        .envelope()
        .map_err(|e| Reason::new(ReasonCode::Other, format!("own envelope: {e}")))?;
    let StatementKind::Accepted {
        recipients,
        body_sha256,
        body_len,
    } = &stmt.kind
    else {
        return wrong(&format!("is a {} statement", stmt.kind.label()));
    };
    stmt.validate()?;
    if stmt.from != Party::Hub {
        return wrong(&format!("is made by {}, not the hub", stmt.from));
    }
    if stmt.doc_id != env.id {
        return wrong(&format!("is for another document than {}", env.id));
    }
    if stmt.to != [me.clone()] {
        return wrong(&format!("is not addressed to {me} alone"));
    }
    if *body_sha256 != rec.body_sha256 || *body_len != rec.body_len {
        return wrong("names another body");
    }
    let (mut named, mut listed) = (recipients.clone(), env.recipients.clone());
    named.sort();
    listed.sort();
    if named != listed {
        return wrong("names other recipients than the envelope");
    }
    Ok(())
}

impl Agent {
    /// Sign a monthly paper-only count as a `PaperCount` statement (about no document, said
    /// to the hub alone) and deliver it to the hub, which counts it in the electronic-exchange
    /// rate. Needs the hub connection.
    pub async fn report_paper(&self, month: &str, sent: u64, received: u64) -> Result<()> {
        let stmt = paper_count(self.agency(), month, sent, received, now_ms())
            .map_err(|r| anyhow::anyhow!("{}", r.text))?;
        let (key, cert) = self.signing();
        let signed = SignedStatement::sign(&stmt, &key, &cert)?;
        let conn =
            self.conn.borrow().clone().context(
                "not connected to the hub; the report is sent when the agent is connected",
            )?;
        match poros_transport::request(&conn, &Frame::Statement { statement: signed }).await? {
            Frame::Ack { .. } => {
                info!(agency = %self.cfg.agency, month, sent, received, "paper count accepted by hub");
                Ok(())
            }
            Frame::Refused(r) => anyhow::bail!("hub refused the report: {}", r.message),
            _ => anyhow::bail!("unexpected answer to a paper report"),
        }
    }

    /// Sign and durably store a new outgoing document whose body was already received into
    /// `body` (inline bytes or a committed file); returns its ID.
    pub async fn create_document(
        &self,
        recipients: Vec<AgencyId>,
        meta: Metadata,
        body: ReceivedBody,
    ) -> Result<DocumentId, SendError> {
        self.create_document_with(recipients, meta, EnvelopeExt::default(), body)
            .await
    }

    /// [`Agent::create_document`] with the envelope's second part: the body's format and the
    /// metadata an edXML header carries beyond [`Metadata`].
    pub async fn create_document_with(
        &self,
        recipients: Vec<AgencyId>,
        meta: Metadata,
        ext: EnvelopeExt,
        body: ReceivedBody,
    ) -> Result<DocumentId, SendError> {
        let (digest, len, body_at) = (body.digest(), body.len(), body.at());
        // The guard keeps the orphan sweep off a body file until the outbox record is stored.
        let (inline, _guard) = body.into_parts();
        let mut rand = [0u8; 10];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut rand)
            .map_err(|_| SendError::Invalid("system random generator failed".into()))?;
        let now = now_ms();
        let env = Envelope {
            id: DocumentId::new_v7(now, rand),
            sender: self.cfg.agency.clone(),
            recipients,
            meta,
            created_ms: now,
            body_len: len,
            body_sha256: digest,
            ext,
        };
        env.validate()
            .map_err(|e| SendError::Invalid(e.to_string()))?;
        let c = self.creds();
        let signed = SignedEnvelope::sign(&env, &c.sign_key, &c.sign_cert)
            .map_err(|e| SendError::Invalid(format!("signing failed: {e}")))?;
        let rec = OutRecord {
            envelope: signed,
            body_at,
            body_sha256: digest,
            body_len: len,
            acceptance: None,
            refused: None,
            accepted: None,
        };
        self.store.put_outgoing(env.id, rec, inline).await?;
        info!(doc = %env.id, agency = %self.cfg.agency, recipients = env.recipients.len(), bytes = len, "document signed and stored in outbox");
        self.submit_wake.notify_one();
        Ok(env.id)
    }

    /// Verify and store the hub's `Accepted` statement for a document of the outbox: signed
    /// by the hub, and saying what was submitted ([`check_acceptance`]). A refusal stores
    /// nothing (the document stays queued).
    pub(crate) async fn record_acceptance(
        &self,
        rec: &OutRecord,
        signed: SignedStatement,
    ) -> Result<Result<(), Reason>> {
        let now = now_ms();
        match self.trust_verify(&signed.0, STATEMENT_CONTEXT, now / 1000) {
            Ok(Signer::Hub) => {}
            Ok(Signer::Agency(a)) => {
                return Ok(Err(Reason::new(
                    ReasonCode::SignerNotForAgency,
                    format!("an acceptance must be signed by the hub, not by {a}"),
                )))
            }
            Err(e) => {
                return Ok(Err(Reason::new(
                    e.reason_code(),
                    format!("acceptance signature: {e}"),
                )))
            }
        }
        let stmt = match signed.statement() {
            Ok(s) => s,
            Err(e) => {
                return Ok(Err(Reason::new(
                    ReasonCode::Other,
                    format!("acceptance does not decode: {e}"),
                )))
            }
        };
        if let Err(r) = check_acceptance(&stmt, self.agency(), rec) {
            return Ok(Err(r));
        }
        Ok(self.store.accept_submission(stmt.doc_id, signed).await?)
    }

    pub(super) async fn submitter(self: Arc<Self>) {
        let permits = Arc::new(Semaphore::new(self.cfg.submit_in_flight as usize));
        let in_flight: Arc<Mutex<HashSet<DocumentId>>> = Arc::default();
        let mut conn_rx = self.conn.subscribe();
        loop {
            let Some(conn) = super::connected(&mut conn_rx).await else {
                return;
            };
            // Enabled before the queue is read: a document queued meanwhile wakes us again.
            let notified = self.submit_wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let skip = in_flight.lock().map(|s| s.clone()).unwrap_or_default();
            let queue = self.store.submission_queue(256, &skip).unwrap_or_else(|e| {
                warn!(error = %e, "reading the submission queue failed");
                Vec::new()
            });
            let started = queue.len();
            for id in queue {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                if let Ok(mut s) = in_flight.lock() {
                    s.insert(id);
                }
                let (me, conn, inf) = (self.clone(), conn.clone(), in_flight.clone());
                tokio::spawn(async move {
                    if let Err(e) = me.submit_one(&conn, id).await {
                        warn!(doc = %id, error = %e, "submission attempt failed; will retry");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    if let Ok(mut s) = inf.lock() {
                        s.remove(&id);
                    }
                    drop(permit);
                    me.submit_wake.notify_one();
                });
            }
            if started == 0 {
                tokio::select! {
                    _ = notified => {}
                    _ = conn_rx.changed() => {}
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
        }
    }

    async fn submit_one(&self, conn: &quinn::Connection, id: DocumentId) -> Result<()> {
        // The record and an inline body in one read.
        let (mut rec, mut inline) = self
            .store
            .outgoing_with_body(&id)?
            .with_context(|| format!("queued document {id} has no record"))?;
        let creds = self.creds();
        // A document submitted again after a hub restore (`Resync`) goes as it was accepted.
        if !rec.is_accepted() && rec.envelope.0.signer_cert != creds.sign_cert {
            // Signed before a renewal: the hub refuses the superseded certificate once the new
            // one is in use, so the same envelope is signed again with the current key (the hub
            // recognises a resubmission by its content, not its signature).
            let resigned = SignedEnvelope::from_blob(poros_protocol::SignedBlob::sign(
                ENVELOPE_CONTEXT,
                rec.envelope.0.payload.clone(),
                &creds.sign_key,
                &creds.sign_cert,
            )?);
            rec = self
                .store
                .resign_outgoing(id, resigned)
                .await?
                .with_context(|| format!("queued document {id} has no record"))?;
            debug!(doc = %id, "envelope signed again with the renewed certificate");
        }
        let (mut send, mut recv) = conn.open_bi().await?;
        write_frame(
            &mut send,
            &Frame::Submit {
                envelope: rec.envelope.clone(),
            },
        )
        .await?;
        let body_write = async {
            match rec.body_at {
                BodyAt::Inline => {
                    let b = inline
                        .take()
                        .with_context(|| format!("inline body of {id} missing"))?;
                    send.write_all(&b).await?;
                }
                BodyAt::File => {
                    let mut f = self.blobs.open_read(&rec.body_sha256).await?;
                    send_blob(&mut send, &mut f, rec.body_len).await?;
                }
                BodyAt::Gone => anyhow::bail!("outgoing document {id} has no body"),
            }
            let _ = send.finish();
            Ok(())
        };
        // The hub answers a duplicate or a refusal without reading the whole body.
        let (w, reply) = write_body_read_answer(&mut recv, body_write).await;
        let reply = match (reply, w) {
            (Ok(f), _) => f,
            (Err(e), Err(we)) => return Err(we.context(e.to_string())),
            (Err(e), Ok(())) => return Err(e.into()),
        };
        match reply {
            Frame::Accepted { acceptance } => {
                match self.trust_verify(&acceptance.0, ACCEPTANCE_CONTEXT, now_ms() / 1000) {
                    Ok(Signer::Hub) => {}
                    Ok(_) => anyhow::bail!("acceptance for {id} is not signed by the hub"),
                    Err(e) => anyhow::bail!("acceptance for {id}: {e}"),
                }
                let a = acceptance.acceptance()?;
                if a.doc_id != id || a.body_sha256 != rec.body_sha256 || &a.sender != self.agency()
                {
                    anyhow::bail!("hub acceptance does not match document {id}");
                }
                self.store
                    .submission_done(id, Some(acceptance), None)
                    .await?;
                self.reasons.submission_done(id);
                // A replace request waits for its new document to be accepted.
                self.statement_wake.notify_one();
                info!(doc = %id, agency = %self.cfg.agency, "accepted by hub");
            }
            Frame::Statement { statement } => {
                if let Err(r) = self.record_acceptance(&rec, statement).await? {
                    anyhow::bail!("hub acceptance of {id} not taken: {r}");
                }
                self.reasons.submission_done(id);
                self.statement_wake.notify_one();
                info!(doc = %id, agency = %self.cfg.agency, "accepted by hub");
            }
            Frame::Refused(r) if r.code.is_retryable() => {
                // Still queued; the status shows why until the hub accepts it.
                self.reasons.submission_refused(id, r.message.clone());
                anyhow::bail!("hub temporarily unavailable: {}", r.message);
            }
            Frame::Refused(r) => {
                warn!(doc = %id, agency = %self.cfg.agency, refusal = %r, "refused by hub");
                self.store
                    .submission_done(id, None, Some(r.to_string()))
                    .await?;
                self.reasons.submission_done(id);
                self.statement_wake.notify_one();
            }
            _ => anyhow::bail!("hub answered a submission with an unexpected frame"),
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::state::statements::tests::{a, R1, R2, S};
    use poros_protocol::Staff;

    use crate::state::statements::tests::out_record as rec;

    pub(crate) fn accepted(id: DocumentId, recipients: &[&str]) -> Statement {
        Statement {
            doc_id: id,
            from: Party::Hub,
            to: vec![a(S)],
            kind: StatementKind::Accepted {
                recipients: recipients.iter().map(|r| a(r)).collect(),
                body_sha256: poros_protocol::sha256(b"x"),
                body_len: 1,
            },
            staff: Staff::default(),
            note: None,
            time_ms: 9,
        }
    }

    #[test]
    fn an_acceptance_must_say_what_was_submitted() {
        let id = DocumentId::new_v7(1, [1; 10]);
        let r = rec(id);
        check_acceptance(&accepted(id, &[R2, R1]), &a(S), &r).unwrap();
        let other = DocumentId::new_v7(2, [2; 10]);
        let mut s = accepted(other, &[R1, R2]);
        assert!(check_acceptance(&s, &a(S), &r).is_err());
        s = accepted(id, &[R1]);
        assert!(check_acceptance(&s, &a(S), &r).is_err());
        s = accepted(id, &[R1, R2]);
        s.kind = StatementKind::Accepted {
            recipients: vec![a(R1), a(R2)],
            body_sha256: [0; 32],
            body_len: 1,
        };
        assert!(check_acceptance(&s, &a(S), &r).is_err());
        s = accepted(id, &[R1, R2]);
        s.from = Party::Agency(a(R1));
        assert!(check_acceptance(&s, &a(S), &r).is_err());
        s = accepted(id, &[R1, R2]);
        s.to = vec![a(R1)];
        assert!(check_acceptance(&s, &a(S), &r).is_err());
    }

    #[test]
    fn a_paper_count_is_about_a_month_and_said_to_the_hub() {
        let s = paper_count(&a(S), "2025-03", 4, 7, 11).unwrap();
        assert!(s.doc_id.is_nil() && s.to.is_empty());
        assert_eq!(s.from, Party::Agency(a(S)));
        assert!(matches!(
            s.kind,
            StatementKind::PaperCount { ref month, sent: 4, received: 7 } if month == "2025-03"
        ));
        let e = paper_count(&a(S), "2025-13", 0, 0, 11).unwrap_err();
        assert!(e.text.contains("YYYY-MM"), "{e}");
    }
}
