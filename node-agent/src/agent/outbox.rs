//! The outbox: signing a new document and storing it with its send queue, submitting the
//! queue to the hub (checking each hub-signed acceptance), and the monthly paper report.

use super::{now_ms, Agent, SendError};
use crate::state::{BodyAt, OutRecord};
use anyhow::{Context, Result};
use poros_certs::Signer;
use poros_protocol::envelope::ENVELOPE_CONTEXT;
use poros_protocol::receipt::ACCEPTANCE_CONTEXT;
use poros_protocol::{AgencyId, DocumentId, Envelope, Frame, Metadata, SignedEnvelope};
use poros_store::ReceivedBody;
use poros_transport::{read_frame, send_body, write_frame};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

impl Agent {
    /// Sign a monthly paper-only count and deliver it to the hub, which counts it in the
    /// electronic-exchange rate. Needs the hub connection.
    pub async fn report_paper(&self, month: &str, sent: u64, received: u64) -> Result<()> {
        if !poros_protocol::PaperReport::month_is_valid(month) {
            anyhow::bail!("month {month:?} is not YYYY-MM");
        }
        let report = poros_protocol::PaperReport {
            agency: self.cfg.agency.clone(),
            month: month.to_string(),
            sent,
            received,
            time_ms: now_ms(),
        };
        let c = self.creds();
        let signed = poros_protocol::SignedPaperReport::sign(&report, &c.sign_key, &c.sign_cert)?;
        let conn =
            self.conn.borrow().clone().context(
                "not connected to the hub; the report is sent when the agent is connected",
            )?;
        match poros_transport::request(&conn, &Frame::PaperReport { report: signed }).await? {
            Frame::Ack { .. } => {
                info!(agency = %self.cfg.agency, month, sent, received, "paper report accepted by hub");
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
            recipients: recipients.clone(),
            meta,
            created_ms: now,
            body_len: len,
            body_sha256: digest,
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
        self.store
            .put_outgoing(env.id, rec, recipients, inline)
            .await?;
        info!(doc = %env.id, agency = %self.cfg.agency, recipients = env.recipients.len(), bytes = len, "document signed and stored in outbox");
        self.submit_wake.notify_one();
        Ok(env.id)
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
        let mut rec = self
            .store
            .outgoing(&id)?
            .with_context(|| format!("queued document {id} has no record"))?;
        let creds = self.creds();
        if rec.envelope.0.signer_cert != creds.sign_cert {
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
                    let b = self
                        .store
                        .inline_body(&rec.body_sha256)?
                        .with_context(|| format!("inline body of {id} missing"))?;
                    send.write_all(&b).await?;
                }
                BodyAt::File => {
                    let mut f = self.blobs.open_read(&rec.body_sha256).await?;
                    send_body(&mut send, &mut f, rec.body_len).await?;
                }
                BodyAt::Gone => anyhow::bail!("outgoing document {id} has no body"),
            }
            let _ = send.finish();
            Ok(())
        };
        // The hub may answer (and stop reading) before the whole body is sent, e.g. for a
        // duplicate or a refusal; so read the answer concurrently with writing the body.
        let (w, reply) = tokio::join!(body_write, read_frame(&mut recv));
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
