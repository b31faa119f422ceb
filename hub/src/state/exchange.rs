//! The exchange log: documents, pending deliveries (queue), answers and the relays that carry
//! them to senders; each step is one atomic commit.

use super::tables::{HubSet, HubTables};
use super::*;
use poros_protocol::{SignedStatement, Statement};
use poros_store::ReceivedBody;

impl HubStore {
    /// A stored document.
    pub fn doc(&self, id: &DocumentId) -> Result<Option<DocRecord>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(DOCS)?;
        let x = t.get(id.as_bytes().as_slice())?;
        x.map(|g| dec(g.value())).transpose()
    }

    /// Store an accepted document with one pending delivery per recipient, and the hub's
    /// signed acceptance (`rec.acceptance`, an `Accepted` statement) as the first statement of
    /// its history, atomically. A body file's reference guard is held until the document
    /// referencing it is durable.
    pub async fn accept(
        &self,
        rec: DocRecord,
        body: ReceivedBody,
    ) -> Result<AcceptOutcome, StoreError> {
        let (signed, stmt) = acceptance_of(&rec)?;
        let mut rec = rec;
        rec.body_at = body.at();
        let (inline, _guard) = body.into_parts();
        let stats = self.stats.clone();
        // Decoded and encoded here, not in the closure: the closure runs on the committer
        // thread every writer of the store waits on (and again if its batch is retried).
        let id = rec
            .envelope
            .envelope()
            .map_err(|e| StoreError::Other(e.to_string()))?
            .id;
        let bytes = enc(&rec)?;
        self.db
            .write_with::<HubSet, _, _>(move |t| {
                let key = id.as_bytes().as_slice();
                let docs = t.docs.open(t.txn)?;
                let existing = docs.get(key)?.map(|g| g.value().to_vec());
                if let Some(old) = existing {
                    return Ok(resubmitted(&dec(&old)?, &rec));
                }
                docs.insert(key, bytes.as_slice())?;
                if let Some(b) = &inline {
                    t.inline
                        .open(t.txn)?
                        .insert(rec.body_sha256.as_slice(), b.as_slice())?;
                }
                {
                    let refs = t.body_refs.open(t.txn)?;
                    let n = refs
                        .get(rec.body_sha256.as_slice())?
                        .map(|g| g.value())
                        .unwrap_or(0);
                    refs.insert(rec.body_sha256.as_slice(), n + 1)?;
                }
                let pending = enc(&DeliveryRecord {
                    state: DeliveryState::Pending,
                    answered_ms: None,
                })?;
                let del = t.deliveries.open(t.txn)?;
                let q = t.queue.open(t.txn)?;
                let ex = t.expiry.open(t.txn)?;
                for r in &rec.recipients {
                    del.insert((key, r.as_str()), pending.as_slice())?;
                    q.insert((r.as_str(), key), rec.accepted_ms)?;
                    ex.insert((rec.accepted_ms, key, r.as_str()), ())?;
                }
                // No rule state stored: until a statement changes it, it is folded from the
                // envelope and the delivery records (`statements::state_in`).
                // Answered on the submitting stream itself, so relayed to no one.
                statements::record_in(t, &signed, &stmt, rec.accepted_ms, &[], None)?;
                crate::stats::on_accept(&stats, &rec.sender, &rec.recipients, rec.accepted_ms);
                t.bump(&accept_counts(&rec))?;
                Ok(AcceptOutcome::Stored)
            })
            .await
    }

    /// Up to `limit` pending deliveries for `recipient`, oldest first, skipping `skip`.
    pub fn pending_for(
        &self,
        recipient: &AgencyId,
        limit: usize,
        skip: &std::collections::HashSet<DocumentId>,
    ) -> Result<Vec<Pending>, StoreError> {
        self.pending_scan(recipient, limit, skip, false)
    }

    /// The pending-delivery scan, optionally without deliveries an update added.
    pub(super) fn pending_scan(
        &self,
        recipient: &AgencyId,
        limit: usize,
        skip: &std::collections::HashSet<DocumentId>,
        without_added: bool,
    ) -> Result<Vec<Pending>, StoreError> {
        let r = self.db.read()?;
        let q = r.open_table(QUEUE)?;
        let added = without_added
            .then(|| super::statements::added_table(&r))
            .transpose()?;
        let lo: &[u8] = &[];
        let hi: &[u8] = &[0xff; 17];
        let mut out = Vec::new();
        for e in q.range((recipient.as_str(), lo)..(recipient.as_str(), hi))? {
            let (k, v) = e?;
            let (_, doc) = k.value();
            let doc = DocumentId::from_bytes(
                doc.try_into()
                    .map_err(|_| StoreError::Corrupt("queue key".into()))?,
            );
            if skip.contains(&doc) {
                continue;
            }
            if let Some(t) = &added {
                if t.get((k.value().1, recipient.as_str()))?.is_some() {
                    continue;
                }
            }
            out.push(Pending {
                doc,
                accepted_ms: v.value(),
            });
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Documents referencing a body.
    pub fn body_refs(&self, digest: &Digest) -> Result<u64, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(BODY_REFS)?;
        let v = t.get(digest.as_slice())?;
        Ok(v.map(|g| g.value()).unwrap_or(0))
    }

    /// An inline body.
    pub fn inline_body(&self, digest: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(INLINE)?;
        let x = t.get(digest.as_slice())?;
        Ok(x.map(|g| g.value().to_vec()))
    }

    /// Record an answer that ends a delivery (idempotent: a second answer is ignored) and queue
    /// it for relay to the sender: a statement through the statement path, a `poros/1` form
    /// through the legacy relays. A statement the rules refuse changes nothing.
    pub async fn record_answer(
        &self,
        doc: DocumentId,
        recipient: AgencyId,
        answer: Answer,
        now_ms: u64,
    ) -> Result<AnswerOutcome, StoreError> {
        let on_time = self.on_time_ms;
        let stats = self.stats.clone();
        self.db
            .write_with::<HubSet, _, _>(move |t| {
                answer_in(t, &stats, doc, &recipient, &answer, now_ms, on_time)
            })
            .await
    }

    /// Relays waiting for `sender`, up to `limit`, skipping keys in flight.
    pub fn relays_for(
        &self,
        sender: &AgencyId,
        limit: usize,
        skip: &std::collections::HashSet<(DocumentId, AgencyId)>,
    ) -> Result<Vec<(DocumentId, AgencyId, RelayItem)>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(RELAYS)?;
        let lo: &[u8] = &[];
        let hi: &[u8] = &[0xff; 17];
        let mut out = Vec::new();
        for e in t.range((sender.as_str(), lo, "")..(sender.as_str(), hi, ""))? {
            let (k, v) = e?;
            let (_, doc, rcpt) = k.value();
            let doc = DocumentId::from_bytes(
                doc.try_into()
                    .map_err(|_| StoreError::Corrupt("relay key".into()))?,
            );
            let rcpt = AgencyId::parse(rcpt).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if skip.contains(&(doc, rcpt.clone())) {
                continue;
            }
            out.push((doc, rcpt, dec(v.value())?));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// The sender acknowledged (stored) a relayed answer. Unhurried (it joins the next
    /// commit): until it is durable the relay stays in flight, and one lost to a crash is
    /// relayed again, which the sender answers as held already.
    pub async fn relay_done(
        &self,
        sender: AgencyId,
        doc: DocumentId,
        recipient: AgencyId,
    ) -> Result<(), StoreError> {
        self.db
            .write_unhurried_with::<HubSet, _, _>(move |t| {
                t.relays.open(t.txn)?.remove((
                    sender.as_str(),
                    doc.as_bytes().as_slice(),
                    recipient.as_str(),
                ))?;
                Ok(())
            })
            .await
    }

    /// All delivery records of a document.
    pub fn deliveries(
        &self,
        doc: &DocumentId,
    ) -> Result<Vec<(AgencyId, DeliveryRecord)>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(DELIVERIES)?;
        let key = doc.as_bytes().as_slice();
        let mut out = Vec::new();
        for e in t.range((key, "")..=(key, "~"))? {
            let (k, v) = e?;
            let (_, rcpt) = k.value();
            let a = AgencyId::parse(rcpt).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            out.push((a, dec(v.value())?));
        }
        Ok(out)
    }

    /// Pending deliveries held for `recipient`.
    pub fn pending_count(&self, recipient: &AgencyId) -> Result<u64, StoreError> {
        let r = self.db.read()?;
        let q = r.open_table(QUEUE)?;
        let lo: &[u8] = &[];
        let hi: &[u8] = &[0xff; 17];
        let mut n = 0;
        for e in q.range((recipient.as_str(), lo)..(recipient.as_str(), hi))? {
            e?;
            n += 1;
        }
        Ok(n)
    }

    /// Number of pending deliveries (queue depth).
    pub fn queue_depth(&self) -> Result<u64, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(QUEUE)?;
        Ok(t.len()?)
    }
}

/// The hub's signed acceptance of a document (the first statement of its history), decoded.
pub(super) fn acceptance_of(rec: &DocRecord) -> Result<(SignedStatement, Statement), StoreError> {
    let signed = SignedStatement::from_blob(rec.acceptance.clone());
    let stmt = signed
        .statement()
        .map_err(|e| StoreError::Other(format!("the hub's acceptance does not decode: {e}")))?;
    Ok((signed, stmt))
}

/// A document submitted again with the ID of `old`: the same signed payload is a duplicate,
/// anything else a conflict.
pub(super) fn resubmitted(old: &DocRecord, new: &DocRecord) -> AcceptOutcome {
    if old.envelope.0.payload == new.envelope.0.payload {
        AcceptOutcome::Duplicate {
            accepted_ms: old.accepted_ms,
        }
    } else {
        AcceptOutcome::Conflict
    }
}

/// The counters an accepted document adds to.
pub(super) fn accept_counts(rec: &DocRecord) -> [(&'static str, u64); 3] {
    [
        ("documents_accepted", 1),
        ("deliveries_queued", rec.recipients.len() as u64),
        ("body_bytes_accepted", rec.body_len),
    ]
}

/// An answer that ends a delivery.
#[derive(Clone, Debug)]
pub enum Answer {
    /// A verified statement: the recipient's receipt or rejection, or the hub's expiry or
    /// body-lost notice. The rules check it again here.
    Said(SignedStatement, Box<Statement>),
    /// The `poros/1` form (a receipt from such an agent); relayed as it is.
    Legacy(DeliveryState),
}

/// What [`HubStore::record_answer`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnswerOutcome {
    /// Stored; the answer is queued for the document's sender.
    Recorded {
        /// The sender to wake.
        sender: AgencyId,
    },
    /// The delivery had already ended (or is unknown): nothing changed.
    AlreadyAnswered,
    /// The statement does not end this delivery under the rules: nothing changed.
    Refused(poros_protocol::Reason),
}

/// How a statement ends a delivery, if it is one that does.
fn end_of(stmt: &Statement) -> Option<DeliveryEnd> {
    use poros_protocol::{NoticeKind, Outcome, StatementKind};
    match &stmt.kind {
        StatementKind::Receipt { outcome, .. } => Some(match outcome {
            Outcome::Delivered => DeliveryEnd::Delivered,
            other => DeliveryEnd::Rejected(other.rejection()?),
        }),
        StatementKind::Notice { notice, .. } => match notice {
            NoticeKind::Expired => Some(DeliveryEnd::Expired),
            NoticeKind::BodyLost { reason } => Some(DeliveryEnd::Lost(*reason)),
            NoticeKind::Delayed { .. } => None,
        },
        _ => None,
    }
}

pub(super) fn answer_in(
    t: &mut HubTables<'_>,
    stats: &crate::stats::StatsHook,
    doc: DocumentId,
    recipient: &AgencyId,
    answer: &Answer,
    now_ms: u64,
    on_time_ms: u64,
) -> Result<AnswerOutcome, StoreError> {
    let key = doc.as_bytes().as_slice();
    let cur: DeliveryRecord = match t.deliveries.open(t.txn)?.get((key, recipient.as_str()))? {
        Some(g) => dec(g.value())?,
        None => return Ok(AnswerOutcome::AlreadyAnswered),
    };
    if !cur.state.is_pending() {
        return Ok(AnswerOutcome::AlreadyAnswered);
    }
    let rec: DocRecord = match t.doc(key)? {
        Some(rec) => rec,
        None => {
            return Err(StoreError::Corrupt(format!(
                "delivery without document {doc}"
            )))
        }
    };
    let (state, end_how) = match answer {
        Answer::Legacy(state) => {
            let Some((relay, how)) = legacy_end(state) else {
                return Ok(AnswerOutcome::AlreadyAnswered);
            };
            if state.is_delivered() {
                statements::on_delivered(t, key, recipient)?;
            }
            t.relays.open(t.txn)?.insert(
                (rec.sender.as_str(), key, recipient.as_str()),
                enc(&relay)?.as_slice(),
            )?;
            (state.clone(), how)
        }
        Answer::Said(signed, stmt) => {
            let how = match said_end(doc, recipient, stmt) {
                Ok(how) => how,
                Err(r) => return Ok(AnswerOutcome::Refused(r)),
            };
            // The rules again, as for every statement: maker, addressee, order.
            let stored = statements::stored_state(t, &doc)?;
            let before = match &stored {
                Some(st) => st.clone(),
                None => statements::folded_in(t, &doc, &rec)?,
            };
            let mut st = before.clone();
            let digest = signed.payload_digest();
            if let Err(r) = st.check(stmt, &digest) {
                return Ok(AnswerOutcome::Refused(r));
            }
            st.apply(stmt, &digest);
            let seq = statements::record_in(t, signed, stmt, now_ms, &stmt.to, None)?;
            let state = DeliveryState::Ended {
                how: how.clone(),
                statement: seq,
            };
            let keep = statements::answered_state(stored.is_some(), &before, st, recipient, &state);
            if let Some(st) = keep {
                statements::put_doc_state(t, &doc, &st)?;
            }
            (state, how)
        }
    };
    // A delivery an update added fell due when the update was accepted, not the document.
    let due_ms = statements::added_at(t, key, recipient)?.unwrap_or(rec.accepted_ms);
    let ending = Ending::of(&end_how, due_ms, now_ms, on_time_ms);
    t.deliveries.open(t.txn)?.insert(
        (key, recipient.as_str()),
        enc(&DeliveryRecord {
            state,
            answered_ms: Some(now_ms),
        })?
        .as_slice(),
    )?;
    t.queue.open(t.txn)?.remove((recipient.as_str(), key))?;
    if ending.unhold {
        bodies::unhold(t, recipient, key)?;
    }
    t.expiry
        .open(t.txn)?
        .remove((due_ms, key, recipient.as_str()))?;
    // The count lives apart from the document record so an answer never rewrites the record.
    let answered = {
        let a = t.answered.open(t.txn)?;
        let n = a.get(key)?.map(|g| g.value()).unwrap_or(0) + 1;
        a.insert(key, n)?;
        n
    };
    if answered as usize >= statements::delivery_count(t, key, &rec)? {
        t.retention.open(t.txn)?.insert((now_ms, key), ())?;
    }
    t.bump(&[(ending.counter, 1)])?;
    ending.count(stats, &rec.sender, recipient, due_ms, now_ms);
    Ok(AnswerOutcome::Recorded { sender: rec.sender })
}

/// A `poros/1` answer: what it relays to the sender and how it ends the delivery; `None` for
/// a state that is no answer of that form (nothing to record).
pub(super) fn legacy_end(state: &DeliveryState) -> Option<(RelayItem, DeliveryEnd)> {
    let relay = match state {
        DeliveryState::Delivered(r) | DeliveryState::Rejected(r, _) => {
            RelayItem::Receipt(r.clone())
        }
        DeliveryState::Expired(n) | DeliveryState::Lost(n) => RelayItem::Notice(n.clone()),
        DeliveryState::Pending | DeliveryState::Ended { .. } => return None,
    };
    // An answer of this form always ends the delivery somehow.
    Some((relay, state.end()?))
}

/// How a statement ends the delivery of `doc` to `recipient`, or why it does not: it must be
/// a receipt, rejection or ending notice about that recipient.
pub(super) fn said_end(
    doc: DocumentId,
    recipient: &AgencyId,
    stmt: &Statement,
) -> Result<DeliveryEnd, poros_protocol::Reason> {
    let about = match &stmt.kind {
        poros_protocol::StatementKind::Notice { recipient, .. } => Some(recipient),
        _ => stmt.from.agency(),
    };
    end_of(stmt)
        .filter(|_| about == Some(recipient))
        .ok_or_else(|| {
            poros_protocol::Reason::new(
                poros_protocol::ReasonCode::IllegalTransition,
                format!(
                    "a {} does not end the delivery of {doc} to {recipient}",
                    stmt.kind.label()
                ),
            )
        })
}

/// How an ended delivery is counted: its statistics end, the rejection's reason, the counter
/// it adds to, and whether it leaves the deliveries held for a body repair.
pub(super) struct Ending {
    end: crate::stats::End,
    reason: Option<poros_protocol::ReasonCode>,
    /// The operational counter.
    pub(super) counter: &'static str,
    /// A delivery held for a body repair leaves the holding table when it ends some other way.
    pub(super) unhold: bool,
}

impl Ending {
    /// Classify an end: a receipt within `on_time_ms` of `due_ms` is on time.
    pub(super) fn of(how: &DeliveryEnd, due_ms: u64, now_ms: u64, on_time_ms: u64) -> Ending {
        use crate::stats::End;
        let (end, reason, counter) = match how {
            DeliveryEnd::Delivered if now_ms.saturating_sub(due_ms) <= on_time_ms => {
                (End::OnTime, None, "deliveries_delivered")
            }
            DeliveryEnd::Delivered => (End::Late, None, "deliveries_delivered"),
            DeliveryEnd::Rejected(r) => (End::Rejected, Some(r.code), "deliveries_rejected"),
            DeliveryEnd::Expired => (End::Expired, None, "deliveries_expired"),
            DeliveryEnd::Lost(_) => (End::Expired, None, "deliveries_lost"),
        };
        Ending {
            end,
            reason,
            counter,
            unhold: matches!(how, DeliveryEnd::Expired | DeliveryEnd::Lost(_)),
        }
    }

    /// Count it in the statistics.
    pub(super) fn count(
        &self,
        stats: &crate::stats::StatsHook,
        sender: &AgencyId,
        recipient: &AgencyId,
        due_ms: u64,
        now_ms: u64,
    ) {
        crate::stats::on_end(
            stats,
            sender,
            recipient,
            due_ms,
            now_ms,
            self.end,
            self.reason,
        );
    }
}

/// The exchange's tables as neutral rows (see [`super::transfer`]), in key order. `held`:
/// the deliveries the repair area took out of the queues ((recipient, doc) → due time),
/// listed with the queues they are still part of.
pub(super) fn export(
    r: &redb::ReadTransaction,
    held: &std::collections::BTreeMap<(String, Vec<u8>), u64>,
    out: &mut super::transfer::RowSink<'_>,
) -> Result<(), StoreError> {
    use super::transfer::{doc_key, Row, Table};
    let docs = r.open_table(DOCS)?;
    for e in docs.iter()? {
        let (k, v) = e?;
        let rec: DocRecord = dec(v.value())?;
        out.row(
            Table::Docs,
            Row::Doc {
                id: doc_key(k.value())?,
                sender: rec.sender.to_string(),
                accepted_ms: rec.accepted_ms,
                body_sha256: rec.body_sha256.to_vec(),
                body_len: rec.body_len,
                record: v.value().to_vec(),
            },
        )?;
    }
    // A delivery fell due when its document was accepted, or when the update that added its
    // recipient was; deliveries come in document order, so each document is read once.
    let added = statements::added_table(r)?;
    let mut current: Option<(Vec<u8>, u64)> = None;
    for e in r.open_table(DELIVERIES)?.iter()? {
        let (k, v) = e?;
        let (doc, rcpt) = k.value();
        let accepted_ms = match &current {
            Some((d, at)) if d.as_slice() == doc => *at,
            _ => {
                let Some(g) = docs.get(doc)? else {
                    return Err(StoreError::Corrupt(format!(
                        "delivery to {rcpt} without its document {}",
                        hex::encode(doc)
                    )));
                };
                let at = dec::<DocRecord>(g.value())?.accepted_ms;
                current = Some((doc.to_vec(), at));
                at
            }
        };
        let due_ms = statements::added_due(&added, doc, rcpt)?.unwrap_or(accepted_ms);
        let d: DeliveryRecord = dec(v.value())?;
        out.row(
            Table::Deliveries,
            Row::Delivery {
                doc: doc_key(doc)?,
                recipient: rcpt.to_string(),
                pending: d.state.is_pending(),
                due_ms,
                answered_ms: d.answered_ms,
                record: v.value().to_vec(),
            },
        )?;
    }
    // The queues and the held deliveries, merged in (recipient, doc) order.
    let mut held = held.iter().peekable();
    let queued = |(rcpt, doc): (&str, &[u8]), due_ms: u64, held: bool| {
        Ok::<_, StoreError>(Row::Queued {
            recipient: rcpt.to_string(),
            doc: doc_key(doc)?,
            due_ms,
            held,
        })
    };
    for e in r.open_table(QUEUE)?.iter()? {
        let (k, v) = e?;
        let key = k.value();
        while let Some(((hr, hd), due)) =
            held.next_if(|((hr, hd), _)| (hr.as_str(), hd.as_slice()) < key)
        {
            out.row(
                Table::Queue,
                queued((hr.as_str(), hd.as_slice()), *due, true)?,
            )?;
        }
        out.row(Table::Queue, queued(key, v.value(), false)?)?;
    }
    for ((hr, hd), due) in held {
        out.row(
            Table::Queue,
            queued((hr.as_str(), hd.as_slice()), *due, true)?,
        )?;
    }
    for e in r.open_table(ANSWERED)?.iter()? {
        let (k, v) = e?;
        out.row(
            Table::Answered,
            Row::Answered {
                doc: doc_key(k.value())?,
                answered: v.value(),
            },
        )?;
    }
    for e in r.open_table(INLINE)?.iter()? {
        let (k, v) = e?;
        out.row(
            Table::InlineBodies,
            Row::InlineBody {
                digest: k.value().to_vec(),
                body: v.value().to_vec(),
            },
        )?;
    }
    for e in r.open_table(BODY_REFS)?.iter()? {
        let (k, v) = e?;
        out.row(
            Table::BodyRefs,
            Row::BodyRef {
                digest: k.value().to_vec(),
                refs: v.value(),
            },
        )?;
    }
    for e in r.open_table(RELAYS)?.iter()? {
        let (k, v) = e?;
        let (sender, doc, rcpt) = k.value();
        out.row(
            Table::Relays,
            Row::Relay {
                sender: sender.to_string(),
                doc: doc_key(doc)?,
                recipient: rcpt.to_string(),
                item: v.value().to_vec(),
            },
        )?;
    }
    for e in r.open_table(RETENTION)?.iter()? {
        let (k, _) = e?;
        let (at, doc) = k.value();
        out.row(
            Table::Retention,
            Row::Retention {
                answered_ms: at,
                doc: doc_key(doc)?,
            },
        )?;
    }
    Ok(())
}
