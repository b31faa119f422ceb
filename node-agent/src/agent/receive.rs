//! Receiving: a delivery is verified with the shared admission checks and stored in the inbox
//! or in quarantine, answered with this agency's signed `Receipt` statement (delivered or
//! rejected); relayed receipts and hub notices of `poros/1` are verified and stored against
//! the outbox; a body the hub lost is uploaded again from the outbox.

use super::{now_ms, Agent};
use crate::state::statements::Check;
use crate::state::{AnswerStored, BodyAt, InRecord, OutRecord, OwnReceipt, RecipientStatus};
use anyhow::{Context, Result};
use poros_certs::Signer;
use poros_protocol::admission;
use poros_protocol::envelope::ENVELOPE_CONTEXT;
use poros_protocol::receipt::{NOTICE_CONTEXT, RECEIPT_CONTEXT};
use poros_protocol::{
    AgencyId, DocumentId, Envelope, Frame, NoticeKind, Outcome, Party, Reason, ReasonCode, Receipt,
    Refusal, RefusalCode, SignedEnvelope, SignedReceipt, SignedStatement, Statement, StatementKind,
};
use poros_store::{BodySink, Commit};
use poros_transport::{recv_body, send_body_verified, write_frame, RecvBodyError};
use tracing::{debug, info, warn};

/// How a recipient's status is made from the statement that gives it.
type StatusOf = fn(SignedStatement) -> RecipientStatus;

/// Whether a relayed `Receipt` or `Notice` statement (its signer already checked as its
/// maker) is an answer about the delivery of `out`, a document this agency sent: for this
/// agency alone, about one of its recipients, and a receipt signed over the body as sent (the
/// checks of a relayed receipt of `poros/1`). Gives the recipient and the status it ends in
/// (none for a delay, which ends nothing).
pub(crate) fn delivery_answer(
    stmt: &Statement,
    me: &AgencyId,
    out: &OutRecord,
) -> Result<(AgencyId, Option<StatusOf>), Reason> {
    stmt.validate()?;
    if stmt.to != [me.clone()] {
        return Err(Reason::new(
            ReasonCode::NotAddressed,
            format!(
                "an answer about {} is for its sender {me} alone",
                stmt.doc_id
            ),
        ));
    }
    match &stmt.kind {
        StatementKind::Receipt { outcome, .. } => {
            let Party::Agency(recipient) = &stmt.from else {
                return Err(Reason::new(
                    ReasonCode::SignerNotForAgency,
                    "a receipt is made by a recipient, not the hub",
                ));
            };
            admission::check_receipt_statement(stmt, recipient, &stmt.doc_id, &out.body_sha256)?;
            let status: StatusOf = match outcome {
                Outcome::Delivered => RecipientStatus::DeliveredStatement,
                _ => RecipientStatus::RejectedStatement,
            };
            Ok((recipient.clone(), Some(status)))
        }
        StatementKind::Notice { recipient, notice } => {
            if stmt.from != Party::Hub {
                return Err(Reason::new(
                    ReasonCode::SignerNotForAgency,
                    "a delivery notice is made by the hub",
                ));
            }
            let status: Option<StatusOf> = match notice {
                NoticeKind::Expired => Some(RecipientStatus::ExpiredStatement),
                NoticeKind::BodyLost { .. } => Some(RecipientStatus::LostStatement),
                NoticeKind::Delayed { .. } => None,
            };
            Ok((recipient.clone(), status))
        }
        other => Err(Reason::new(
            ReasonCode::Other,
            format!("a {} is not an answer about a delivery", other.label()),
        )),
    }
}

impl Agent {
    /// Send the hub a body it lost, from the outbox: the original signed envelope, then the
    /// body, both checked against that envelope first. Refused with `NotFound` when the body
    /// is no longer held and `BodyMismatch` when the copy here is damaged too.
    pub(super) async fn reupload(
        &self,
        doc: DocumentId,
        send: &mut quinn::SendStream,
    ) -> Result<()> {
        let refuse = |code, message: String| Frame::Refused(Refusal { code, message });
        let rec = self.store.outgoing(&doc)?;
        let answer = match &rec {
            None => refuse(
                RefusalCode::NotFound,
                format!("document {doc} is not in the outbox of {}", self.cfg.agency),
            ),
            Some(rec) => match rec.body_at {
                BodyAt::Inline => match self.store.inline_body(&rec.body_sha256)? {
                    None => refuse(
                        RefusalCode::NotFound,
                        format!("the body of {doc} is no longer held"),
                    ),
                    Some(b) if poros_protocol::sha256(&b) != rec.body_sha256 => refuse(
                        RefusalCode::BodyMismatch,
                        format!("the copy of the body of {doc} here is damaged too"),
                    ),
                    Some(_) => Frame::Submit {
                        envelope: rec.envelope.clone(),
                    },
                },
                BodyAt::File => {
                    let (blobs, digest) = (self.blobs.clone(), rec.body_sha256);
                    let (check, _) =
                        tokio::task::spawn_blocking(move || blobs.verify(&digest)).await??;
                    match check {
                        poros_store::BlobCheck::Intact => Frame::Submit {
                            envelope: rec.envelope.clone(),
                        },
                        poros_store::BlobCheck::Missing => refuse(
                            RefusalCode::NotFound,
                            format!("the body of {doc} is no longer held"),
                        ),
                        _ => refuse(
                            RefusalCode::BodyMismatch,
                            format!("the copy of the body of {doc} here is damaged too"),
                        ),
                    }
                }
                BodyAt::Gone => refuse(
                    RefusalCode::NotFound,
                    format!("the body of {doc} is no longer held"),
                ),
            },
        };
        write_frame(send, &answer).await?;
        if let (Frame::Submit { .. }, Some(rec)) = (&answer, &rec) {
            match rec.body_at {
                BodyAt::Inline => {
                    let b = self
                        .store
                        .inline_body(&rec.body_sha256)?
                        .with_context(|| format!("inline body of {doc} missing"))?;
                    send.write_all(&b).await?;
                }
                _ => {
                    let mut f = self.blobs.open_read(&rec.body_sha256).await?;
                    send_body_verified(send, &mut f, rec.body_len, &rec.body_sha256).await?;
                }
            }
            info!(doc = %doc, agency = %self.cfg.agency, bytes = rec.body_len, "body uploaded again at the hub's request");
        } else {
            warn!(doc = %doc, agency = %self.cfg.agency, "hub asked for a body this agency cannot supply");
        }
        send.finish()?;
        Ok(())
    }

    /// The checks a delivery passes before its body is read: the sender's signature as of
    /// the envelope's time, the shared envelope admission, and that it is for this agency
    /// (listed, or added by `added_by`, the sender's verified update).
    fn admit(
        &self,
        signed: &SignedEnvelope,
        env: &Envelope,
        added_by: Option<&SignedStatement>,
        now: u64,
    ) -> Result<(), Reason> {
        let signer = match self.trust_verify_signed_at(
            &signed.0,
            ENVELOPE_CONTEXT,
            now / 1000,
            env.created_ms / 1000,
        ) {
            Ok(Signer::Agency(a)) => a,
            Ok(Signer::Hub) => {
                return Err(Reason::new(
                    ReasonCode::SignerNotForAgency,
                    "envelope is signed by the hub, not by an agency",
                ))
            }
            Err(e) => {
                return Err(Reason::new(
                    e.reason_code(),
                    format!("sender signature: {e}"),
                ))
            }
        };
        admission::admit_envelope(env, &signer, self.cfg.max_body_bytes)?;
        let added = !env.recipients.contains(self.agency())
            && added_by.is_some_and(|u| crate::statements::adds_this_agency(self, env, u, now));
        admission::addressed_to(env, self.agency(), added)
    }

    /// Verify and durably store a delivery; returns the signed receipt or rejection to send
    /// (a `Receipt` statement, signed once and stored with the document).
    /// `added_by` is the sender's update that added this agency, for a document whose
    /// envelope does not list it.
    pub(super) async fn receive(
        &self,
        signed: SignedEnvelope,
        added_by: Option<SignedStatement>,
        recv: &mut quinn::RecvStream,
    ) -> Result<Frame> {
        let env = match signed.envelope() {
            Ok(e) => e,
            Err(e) => {
                return Ok(Frame::Refused(Refusal {
                    code: RefusalCode::InvalidEnvelope,
                    message: format!("envelope does not decode: {e}"),
                }))
            }
        };
        if let Some(known) = self.store.received(&env.id)? {
            debug!(doc = %env.id, "redelivery answered with the original receipt");
            return self.answer(env.id, known).await;
        }
        let now = now_ms();
        let mut reason = self.admit(&signed, &env, added_by.as_ref(), now).err();
        // Whatever else is wrong, a body over the limit is not read at all.
        let too_large = env.body_len > self.cfg.max_body_bytes;
        // Read the body unless it is too large to accept at all, and keep it as received: a
        // body that does not match is quarantined. A file body keeps the orphan sweep away
        // from the moment it is committed until its record is.
        let (digest, len, body_at, inline, _guard) = if too_large {
            (env.body_sha256, 0, BodyAt::Gone, None, None)
        } else {
            let sink = BodySink::for_len(&self.blobs, env.body_len).await?;
            // A store error stays a `StoreError`: `storage_refusal` answers a full disk by it.
            let body = recv_body(recv, env.body_len, sink, Commit::AsReceived)
                .await
                .map_err(|e| match e {
                    RecvBodyError::Wire(e) => anyhow::Error::from(e),
                    RecvBodyError::Store(e) => e.into(),
                })?;
            let (digest, len, at) = (body.digest(), body.len(), body.at());
            let (inline, guard) = body.into_parts();
            (digest, len, at, inline, guard)
        };
        if reason.is_none() {
            reason = admission::check_body(&env, &digest, len).err();
        }
        // The answer is signed once, as the statement sent over `poros/3`.
        let receipt = Receipt {
            doc_id: env.id,
            sender: env.sender.clone(),
            recipient: self.cfg.agency.clone(),
            body_sha256: digest,
            outcome: match &reason {
                None => Outcome::Delivered,
                Some(r) => Outcome::RejectedFor(r.clone()),
            },
            time_ms: now_ms(),
        }
        .as_statement();
        let rec = InRecord {
            envelope: signed,
            receipt: OwnReceipt::Statement(self.sign_statement(&receipt)?),
            received_ms: receipt.time_ms,
            body_at,
            body_sha256: digest,
            body_len: len,
            reason: reason.as_ref().map(|r| r.text.clone()),
        };
        // The update is kept with a document it admitted, as a statement received.
        let admitted_by_update = !env.recipients.contains(&self.cfg.agency);
        let update = added_by
            .filter(|_| reason.is_none() && admitted_by_update)
            .map(|u| (u, now));
        let stored = self
            .store
            .put_received_with(env.id, rec, inline, update)
            .await?;
        match &reason {
            None => {
                info!(doc = %env.id, sender = %env.sender, bytes = len, "received into inbox; receipt signed")
            }
            Some(r) => {
                warn!(doc = %env.id, sender = %env.sender, reason = %r, "delivery rejected and quarantined")
            }
        }
        self.answer(env.id, stored).await
    }

    /// The answer to a delivery of a document stored here: the `Receipt` statement stored
    /// with it. A record stored before receipts were statements gets one now, saying what its
    /// receipt of `poros/1` says, stored in the receipt's place before it is sent. Signed
    /// again (the same payload) if a renewal retired the certificate it was signed with: the
    /// hub refuses that one.
    async fn answer(&self, id: DocumentId, rec: InRecord) -> Result<Frame> {
        let statement = match rec.receipt {
            OwnReceipt::Statement(s) => s,
            legacy @ OwnReceipt::Legacy(_) => {
                let made = self.sign_statement(&legacy.statement()?)?;
                self.store.own_receipt_statement(id, made).await?
            }
        };
        let (key, cert) = self.signing();
        let statement = if statement.0.signer_cert == cert {
            statement
        } else {
            statement.resign(&key, &cert)?
        };
        Ok(Frame::Statement { statement })
    }

    fn sign_statement(&self, s: &Statement) -> Result<SignedStatement> {
        let (key, cert) = self.signing();
        Ok(SignedStatement::sign(s, &key, &cert)?)
    }

    /// Store a recipient's `Receipt` statement or the hub's `Notice` about a document sent
    /// here (its signature already verified as its maker's, addressed to this agency): the
    /// same checks as for a relayed receipt of `poros/1`, then the recipient's status and the
    /// statement are stored together; answered `Ack` once durable (also for one held already
    /// or for a recipient answered before, which keeps its first answer).
    pub(crate) async fn store_delivery_answer(
        &self,
        signed: SignedStatement,
        stmt: Statement,
        now: u64,
    ) -> Result<Frame> {
        let refuse = |r: Reason| {
            warn!(doc = %stmt.doc_id, reason = %r, kind = stmt.kind.label(), "relayed answer refused");
            Ok(Frame::Refused(Refusal::rule(r)))
        };
        let Some(out) = self.store.outgoing(&stmt.doc_id)? else {
            return refuse(Reason::new(
                ReasonCode::UnknownDocument,
                format!(
                    "{} is not a document sent by {}",
                    stmt.doc_id,
                    self.agency()
                ),
            ));
        };
        let (recipient, status) = match delivery_answer(&stmt, self.agency(), &out) {
            Ok(x) => x,
            Err(r) => return refuse(r),
        };
        let status = status.map(|f| f(signed.clone()));
        let check: Check = Box::new(|state, s, d| state.check(s, d));
        let stored = match self
            .store
            .put_delivery_answer(signed, recipient.clone(), status, now, check)
            .await?
        {
            Ok(x) => x,
            Err(r) => return refuse(r),
        };
        let doc = stmt.doc_id;
        match (&stmt.kind, stored) {
            (_, AnswerStored::AlreadyHeld) => {
                debug!(doc = %doc, "answer already held; acknowledged again")
            }
            (
                StatementKind::Notice {
                    notice: NoticeKind::Delayed { reason },
                    ..
                },
                _,
            ) => {
                // Advisory, and only while no answer is recorded.
                let pending = self
                    .store
                    .statuses(&doc)?
                    .into_iter()
                    .any(|(a, st)| a == recipient && st.is_pending());
                if pending {
                    self.reasons
                        .delayed(doc, recipient.clone(), reason.to_string());
                    warn!(doc = %doc, agency = %self.cfg.agency, recipient = %recipient, %reason, "delivery delayed; the hub keeps retrying");
                }
            }
            (_, AnswerStored::AnsweredBefore) => {
                debug!(doc = %doc, recipient = %recipient, kind = stmt.kind.label(), "recipient answered before; its first answer stands")
            }
            (
                StatementKind::Receipt {
                    outcome: Outcome::Delivered,
                    ..
                },
                AnswerStored::New,
            ) => {
                self.reasons.answered(doc, &recipient);
                info!(doc = %doc, agency = %self.cfg.agency, recipient = %recipient, "receipt stored")
            }
            (StatementKind::Receipt { outcome, .. }, AnswerStored::New) => {
                self.reasons.answered(doc, &recipient);
                let reason = outcome
                    .rejection()
                    .map(|r| r.to_string())
                    .unwrap_or_default();
                warn!(doc = %doc, agency = %self.cfg.agency, recipient = %recipient, %reason, "rejection stored")
            }
            (_, AnswerStored::New) => {
                self.reasons.answered(doc, &recipient);
                warn!(doc = %doc, agency = %self.cfg.agency, recipient = %recipient, notice = stmt.kind.label(), "delivery ended by the hub's notice");
            }
        }
        Ok(Frame::Ack { doc_id: doc })
    }

    pub(super) async fn store_relayed_receipt(&self, receipt: SignedReceipt) -> Result<Frame> {
        let refuse = |msg: String| {
            warn!(reason = %msg, "relayed receipt refused");
            Ok(Frame::Refused(Refusal {
                code: RefusalCode::BadSignature,
                message: msg,
            }))
        };
        // The claimed time only matters for a signer since retired by renewal, which the hub
        // refused to relay if it signed after the retirement.
        let claimed = receipt.receipt().map(|r| r.time_ms / 1000).unwrap_or(0);
        let signer = match self.trust_verify_signed_at(
            &receipt.0,
            RECEIPT_CONTEXT,
            now_ms() / 1000,
            claimed,
        ) {
            Ok(Signer::Agency(a)) => a,
            Ok(Signer::Hub) => {
                return refuse("receipt is signed by the hub, not the recipient".into())
            }
            Err(e) => return refuse(format!("receipt signature: {e}")),
        };
        let r = receipt.receipt()?;
        let Some(out) = self.store.outgoing(&r.doc_id)? else {
            return refuse(format!("receipt for unknown document {}", r.doc_id));
        };
        if let Err(reason) = admission::check_receipt(&r, &signer, &r.doc_id, &out.body_sha256) {
            return refuse(reason.text);
        }
        let status = match &r.outcome {
            Outcome::Delivered => RecipientStatus::Delivered(receipt),
            Outcome::Rejected { .. } | Outcome::RejectedFor(_) => {
                RecipientStatus::Rejected(receipt)
            }
        };
        self.reasons.answered(r.doc_id, &r.recipient);
        if !self
            .store
            .set_status(r.doc_id, r.recipient.clone(), status, now_ms())
            .await?
        {
            return refuse(format!(
                "{} is not a recipient of {}",
                r.recipient, r.doc_id
            ));
        }
        match &r.outcome {
            Outcome::Delivered => {
                info!(doc = %r.doc_id, agency = %self.cfg.agency, recipient = %r.recipient, "receipt stored")
            }
            outcome => {
                let reason = outcome
                    .rejection()
                    .map(|r| r.to_string())
                    .unwrap_or_default();
                warn!(doc = %r.doc_id, agency = %self.cfg.agency, recipient = %r.recipient, %reason, "rejection stored")
            }
        }
        Ok(Frame::Ack { doc_id: r.doc_id })
    }

    pub(super) async fn store_notice(&self, notice: poros_protocol::SignedNotice) -> Result<Frame> {
        let refuse = |msg: String| {
            Ok(Frame::Refused(Refusal {
                code: RefusalCode::BadSignature,
                message: msg,
            }))
        };
        match self.trust_verify(&notice.0, NOTICE_CONTEXT, now_ms() / 1000) {
            Ok(Signer::Hub) => {}
            Ok(_) => return refuse("notice is not signed by the hub".into()),
            Err(e) => return refuse(format!("notice signature: {e}")),
        }
        let n = notice.notice()?;
        if &n.sender != self.agency() {
            return refuse(format!(
                "notice concerns sender {}, not this agency",
                n.sender
            ));
        }
        match n.kind {
            NoticeKind::BodyLost { reason } => {
                self.store
                    .set_status(
                        n.doc_id,
                        n.recipient.clone(),
                        RecipientStatus::Lost(notice),
                        now_ms(),
                    )
                    .await?;
                warn!(doc = %n.doc_id, agency = %self.cfg.agency, recipient = %n.recipient, reason = reason.code(), "delivery ended: the hub lost the body");
            }
            NoticeKind::Expired => {
                self.store
                    .set_status(
                        n.doc_id,
                        n.recipient.clone(),
                        RecipientStatus::Expired(notice),
                        now_ms(),
                    )
                    .await?;
                self.reasons.answered(n.doc_id, &n.recipient);
                warn!(doc = %n.doc_id, agency = %self.cfg.agency, recipient = %n.recipient, "delivery expired at hub");
            }
            NoticeKind::Delayed { reason } => {
                // Advisory: shown beside a status that is still pending, never stored over
                // an answer (a late notice must not hide a receipt).
                let pending = self
                    .store
                    .statuses(&n.doc_id)?
                    .into_iter()
                    .any(|(a, st)| a == n.recipient && matches!(st, RecipientStatus::Pending));
                if pending {
                    self.reasons
                        .delayed(n.doc_id, n.recipient.clone(), reason.to_string());
                    warn!(doc = %n.doc_id, agency = %self.cfg.agency, recipient = %n.recipient, %reason, "delivery delayed; the hub keeps retrying");
                }
            }
        }
        Ok(Frame::Ack { doc_id: n.doc_id })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use poros_protocol::{AgencyId, Party, Staff};

    fn a(s: &str) -> AgencyId {
        AgencyId::parse(s).unwrap()
    }

    #[test]
    fn a_receipt_becomes_a_valid_receipt_statement_to_the_sender() {
        let mut r = Receipt {
            doc_id: DocumentId::new_v7(1, [1; 10]),
            sender: a("000.00.00.G01"),
            recipient: a("000.00.00.H02"),
            body_sha256: [9; 32],
            outcome: Outcome::Rejected {
                reason: "body SHA-256 does not match the envelope".into(),
            },
            time_ms: 42,
        };
        let s = crate::state::receipt_statement(&r);
        s.validate().unwrap();
        assert_eq!(s.from, Party::Agency(a("000.00.00.H02")));
        assert_eq!(s.to, vec![a("000.00.00.G01")]);
        assert_eq!((s.staff, s.note, s.time_ms), (Staff::default(), None, 42));
        let StatementKind::Receipt {
            body_sha256,
            outcome: Outcome::RejectedFor(why),
        } = s.kind
        else {
            panic!("not a rejection with a reason code")
        };
        assert_eq!(body_sha256, [9; 32]);
        assert_eq!(why.code, poros_protocol::ReasonCode::BodyHashMismatch);
        r.outcome = Outcome::Delivered;
        assert_eq!(crate::state::receipt_statement(&r), r.as_statement());
    }

    fn out() -> OutRecord {
        crate::state::statements::tests::out_record(DocumentId::new_v7(1, [1; 10]))
    }

    pub(crate) fn receipt_stmt(doc: DocumentId, by: &str, outcome: Outcome) -> Statement {
        use crate::state::statements::tests::S;
        Statement {
            doc_id: doc,
            from: Party::Agency(a(by)),
            to: vec![a(S)],
            kind: StatementKind::Receipt {
                body_sha256: poros_protocol::sha256(b"x"),
                outcome,
            },
            staff: Staff::default(),
            note: None,
            time_ms: 8,
        }
    }

    pub(crate) fn notice_stmt(doc: DocumentId, about: &str, notice: NoticeKind) -> Statement {
        use crate::state::statements::tests::S;
        Statement {
            doc_id: doc,
            from: Party::Hub,
            to: vec![a(S)],
            kind: StatementKind::Notice {
                recipient: a(about),
                notice,
            },
            staff: Staff::default(),
            note: None,
            time_ms: 8,
        }
    }

    #[test]
    fn relayed_answers_are_checked_like_receipts_of_poros_1() {
        use crate::state::statements::tests::{R2, S};
        let (doc, me, out) = (DocumentId::new_v7(1, [1; 10]), a(S), out());
        let ok = receipt_stmt(doc, R2, Outcome::Delivered);
        let (who, status) = delivery_answer(&ok, &me, &out).unwrap();
        assert_eq!(who, a(R2));
        let st = status.unwrap()(
            SignedStatement::sign(&ok, &poros_protocol::SigningKey::generate().unwrap(), b"c")
                .unwrap(),
        );
        assert_eq!(st.state(), "delivered");
        // Over another body.
        let mut bad = ok.clone();
        bad.kind = StatementKind::Receipt {
            body_sha256: [1; 32],
            outcome: Outcome::Delivered,
        };
        assert_eq!(
            delivery_answer(&bad, &me, &out).unwrap_err().code,
            ReasonCode::BodyHashMismatch
        );
        // A rejection names the body it received, whatever it was.
        bad.kind = StatementKind::Receipt {
            body_sha256: [1; 32],
            outcome: Outcome::RejectedFor(Reason::new(ReasonCode::BodyHashMismatch, "sha-256")),
        };
        let (_, status) = delivery_answer(&bad, &me, &out).unwrap();
        assert!(status.is_some());
        // Not for this agency.
        assert_eq!(
            delivery_answer(&ok, &a(R2), &out).unwrap_err().code,
            ReasonCode::NotAddressed
        );
        // Notices: a delay ends nothing; only the hub makes one.
        let delay = NoticeKind::Delayed {
            reason: poros_protocol::DelayReason::RecipientStorageFull,
        };
        let n = notice_stmt(doc, R2, delay);
        assert!(delivery_answer(&n, &me, &out).unwrap().1.is_none());
        let mut by_agency = notice_stmt(doc, R2, NoticeKind::Expired);
        assert!(delivery_answer(&by_agency, &me, &out).unwrap().1.is_some());
        by_agency.from = Party::Agency(a(R2));
        assert!(delivery_answer(&by_agency, &me, &out).is_err());
    }
}
