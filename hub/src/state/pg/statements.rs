//! [`StatementBackend`] in PostgreSQL: statements accepted under the exchange rules, the
//! per-addressee relay queues, a document's history and the deliveries updates add (tables of
//! `sql/0004_statements.sql`).
//!
//! The rules are the redb store's (`state/statements.rs`), through the same pure functions
//! ([`DocState::check`], `effects_refused`, `changed_tracks`, `count_business`…). Accepting a
//! statement claims its digest (a resubmission finds it claimed: `Duplicate`) and reads the
//! document, its rule state and the maker's delivery in one statement; checks that need more
//! (a named document, added recipients' registry records, the deliveries whose business life
//! changed) read it in one more each; then the statement is stored and the rest written in
//! pipelined statements. A refusal gives the claim back: nothing stays.

use super::exchange::{big, codes, doc_in, lim, pending_scan, record_in, state_in, unbig};
use super::{counters, PgStore, Tx};
use crate::state::backend::StatementBackend;
use crate::state::statements::{
    awaits_receipt, changed_tracks, count_business, effects_refused, refused, unknown_document,
};
use crate::state::{
    dec, dec_node, enc, DeliveryRecord, DeliveryState, DocRecord, HistoryEntry, NodeRecord,
    Pending, StatementOutcome, StatementRelay, StoredStatement,
};
use crate::stats::StatsHook;
use async_trait::async_trait;
use futures_util::future::{try_join, try_join3};
use poros_protocol::{AgencyId, DocumentId, Party, SignedStatement, Statement};
use poros_store::StoreError;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio_postgres::types::Type;

/// Most queued relays one scan looks at (as the redb store's scan).
const SCAN_MAX: i64 = 10_000;

/// Registry records of `agencies` (the registry area's `nodes` table).
async fn nodes_in(
    tx: &Tx<'_>,
    store: &PgStore,
    agencies: &[AgencyId],
) -> Result<HashMap<String, NodeRecord>, StoreError> {
    if agencies.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = tx
        .query_typed(
            "SELECT agency, record FROM nodes WHERE agency = ANY($1)",
            &[(&codes(agencies), Type::TEXT_ARRAY)],
        )
        .await
        .map_err(|e| store.sql_error("read nodes", e))?;
    rows.iter()
        .map(|r| Ok((r.get::<_, String>(0), dec_node(r.get::<_, &[u8]>(1))?)))
        .collect()
}

/// Delivery records of some recipients of `doc`.
async fn deliveries_of(
    tx: &Tx<'_>,
    store: &PgStore,
    doc: DocumentId,
    recipients: &[AgencyId],
) -> Result<HashMap<String, DeliveryRecord>, StoreError> {
    if recipients.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = tx
        .query_typed(
            "SELECT recipient, record FROM deliveries WHERE doc = $1 AND recipient = ANY($2)",
            &[(&doc.0, Type::UUID), (&codes(recipients), Type::TEXT_ARRAY)],
        )
        .await
        .map_err(|e| store.sql_error("read deliveries", e))?;
    rows.iter()
        .map(|r| Ok((r.get::<_, String>(0), dec(r.get::<_, &[u8]>(1))?)))
        .collect()
}

/// Check, apply and store one statement (the redb store's `accept_in`); refusals write
/// nothing.
async fn accept_in(
    tx: &Tx<'_>,
    store: &PgStore,
    signed: &SignedStatement,
    stmt: &Statement,
    now_ms: u64,
) -> Result<StatementOutcome, StoreError> {
    let op = "accept statement";
    let digest = signed.payload_digest();
    let doc = stmt.doc_id;
    // The digest is claimed, not looked up: a read of its index page would conflict with
    // every statement accepted at the same time (their digests share pages); a refusal gives
    // the claim back (see `PgStore::accept_statement`).
    let row = tx
        .query_typed_one(
            "WITH claim AS ( \
                 INSERT INTO statement_digests (digest, seq) VALUES ($1, 0) \
                 ON CONFLICT DO NOTHING RETURNING 1 \
             ) SELECT NOT EXISTS (SELECT 1 FROM claim), \
                    (SELECT record FROM docs WHERE id = $2), \
                    (SELECT state FROM doc_states WHERE doc = $2), \
                    (SELECT pending FROM deliveries WHERE doc = $2 AND recipient = $3), \
                    (SELECT record FROM deliveries WHERE doc = $2 AND recipient = $3)",
            &[
                (&digest.as_slice(), Type::BYTEA),
                (&doc.0, Type::UUID),
                (&stmt.from.as_str(), Type::TEXT),
            ],
        )
        .await
        .map_err(|e| store.sql_error(op, e))?;
    if row.get::<_, bool>(0) {
        return Ok(StatementOutcome::Duplicate);
    }
    let rec: DocRecord = match row.get::<_, Option<&[u8]>>(1) {
        Some(b) => dec(b)?,
        None => return Ok(unknown_document(doc)),
    };
    let mut st = state_in(tx, store, doc, &rec, row.get(2)).await?;
    let fx = match st.check(stmt, &digest) {
        Ok(fx) => fx,
        Err(r) => {
            let maker_pending = row.get::<_, Option<bool>>(3) == Some(true);
            return Ok(refused(r, awaits_receipt(&st, stmt) && maker_pending, stmt));
        }
    };
    // What the effects need from the store, read at once.
    let named = async {
        match fx.names_document {
            Some(named) => doc_in(tx, store, named).await,
            None => Ok(None),
        }
    };
    let (named, nodes) = try_join(named, nodes_in(tx, store, &fx.add_recipients)).await?;
    let refusal = effects_refused(
        &fx,
        &rec.sender,
        |_| Ok(named),
        |a| Ok(nodes.get(a.as_str()).cloned()),
    )?;
    if let Some(refusal) = refusal {
        return Ok(refusal);
    }
    // Checked; from here on everything is written.
    let before = st.clone();
    st.apply(stmt, &digest);
    let hook = StatsHook::default();
    let changed = changed_tracks(&before, &st);
    if !changed.is_empty() {
        let mut known: HashMap<String, DeliveryRecord> = HashMap::new();
        if let Some(b) = row.get::<_, Option<&[u8]>>(4) {
            known.insert(stmt.from.as_str().to_string(), dec(b)?);
        }
        let missing: Vec<AgencyId> = changed
            .iter()
            .filter(|(r, _, _)| !known.contains_key(r.as_str()))
            .map(|(r, _, _)| (*r).clone())
            .collect();
        known.extend(deliveries_of(tx, store, doc, &missing).await?);
        for (r, was, after) in &changed {
            if let Some(d) = known.get(r.as_str()) {
                count_business(&hook, &store.business, now_ms, r, d, was, after);
            }
        }
    }
    let seq = record_in(
        tx,
        store,
        signed,
        stmt,
        None,
        now_ms,
        &stmt.to,
        Some(&digest),
    )
    .await?;
    let mut wake = stmt.to.clone();
    let added = codes(&fx.add_recipients);
    let mut counts = vec![("statements_accepted", 1)];
    if !fx.add_recipients.is_empty() {
        // Due from now on, in the period of the update (not of the document).
        crate::stats::on_added(&hook, &rec.sender, &fx.add_recipients, now_ms);
        counts.push(("deliveries_queued", fx.add_recipients.len() as u64));
        wake.extend(fx.add_recipients.iter().cloned());
    }
    let pending = enc(&DeliveryRecord {
        state: DeliveryState::Pending,
        answered_ms: None,
    })?;
    let state = enc(&st)?;
    let write = async {
        tx.query_typed(
            "WITH st AS ( \
                 INSERT INTO doc_states (doc, state) VALUES ($1, $2) \
                 ON CONFLICT (doc) DO UPDATE SET state = excluded.state \
             ), ad AS ( \
                 INSERT INTO added_recipients (doc, recipient, seq, added_ms) \
                 SELECT $1, r, $3, $4 FROM unnest($5::text[]) AS r \
                 ON CONFLICT (doc, recipient) DO UPDATE \
                 SET seq = excluded.seq, added_ms = excluded.added_ms \
                 RETURNING xmax = 0 AS new \
             ), dl AS ( \
                 INSERT INTO deliveries (doc, recipient, pending, accepted_ms, record) \
                 SELECT $1, r, true, $4, $6 FROM unnest($5::text[]) AS r \
                 ON CONFLICT (doc, recipient) DO UPDATE SET pending = true, \
                     accepted_ms = excluded.accepted_ms, answered_ms = NULL, \
                     record = excluded.record \
             ), q AS ( \
                 INSERT INTO queue (recipient, doc, due_ms) \
                 SELECT r, $1, $4 FROM unnest($5::text[]) AS r \
                 ON CONFLICT (recipient, doc) DO UPDATE SET due_ms = excluded.due_ms \
             ), n AS ( \
                 UPDATE answered SET deliveries = deliveries + (SELECT count(*) FROM ad WHERE new) \
                 WHERE $7 AND doc = $1 \
             ) SELECT 1",
            &[
                (&doc.0, Type::UUID),
                (&state, Type::BYTEA),
                (&big(seq), Type::INT8),
                (&big(now_ms), Type::INT8),
                (&added, Type::TEXT_ARRAY),
                (&pending, Type::BYTEA),
                (&!added.is_empty(), Type::BOOL),
            ],
        )
        .await
        .map_err(|e| store.sql_error(op, e))
    };
    try_join3(
        write,
        counters::add(tx, store, &counts),
        counters::add_stats(tx, store, hook.take()),
    )
    .await?;
    Ok(StatementOutcome::Accepted { seq, wake })
}

/// Statements queued for `addressee`, in acceptance order, the first of each document only:
/// not of a document in `in_flight`, not gated by a `poros/1` receipt relay (addressee,
/// document, maker) still queued, and only the hub's when `only_hub`. As redb's scan, it looks
/// at the first [`SCAN_MAX`] queued entries.
async fn relay_scan(
    store: &PgStore,
    addressee: &AgencyId,
    limit: usize,
    in_flight: &HashSet<DocumentId>,
    only_hub: bool,
) -> Result<Vec<StatementRelay>, StoreError> {
    let addressee = addressee.to_string();
    let in_flight: Vec<uuid::Uuid> = in_flight.iter().map(|d| d.0).collect();
    let s = store.clone();
    store
        .read("statement relays", move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query_typed(
                        "WITH q AS ( \
                             SELECT seq, doc, from_party FROM statement_relays \
                             WHERE addressee = $1 ORDER BY seq LIMIT $5 \
                         ), firsts AS ( \
                             SELECT DISTINCT ON (doc) seq, doc, from_party FROM q \
                             ORDER BY doc, seq \
                         ) SELECT f.seq, f.doc, s.record FROM firsts f \
                           LEFT JOIN statements s ON s.seq = f.seq \
                           WHERE NOT (f.doc = ANY($2)) \
                             AND NOT EXISTS (SELECT 1 FROM relays r WHERE r.sender = $1 \
                                 AND r.doc = f.doc AND r.recipient = f.from_party) \
                             AND (NOT $3 OR f.from_party = $6) \
                           ORDER BY f.seq LIMIT $4",
                        &[
                            (&addressee, Type::TEXT),
                            (&in_flight, Type::UUID_ARRAY),
                            (&only_hub, Type::BOOL),
                            (&lim(limit), Type::INT8),
                            (&SCAN_MAX, Type::INT8),
                            (&Party::Hub.as_str(), Type::TEXT),
                        ],
                    )
                    .await
                    .map_err(|e| s.sql_error("statement relays", e))?;
                rows.iter()
                    .map(|r| {
                        let seq = unbig(r.get(0));
                        let Some(b) = r.get::<_, Option<&[u8]>>(2) else {
                            return Err(StoreError::Corrupt(format!(
                                "queued statement {seq} missing"
                            )));
                        };
                        Ok(StatementRelay {
                            seq,
                            doc: DocumentId(r.get(1)),
                            signed: dec::<StoredStatement>(b)?.signed,
                        })
                    })
                    .collect()
            })
        })
        .await
}

#[async_trait]
impl StatementBackend for PgStore {
    async fn accept_statement(
        &self,
        signed: SignedStatement,
        stmt: Statement,
        now_ms: u64,
    ) -> Result<StatementOutcome, StoreError> {
        let input = Arc::new((signed, stmt));
        let store = self.clone();
        self.write("accept statement", move |tx| {
            let (store, input) = (store.clone(), input.clone());
            Box::pin(async move {
                let (signed, stmt) = &*input;
                let out = accept_in(tx, &store, signed, stmt, now_ms).await?;
                if let StatementOutcome::Refused(_) = out {
                    // Refusals store nothing: not even the digest's claim.
                    tx.execute_typed(
                        "DELETE FROM statement_digests WHERE digest = $1",
                        &[(&signed.payload_digest().as_slice(), Type::BYTEA)],
                    )
                    .await
                    .map_err(|e| store.sql_error("accept statement", e))?;
                }
                Ok(out)
            })
        })
        .await
    }

    async fn statement_relays_for(
        &self,
        addressee: &AgencyId,
        limit: usize,
        in_flight: &HashSet<DocumentId>,
    ) -> Result<Vec<StatementRelay>, StoreError> {
        relay_scan(self, addressee, limit, in_flight, false).await
    }

    async fn hub_statement_relays_for(
        &self,
        addressee: &AgencyId,
        limit: usize,
        in_flight: &HashSet<DocumentId>,
    ) -> Result<Vec<StatementRelay>, StoreError> {
        relay_scan(self, addressee, limit, in_flight, true).await
    }

    async fn statement_relay_done(
        &self,
        addressee: AgencyId,
        seq: u64,
        refused: bool,
    ) -> Result<(), StoreError> {
        let store = self.clone();
        self.write("statement relay done", move |tx| {
            let (store, addressee) = (store.clone(), addressee.clone());
            Box::pin(async move {
                let gone = tx
                    .execute_typed(
                        "DELETE FROM statement_relays WHERE addressee = $1 AND seq = $2",
                        &[(&addressee.as_str(), Type::TEXT), (&big(seq), Type::INT8)],
                    )
                    .await
                    .map_err(|e| store.sql_error("statement relay done", e))?;
                if gone > 0 {
                    let counter = if refused {
                        "statements_relay_refused"
                    } else {
                        "statements_relayed"
                    };
                    counters::add(tx, &store, &[(counter, 1)]).await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn statement_relay_depth(&self) -> Result<u64, StoreError> {
        let store = self.clone();
        self.read("statement relay depth", move |tx| {
            Box::pin(async move {
                let row = tx
                    .query_typed_one("SELECT count(*) FROM statement_relays", &[])
                    .await
                    .map_err(|e| store.sql_error("statement relay depth", e))?;
                Ok(unbig(row.get(0)))
            })
        })
        .await
    }

    async fn statement_history(&self, doc: &DocumentId) -> Result<Vec<HistoryEntry>, StoreError> {
        let (doc, store) = (*doc, self.clone());
        self.read("statement history", move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query_typed(
                        "SELECT seq, record FROM statements WHERE doc = $1 ORDER BY seq",
                        &[(&doc.0, Type::UUID)],
                    )
                    .await
                    .map_err(|e| store.sql_error("statement history", e))?;
                rows.iter()
                    .map(|r| HistoryEntry::of(unbig(r.get(0)), dec(r.get::<_, &[u8]>(1))?))
                    .collect()
            })
        })
        .await
    }

    async fn pending_without_added(
        &self,
        recipient: &AgencyId,
        limit: usize,
        skip: &HashSet<DocumentId>,
    ) -> Result<Vec<Pending>, StoreError> {
        pending_scan(self, recipient, limit, skip, true).await
    }

    async fn added_by(
        &self,
        doc: &DocumentId,
        recipient: &AgencyId,
    ) -> Result<Option<SignedStatement>, StoreError> {
        let (doc, recipient, store) = (*doc, recipient.to_string(), self.clone());
        self.read("added by", move |tx| {
            Box::pin(async move {
                let row = tx
                    .query_typed_opt(
                        "SELECT a.seq, s.record FROM added_recipients a \
                         LEFT JOIN statements s ON s.seq = a.seq \
                         WHERE a.doc = $1 AND a.recipient = $2",
                        &[(&doc.0, Type::UUID), (&recipient, Type::TEXT)],
                    )
                    .await
                    .map_err(|e| store.sql_error("added by", e))?;
                let Some(row) = row else { return Ok(None) };
                match row.get::<_, Option<&[u8]>>(1) {
                    Some(b) => Ok(Some(dec::<StoredStatement>(b)?.signed)),
                    None => Err(StoreError::Corrupt(format!(
                        "update {} missing",
                        row.get::<_, i64>(0)
                    ))),
                }
            })
        })
        .await
    }

    async fn statement_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let store = self.clone();
        self.read("statement counts", move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query_typed(
                        "SELECT label, sum(v)::bigint FROM ( \
                             SELECT label, value AS v FROM statement_kind_totals \
                             UNION ALL SELECT label, delta FROM statement_kind_deltas \
                         ) k GROUP BY label ORDER BY label",
                        &[],
                    )
                    .await
                    .map_err(|e| store.sql_error("statement counts", e))?;
                Ok(rows
                    .iter()
                    .map(|r| (r.get::<_, String>(0), unbig(r.get(1))))
                    .collect())
            })
        })
        .await
    }

    async fn statement_relay_docs(
        &self,
        addressee: &AgencyId,
    ) -> Result<Vec<DocumentId>, StoreError> {
        let (addressee, store) = (addressee.to_string(), self.clone());
        self.read("statement relay documents", move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query_typed(
                        "SELECT doc FROM statement_relays WHERE addressee = $1 ORDER BY seq",
                        &[(&addressee, Type::TEXT)],
                    )
                    .await
                    .map_err(|e| store.sql_error("statement relay documents", e))?;
                Ok(rows.iter().map(|r| DocumentId(r.get(0))).collect())
            })
        })
        .await
    }
}

/// Fold the statement-kind deltas present now into their totals, in the caller's transaction
/// (for the counters' roll-up, [`PgStore::roll_up`]); returns the deltas folded.
pub(crate) async fn roll_up_kinds(tx: &Tx<'_>, store: &PgStore) -> Result<u64, StoreError> {
    tx.execute_typed(
        "WITH moved AS (DELETE FROM statement_kind_deltas RETURNING label, delta) \
         INSERT INTO statement_kind_totals (label, value) \
         SELECT label, sum(delta) FROM moved GROUP BY label \
         ON CONFLICT (label) DO UPDATE SET value = statement_kind_totals.value + excluded.value",
        &[],
    )
    .await
    .map_err(|e| store.sql_error("roll up statement kinds", e))
}
