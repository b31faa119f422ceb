//! [`ExchangeBackend`] in PostgreSQL: documents, pending deliveries, answers and their
//! relays (tables of `sql/0003_exchange.sql`); expiry and retention are in `retention.rs`.
//!
//! The rules are the redb store's (`state/exchange.rs`), through the same pure functions;
//! only the table access differs. The hot paths are few statements each:
//! - `accept`: one statement stores the document, its deliveries and queue rows, its inline
//!   body and body reference, its rule state and the hub's acceptance (data-modifying CTEs
//!   under an `INSERT … ON CONFLICT DO NOTHING`), then the counters and statistics in two
//!   pipelined inserts. It reads nothing (the stored document only when it was there), so
//!   accepts never conflict with each other. Two hubs accepting the same document at once:
//!   one inserts, the other's insert meets a row its snapshot cannot see, which SERIALIZABLE
//!   turns into a conflict; run again, it reads the document and answers `Duplicate` (or
//!   `Conflict`).
//! - an answer: one read of the delivery, its document and rule state (taking the statement's
//!   sequence number in the same read), then the delivery's end, the relay or statement, the
//!   counters and statistics as pipelined statements.
//!
//! A pending delivery has its row in `queue` (its recipient's queue, in document order, and
//! the age order of expiry), offered unless `held` (waiting for a body repair). An answer
//! removes that row and updates the delivery in place, so answers to neighbouring documents
//! do not conflict under SERIALIZABLE (see `sql/0003_exchange.sql`); the last answer of a
//! document (counted in `answered`) puts it in `retention`.

use super::{counters, PgStore, Tx};
use crate::state::backend::ExchangeBackend;
use crate::state::exchange::{accept_counts, acceptance_of, legacy_end, resubmitted, said_end};
use crate::state::exchange::{Answer, AnswerOutcome, Ending};
use crate::state::statements::{answered_state, fold_state, StoredStatement};
use crate::state::{
    dec, enc, AcceptOutcome, DeliveryRecord, DeliveryState, DocRecord, Pending, RelayItem,
};
use crate::stats::StatsHook;
use async_trait::async_trait;
use futures_util::future::{try_join, try_join4};
use poros_protocol::{AgencyId, Digest, DocState, DocumentId, SignedStatement, Statement};
use poros_store::{ReceivedBody, StoreError};
use std::collections::HashSet;
use std::sync::Arc;
use tokio_postgres::types::{ToSql, Type};

/// A Unix-ms time or count as a `bigint` (saturating: `u64::MAX` as a cutoff means "all").
pub(super) fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A `bigint` read back.
pub(super) fn unbig(v: i64) -> u64 {
    v.max(0) as u64
}

/// A scan limit as a `bigint`.
pub(super) fn lim(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// An agency code read from a key column.
pub(super) fn agency(s: &str) -> Result<AgencyId, StoreError> {
    AgencyId::parse(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Agency codes as a `text[]` parameter.
pub(super) fn codes(a: &[AgencyId]) -> Vec<String> {
    a.iter().map(|a| a.to_string()).collect()
}

/// A stored document.
pub(super) async fn doc_in(
    tx: &Tx<'_>,
    store: &PgStore,
    id: DocumentId,
) -> Result<Option<DocRecord>, StoreError> {
    let row = tx
        .query_typed_opt(
            "SELECT record FROM docs WHERE id = $1",
            &[(&id.0, Type::UUID)],
        )
        .await
        .map_err(|e| store.sql_error("read document", e))?;
    row.map(|r| dec(r.get::<_, &[u8]>(0))).transpose()
}

/// Every delivery of a document, by recipient.
pub(super) async fn deliveries_in(
    tx: &Tx<'_>,
    store: &PgStore,
    doc: DocumentId,
) -> Result<Vec<(AgencyId, DeliveryRecord)>, StoreError> {
    let rows = tx
        .query_typed(
            "SELECT recipient, record FROM deliveries WHERE doc = $1 ORDER BY recipient",
            &[(&doc.0, Type::UUID)],
        )
        .await
        .map_err(|e| store.sql_error("read deliveries", e))?;
    rows.iter()
        .map(|r| Ok((agency(r.get(0))?, dec(r.get::<_, &[u8]>(1))?)))
        .collect()
}

/// The rule state of `doc`: stored (`stored`, read with the caller's other columns), or for a
/// document without one, folded from its delivery records.
pub(super) async fn state_in(
    tx: &Tx<'_>,
    store: &PgStore,
    doc: DocumentId,
    rec: &DocRecord,
    stored: Option<&[u8]>,
) -> Result<DocState, StoreError> {
    match stored {
        Some(b) => dec(b),
        None => Ok(fold_state(rec, &deliveries_in(tx, store, doc).await?)),
    }
}

/// Store a statement, whatever its kind (the PostgreSQL `record_in` of the redb store): appended
/// to the history under `seq` (taken earlier by the caller) or a new number, one relay queued
/// per agency of `relay_to`, its digest kept when given (a resubmission is then a duplicate),
/// counted by kind if agencies make it on their own. One statement; returns the number.
#[allow(clippy::too_many_arguments)]
pub(super) async fn record_in(
    tx: &Tx<'_>,
    store: &PgStore,
    signed: &SignedStatement,
    stmt: &Statement,
    seq: Option<i64>,
    now_ms: u64,
    relay_to: &[AgencyId],
    digest: Option<&Digest>,
) -> Result<u64, StoreError> {
    let record = enc(&StoredStatement {
        signed: signed.clone(),
        accepted_ms: now_ms,
    })?;
    let label = (!stmt.kind.is_automatic()).then(|| stmt.kind.label());
    let digest = digest.map(|d| d.as_slice());
    let row = tx
        .query_typed_one(
            "WITH s AS ( \
                 INSERT INTO statements (seq, doc, accepted_ms, record) \
                 VALUES (coalesce($1, nextval('statement_seq')), $2, $3, $4) RETURNING seq \
             ), r AS ( \
                 INSERT INTO statement_relays (addressee, seq, doc, from_party) \
                 SELECT a, s.seq, $2, $5 FROM s, unnest($6::text[]) AS a \
                 ON CONFLICT DO NOTHING \
             ), d AS ( \
                 INSERT INTO statement_digests (digest, seq) \
                 SELECT $7, s.seq FROM s WHERE $7::bytea IS NOT NULL \
                 ON CONFLICT (digest) DO UPDATE SET seq = excluded.seq \
             ), k AS ( \
                 INSERT INTO statement_kind_deltas (label, delta) \
                 SELECT $8, 1 FROM s WHERE $8::text IS NOT NULL \
             ) SELECT seq FROM s",
            &[
                (&seq, Type::INT8),
                (&stmt.doc_id.0, Type::UUID),
                (&big(now_ms), Type::INT8),
                (&record, Type::BYTEA),
                (&stmt.from.as_str(), Type::TEXT),
                (&codes(relay_to), Type::TEXT_ARRAY),
                (&digest, Type::BYTEA),
                (&label, Type::TEXT),
            ],
        )
        .await
        .map_err(|e| store.sql_error("record statement", e))?;
    Ok(unbig(row.get(0)))
}

/// The end of a delivery, its relay or statement, counters and statistics (`answer_in`),
/// with the statistics flushed here too when `flush` (a lone answer; a caller ending several
/// flushes its hook once itself).
#[allow(clippy::too_many_arguments)]
async fn answer_with(
    tx: &Tx<'_>,
    store: &PgStore,
    hook: &StatsHook,
    doc: DocumentId,
    recipient: &AgencyId,
    answer: &Answer,
    now_ms: u64,
    flush: bool,
) -> Result<AnswerOutcome, StoreError> {
    let op = "record answer";
    let said = matches!(answer, Answer::Said(..));
    // The statement's number is taken here, with the read, when it may be needed.
    let row = tx
        .query_typed_opt(
            "SELECT d.pending, d.accepted_ms, doc.record, s.state, \
                 CASE WHEN $3 AND d.pending THEN nextval('statement_seq') END \
             FROM deliveries d \
             LEFT JOIN docs doc ON doc.id = d.doc \
             LEFT JOIN doc_states s ON s.doc = d.doc \
             WHERE d.doc = $1 AND d.recipient = $2",
            &[
                (&doc.0, Type::UUID),
                (&recipient.as_str(), Type::TEXT),
                (&said, Type::BOOL),
            ],
        )
        .await
        .map_err(|e| store.sql_error(op, e))?;
    let Some(row) = row.filter(|r| r.get::<_, bool>(0)) else {
        return Ok(AnswerOutcome::AlreadyAnswered);
    };
    let rec: DocRecord = match row.get::<_, Option<&[u8]>>(2) {
        Some(b) => dec(b)?,
        None => {
            return Err(StoreError::Corrupt(format!(
                "delivery without document {doc}"
            )))
        }
    };
    let stored_state: Option<&[u8]> = row.get(3);
    let mut relay: Option<Vec<u8>> = None;
    let mut new_state: Option<Vec<u8>> = None;
    let mut statement = None;
    let (state, how) = match answer {
        Answer::Legacy(state) => {
            let Some((item, how)) = legacy_end(state) else {
                return Ok(AnswerOutcome::AlreadyAnswered);
            };
            if state.is_delivered() {
                // Documents without a stored rule state get it folded when first needed.
                if let Some(b) = stored_state {
                    let mut st: DocState = dec(b)?;
                    st.delivered(recipient);
                    new_state = Some(enc(&st)?);
                }
            }
            relay = Some(enc::<RelayItem>(&item)?);
            (state.clone(), how)
        }
        Answer::Said(signed, stmt) => {
            let how = match said_end(doc, recipient, stmt) {
                Ok(how) => how,
                Err(r) => return Ok(AnswerOutcome::Refused(r)),
            };
            let before = state_in(tx, store, doc, &rec, stored_state).await?;
            let mut st = before.clone();
            let digest = signed.payload_digest();
            if let Err(r) = st.check(stmt, &digest) {
                return Ok(AnswerOutcome::Refused(r));
            }
            st.apply(stmt, &digest);
            let Some(seq) = row.get::<_, Option<i64>>(4) else {
                return Err(StoreError::Other("no statement number taken".into()));
            };
            statement = Some((signed, stmt, seq));
            let state = DeliveryState::Ended {
                how: how.clone(),
                statement: unbig(seq),
            };
            let stored = stored_state.is_some();
            new_state = answered_state(stored, &before, st, recipient, &state)
                .map(|st| enc(&st))
                .transpose()?;
            (state, how)
        }
    };
    let due_ms = unbig(row.get(1));
    let ending = Ending::of(&how, due_ms, now_ms, store.on_time_ms);
    let record = enc(&DeliveryRecord {
        state,
        answered_ms: Some(now_ms),
    })?;
    ending.count(hook, &rec.sender, recipient, due_ms, now_ms);
    let end = async {
        tx.query_typed(
            "WITH upd AS ( \
                 UPDATE deliveries SET pending = false, answered_ms = $3, record = $4 \
                 WHERE doc = $1 AND recipient = $2 \
             ), dq AS ( \
                 DELETE FROM queue WHERE recipient = $2 AND doc = $1 \
             ), unheld AS ( \
                 DELETE FROM held WHERE $5 AND recipient = $2 AND doc = $1 \
             ), n AS ( \
                 UPDATE answered SET answered = answered + 1 WHERE doc = $1 \
                 RETURNING answered >= deliveries AS all_ended \
             ), ret AS ( \
                 INSERT INTO retention (answered_ms, doc) SELECT $3, $1 FROM n WHERE all_ended \
                 ON CONFLICT DO NOTHING \
             ), relay AS ( \
                 INSERT INTO relays (sender, doc, recipient, item) SELECT $6, $1, $2, $7 \
                 WHERE $7::bytea IS NOT NULL \
                 ON CONFLICT (sender, doc, recipient) DO UPDATE SET item = excluded.item \
             ), st AS ( \
                 INSERT INTO doc_states (doc, state) SELECT $1, $8 WHERE $8::bytea IS NOT NULL \
                 ON CONFLICT (doc) DO UPDATE SET state = excluded.state \
             ) SELECT 1",
            &[
                (&doc.0, Type::UUID),
                (&recipient.as_str(), Type::TEXT),
                (&big(now_ms), Type::INT8),
                (&record, Type::BYTEA),
                (&ending.unhold, Type::BOOL),
                (&rec.sender.as_str(), Type::TEXT),
                (&relay, Type::BYTEA),
                (&new_state, Type::BYTEA),
            ],
        )
        .await
        .map_err(|e| store.sql_error(op, e))
    };
    let said = async {
        if let Some((signed, stmt, seq)) = statement {
            record_in(tx, store, signed, stmt, Some(seq), now_ms, &stmt.to, None).await?;
        }
        Ok::<_, StoreError>(())
    };
    let stats = async {
        match flush {
            true => counters::add_stats(tx, store, hook.take()).await,
            false => Ok(()),
        }
    };
    try_join4(
        end,
        said,
        counters::add(tx, store, &[(ending.counter, 1)]),
        stats,
    )
    .await?;
    Ok(AnswerOutcome::Recorded { sender: rec.sender })
}

/// Record an answer that ends a delivery, in the caller's transaction (see
/// [`ExchangeBackend::record_answer`]); its statistics go to `hook`, which the caller flushes.
pub(crate) async fn answer_in(
    tx: &Tx<'_>,
    store: &PgStore,
    hook: &StatsHook,
    doc: DocumentId,
    recipient: &AgencyId,
    answer: &Answer,
    now_ms: u64,
) -> Result<AnswerOutcome, StoreError> {
    answer_with(tx, store, hook, doc, recipient, answer, now_ms, false).await
}

/// Pending deliveries of `recipient` in document order, not held, not in `skip`, and without
/// those an update added when `without_added`; at most `limit` (at least one, as redb's scan).
pub(super) async fn pending_scan(
    store: &PgStore,
    recipient: &AgencyId,
    limit: usize,
    skip: &HashSet<DocumentId>,
    without_added: bool,
) -> Result<Vec<Pending>, StoreError> {
    let recipient = recipient.to_string();
    let skip: Vec<uuid::Uuid> = skip.iter().map(|d| d.0).collect();
    let s = store.clone();
    store
        .read("pending deliveries", move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query_typed(
                        "SELECT q.doc, q.due_ms FROM queue q \
                         WHERE q.recipient = $1 AND NOT (q.doc = ANY($2)) \
                           AND NOT EXISTS (SELECT 1 FROM held h \
                                           WHERE h.recipient = $1 AND h.doc = q.doc) \
                           AND NOT ($4 AND EXISTS (SELECT 1 FROM added_recipients a \
                                           WHERE a.doc = q.doc AND a.recipient = $1)) \
                         ORDER BY q.doc LIMIT $3",
                        &[
                            (&recipient, Type::TEXT),
                            (&skip, Type::UUID_ARRAY),
                            (&lim(limit.max(1)), Type::INT8),
                            (&without_added, Type::BOOL),
                        ],
                    )
                    .await
                    .map_err(|e| s.sql_error("pending deliveries", e))?;
                Ok(rows
                    .iter()
                    .map(|r| Pending {
                        doc: DocumentId(r.get(0)),
                        accepted_ms: unbig(r.get(1)),
                    })
                    .collect())
            })
        })
        .await
}

/// What `accept` stores, encoded once for every run of its transaction.
struct Accepted {
    rec: DocRecord,
    id: uuid::Uuid,
    digest: Vec<u8>,
    record: Vec<u8>,
    pending: Vec<u8>,
    recipients: Vec<String>,
    inline: Option<Vec<u8>>,
    state: Vec<u8>,
    acceptance: Vec<u8>,
    kind: Option<&'static str>,
}

#[async_trait]
impl ExchangeBackend for PgStore {
    async fn doc(&self, id: &DocumentId) -> Result<Option<DocRecord>, StoreError> {
        let (id, store) = (*id, self.clone());
        self.read("read document", move |tx| {
            Box::pin(async move { doc_in(tx, &store, id).await })
        })
        .await
    }

    async fn accept(
        &self,
        rec: DocRecord,
        body: ReceivedBody,
    ) -> Result<AcceptOutcome, StoreError> {
        let (signed, stmt) = acceptance_of(&rec)?;
        let body_at = body.at();
        // The body file's reference guard is held until the document is durable.
        let (inline, _guard) = body.into_parts();
        let id = rec
            .envelope
            .envelope()
            .map_err(|e| StoreError::Other(e.to_string()))?
            .id;
        let mut rec = rec;
        rec.body_at = body_at;
        let a = Arc::new(Accepted {
            id: id.0,
            digest: rec.body_sha256.to_vec(),
            record: enc(&rec)?,
            pending: enc(&DeliveryRecord {
                state: DeliveryState::Pending,
                answered_ms: None,
            })?,
            recipients: codes(&rec.recipients),
            inline,
            // Stored at once here, unlike in the redb store (see `statements`): under
            // SERIALIZABLE, a statement that finds no row would lock the gap in the index, and
            // the neighbouring documents' first statements, inserting theirs, would conflict
            // with it (tests/pg_contention.rs: 474 runs again of 300 statements without).
            state: enc(&DocState::new(rec.sender.clone(), &rec.recipients))?,
            // The acceptance is answered on the submitting stream: relayed to no one.
            acceptance: enc(&StoredStatement {
                signed,
                accepted_ms: rec.accepted_ms,
            })?,
            kind: (!stmt.kind.is_automatic()).then(|| stmt.kind.label()),
            rec,
        });
        let store = self.clone();
        self.write("accept", move |tx| {
            let (a, store) = (a.clone(), store.clone());
            Box::pin(async move {
                let rec = &a.rec;
                let params: [(&(dyn ToSql + Sync), Type); 12] = [
                    (&a.id, Type::UUID),
                    (&rec.sender.as_str(), Type::TEXT),
                    (&big(rec.accepted_ms), Type::INT8),
                    (&a.digest, Type::BYTEA),
                    (&big(rec.body_len), Type::INT8),
                    (&a.record, Type::BYTEA),
                    (&a.pending, Type::BYTEA),
                    (&a.recipients, Type::TEXT_ARRAY),
                    (&a.inline, Type::BYTEA),
                    (&a.state, Type::BYTEA),
                    (&a.acceptance, Type::BYTEA),
                    (&a.kind, Type::TEXT),
                ];
                let row = tx
                    .query_typed_one(
                        "WITH ins AS ( \
                             INSERT INTO docs (id, sender, accepted_ms, body_sha256, body_len, record) \
                             VALUES ($1, $2, $3, $4, $5, $6) \
                             ON CONFLICT (id) DO NOTHING RETURNING id \
                         ), dels AS ( \
                             INSERT INTO deliveries (doc, recipient, pending, accepted_ms, record) \
                             SELECT ins.id, r, true, $3, $7 FROM ins, unnest($8::text[]) AS r \
                         ), q AS ( \
                             INSERT INTO queue (recipient, doc, due_ms) \
                             SELECT r, ins.id, $3 FROM ins, unnest($8::text[]) AS r \
                         ), n AS ( \
                             INSERT INTO answered (doc, deliveries, answered) \
                             SELECT id, cardinality($8::text[]), 0 FROM ins \
                         ), body AS ( \
                             INSERT INTO inline_bodies (digest, body) \
                             SELECT $4, $9 FROM ins WHERE $9::bytea IS NOT NULL \
                             ON CONFLICT (digest) DO UPDATE SET body = excluded.body \
                         ), refs AS ( \
                             INSERT INTO body_refs (digest, refs) SELECT $4, 1 FROM ins \
                             ON CONFLICT (digest) DO UPDATE SET refs = body_refs.refs + 1 \
                         ), st AS ( \
                             INSERT INTO doc_states (doc, state) SELECT id, $10 FROM ins \
                         ), acc AS ( \
                             INSERT INTO statements (doc, accepted_ms, record) \
                             SELECT id, $3, $11 FROM ins \
                         ), kind AS ( \
                             INSERT INTO statement_kind_deltas (label, delta) \
                             SELECT $12, 1 FROM ins WHERE $12::text IS NOT NULL \
                         ) SELECT EXISTS (SELECT 1 FROM ins)",
                        &params,
                    )
                    .await
                    .map_err(|e| store.sql_error("accept", e))?;
                if !row.get::<_, bool>(0) {
                    // Read only now: a stored document's transaction reads nothing, so
                    // accepts of different documents never conflict.
                    return match doc_in(tx, &store, DocumentId(a.id)).await? {
                        Some(old) => Ok(resubmitted(&old, rec)),
                        // Inserted by a transaction this one cannot see: run again.
                        None => Err(StoreError::Conflict("document stored concurrently".into())),
                    };
                }
                let hook = StatsHook::default();
                crate::stats::on_accept(&hook, &rec.sender, &rec.recipients, rec.accepted_ms);
                try_join(
                    counters::add(tx, &store, &accept_counts(rec)),
                    counters::add_stats(tx, &store, hook.take()),
                )
                .await?;
                Ok(AcceptOutcome::Stored)
            })
        })
        .await
    }

    async fn pending_for(
        &self,
        recipient: &AgencyId,
        limit: usize,
        skip: &HashSet<DocumentId>,
    ) -> Result<Vec<Pending>, StoreError> {
        pending_scan(self, recipient, limit, skip, false).await
    }

    async fn body_refs(&self, digest: &Digest) -> Result<u64, StoreError> {
        let sql = "SELECT refs FROM body_refs WHERE digest = $1";
        let refs = by_digest(self, "body references", sql, *digest, |r| unbig(r.get(0))).await?;
        Ok(refs.unwrap_or(0))
    }

    async fn inline_body(&self, digest: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        let sql = "SELECT body FROM inline_bodies WHERE digest = $1";
        by_digest(self, "inline body", sql, *digest, |r| r.get(0)).await
    }

    async fn record_answer(
        &self,
        doc: DocumentId,
        recipient: AgencyId,
        answer: Answer,
        now_ms: u64,
    ) -> Result<AnswerOutcome, StoreError> {
        let store = self.clone();
        let input = Arc::new((recipient, answer));
        self.write("record answer", move |tx| {
            let (store, input) = (store.clone(), input.clone());
            Box::pin(async move {
                let hook = StatsHook::default();
                let (recipient, answer) = &*input;
                answer_with(tx, &store, &hook, doc, recipient, answer, now_ms, true).await
            })
        })
        .await
    }

    async fn relays_for(
        &self,
        sender: &AgencyId,
        limit: usize,
        skip: &HashSet<(DocumentId, AgencyId)>,
    ) -> Result<Vec<(DocumentId, AgencyId, RelayItem)>, StoreError> {
        let (sender, store) = (sender.to_string(), self.clone());
        let (skip_docs, skip_rcpts): (Vec<uuid::Uuid>, Vec<String>) =
            skip.iter().map(|(d, a)| (d.0, a.to_string())).unzip();
        self.read("relays", move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query_typed(
                        "SELECT r.doc, r.recipient, r.item FROM relays r \
                         WHERE r.sender = $1 AND NOT EXISTS ( \
                             SELECT 1 FROM unnest($2::uuid[], $3::text[]) AS s (doc, rcpt) \
                             WHERE s.doc = r.doc AND s.rcpt = r.recipient) \
                         ORDER BY r.doc, r.recipient LIMIT $4",
                        &[
                            (&sender, Type::TEXT),
                            (&skip_docs, Type::UUID_ARRAY),
                            (&skip_rcpts, Type::TEXT_ARRAY),
                            (&lim(limit.max(1)), Type::INT8),
                        ],
                    )
                    .await
                    .map_err(|e| store.sql_error("relays", e))?;
                rows.iter()
                    .map(|r| {
                        Ok((
                            DocumentId(r.get(0)),
                            agency(r.get(1))?,
                            dec(r.get::<_, &[u8]>(2))?,
                        ))
                    })
                    .collect()
            })
        })
        .await
    }

    async fn relay_done(
        &self,
        sender: AgencyId,
        doc: DocumentId,
        recipient: AgencyId,
    ) -> Result<(), StoreError> {
        let store = self.clone();
        self.write("relay done", move |tx| {
            let (store, sender, recipient) = (store.clone(), sender.clone(), recipient.clone());
            Box::pin(async move {
                tx.execute_typed(
                    "DELETE FROM relays WHERE sender = $1 AND doc = $2 AND recipient = $3",
                    &[
                        (&sender.as_str(), Type::TEXT),
                        (&doc.0, Type::UUID),
                        (&recipient.as_str(), Type::TEXT),
                    ],
                )
                .await
                .map_err(|e| store.sql_error("relay done", e))?;
                Ok(())
            })
        })
        .await
    }

    async fn deliveries(
        &self,
        doc: &DocumentId,
    ) -> Result<Vec<(AgencyId, DeliveryRecord)>, StoreError> {
        let (doc, store) = (*doc, self.clone());
        self.read("read deliveries", move |tx| {
            Box::pin(async move { deliveries_in(tx, &store, doc).await })
        })
        .await
    }

    async fn pending_count(&self, recipient: &AgencyId) -> Result<u64, StoreError> {
        queue_count(self, Some(recipient)).await
    }

    async fn queue_depth(&self) -> Result<u64, StoreError> {
        queue_count(self, None).await
    }

    async fn expired_before(
        &self,
        cutoff_ms: u64,
        limit: usize,
    ) -> Result<Vec<(DocumentId, AgencyId)>, StoreError> {
        super::retention::expired_before(self, cutoff_ms, limit).await
    }

    async fn release_bodies(
        &self,
        cutoff_ms: u64,
        limit: usize,
    ) -> Result<Vec<Digest>, StoreError> {
        super::retention::release_bodies(self, cutoff_ms, limit).await
    }
}

/// The row `sql` reads for one body digest (`$1`), as `f` takes it.
async fn by_digest<T: Send + 'static>(
    store: &PgStore,
    op: &'static str,
    sql: &'static str,
    digest: Digest,
    f: fn(&tokio_postgres::Row) -> T,
) -> Result<Option<T>, StoreError> {
    let s = store.clone();
    store
        .read(op, move |tx| {
            Box::pin(async move {
                let row = tx
                    .query_typed_opt(sql, &[(&digest.as_slice(), Type::BYTEA)])
                    .await
                    .map_err(|e| s.sql_error(op, e))?;
                Ok(row.as_ref().map(f))
            })
        })
        .await
}

/// Pending deliveries in the queues (not held): of one recipient, or all.
async fn queue_count(store: &PgStore, recipient: Option<&AgencyId>) -> Result<u64, StoreError> {
    let recipient = recipient.map(|a| a.to_string());
    let s = store.clone();
    store
        .read("queue depth", move |tx| {
            Box::pin(async move {
                let row = tx
                    .query_typed_one(
                        "SELECT count(*) FROM queue q \
                         WHERE ($1::text IS NULL OR q.recipient = $1) \
                           AND NOT EXISTS (SELECT 1 FROM held h \
                                           WHERE h.recipient = q.recipient AND h.doc = q.doc)",
                        &[(&recipient, Type::TEXT)],
                    )
                    .await
                    .map_err(|e| s.sql_error("queue depth", e))?;
                Ok(unbig(row.get(0)))
            })
        })
        .await
}
