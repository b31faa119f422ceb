//! The hub's state as a backend-neutral stream of typed rows, table by table: what moving a
//! deployment from one store to another copies ([`Row`], [`Table`]) and how both sides are
//! compared afterwards ([`Tally`]: a row count and a SHA-256 per table).
//!
//! The neutral form is the normalised one (the PostgreSQL shape): keys as typed fields,
//! records as the postcard bytes both stores keep, so a copied record is byte for byte the
//! record it was. Where the stores keep the same fact differently, the row says it once:
//! a pending delivery is one [`Row::Queued`] whether redb moved it to its `held` table or
//! PostgreSQL marks it held beside its queue row; a counter is its value, however many
//! deltas PostgreSQL keeps it in. Each backend lists every table in its key order (bytes for
//! text, digests and document IDs; numbers for times and sequence numbers), so two stores
//! holding the same state give the same rows in the same order, hence the same checksums.

use ring::digest::{Context, SHA256};
use serde::Serialize;
use std::collections::BTreeMap;
use uuid::Uuid;

/// One table of the neutral form, in the order they are copied (documents before what
/// refers to them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Table {
    /// Registered nodes.
    Nodes,
    /// Enrolment tokens (used or not).
    Tokens,
    /// The audit log, with its sequence numbers.
    Audit,
    /// Revoked certificate serials (the CRL).
    Revoked,
    /// Serials retired by renewal.
    Superseded,
    /// Monitor credentials.
    Monitors,
    /// Accepted documents.
    Docs,
    /// Every (document, recipient) delivery, in whatever state.
    Deliveries,
    /// Pending deliveries: the queues, held ones included.
    Queue,
    /// Deliveries ended so far, per document.
    Answered,
    /// Bodies kept in the database (up to the inline limit).
    InlineBodies,
    /// Documents using each body.
    BodyRefs,
    /// `poros/1` answers not yet acknowledged by their sender.
    Relays,
    /// Documents whose bodies wait for the end of their retention.
    Retention,
    /// Every accepted statement, by sequence number.
    Statements,
    /// Statements not yet acknowledged by an addressee.
    StatementRelays,
    /// Payload digests of statements agencies made on their own.
    StatementDigests,
    /// What the exchange rules know of each document.
    DocStates,
    /// Deliveries an update added.
    AddedRecipients,
    /// Accepted statements by kind.
    StatementKinds,
    /// Bodies found damaged or missing.
    DamagedBodies,
    /// Re-upload requests waiting for senders.
    Repairs,
    /// Operational counters.
    Counters,
    /// Exact statistics per period, scope and metric.
    Stats,
    /// Agencies seen per period.
    Seen,
    /// Paper-only counts per month and agency.
    PaperReports,
    /// Large bodies: digest, length and the SHA-256 of the content as read back.
    Bodies,
}

impl Table {
    /// Every table, in copy order.
    pub const ALL: [Table; 27] = [
        Table::Nodes,
        Table::Tokens,
        Table::Audit,
        Table::Revoked,
        Table::Superseded,
        Table::Monitors,
        Table::Docs,
        Table::Deliveries,
        Table::Queue,
        Table::Answered,
        Table::InlineBodies,
        Table::BodyRefs,
        Table::Relays,
        Table::Retention,
        Table::Statements,
        Table::StatementRelays,
        Table::StatementDigests,
        Table::DocStates,
        Table::AddedRecipients,
        Table::StatementKinds,
        Table::DamagedBodies,
        Table::Repairs,
        Table::Counters,
        Table::Stats,
        Table::Seen,
        Table::PaperReports,
        Table::Bodies,
    ];

    /// The name reports use.
    pub fn name(self) -> &'static str {
        match self {
            Table::Nodes => "nodes",
            Table::Tokens => "enrolment_tokens",
            Table::Audit => "audit",
            Table::Revoked => "revoked_serials",
            Table::Superseded => "superseded_serials",
            Table::Monitors => "monitor_credentials",
            Table::Docs => "docs",
            Table::Deliveries => "deliveries",
            Table::Queue => "queue",
            Table::Answered => "answered",
            Table::InlineBodies => "inline_bodies",
            Table::BodyRefs => "body_refs",
            Table::Relays => "relays",
            Table::Retention => "retention",
            Table::Statements => "statements",
            Table::StatementRelays => "statement_relays",
            Table::StatementDigests => "statement_digests",
            Table::DocStates => "doc_states",
            Table::AddedRecipients => "added_recipients",
            Table::StatementKinds => "statement_kinds",
            Table::DamagedBodies => "damaged_bodies",
            Table::Repairs => "repairs",
            Table::Counters => "counters",
            Table::Stats => "stats",
            Table::Seen => "seen",
            Table::PaperReports => "paper_reports",
            Table::Bodies => "bodies",
        }
    }

    /// The area of the hub the table belongs to (for reports).
    pub fn area(self) -> &'static str {
        use Table::*;
        match self {
            Nodes | Tokens | Audit | Revoked | Superseded | Monitors => "registry",
            Docs | Deliveries | Queue | Answered | InlineBodies | BodyRefs | Relays | Retention => {
                "exchange"
            }
            Statements | StatementRelays | StatementDigests | DocStates | AddedRecipients
            | StatementKinds => "statements",
            DamagedBodies | Repairs => "repair",
            Counters | Stats | Seen | PaperReports => "statistics",
            Bodies => "bodies",
        }
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One row of the neutral form. Records are the stored postcard bytes, unchanged; the other
/// fields are the keys and the facts both stores keep beside the record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Row {
    /// A node: agency code, state (`pending`, `active`, `suspended`, `revoked`), parent.
    Node {
        /// Agency code.
        agency: String,
        /// State name.
        state: String,
        /// Parent agency.
        parent: Option<String>,
        /// `NodeRecord`.
        record: Vec<u8>,
    },
    /// An enrolment token, by the SHA-256 of its secret.
    Token {
        /// SHA-256 of the secret.
        secret_sha256: Vec<u8>,
        /// The agency it enrols.
        agency: String,
        /// When it was used, if it was.
        used_ms: Option<u64>,
        /// `TokenRecord`.
        record: Vec<u8>,
    },
    /// An audit record under its sequence number.
    Audit {
        /// Sequence number (the audit pages' cursor).
        seq: u64,
        /// Agency concerned.
        agency: Option<String>,
        /// When, Unix ms.
        time_ms: u64,
        /// `AuditRecord`.
        record: Vec<u8>,
    },
    /// A revoked or superseded certificate serial.
    Serial {
        /// Serial (hex, as issued).
        serial: String,
        /// Agency it belonged to.
        agency: String,
        /// `RevokedSerial`.
        record: Vec<u8>,
    },
    /// A monitor credential.
    Monitor {
        /// Its name.
        name: String,
        /// `MonitorRecord`.
        record: Vec<u8>,
    },
    /// An accepted document.
    Doc {
        /// Document ID.
        id: Uuid,
        /// Sender.
        sender: String,
        /// Accepted at, Unix ms.
        accepted_ms: u64,
        /// Body digest.
        body_sha256: Vec<u8>,
        /// Body length.
        body_len: u64,
        /// `DocRecord`.
        record: Vec<u8>,
    },
    /// One delivery of a document.
    Delivery {
        /// Document.
        doc: Uuid,
        /// Recipient.
        recipient: String,
        /// Not yet answered.
        pending: bool,
        /// When it fell due (the document's acceptance, or the update that added it).
        due_ms: u64,
        /// When it ended.
        answered_ms: Option<u64>,
        /// `DeliveryRecord`.
        record: Vec<u8>,
    },
    /// A pending delivery in its recipient's queue.
    Queued {
        /// Recipient.
        recipient: String,
        /// Document.
        doc: Uuid,
        /// When it fell due.
        due_ms: u64,
        /// Held back while the document's body is repaired.
        held: bool,
    },
    /// Deliveries of a document ended so far (documents with at least one).
    Answered {
        /// Document.
        doc: Uuid,
        /// How many.
        answered: u32,
    },
    /// A body kept in the database.
    InlineBody {
        /// Its digest.
        digest: Vec<u8>,
        /// The bytes.
        body: Vec<u8>,
    },
    /// Documents using a body.
    BodyRef {
        /// Body digest.
        digest: Vec<u8>,
        /// How many.
        refs: u64,
    },
    /// A `poros/1` answer waiting for its sender.
    Relay {
        /// The document's sender.
        sender: String,
        /// Document.
        doc: Uuid,
        /// The recipient that answered.
        recipient: String,
        /// `RelayItem`.
        item: Vec<u8>,
    },
    /// A document whose deliveries have all ended, by when the last did.
    Retention {
        /// When the last delivery ended.
        answered_ms: u64,
        /// Document.
        doc: Uuid,
    },
    /// An accepted statement.
    Statement {
        /// Acceptance sequence number.
        seq: u64,
        /// Its document.
        doc: Uuid,
        /// When accepted, Unix ms.
        accepted_ms: u64,
        /// `StoredStatement`.
        record: Vec<u8>,
    },
    /// A statement waiting for an addressee.
    StatementRelay {
        /// Addressee.
        addressee: String,
        /// Statement.
        seq: u64,
        /// Its document.
        doc: Uuid,
        /// Its maker (an agency code or `hub`).
        from: String,
    },
    /// A statement's payload digest.
    StatementDigest {
        /// Payload digest.
        digest: Vec<u8>,
        /// Statement.
        seq: u64,
    },
    /// A document's rule state.
    DocState {
        /// Document.
        doc: Uuid,
        /// `DocState`.
        state: Vec<u8>,
    },
    /// A delivery an update added.
    Added {
        /// Document.
        doc: Uuid,
        /// The recipient added.
        recipient: String,
        /// The update.
        seq: u64,
        /// When it fell due.
        added_ms: u64,
    },
    /// A named count (counters, statement kinds).
    Count {
        /// Name.
        name: String,
        /// Value.
        value: u64,
    },
    /// An exact statistic.
    Stat {
        /// Period (`D…`, `M…`, `Y…`).
        period: String,
        /// Scope (agency, `group:G`, `national`).
        scope: String,
        /// Metric.
        metric: String,
        /// Value.
        value: u64,
    },
    /// An agency seen in a period.
    Seen {
        /// Period.
        period: String,
        /// Agency.
        agency: String,
    },
    /// An agency's paper-only counts for a month.
    Paper {
        /// Month, `YYYY-MM`.
        month: String,
        /// Agency.
        agency: String,
        /// `PaperCount`.
        record: Vec<u8>,
    },
    /// A body found damaged or missing.
    Damaged {
        /// Body digest.
        digest: Vec<u8>,
        /// When first found.
        found_ms: u64,
        /// What was found.
        what: String,
        /// Documents whose deliveries are held for it.
        docs: Vec<Uuid>,
        /// Failed re-uploads so far.
        attempts: u32,
    },
    /// A re-upload request waiting for a sender.
    Repair {
        /// Sender asked.
        sender: String,
        /// Document.
        doc: Uuid,
        /// Body digest.
        digest: Vec<u8>,
    },
    /// A large body as stored: its digest, length and the SHA-256 of its bytes as read.
    Body {
        /// Body digest (its name).
        digest: Vec<u8>,
        /// Length in bytes.
        len: u64,
        /// SHA-256 of the bytes read (equal to `digest` for an intact body).
        content_sha256: Vec<u8>,
    },
}

/// Rows of one table, as they are passed from a reader to a writer.
pub type Batch = (Table, Vec<Row>);

/// Rows per batch passed between a store's reader and the writer.
pub const BATCH_ROWS: usize = 2000;

/// Collects rows into batches, one table at a time, and hands each full batch (and the
/// last of each table) to a sink: how a store's reader passes its rows on.
pub struct RowSink<'a> {
    table: Option<Table>,
    rows: Vec<Row>,
    sink: &'a mut dyn FnMut(Batch) -> Result<(), poros_store::StoreError>,
}

impl<'a> RowSink<'a> {
    /// Batches for `sink`.
    pub fn new(sink: &'a mut dyn FnMut(Batch) -> Result<(), poros_store::StoreError>) -> Self {
        RowSink {
            table: None,
            rows: Vec::with_capacity(BATCH_ROWS),
            sink,
        }
    }

    /// One more row of `table`.
    pub fn row(&mut self, table: Table, row: Row) -> Result<(), poros_store::StoreError> {
        if self.table != Some(table) {
            self.flush()?;
            self.table = Some(table);
        }
        self.rows.push(row);
        if self.rows.len() >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    /// Hand on the rows collected.
    pub fn flush(&mut self) -> Result<(), poros_store::StoreError> {
        match self.table {
            Some(t) if !self.rows.is_empty() => {
                let rows = std::mem::replace(&mut self.rows, Vec::with_capacity(BATCH_ROWS));
                (self.sink)((t, rows))
            }
            _ => Ok(()),
        }
    }
}

/// A document ID from a stored key.
pub(crate) fn doc_key(b: &[u8]) -> Result<Uuid, poros_store::StoreError> {
    Uuid::from_slice(b).map_err(|_| poros_store::StoreError::Corrupt("document key".into()))
}

/// Row counts and checksums per table: SHA-256 over the postcard form of each row, in order.
#[derive(Clone, Default)]
pub struct Tally {
    tables: BTreeMap<Table, (u64, Context)>,
}

impl Tally {
    /// Count and hash one row of `table`.
    pub fn add(&mut self, table: Table, row: &Row) -> Result<(), poros_store::StoreError> {
        let bytes = postcard::to_allocvec(row)
            .map_err(|e| poros_store::StoreError::Other(format!("encode row: {e}")))?;
        let (n, ctx) = self
            .tables
            .entry(table)
            .or_insert_with(|| (0, Context::new(&SHA256)));
        *n += 1;
        ctx.update(&bytes);
        Ok(())
    }

    /// Count and hash rows of `table`.
    pub fn add_all(&mut self, table: Table, rows: &[Row]) -> Result<(), poros_store::StoreError> {
        rows.iter().try_for_each(|r| self.add(table, r))
    }

    /// Rows counted so far in `table`.
    pub fn rows(&self, table: Table) -> u64 {
        self.tables.get(&table).map(|t| t.0).unwrap_or(0)
    }

    /// Rows counted in every table.
    pub fn total_rows(&self) -> u64 {
        self.tables.values().map(|t| t.0).sum()
    }

    /// Every table's (rows, SHA-256 hex); tables without rows included (hash of nothing).
    pub fn finish(&self) -> BTreeMap<Table, (u64, String)> {
        Table::ALL
            .iter()
            .map(|t| {
                let (n, ctx) = self
                    .tables
                    .get(t)
                    .cloned()
                    .unwrap_or_else(|| (0, Context::new(&SHA256)));
                (*t, (n, hex::encode(ctx.finish().as_ref())))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_differ_by_content_and_order() {
        let a = Row::Count {
            name: "a".into(),
            value: 1,
        };
        let b = Row::Count {
            name: "b".into(),
            value: 1,
        };
        let sum = |rows: &[Row]| {
            let mut t = Tally::default();
            t.add_all(Table::Counters, rows).unwrap();
            t.finish()[&Table::Counters].clone()
        };
        assert_eq!(sum(&[a.clone(), b.clone()]), sum(&[a.clone(), b.clone()]));
        assert_ne!(sum(&[a.clone(), b.clone()]), sum(&[b.clone(), a.clone()]));
        let c = Row::Count {
            name: "b".into(),
            value: 2,
        };
        assert_ne!(sum(&[a.clone(), b]), sum(&[a, c]));
        assert_eq!(Table::ALL.len(), Table::Bodies as usize + 1);
    }
}
