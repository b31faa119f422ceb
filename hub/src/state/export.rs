//! The redb store read out as the neutral rows of [`super::transfer`], every table from one
//! read transaction (one consistent snapshot), in copy order. Each area's tables are read by
//! the module that owns them (`registry`, `exchange`, `statements`, `bodies`, `statistics`);
//! this file only puts them in order.

use super::transfer::{Batch, RowSink, Table};
use super::*;
use redb::ReadableTableMetadata;
use std::collections::BTreeMap;

impl HubStore {
    /// Read every table out as batches of rows, in [`Table::ALL`] order (large bodies are
    /// files, not rows: see [`crate::migrate`]). Blocking: run it off the async threads.
    pub fn export(
        &self,
        sink: &mut dyn FnMut(Batch) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let r = self.db.read()?;
        let mut out = RowSink::new(sink);
        registry::export(&r, &mut out)?;
        let held = bodies::held_rows(&r)?;
        exchange::export(&r, &held, &mut out)?;
        statements::export(&r, &mut out)?;
        bodies::export(&r, &mut out)?;
        statistics::export(&r, &mut out)?;
        out.flush()
    }

    /// How many rows each table will give (for progress; large bodies are not counted).
    pub fn export_sizes(&self) -> Result<BTreeMap<Table, u64>, StoreError> {
        let r = self.db.read()?;
        let mut m = BTreeMap::new();
        m.insert(Table::Nodes, r.open_table(NODES)?.len()?);
        m.insert(Table::Tokens, r.open_table(TOKENS)?.len()?);
        m.insert(Table::Audit, r.open_table(AUDIT)?.len()?);
        m.insert(Table::Revoked, r.open_table(REVOKED)?.len()?);
        m.insert(Table::Superseded, r.open_table(SUPERSEDED)?.len()?);
        m.insert(Table::Monitors, r.open_table(MONITORS)?.len()?);
        m.insert(Table::Docs, r.open_table(DOCS)?.len()?);
        m.insert(Table::Deliveries, r.open_table(DELIVERIES)?.len()?);
        let held = bodies::held_rows(&r)?.len() as u64;
        m.insert(Table::Queue, r.open_table(QUEUE)?.len()? + held);
        m.insert(Table::Answered, r.open_table(ANSWERED)?.len()?);
        m.insert(Table::InlineBodies, r.open_table(INLINE)?.len()?);
        m.insert(Table::BodyRefs, r.open_table(BODY_REFS)?.len()?);
        m.insert(Table::Relays, r.open_table(RELAYS)?.len()?);
        m.insert(Table::Retention, r.open_table(RETENTION)?.len()?);
        m.insert(Table::Counters, r.open_table(COUNTERS)?.len()?);
        statements::sizes(&r, &mut m)?;
        bodies::sizes(&r, &mut m)?;
        m.insert(Table::Stats, r.open_table(crate::stats::STATS)?.len()?);
        m.insert(Table::Seen, r.open_table(crate::stats::SEEN)?.len()?);
        m.insert(
            Table::PaperReports,
            r.open_table(crate::stats::PAPER)?.len()?,
        );
        Ok(m)
    }
}
