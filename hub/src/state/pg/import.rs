//! Bulk loading of a whole hub state into an empty PostgreSQL database (`poros-hub store
//! migrate`): the neutral rows of [`crate::state::transfer`] and the chunks of the large
//! bodies, written with binary `COPY` in ONE transaction, so a migration that fails half way
//! leaves the database as empty as it found it and can simply be run again.
//!
//! - Before anything is written every Poros table is locked (`ACCESS EXCLUSIVE`: a hub started
//!   on this database meanwhile waits for the commit) and checked empty.
//! - Rows arrive in table order; each run of one table is one `COPY … FROM STDIN (FORMAT
//!   binary)`, streamed (a batch at a time, a body chunk at a time: memory stays flat).
//! - What PostgreSQL keeps beside the neutral form is derived in SQL at the end: how many
//!   deliveries each document has (`answered.deliveries`), the `held` marks, the
//!   `stored_bodies` rows of the chunks written, and the sequences (statements, audit)
//!   set past the numbers copied, so new numbers continue them.

use super::PgStore;
use crate::state::transfer::{Batch, Row, Table};
use bytes::Bytes;
use poros_protocol::Digest;
use poros_store::StoreError;
use std::collections::BTreeMap;
use std::pin::Pin;
use tokio::sync::mpsc;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

/// What the importer takes, in order.
pub enum Load {
    /// Rows of one table (tables in [`Table::ALL`] order, each in one run).
    Rows(Batch),
    /// A piece of a large body: pieces of one body in order from 0, each
    /// [`super::bodies::CHUNK`] bytes but the last.
    Chunk {
        /// The body.
        digest: Digest,
        /// Its place.
        seq: i32,
        /// The bytes.
        data: Bytes,
    },
    /// A body whose chunks turned out not to hash to its digest: they are removed again.
    Discard(Digest),
}

/// Why an import did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The database already holds a hub's state.
    #[error(
        "the target database already holds Poros data (rows in {}): migrate into an empty \
         database, or drop these rows first if they are a failed earlier attempt's",
        .0.join(", ")
    )]
    NotEmpty(Vec<&'static str>),
    /// The rows ended before the load did (the reader failed).
    #[error("the source stopped before every row was read")]
    Truncated,
    /// The database refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Every table that holds a hub's state (not the schema's bookkeeping, commit markers or
/// leases): an import needs them all empty.
pub const STATE_TABLES: &[&str] = &[
    "nodes",
    "enrolment_tokens",
    "audit",
    "revoked_serials",
    "superseded_serials",
    "monitor_credentials",
    "docs",
    "deliveries",
    "queue",
    "answered",
    "inline_bodies",
    "body_refs",
    "held",
    "relays",
    "retention",
    "statements",
    "statement_relays",
    "statement_digests",
    "doc_states",
    "added_recipients",
    "statement_kind_deltas",
    "statement_kind_totals",
    "damaged_bodies",
    "repairs",
    "counter_deltas",
    "counter_totals",
    "stat_deltas",
    "stat_totals",
    "seen",
    "paper_reports",
    "stored_bodies",
    "body_chunks",
];

/// Now, in Unix ms, by the database's clock.
const NOW_MS: &str = "(extract(epoch FROM now()) * 1000)::bigint";

/// The `COPY` of a neutral table: statement and column types.
fn copy_of(table: Table) -> (&'static str, &'static [Type]) {
    use Type as T;
    match table {
        Table::Nodes => (
            "COPY nodes (agency, state, parent, record)",
            &[T::TEXT, T::TEXT, T::TEXT, T::BYTEA],
        ),
        Table::Tokens => (
            "COPY enrolment_tokens (secret_sha256, agency, used_ms, record)",
            &[T::BYTEA, T::TEXT, T::INT8, T::BYTEA],
        ),
        Table::Audit => (
            "COPY audit (seq, agency, time_ms, record)",
            &[T::INT8, T::TEXT, T::INT8, T::BYTEA],
        ),
        Table::Revoked => (
            "COPY revoked_serials (serial, agency, record)",
            &[T::TEXT, T::TEXT, T::BYTEA],
        ),
        Table::Superseded => (
            "COPY superseded_serials (serial, agency, record)",
            &[T::TEXT, T::TEXT, T::BYTEA],
        ),
        Table::Monitors => (
            "COPY monitor_credentials (name, record)",
            &[T::TEXT, T::BYTEA],
        ),
        Table::Docs => (
            "COPY docs (id, sender, accepted_ms, body_sha256, body_len, record)",
            &[T::UUID, T::TEXT, T::INT8, T::BYTEA, T::INT8, T::BYTEA],
        ),
        Table::Deliveries => (
            "COPY deliveries (doc, recipient, pending, accepted_ms, answered_ms, record)",
            &[T::UUID, T::TEXT, T::BOOL, T::INT8, T::INT8, T::BYTEA],
        ),
        Table::Queue => (
            "COPY queue (recipient, doc, due_ms)",
            &[T::TEXT, T::UUID, T::INT8],
        ),
        Table::Answered => (
            "COPY answered (doc, deliveries, answered)",
            &[T::UUID, T::INT4, T::INT4],
        ),
        Table::InlineBodies => ("COPY inline_bodies (digest, body)", &[T::BYTEA, T::BYTEA]),
        Table::BodyRefs => ("COPY body_refs (digest, refs)", &[T::BYTEA, T::INT8]),
        Table::Relays => (
            "COPY relays (sender, doc, recipient, item)",
            &[T::TEXT, T::UUID, T::TEXT, T::BYTEA],
        ),
        Table::Retention => ("COPY retention (answered_ms, doc)", &[T::INT8, T::UUID]),
        Table::Statements => (
            "COPY statements (seq, doc, accepted_ms, record)",
            &[T::INT8, T::UUID, T::INT8, T::BYTEA],
        ),
        Table::StatementRelays => (
            "COPY statement_relays (addressee, seq, doc, from_party)",
            &[T::TEXT, T::INT8, T::UUID, T::TEXT],
        ),
        Table::StatementDigests => ("COPY statement_digests (digest, seq)", &[T::BYTEA, T::INT8]),
        Table::DocStates => ("COPY doc_states (doc, state)", &[T::UUID, T::BYTEA]),
        Table::AddedRecipients => (
            "COPY added_recipients (doc, recipient, seq, added_ms)",
            &[T::UUID, T::TEXT, T::INT8, T::INT8],
        ),
        Table::StatementKinds => (
            "COPY statement_kind_totals (label, value)",
            &[T::TEXT, T::INT8],
        ),
        Table::DamagedBodies => (
            "COPY damaged_bodies (digest, found_ms, what, docs, attempts)",
            &[T::BYTEA, T::INT8, T::TEXT, T::UUID_ARRAY, T::INT4],
        ),
        Table::Repairs => (
            "COPY repairs (sender, doc, digest)",
            &[T::TEXT, T::UUID, T::BYTEA],
        ),
        Table::Counters => ("COPY counter_totals (name, value)", &[T::TEXT, T::INT8]),
        Table::Stats => (
            "COPY stat_totals (period, scope, metric, value)",
            &[T::TEXT, T::TEXT, T::TEXT, T::INT8],
        ),
        Table::Seen => ("COPY seen (period, agency)", &[T::TEXT, T::TEXT]),
        Table::PaperReports => (
            "COPY paper_reports (month, agency, record)",
            &[T::TEXT, T::TEXT, T::BYTEA],
        ),
        Table::Bodies => (
            "COPY body_chunks (digest, seq, data)",
            &[T::BYTEA, T::INT4, T::BYTEA],
        ),
    }
}

/// A count or time as a `bigint`, refusing what does not fit (nothing the hub stores).
fn big(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Other(format!("{v} does not fit a bigint")))
}

fn int(v: u32) -> Result<i32, StoreError> {
    i32::try_from(v).map_err(|_| StoreError::Other(format!("{v} does not fit an integer")))
}

/// One open `COPY`, of a table or of the body chunks.
struct Copy {
    table: Table,
    writer: Pin<Box<BinaryCopyInWriter>>,
    rows: u64,
}

impl PgStore {
    /// The tables of `STATE_TABLES` that hold rows (read without locking: a first look,
    /// checked again under lock by [`PgStore::import`]).
    pub async fn tables_in_use(&self) -> Result<Vec<&'static str>, StoreError> {
        let client = self.client().await?;
        let client: &tokio_postgres::Client = &client;
        in_use(client, self).await
    }

    /// Load everything `rx` brings into this (empty) database in one transaction; the rows
    /// written per table, `Table::Bodies` counting body chunks. `rx` must end with its sender
    /// dropped after the last item; if its producer fails it drops the sender early and must
    /// report that itself (the import cannot tell): the caller decides, from the producer's
    /// result, whether the import's commit stands — so the commit is the caller's, through
    /// `commit`, which is awaited with the counts before COMMIT.
    pub async fn import(
        &self,
        mut rx: mpsc::Receiver<Load>,
        commit: tokio::sync::oneshot::Receiver<bool>,
    ) -> Result<BTreeMap<Table, u64>, ImportError> {
        let sql = |op: &'static str| {
            let store = self.clone();
            move |e| store.sql_error(op, e)
        };
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .start()
            .await
            .map_err(sql("import: begin"))?;
        tx.batch_execute(&format!(
            "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
            STATE_TABLES.join(", ")
        ))
        .await
        .map_err(sql("import: lock"))?;
        let plain: &tokio_postgres::Transaction<'_> = &tx;
        let used = in_use(plain, self).await?;
        if !used.is_empty() {
            return Err(ImportError::NotEmpty(used));
        }
        let mut counts: BTreeMap<Table, u64> = BTreeMap::new();
        let mut held: (Vec<String>, Vec<uuid::Uuid>) = (Vec::new(), Vec::new());
        let mut discard: Vec<Vec<u8>> = Vec::new();
        let mut open: Option<Copy> = None;
        while let Some(item) = rx.recv().await {
            let table = match &item {
                Load::Rows((t, _)) => *t,
                Load::Chunk { .. } => Table::Bodies,
                Load::Discard(d) => {
                    discard.push(d.to_vec());
                    continue;
                }
            };
            if open.as_ref().map(|c| c.table) != Some(table) {
                if let Some(c) = open.take() {
                    finish(c, &mut counts, self).await?;
                }
                let (stmt, types) = copy_of(table);
                let sink = tx
                    .copy_in(&format!("{stmt} FROM STDIN (FORMAT binary)"))
                    .await
                    .map_err(sql("import: copy"))?;
                open = Some(Copy {
                    table,
                    writer: Box::pin(BinaryCopyInWriter::new(sink, types)),
                    rows: 0,
                });
            }
            let Some(c) = open.as_mut() else {
                continue;
            };
            match item {
                Load::Rows((_, rows)) => {
                    for row in &rows {
                        if let Row::Queued {
                            recipient,
                            doc,
                            held: true,
                            ..
                        } = row
                        {
                            held.0.push(recipient.clone());
                            held.1.push(*doc);
                        }
                        write_row(c, row, self).await?;
                    }
                }
                Load::Chunk { digest, seq, data } => {
                    let d: &[u8] = digest.as_slice();
                    let v: [&(dyn ToSql + Sync); 3] = [&d, &seq, &&data[..]];
                    c.writer
                        .as_mut()
                        .write(&v)
                        .await
                        .map_err(sql("import: copy body"))?;
                    c.rows += 1;
                }
                Load::Discard(_) => {}
            }
        }
        if let Some(c) = open.take() {
            finish(c, &mut counts, self).await?;
        }
        // The producer says whether it read everything; without its word nothing stands.
        if !commit.await.unwrap_or(false) {
            return Err(ImportError::Truncated);
        }
        tx.execute(
            "INSERT INTO held (recipient, doc) SELECT * FROM unnest($1::text[], $2::uuid[])",
            &[&held.0, &held.1],
        )
        .await
        .map_err(sql("import: held"))?;
        tx.execute(
            "DELETE FROM body_chunks WHERE digest = ANY($1)",
            &[&discard],
        )
        .await
        .map_err(sql("import: discard bodies"))?;
        tx.batch_execute(&format!(
            "INSERT INTO stored_bodies (digest, len, complete, created_at, claimed_at) \
                 SELECT digest, sum(octet_length(data)), true, {NOW_MS}, {NOW_MS} \
                 FROM body_chunks GROUP BY digest; \
             INSERT INTO answered (doc, deliveries, answered) \
                 SELECT d.id, coalesce(c.n, 0), 0 FROM docs d \
                 LEFT JOIN (SELECT doc, count(*)::int AS n FROM deliveries GROUP BY doc) c \
                     ON c.doc = d.id \
                 ON CONFLICT (doc) DO UPDATE SET deliveries = excluded.deliveries; \
             SELECT setval('statement_seq', max(seq)) FROM statements HAVING max(seq) IS NOT NULL; \
             SELECT setval(pg_get_serial_sequence('audit', 'seq'), max(seq)) FROM audit \
                 HAVING max(seq) IS NOT NULL;"
        ))
        .await
        .map_err(sql("import: derived rows"))?;
        tx.commit().await.map_err(sql("import: commit"))?;
        // Planner statistics for the tables just filled (outside the transaction).
        client
            .batch_execute("ANALYZE")
            .await
            .map_err(sql("import: analyze"))?;
        Ok(counts)
    }
}

async fn finish(
    mut c: Copy,
    counts: &mut BTreeMap<Table, u64>,
    store: &PgStore,
) -> Result<(), StoreError> {
    c.writer
        .as_mut()
        .finish()
        .await
        .map_err(|e| store.sql_error("import: copy end", e))?;
    *counts.entry(c.table).or_default() += c.rows;
    Ok(())
}

/// The state tables holding rows, as seen by `client` (a connection or a transaction).
async fn in_use(
    client: &impl tokio_postgres::GenericClient,
    store: &PgStore,
) -> Result<Vec<&'static str>, StoreError> {
    let query = STATE_TABLES
        .iter()
        .enumerate()
        .map(|(i, t)| format!("SELECT {i} WHERE EXISTS (SELECT 1 FROM {t})"))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let rows = client
        .query(&query, &[])
        .await
        .map_err(|e| store.sql_error("import: check empty", e))?;
    Ok(rows
        .iter()
        .filter_map(|r| STATE_TABLES.get(r.get::<_, i32>(0) as usize).copied())
        .collect())
}

/// Write one neutral row into the open `COPY` of its table.
async fn write_row(c: &mut Copy, row: &Row, store: &PgStore) -> Result<(), StoreError> {
    let w = c.writer.as_mut();
    let r = match row {
        Row::Node {
            agency,
            state,
            parent,
            record,
        } => w.write(&[agency, state, parent, record]).await,
        Row::Token {
            secret_sha256,
            agency,
            used_ms,
            record,
        } => {
            let used = used_ms.map(big).transpose()?;
            w.write(&[secret_sha256, agency, &used, record]).await
        }
        Row::Audit {
            seq,
            agency,
            time_ms,
            record,
        } => {
            w.write(&[&big(*seq)?, agency, &big(*time_ms)?, record])
                .await
        }
        Row::Serial {
            serial,
            agency,
            record,
        } => w.write(&[serial, agency, record]).await,
        Row::Monitor { name, record } => w.write(&[name, record]).await,
        Row::Doc {
            id,
            sender,
            accepted_ms,
            body_sha256,
            body_len,
            record,
        } => {
            w.write(&[
                id,
                sender,
                &big(*accepted_ms)?,
                body_sha256,
                &big(*body_len)?,
                record,
            ])
            .await
        }
        Row::Delivery {
            doc,
            recipient,
            pending,
            due_ms,
            answered_ms,
            record,
        } => {
            let answered = answered_ms.map(big).transpose()?;
            w.write(&[doc, recipient, pending, &big(*due_ms)?, &answered, record])
                .await
        }
        Row::Queued {
            recipient,
            doc,
            due_ms,
            ..
        } => w.write(&[recipient, doc, &big(*due_ms)?]).await,
        Row::Answered { doc, answered } => w.write(&[doc, &0i32, &int(*answered)?]).await,
        Row::InlineBody { digest, body } => w.write(&[digest, body]).await,
        Row::BodyRef { digest, refs } => w.write(&[digest, &big(*refs)?]).await,
        Row::Relay {
            sender,
            doc,
            recipient,
            item,
        } => w.write(&[sender, doc, recipient, item]).await,
        Row::Retention { answered_ms, doc } => w.write(&[&big(*answered_ms)?, doc]).await,
        Row::Statement {
            seq,
            doc,
            accepted_ms,
            record,
        } => {
            w.write(&[&big(*seq)?, doc, &big(*accepted_ms)?, record])
                .await
        }
        Row::StatementRelay {
            addressee,
            seq,
            doc,
            from,
        } => w.write(&[addressee, &big(*seq)?, doc, from]).await,
        Row::StatementDigest { digest, seq } => w.write(&[digest, &big(*seq)?]).await,
        Row::DocState { doc, state } => w.write(&[doc, state]).await,
        Row::Added {
            doc,
            recipient,
            seq,
            added_ms,
        } => {
            w.write(&[doc, recipient, &big(*seq)?, &big(*added_ms)?])
                .await
        }
        Row::Count { name, value } => w.write(&[name, &big(*value)?]).await,
        Row::Stat {
            period,
            scope,
            metric,
            value,
        } => w.write(&[period, scope, metric, &big(*value)?]).await,
        Row::Seen { period, agency } => w.write(&[period, agency]).await,
        Row::Paper {
            month,
            agency,
            record,
        } => w.write(&[month, agency, record]).await,
        Row::Damaged {
            digest,
            found_ms,
            what,
            docs,
            attempts,
        } => {
            w.write(&[digest, &big(*found_ms)?, what, docs, &int(*attempts)?])
                .await
        }
        Row::Repair {
            sender,
            doc,
            digest,
        } => w.write(&[sender, doc, digest]).await,
        Row::Body { .. } => {
            return Err(StoreError::Other(
                "large bodies are loaded as chunks, not rows".into(),
            ))
        }
    };
    r.map_err(|e| store.sql_error("import: copy row", e))?;
    c.rows += 1;
    Ok(())
}
