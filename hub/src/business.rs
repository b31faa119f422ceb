//! The business figures agencies are judged by, once documents are delivered: the share of
//! received documents registered (`03`) within the configured number of working days, the
//! median time from delivery to completion (`06`), and the documents still outstanding
//! (delivered, neither completed nor rejected nor given up) by age.
//!
//! Kept as counters in the statistics table, in the same commit as the statement or receipt
//! that changes them (see [`crate::stats`]), so reading them is a range scan of
//! pre-aggregated keys, never a scan of the history:
//! - `biz_delivered`, `biz_registered_in_window`: in the period of the delivery;
//! - `biz_closed`: in the period of the delivery, +1 when the document's life there ends;
//!   outstanding by age sums `delivered − closed` over the days of each age band;
//! - `biz_done_b<k>`: completions whose delivery-to-completion time falls in bucket `k` of
//!   [`DONE_BUCKETS_SECS`], in the period of the completion. The median is interpolated inside
//!   its bucket (buckets are narrow where times are usually short).

use crate::stats::Day;
use std::collections::BTreeMap;

/// Upper bounds (seconds) of the completion-time buckets; the last bucket is open.
pub const DONE_BUCKETS_SECS: [u64; 16] = [
    60,
    300,
    900,
    1_800,
    3_600,
    2 * 3_600,
    4 * 3_600,
    8 * 3_600,
    86_400,
    2 * 86_400,
    3 * 86_400,
    5 * 86_400,
    7 * 86_400,
    14 * 86_400,
    30 * 86_400,
    60 * 86_400,
];

/// Age bands of outstanding documents: label and the range of whole days since delivery
/// (inclusive lower bound, exclusive upper bound; `None` = open).
pub const AGE_BANDS: [(&str, u32, Option<u32>); 5] = [
    ("under_1d", 0, Some(1)),
    ("1_to_3d", 1, Some(3)),
    ("3_to_7d", 3, Some(7)),
    ("7_to_30d", 7, Some(30)),
    ("over_30d", 30, None),
];

/// Documents delivered (counter name).
pub const DELIVERED: &str = "biz_delivered";
/// Registered within the window.
pub const REGISTERED_IN_WINDOW: &str = "biz_registered_in_window";
/// Ended (completed, rejected, withdrawn, replaced or removed) — for outstanding.
pub const CLOSED: &str = "biz_closed";

/// Sum of delivery-to-completion times, seconds (for the histogram's `_sum`).
pub const DONE_SECS: &str = "biz_done_secs";

/// The counter of completion-time bucket `k`.
pub fn done_bucket_metric(k: usize) -> String {
    format!("biz_done_b{k:02}")
}

/// The bucket a delivery-to-completion time falls in.
pub fn done_bucket(ms: u64) -> usize {
    let secs = ms / 1000;
    DONE_BUCKETS_SECS
        .iter()
        .position(|&b| secs < b)
        .unwrap_or(DONE_BUCKETS_SECS.len())
}

/// The median completion time in seconds, interpolated inside its bucket, from the bucket
/// counts of a scope (`biz_done_bNN` → count). `None` when nothing was completed.
pub fn median_secs(m: &BTreeMap<String, u64>) -> Option<u64> {
    let counts: Vec<u64> = (0..=DONE_BUCKETS_SECS.len())
        .map(|k| m.get(&done_bucket_metric(k)).copied().unwrap_or(0))
        .collect();
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    // The lower median's rank (1-based).
    let rank = total.div_ceil(2);
    let mut below = 0;
    for (k, &c) in counts.iter().enumerate() {
        if below + c >= rank {
            let lo = if k == 0 { 0 } else { DONE_BUCKETS_SECS[k - 1] };
            let Some(&hi) = DONE_BUCKETS_SECS.get(k) else {
                // The open bucket: its lower bound is all that is known.
                return Some(lo);
            };
            let into = (rank - below) as f64 / c as f64;
            return Some(lo + ((hi - lo) as f64 * into).round() as u64);
        }
        below += c;
    }
    None
}

/// Working-day calendar: weekends and listed holidays do not count.
#[derive(Clone, Debug, Default)]
pub struct Calendar {
    /// Offset of the agencies' civil time from UTC, seconds (e.g. 25200 for UTC+7).
    pub utc_offset_secs: i64,
    /// Public holidays (local dates).
    pub holidays: std::collections::BTreeSet<Day>,
}

const DAY_MS: u64 = 86_400_000;

impl Calendar {
    /// The calendar of `[monitoring]` (holidays were checked when the file was loaded).
    pub fn of_config(m: &poros_config::Monitoring) -> Calendar {
        Calendar {
            utc_offset_secs: m.utc_offset_secs,
            holidays: m.holidays.iter().filter_map(|h| Day::parse(h)).collect(),
        }
    }

    fn is_working(&self, local_day_index: i64) -> bool {
        // 1970-01-01 was a Thursday: index 0 → Thursday.
        let weekday = (local_day_index + 3).rem_euclid(7); // 0 = Monday
        if weekday >= 5 {
            return false;
        }
        let day = Day::of_ms((local_day_index.max(0) as u64) * DAY_MS);
        !self.holidays.contains(&day)
    }

    /// The instant `working_days` working days after `from_ms`: time on weekends and holidays
    /// does not run (a document delivered on Friday 15:00 with one working day is due on
    /// Monday 15:00; one delivered on Saturday is due at the end of Monday).
    pub fn deadline_ms(&self, from_ms: u64, working_days: u32) -> u64 {
        let off = self.utc_offset_secs * 1000;
        let mut t = from_ms as i64 + off;
        let mut left = working_days as i64 * DAY_MS as i64;
        // A year of consecutive holidays at most; never loops forever on a bad calendar.
        for _ in 0..(working_days as usize * 7 + 400) {
            if left == 0 {
                break;
            }
            let day = t.div_euclid(DAY_MS as i64);
            let next_midnight = (day + 1) * DAY_MS as i64;
            if self.is_working(day) {
                let step = left.min(next_midnight - t);
                t += step;
                left -= step;
            } else {
                t = next_midnight;
            }
        }
        (t - off).max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> u64 {
        // "YYYY-MM-DD HH:MM" in UTC.
        let (d, hm) = s.split_once(' ').unwrap();
        let day = Day::parse(d).unwrap();
        let (h, m) = hm.split_once(':').unwrap();
        let date =
            time::Date::from_calendar_date(day.y, time::Month::try_from(day.m).unwrap(), day.d)
                .unwrap();
        let t = date
            .with_hms(h.parse().unwrap(), m.parse().unwrap(), 0)
            .unwrap()
            .assume_utc();
        t.unix_timestamp() as u64 * 1000
    }

    #[test]
    fn one_working_day_skips_weekends_and_holidays() {
        let cal = Calendar::default();
        // 2026-12-04 is a Friday.
        assert_eq!(
            cal.deadline_ms(ms("2026-12-02 10:00"), 1),
            ms("2026-12-03 10:00")
        );
        assert_eq!(
            cal.deadline_ms(ms("2026-12-04 15:00"), 1),
            ms("2026-12-07 15:00")
        );
        assert_eq!(
            cal.deadline_ms(ms("2026-12-05 09:00"), 1),
            ms("2026-12-08 00:00")
        );
        let mut cal = Calendar::default();
        cal.holidays.insert(Day::parse("2026-12-07").unwrap());
        assert_eq!(
            cal.deadline_ms(ms("2026-12-04 15:00"), 1),
            ms("2026-12-08 15:00")
        );
        // In UTC+7, Friday 20:00 UTC is already Saturday 03:00 local: due Monday 24:00 local.
        let cal = Calendar {
            utc_offset_secs: 7 * 3600,
            ..Calendar::default()
        };
        assert_eq!(
            cal.deadline_ms(ms("2026-12-04 20:00"), 1),
            ms("2026-12-08 00:00") - 7 * 3_600_000
        );
    }

    #[test]
    fn median_is_interpolated_in_its_bucket() {
        let mut m = BTreeMap::new();
        assert_eq!(median_secs(&m), None);
        // Three completions under a minute, one in [1 day, 2 days).
        m.insert(done_bucket_metric(done_bucket(10_000)), 3);
        m.insert(done_bucket_metric(done_bucket(90_000_000)), 1);
        assert_eq!(done_bucket(10_000), 0);
        // Rank 2 of 3 in bucket [0, 60 s).
        assert_eq!(median_secs(&m), Some(40));
        m.insert(done_bucket_metric(done_bucket(90_000_000)), 5);
        // Rank 4 of 8: the first of the five in [86400, 172800).
        assert_eq!(median_secs(&m), Some(86_400 + 17_280));
        assert_eq!(done_bucket(u64::MAX), DONE_BUCKETS_SECS.len());
    }
}
