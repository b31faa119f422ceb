//! The hub's durable state: registry, documents, per-recipient queues, receipts to relay.
//! [`backend`] is the seam between routing logic and storage: one trait, [`HubBackend`], with
//! the embedded redb store below ([`HubStore`], `redb_backend`) and PostgreSQL as its
//! implementations.
//!
//! The redb store:
//! Every method that changes state returns only after the change is durable (group commit).
//! Tables:
//! - `nodes`: agency → [`NodeRecord`]
//! - `docs`: doc ID → [`DocRecord`] (envelope, acceptance, body location)
//! - `inline_bodies`: body digest → bytes, for bodies up to [`INLINE_MAX`]; larger bodies are
//!   content-addressed files. `body_refs` counts the documents using each body.
//! - `deliveries`: (doc, recipient) → [`DeliveryRecord`]
//! - `queue`: (recipient, doc) → accepted time — pending deliveries, in document order
//! - `expiry`: (accepted time, doc, recipient) — pending deliveries in age order
//! - `relays`: (sender, doc, recipient) → [`RelayItem`] — answers not yet acknowledged by the sender
//! - `retention`: (all-answered time, doc) — bodies waiting for removal
//! - `answered`: doc → recipients that answered or expired so far
//! - `counters`: name → count, updated in the same commit as the event counted
//! - `held`, `damaged_bodies`, `repairs`: deliveries waiting for a damaged body to be
//!   repaired from its sender (see [`bodies`])
//! - `doc_states`, `statements`, `statement_relays`, … : the statement path (see
//!   [`statements`]); deliveries an update adds live in `deliveries`/`queue`/`expiry` like the
//!   others, with `added_recipients` saying which update added them
//!
//! Layout: [`records`] (the stored types), [`registry`], [`exchange`] (documents, queue,
//! answers, relays), [`retention`], [`statistics`], [`bodies`], [`statements`].

use poros_protocol::{AgencyId, Digest, DocumentId};
use poros_store::{Db, Format, Opened, StoreError};
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

pub mod backend;
mod bodies;
#[cfg(test)]
mod directory_tests;
mod exchange;
mod export;
pub mod pg;
mod records;
mod redb_backend;
mod registry;
mod retention;
pub mod snapshot;
mod statements;
mod statistics;
mod tables;
#[cfg(test)]
mod tests;
pub mod transfer;

pub use backend::{
    CoordinationBackend, ExchangeBackend, HubBackend, HubEvent, NodeChange, RegistryBackend,
    RepairBackend, StatementBackend, StatisticsBackend, StatsView,
};
pub use bodies::{DamageRecord, HeldDelivery};
use exchange::answer_in;
pub use exchange::{Answer, AnswerOutcome};
use records::dec_node;
pub use records::*;
use registry::unchanged_since_read;
pub use registry::{NodeChanged, RegistryRefusal};

pub use snapshot::{HubSnapshot, RecoveryPoint};
pub use statements::{
    HistoryEntry, StatementOutcome, StatementRefusal, StatementRelay, StoredStatement,
};
pub use statistics::StatsSnapshot;

/// Bodies up to this size live inside the database (one fsync per group commit instead of
/// two per file); larger ones are files.
pub use poros_store::INLINE_MAX;

const NODES: TableDefinition<&str, &[u8]> = TableDefinition::new("nodes");
const DOCS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("docs");
const INLINE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("inline_bodies");
const BODY_REFS: TableDefinition<&[u8], u64> = TableDefinition::new("body_refs");
const DELIVERIES: TableDefinition<(&[u8], &str), &[u8]> = TableDefinition::new("deliveries");
const QUEUE: TableDefinition<(&str, &[u8]), u64> = TableDefinition::new("queue");
const EXPIRY: TableDefinition<(u64, &[u8], &str), ()> = TableDefinition::new("expiry");
const RELAYS: TableDefinition<(&str, &[u8], &str), &[u8]> = TableDefinition::new("relays");
const RETENTION: TableDefinition<(u64, &[u8]), ()> = TableDefinition::new("retention");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");
const ANSWERED: TableDefinition<&[u8], u32> = TableDefinition::new("answered");
const TOKENS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("enrolment_tokens");
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
const REVOKED: TableDefinition<&str, &[u8]> = TableDefinition::new("revoked_serials");
/// Serials retired by renewal (CRL reason `superseded`): statements signed before the
/// retirement stay verifiable, unlike those of `revoked_serials`.
const SUPERSEDED: TableDefinition<&str, &[u8]> = TableDefinition::new("superseded_serials");
const MONITORS: TableDefinition<&str, &[u8]> = TableDefinition::new("monitor_credentials");

fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_allocvec(v).map_err(|e| StoreError::Other(format!("encode: {e}")))
}

fn dec<T: for<'a> Deserialize<'a>>(b: &[u8]) -> Result<T, StoreError> {
    postcard::from_bytes(b).map_err(|e| StoreError::Corrupt(format!("decode: {e}")))
}

/// Add to counters; one table open for all of them (opens are a large part of a small job).
fn bump(txn: &redb::WriteTransaction, counts: &[(&str, u64)]) -> Result<(), StoreError> {
    bump_in(&mut txn.open_table(COUNTERS)?, counts)
}

/// [`bump`] in an open `counters` table.
fn bump_in(
    t: &mut redb::Table<'_, &'static str, u64>,
    counts: &[(&str, u64)],
) -> Result<(), StoreError> {
    for (name, by) in counts {
        let v = t.get(*name)?.map(|g| g.value()).unwrap_or(0);
        t.insert(*name, v + by)?;
    }
    Ok(())
}

/// Handle on the hub's durable state.
#[derive(Clone)]
pub struct HubStore {
    db: Db,
    stats: std::sync::Arc<crate::stats::StatsHook>,
    /// Deliveries answered within this many ms of acceptance count as on time.
    on_time_ms: u64,
    /// Working-day calendar and registration window of the business figures.
    business: std::sync::Arc<(crate::business::Calendar, u32)>,
}
/// The hub store's format history (see [`poros_store::format`]): a step is one function and
/// one line here.
pub const FORMAT: Format = Format {
    kind: "hub",
    legacy_table: "nodes",
    steps: &[poros_store::format::RECORD_STEP],
};

impl HubStore {
    /// Open the store file at `path` (creating it if absent): an older store is backed up and
    /// upgraded, a newer one or another kind's refused ([`FORMAT`]); then as [`HubStore::open`].
    pub fn open_file(path: &std::path::Path) -> Result<(Self, Opened), StoreError> {
        let (db, opened) = FORMAT.open(path)?;
        Ok((HubStore::open(db)?, opened))
    }

    /// Open (creating tables) a database opened at this binary's format version; a new store
    /// gets its format record in the same transaction as its tables.
    pub fn open(db: Db) -> Result<Self, StoreError> {
        let path = db.path().to_owned();
        db.write_blocking(move |txn| {
            FORMAT.record(txn, &path)?;
            txn.open_table(NODES)?;
            txn.open_table(DOCS)?;
            txn.open_table(INLINE)?;
            txn.open_table(BODY_REFS)?;
            txn.open_table(DELIVERIES)?;
            txn.open_table(QUEUE)?;
            txn.open_table(EXPIRY)?;
            txn.open_table(RELAYS)?;
            txn.open_table(RETENTION)?;
            txn.open_table(COUNTERS)?;
            txn.open_table(ANSWERED)?;
            txn.open_table(TOKENS)?;
            txn.open_table(AUDIT)?;
            txn.open_table(REVOKED)?;
            txn.open_table(SUPERSEDED)?;
            txn.open_table(MONITORS)?;
            bodies::create_tables(txn)?;
            statements::create_tables(txn)?;
            txn.open_table(crate::stats::STATS)?;
            txn.open_table(crate::stats::SEEN)?;
            txn.open_table(crate::stats::PAPER)?;
            statistics::migrate_rejection_counters(txn)?;
            Ok(())
        })?;
        let stats = std::sync::Arc::new(crate::stats::StatsHook::default());
        db.set_batch_hook(stats.clone());
        Ok(HubStore {
            db,
            stats,
            on_time_ms: 3_600_000,
            business: std::sync::Arc::new((crate::business::Calendar::default(), 1)),
        })
    }

    /// Set the working-day calendar and the registration window (working days) of the
    /// business figures.
    pub fn with_business(mut self, cal: crate::business::Calendar, working_days: u32) -> Self {
        self.business = std::sync::Arc::new((cal, working_days));
        self
    }

    /// Set the on-time target used when counting answers.
    pub fn with_on_time_ms(mut self, ms: u64) -> Self {
        self.on_time_ms = ms;
        self
    }

    /// The underlying database (for statistics).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Every record of a table whose values are encoded records, in key order.
    fn all<K: redb::Key + 'static, T: for<'a> Deserialize<'a>>(
        &self,
        def: TableDefinition<K, &[u8]>,
    ) -> Result<Vec<T>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(def)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (_, v) = e?;
            out.push(dec(v.value())?);
        }
        Ok(out)
    }
}
