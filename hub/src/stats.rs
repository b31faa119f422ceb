//! Exchange statistics: counters per agency, per agency group and nationally, per day, month
//! and year, updated inside the same commit as the event they count, so after any crash they
//! equal a recount of the stored records. Reading a day, a month or a year is one range scan
//! over pre-aggregated keys, never a scan of the document history.
//!
//! Table `stats`: (period, scope, metric) → count, where period is `D2026-11-22`, `M2026-11`
//! or `Y2026`, scope is an agency code, `group:G` or `national`. Table `seen`: (period,
//! agency) → () for agencies connected during the period. Table `paper`: (month, agency) →
//! the agency's signed paper-only counts.

use poros_protocol::AgencyId;
use poros_store::StoreError;
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

pub(crate) const STATS: TableDefinition<(&str, &str, &str), u64> = TableDefinition::new("stats");
pub(crate) const SEEN: TableDefinition<(&str, &str), ()> = TableDefinition::new("seen");
pub(crate) const PAPER: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("paper_reports");

/// Scope of national figures.
pub const NATIONAL: &str = "national";

/// A civil date (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day {
    /// Year.
    pub y: i32,
    /// Month 1–12.
    pub m: u8,
    /// Day 1–31.
    pub d: u8,
}

impl Day {
    /// The UTC day of a Unix-ms instant.
    pub fn of_ms(ms: u64) -> Day {
        let date = time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
            .date();
        Day {
            y: date.year(),
            m: date.month() as u8,
            d: date.day(),
        }
    }

    /// Parse `YYYY-MM-DD`.
    pub fn parse(s: &str) -> Option<Day> {
        let mut it = s.split('-');
        let (y, m, d) = (
            it.next()?.parse().ok()?,
            it.next()?.parse().ok()?,
            it.next()?.parse().ok()?,
        );
        if it.next().is_some() {
            return None;
        }
        let month = time::Month::try_from(m).ok()?;
        time::Date::from_calendar_date(y, month, d).ok()?;
        Some(Day { y, m, d })
    }

    fn date(self) -> time::Date {
        time::Date::from_calendar_date(
            self.y,
            time::Month::try_from(self.m).unwrap_or(time::Month::January),
            self.d,
        )
        .unwrap_or(time::Date::MIN)
    }

    /// The next day.
    pub fn next(self) -> Day {
        let n = self.date().next_day().unwrap_or(time::Date::MAX);
        Day {
            y: n.year(),
            m: n.month() as u8,
            d: n.day(),
        }
    }

    /// Last day of this day's month.
    fn month_end(self) -> Day {
        let days = time::Month::try_from(self.m)
            .unwrap_or(time::Month::January)
            .length(self.y);
        Day { d: days, ..self }
    }

    /// `YYYY-MM-DD`.
    pub fn key(self) -> String {
        format!("D{:04}-{:02}-{:02}", self.y, self.m, self.d)
    }
    fn month_key(self) -> String {
        format!("M{:04}-{:02}", self.y, self.m)
    }
    fn year_key(self) -> String {
        format!("Y{:04}", self.y)
    }
    /// The period keys (day, month, year) an event on this day counts in.
    fn periods(self) -> [String; 3] {
        [self.key(), self.month_key(), self.year_key()]
    }
}

impl std::fmt::Display for Day {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.y, self.m, self.d)
    }
}

/// The period keys (day, month, year) an event at `ms` counts in.
pub(crate) fn periods(ms: u64) -> [String; 3] {
    Day::of_ms(ms).periods()
}

/// Split `[from, to]` into the fewest whole years, months and days.
pub fn cover(from: Day, to: Day) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = from;
    while cur <= to {
        let year_end = Day {
            y: cur.y,
            m: 12,
            d: 31,
        };
        if cur.m == 1 && cur.d == 1 && year_end <= to {
            out.push(cur.year_key());
            cur = year_end.next();
        } else if cur.d == 1 && cur.month_end() <= to {
            out.push(cur.month_key());
            cur = cur.month_end().next();
        } else {
            out.push(cur.key());
            cur = cur.next();
        }
    }
    out
}

/// The scopes an agency's events count in: itself, its group, the nation.
pub(crate) fn scopes(a: &AgencyId) -> [String; 3] {
    [
        a.to_string(),
        format!("group:{}", a.group()),
        NATIONAL.to_string(),
    ]
}

/// Counter increments gathered from the jobs of one group commit and written once, just
/// before that commit (many documents of a batch share the same counters; adding them up in
/// memory turns hundreds of table updates into a few). Installed as the store's batch hook,
/// so the increments still land in the same transaction as the events that caused them.
#[derive(Default)]
pub struct StatsHook {
    pending: std::sync::Mutex<Gathered>,
}

/// Increments by day, scope and metric. Kept by day rather than by period key, and nested so
/// that a counter already gathered is found by `&str` without building its key: adding to it
/// allocates nothing. Expanded into the day's, month's and year's keys once per commit.
type Gathered = HashMap<Day, HashMap<String, HashMap<String, u64>>>;

/// `gathered` as (period, scope, metric) → by, each day counted in its day, month and year.
fn expand(gathered: Gathered) -> HashMap<(String, String, String), u64> {
    let mut out = HashMap::new();
    for (day, scopes) in gathered {
        let periods = day.periods();
        for (scope, metrics) in scopes {
            for (metric, by) in metrics {
                for period in &periods {
                    *out.entry((period.clone(), scope.clone(), metric.clone()))
                        .or_default() += by;
                }
            }
        }
    }
    out
}

impl StatsHook {
    /// The increments gathered so far, removed from the hook ((period, scope, metric) → by):
    /// for a backend that writes them itself, in the transaction that gathered them.
    pub(crate) fn take(&self) -> HashMap<(String, String, String), u64> {
        self.pending
            .lock()
            .map(|mut p| expand(std::mem::take(&mut *p)))
            .unwrap_or_default()
    }

    fn add(&self, ms: u64, scope_list: &[String], metric: &str, by: u64) {
        let Ok(mut p) = self.pending.lock() else {
            return;
        };
        let by_scope = p.entry(Day::of_ms(ms)).or_default();
        for s in scope_list {
            match by_scope.get_mut(s.as_str()) {
                Some(metrics) => match metrics.get_mut(metric) {
                    Some(v) => *v += by,
                    None => {
                        metrics.insert(metric.to_string(), by);
                    }
                },
                None => {
                    by_scope.insert(s.clone(), HashMap::from([(metric.to_string(), by)]));
                }
            }
        }
    }
}

impl poros_store::BatchHook for StatsHook {
    fn before_commit(&self, txn: &redb::WriteTransaction) -> Result<(), StoreError> {
        let pending = match self.pending.lock() {
            Ok(mut p) => std::mem::take(&mut *p),
            Err(_) => return Err(StoreError::Other("statistics lock poisoned".into())),
        };
        if pending.is_empty() {
            return Ok(());
        }
        let mut t = txn.open_table(STATS)?;
        for ((p, s, m), by) in expand(pending) {
            let k = (p.as_str(), s.as_str(), m.as_str());
            let v = t.get(k)?.map(|g| g.value()).unwrap_or(0);
            t.insert(k, v + by)?;
        }
        Ok(())
    }

    fn on_abort(&self) {
        if let Ok(mut p) = self.pending.lock() {
            p.clear();
        }
    }
}

/// Count an accepted document (by its acceptance day).
pub(crate) fn on_accept(
    h: &StatsHook,
    sender: &AgencyId,
    recipients: &[AgencyId],
    accepted_ms: u64,
) {
    h.add(accepted_ms, &scopes(sender), "sent", 1);
    h.add(
        accepted_ms,
        &[sender.to_string()],
        "out_due",
        recipients.len() as u64,
    );
    for r in recipients {
        let mut s = scopes(r).to_vec();
        s.truncate(2); // national "due" is counted once per delivery below
        h.add(accepted_ms, &s, "in_due", 1);
    }
    h.add(
        accepted_ms,
        &[NATIONAL.to_string()],
        "in_due",
        recipients.len() as u64,
    );
}

/// Count deliveries an update added to a document: due from the update's time, like a new
/// document's, but the document is not counted as sent again.
pub(crate) fn on_added(h: &StatsHook, sender: &AgencyId, added: &[AgencyId], added_ms: u64) {
    h.add(
        added_ms,
        &[sender.to_string()],
        "out_due",
        added.len() as u64,
    );
    for r in added {
        h.add(added_ms, &scopes(r), "in_due", 1);
    }
}

/// How a delivery ended, for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Receipt within the on-time target.
    OnTime,
    /// Receipt after it.
    Late,
    /// Signed rejection.
    Rejected,
    /// Expired at the hub.
    Expired,
}

impl End {
    fn metric(self) -> &'static str {
        match self {
            End::OnTime => "ontime",
            End::Late => "late",
            End::Rejected => "rejected",
            End::Expired => "expired",
        }
    }
}

/// Count an answered or expired delivery, in the period of its acceptance (when it fell due).
pub(crate) fn on_end(
    h: &StatsHook,
    sender: &AgencyId,
    recipient: &AgencyId,
    accepted_ms: u64,
    answered_ms: u64,
    end: End,
    reason: Option<poros_protocol::ReasonCode>,
) {
    let m = end.metric();
    h.add(accepted_ms, &scopes(recipient), &format!("in_{m}"), 1);
    h.add(accepted_ms, &[sender.to_string()], &format!("out_{m}"), 1);
    if matches!(end, End::OnTime | End::Late) {
        h.add(
            accepted_ms,
            &scopes(recipient),
            "in_latency_ms",
            answered_ms.saturating_sub(accepted_ms),
        );
        // The document's business life starts at its delivery.
        h.add(
            answered_ms,
            &scopes(recipient),
            crate::business::DELIVERED,
            1,
        );
    }
    if let Some(reason) = reason {
        h.add(accepted_ms, &scopes(recipient), &format!("rej:{reason}"), 1);
    }
}

/// Whether a recipient's copy has ended its business life (nothing more is expected of it).
fn ended(t: &poros_protocol::Track) -> bool {
    t.status.is_some_and(|s| s.is_final()) || t.withdrawn || t.replaced_by.is_some() || t.removed
}

/// Count what a statement changed in one recipient's business life (`before` → `after`),
/// for the document delivered to it at `delivered_ms`: registration within the working-day
/// window, completion time, and the end of the outstanding period.
pub(crate) fn on_business(
    h: &StatsHook,
    recipient: &AgencyId,
    delivered_ms: u64,
    now_ms: u64,
    before: &poros_protocol::Track,
    after: &poros_protocol::Track,
    window: (&crate::business::Calendar, u32),
) {
    use crate::business as b;
    use poros_protocol::BusinessStatus::{Completed, Registered};
    let scopes = scopes(recipient);
    if after.status == Some(Registered)
        && before.status != Some(Registered)
        && now_ms <= window.0.deadline_ms(delivered_ms, window.1)
    {
        h.add(delivered_ms, &scopes, b::REGISTERED_IN_WINDOW, 1);
    }
    if after.status == Some(Completed) && before.status != Some(Completed) {
        let took = now_ms.saturating_sub(delivered_ms);
        h.add(
            now_ms,
            &scopes,
            &b::done_bucket_metric(b::done_bucket(took)),
            1,
        );
        h.add(now_ms, &scopes, b::DONE_SECS, took / 1000);
    }
    if ended(after) && !ended(before) {
        h.add(delivered_ms, &scopes, b::CLOSED, 1);
    }
}

/// Mark an agency as seen (connected) on the day of `ms`. A key already there is left
/// alone: redb copies a leaf and its branches for every insert, even of a key it holds, and
/// after a restart all agencies reconnect within seconds, most of them seen already that day.
pub(crate) fn on_seen(
    txn: &redb::WriteTransaction,
    agency: &AgencyId,
    ms: u64,
) -> Result<(), StoreError> {
    let mut t = txn.open_table(SEEN)?;
    for p in periods(ms) {
        let key = (p.as_str(), agency.as_str());
        if t.get(key)?.is_none() {
            t.insert(key, ())?;
        }
    }
    Ok(())
}

/// A paper-only count reported by an agency for one month.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaperCount {
    /// Official documents sent on paper only.
    pub sent: u64,
    /// Official documents received on paper only.
    pub received: u64,
    /// The agency's signed count (postcard of the signed blob: a `PaperCount` statement under
    /// `poros/statement/v1`, or a `poros/1` report under `poros/paper/v1`), kept as evidence.
    pub signed: Vec<u8>,
}

impl PaperCount {
    /// The stored form (postcard).
    pub(crate) fn encode(&self) -> Result<Vec<u8>, StoreError> {
        postcard::to_allocvec(self).map_err(|e| StoreError::Other(e.to_string()))
    }

    /// From the stored form.
    pub(crate) fn decode(b: &[u8]) -> Result<PaperCount, StoreError> {
        postcard::from_bytes(b).map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}

/// Store (or replace) an agency's paper counts for `month` (`YYYY-MM`), updating aggregates by
/// the difference so a corrected report does not double count.
pub(crate) fn on_paper(
    txn: &redb::WriteTransaction,
    agency: &AgencyId,
    month: &str,
    count: &PaperCount,
) -> Result<(), StoreError> {
    let mut p = txn.open_table(PAPER)?;
    let old = p
        .get((month, agency.as_str()))?
        .map(|g| PaperCount::decode(g.value()))
        .transpose()?;
    p.insert((month, agency.as_str()), count.encode()?.as_slice())?;
    drop(p);
    let mut t = txn.open_table(STATS)?;
    for ((period, s, metric), by) in paper_changes(agency, month, old.as_ref(), count) {
        let k = (period.as_str(), s.as_str(), metric);
        let v = t.get(k)?.map(|g| g.value()).unwrap_or(0);
        t.insert(k, v.saturating_add_signed(by))?;
    }
    Ok(())
}

/// What replacing an agency's paper counts for `month` (`old`, if it had reported) with
/// `new` changes in the aggregates: ((period, scope, metric), signed difference), for the
/// month and its year in every scope of the agency (a zero difference included, so every
/// key exists once reported).
pub(crate) fn paper_changes(
    agency: &AgencyId,
    month: &str,
    old: Option<&PaperCount>,
    new: &PaperCount,
) -> Vec<((String, String, &'static str), i64)> {
    let (os, or) = old.map(|o| (o.sent, o.received)).unwrap_or((0, 0));
    let year = &month[..4];
    let mut out = Vec::with_capacity(12);
    for period in [format!("M{month}"), format!("Y{year}")] {
        for s in scopes(agency) {
            for (metric, new, old) in [
                ("paper_sent", new.sent, os),
                ("paper_received", new.received, or),
            ] {
                let by = (i128::from(new) - i128::from(old))
                    .clamp(i128::from(i64::MIN), i128::from(i64::MAX));
                out.push(((period.clone(), s.clone(), metric), by as i64));
            }
        }
    }
    out
}

/// Summed counters per scope over a set of periods.
pub type Sums = HashMap<String, BTreeMap<String, u64>>;

/// Sum every counter of every scope over `periods` (one range scan per period).
pub fn sums(
    r: &redb::ReadTransaction,
    periods: &[String],
    only: Option<&str>,
) -> Result<Sums, StoreError> {
    let t = r.open_table(STATS)?;
    let mut out: Sums = HashMap::new();
    for p in periods {
        let iter = match only {
            Some(scope) => t.range((p.as_str(), scope, "")..=(p.as_str(), scope, "\u{10ffff}"))?,
            None => t.range((p.as_str(), "", "")..=(p.as_str(), "\u{10ffff}", ""))?,
        };
        for e in iter {
            let (k, v) = e?;
            let (_, scope, metric) = k.value();
            add_sum(&mut out, scope, metric, v.value());
        }
    }
    Ok(out)
}

/// Add one stored count (of one period) to the sums.
pub(crate) fn add_sum(out: &mut Sums, scope: &str, metric: &str, v: u64) {
    *out.entry(scope.to_string())
        .or_default()
        .entry(metric.to_string())
        .or_default() += v;
}

/// Paper-only counts of the given months (`YYYY-MM`) per agency, group and nation, read from
/// the reports themselves (a few rows per month).
pub fn paper_sums(r: &redb::ReadTransaction, months: &[String]) -> Result<Sums, StoreError> {
    let t = r.open_table(PAPER)?;
    let mut out: Sums = HashMap::new();
    for m in months {
        for e in t.range((m.as_str(), "")..=(m.as_str(), "\u{10ffff}"))? {
            let (k, v) = e?;
            add_paper(&mut out, k.value().1, v.value())?;
        }
    }
    Ok(out)
}

/// Add one stored paper report (of `agency`, as stored) to the sums of the agency's scopes;
/// a report under a key that is no agency code is passed over.
pub(crate) fn add_paper(out: &mut Sums, agency: &str, stored: &[u8]) -> Result<(), StoreError> {
    let Ok(agency) = AgencyId::parse(agency) else {
        return Ok(());
    };
    let c = PaperCount::decode(stored)?;
    for s in scopes(&agency) {
        let e = out.entry(s).or_default();
        *e.entry("paper_sent".into()).or_default() += c.sent;
        *e.entry("paper_received".into()).or_default() += c.received;
    }
    Ok(())
}

/// Agencies seen (connected) in any of `periods`.
pub fn seen(r: &redb::ReadTransaction, periods: &[String]) -> Result<HashSet<String>, StoreError> {
    let t = r.open_table(SEEN)?;
    let mut out = HashSet::new();
    for p in periods {
        for e in t.range((p.as_str(), "")..=(p.as_str(), "\u{10ffff}"))? {
            let (k, _) = e?;
            out.insert(k.value().1.to_string());
        }
    }
    Ok(out)
}

/// The statistics counted again from the stored documents and delivery records, to check the
/// live counters: every backend feeds it each document with its deliveries.
pub(crate) struct Recount {
    on_time_ms: u64,
    out: Sums,
}

impl Recount {
    /// A recount where answers within `on_time_ms` of falling due count as on time.
    pub(crate) fn new(on_time_ms: u64) -> Recount {
        Recount {
            on_time_ms,
            out: HashMap::new(),
        }
    }

    fn add(&mut self, scope: &str, metric: &str, by: u64) {
        add_sum(&mut self.out, scope, metric, by);
    }

    /// One document of `sender` with each of its deliveries: the recipient, when it fell due
    /// (acceptance, or the update that added it), and its record if one is stored.
    pub(crate) fn doc(
        &mut self,
        sender: &AgencyId,
        deliveries: &[(AgencyId, u64, Option<crate::state::DeliveryRecord>)],
    ) {
        use crate::state::DeliveryEnd;
        let sender_group = format!("group:{}", sender.group());
        self.add(sender.as_str(), "sent", 1);
        self.add(&sender_group, "sent", 1);
        self.add(NATIONAL, "sent", 1);
        self.add(sender.as_str(), "out_due", deliveries.len() as u64);
        for (rcpt, due_ms, d) in deliveries {
            let rcpt_group = format!("group:{}", rcpt.group());
            self.add(rcpt.as_str(), "in_due", 1);
            self.add(&rcpt_group, "in_due", 1);
            self.add(NATIONAL, "in_due", 1);
            let Some(d) = d else {
                continue;
            };
            let m = match d.state.end() {
                None => continue,
                Some(DeliveryEnd::Delivered)
                    if d.answered_ms.unwrap_or(0).saturating_sub(*due_ms) <= self.on_time_ms =>
                {
                    "ontime"
                }
                Some(DeliveryEnd::Delivered) => "late",
                Some(DeliveryEnd::Rejected(r)) => {
                    let by = format!("rej:{}", r.code);
                    for scope in scopes(rcpt) {
                        self.add(&scope, &by, 1);
                    }
                    "rejected"
                }
                Some(DeliveryEnd::Expired | DeliveryEnd::Lost(_)) => "expired",
            };
            self.add(rcpt.as_str(), &format!("in_{m}"), 1);
            self.add(&rcpt_group, &format!("in_{m}"), 1);
            self.add(NATIONAL, &format!("in_{m}"), 1);
            self.add(sender.as_str(), &format!("out_{m}"), 1);
        }
    }

    /// The sums counted.
    pub(crate) fn finish(self) -> Sums {
        self.out
    }
}

/// Insert pre-computed counters in one commit: (period key, scope, metric, value). For loading
/// history (benchmarks, migrations); live counting goes through the event functions.
pub fn bulk_load(
    db: &poros_store::Db,
    rows: Vec<(String, String, String, u64)>,
) -> Result<(), StoreError> {
    let rows = std::sync::Arc::new(rows);
    db.write_blocking(move |txn| {
        let mut t = txn.open_table(STATS)?;
        for (p, s, m, v) in rows.iter() {
            t.insert((p.as_str(), s.as_str(), m.as_str()), *v)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Day {
        Day::parse(s).unwrap()
    }

    #[test]
    fn ranges_use_the_coarsest_periods() {
        assert_eq!(cover(d("2026-01-01"), d("2026-12-31")), vec!["Y2026"]);
        assert_eq!(cover(d("2026-11-01"), d("2026-11-30")), vec!["M2026-11"]);
        assert_eq!(
            cover(d("2026-10-30"), d("2026-12-02")),
            vec![
                "D2026-10-30",
                "D2026-10-31",
                "M2026-11",
                "D2026-12-01",
                "D2026-12-02"
            ]
        );
        assert_eq!(cover(d("2024-02-28"), d("2024-03-01")).len(), 3); // leap day
        assert!(cover(d("2026-02-01"), d("2026-01-01")).is_empty());
        assert_eq!(
            cover(d("2025-12-31"), d("2027-01-01")),
            vec!["D2025-12-31", "Y2026", "D2027-01-01"]
        );
        assert!(Day::parse("2026-02-30").is_none());
        assert_eq!(Day::of_ms(0).to_string(), "1970-01-01");
    }
}
