//! Statistics access: connection and paper-count records, overdue deliveries, the recount
//! that checks the live counters, and reads of the counter tables (see `crate::stats`).

use super::*;
use std::collections::HashSet;

/// Versions of derived data the store has rebuilt once: (name, version).
pub(super) const STORE_META: TableDefinition<&str, u64> = TableDefinition::new("store_meta");

/// The rejection counters (`rej:<reason>`) are keyed by the reason code the recipient signed.
/// Stores written by earlier versions keyed them by categories of the reason's wording; they
/// are recounted once from the stored rejections, so the statistics check keeps holding.
const REJECTION_CODES: (&str, u64) = ("rejection_counters_by_code", 1);

/// Rebuild the rejection counters from the stored rejections, once per store (see
/// [`REJECTION_CODES`]). Runs at open, in one transaction; nothing else changes.
pub(super) fn migrate_rejection_counters(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    let mut meta = txn.open_table(STORE_META)?;
    if meta.get(REJECTION_CODES.0)?.map(|g| g.value()) >= Some(REJECTION_CODES.1) {
        return Ok(());
    }
    let mut stats = txn.open_table(crate::stats::STATS)?;
    let old: Vec<(String, String, String)> = stats
        .iter()?
        .filter_map(|e| {
            let (k, _) = e.ok()?;
            let (p, s, m) = k.value();
            m.starts_with("rej:")
                .then(|| (p.to_string(), s.to_string(), m.to_string()))
        })
        .collect();
    for (p, s, m) in &old {
        stats.remove((p.as_str(), s.as_str(), m.as_str()))?;
    }
    let mut counts: HashMap<(String, String, String), u64> = HashMap::new();
    let docs = txn.open_table(DOCS)?;
    let dels = txn.open_table(DELIVERIES)?;
    for e in dels.iter()? {
        let (k, v) = e?;
        let (doc, rcpt) = k.value();
        let d: DeliveryRecord = dec(v.value())?;
        let Some(DeliveryEnd::Rejected(reason)) = d.state.end() else {
            continue;
        };
        let Some(rec) = docs
            .get(doc)?
            .map(|g| dec::<DocRecord>(g.value()))
            .transpose()?
        else {
            continue;
        };
        let Ok(rcpt) = AgencyId::parse(rcpt) else {
            continue;
        };
        let metric = format!("rej:{}", reason.code);
        for p in crate::stats::periods(rec.accepted_ms) {
            for s in crate::stats::scopes(&rcpt) {
                *counts.entry((p.clone(), s, metric.clone())).or_default() += 1;
            }
        }
    }
    for ((p, s, m), n) in &counts {
        stats.insert((p.as_str(), s.as_str(), m.as_str()), *n)?;
    }
    meta.insert(REJECTION_CODES.0, REJECTION_CODES.1)?;
    if !old.is_empty() || !counts.is_empty() {
        tracing::info!(
            removed = old.len(),
            written = counts.len(),
            "rejection counters recounted by reason code (once, after an upgrade)"
        );
    }
    Ok(())
}

impl HubStore {
    /// Mark agencies as seen (connected) now.
    pub async fn mark_seen(&self, agencies: Vec<AgencyId>, now_ms: u64) -> Result<(), StoreError> {
        self.db
            .write(move |txn| {
                for a in &agencies {
                    crate::stats::on_seen(txn, a, now_ms)?;
                }
                Ok(())
            })
            .await
    }

    /// Store an agency's paper-only counts for a month.
    pub async fn put_paper(
        &self,
        agency: AgencyId,
        month: String,
        count: crate::stats::PaperCount,
    ) -> Result<(), StoreError> {
        self.db
            .write(move |txn| crate::stats::on_paper(txn, &agency, &month, &count))
            .await
    }

    /// Pending deliveries accepted in `[from_ms, to_ms)` and older than `older_than_ms`,
    /// counted per recipient (the pending set, not the history, is scanned).
    pub fn overdue(
        &self,
        from_ms: u64,
        to_ms: u64,
        older_than_ms: u64,
    ) -> Result<HashMap<String, u64>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(EXPIRY)?;
        let lo: &[u8] = &[];
        let mut out: HashMap<String, u64> = HashMap::new();
        let end = to_ms.min(older_than_ms);
        if end <= from_ms {
            return Ok(out);
        }
        for e in t.range((from_ms, lo, "")..(end, lo, ""))? {
            let (k, _) = e?;
            *out.entry(k.value().2.to_string()).or_default() += 1;
        }
        Ok(out)
    }

    /// Recount the statistics of `periods` from the stored delivery records (slow: scans the
    /// whole history; used to check the live counters).
    pub fn recount(&self, on_time_ms: u64) -> Result<crate::stats::Sums, StoreError> {
        let r = self.db.read()?;
        let docs = r.open_table(DOCS)?;
        let dels = r.open_table(DELIVERIES)?;
        let mut count = crate::stats::Recount::new(on_time_ms);
        for e in docs.iter()? {
            let (k, v) = e?;
            let rec: DocRecord = dec(v.value())?;
            // Deliveries an update added count from the update's time, like the live hooks.
            let added = statements::added_for_recount(&r, k.value())?;
            let all = rec
                .recipients
                .iter()
                .map(|a| (a.clone(), rec.accepted_ms))
                .chain(added);
            let mut deliveries = Vec::with_capacity(rec.recipients.len());
            for (rcpt, due_ms) in all {
                let d = dels
                    .get((k.value(), rcpt.as_str()))?
                    .map(|g| dec::<DeliveryRecord>(g.value()))
                    .transpose()?;
                deliveries.push((rcpt, due_ms, d));
            }
            count.doc(&rec.sender, &deliveries);
        }
        Ok(count.finish())
    }

    /// Counter values.
    pub fn counters(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(COUNTERS)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (k, v) = e?;
            out.push((k.value().to_string(), v.value()));
        }
        Ok(out)
    }
}

/// One consistent read of the statistics tables: every figure of a report comes from the same
/// commit, and callers never open the tables themselves.
pub struct StatsSnapshot(redb::ReadTransaction);

impl StatsSnapshot {
    /// Every counter of every scope (or of `scope` only) summed over `periods`.
    pub fn sums(
        &self,
        periods: &[String],
        scope: Option<&str>,
    ) -> Result<crate::stats::Sums, StoreError> {
        crate::stats::sums(&self.0, periods, scope)
    }

    /// Paper-only counts of the given months (`YYYY-MM`) per agency, group and nation.
    pub fn paper_sums(&self, months: &[String]) -> Result<crate::stats::Sums, StoreError> {
        crate::stats::paper_sums(&self.0, months)
    }

    /// Agencies seen (connected) in any of `periods`.
    pub fn seen(&self, periods: &[String]) -> Result<HashSet<String>, StoreError> {
        crate::stats::seen(&self.0, periods)
    }
}

impl HubStore {
    /// A consistent read of the statistics (counters, paper counts, connections).
    pub fn stats_snapshot(&self) -> Result<StatsSnapshot, StoreError> {
        Ok(StatsSnapshot(self.db.read()?))
    }
}

/// The counters and statistics as neutral rows (see [`super::transfer`]), in key order.
pub(super) fn export(
    r: &redb::ReadTransaction,
    out: &mut super::transfer::RowSink<'_>,
) -> Result<(), StoreError> {
    use super::transfer::{Row, Table};
    for e in r.open_table(COUNTERS)?.iter()? {
        let (k, v) = e?;
        out.row(
            Table::Counters,
            Row::Count {
                name: k.value().to_string(),
                value: v.value(),
            },
        )?;
    }
    for e in r.open_table(crate::stats::STATS)?.iter()? {
        let (k, v) = e?;
        let (period, scope, metric) = k.value();
        out.row(
            Table::Stats,
            Row::Stat {
                period: period.to_string(),
                scope: scope.to_string(),
                metric: metric.to_string(),
                value: v.value(),
            },
        )?;
    }
    for e in r.open_table(crate::stats::SEEN)?.iter()? {
        let (k, _) = e?;
        let (period, agency) = k.value();
        out.row(
            Table::Seen,
            Row::Seen {
                period: period.to_string(),
                agency: agency.to_string(),
            },
        )?;
    }
    for e in r.open_table(crate::stats::PAPER)?.iter()? {
        let (k, v) = e?;
        let (month, agency) = k.value();
        out.row(
            Table::PaperReports,
            Row::Paper {
                month: month.to_string(),
                agency: agency.to_string(),
                record: v.value().to_vec(),
            },
        )?;
    }
    Ok(())
}
