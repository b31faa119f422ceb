//! How long durable commits take, as a histogram: what a store's `/metrics` shows as
//! `poros_store_commit_seconds`, for the embedded store and for PostgreSQL alike.
//!
//! Recording is a few relaxed atomic additions, cheap enough for every commit. A reader takes
//! a [`CommitTimes`] snapshot; the difference of two snapshots is what happened between them,
//! which is how a benchmark gets a phase's commit durations without sampling anything.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in microseconds: 0.25 ms doubling to 1.024 s. Commits above
/// the last bound fall in the implicit `+Inf` bucket.
pub const COMMIT_BUCKETS_MICROS: [u64; 13] = [
    250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 512_000,
    1_024_000,
];

const SLOTS: usize = COMMIT_BUCKETS_MICROS.len() + 1;

/// The live histogram a store records each commit in.
#[derive(Debug, Default)]
pub struct CommitHistogram {
    /// Commits per bucket (not cumulative); the last slot is `+Inf`.
    counts: [AtomicU64; SLOTS],
    sum_micros: AtomicU64,
}

impl CommitHistogram {
    /// Records one commit that took `took`.
    pub fn observe(&self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let slot = COMMIT_BUCKETS_MICROS
            .iter()
            .position(|&le| micros <= le)
            .unwrap_or(SLOTS - 1);
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn snapshot(&self) -> CommitTimes {
        CommitTimes {
            counts: std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed)),
            sum_micros: self.sum_micros.load(Ordering::Relaxed),
        }
    }
}

/// A snapshot of a [`CommitHistogram`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitTimes {
    /// Commits per bucket of [`COMMIT_BUCKETS_MICROS`] (not cumulative), then `+Inf`.
    pub counts: [u64; SLOTS],
    /// Total time of those commits, in microseconds.
    pub sum_micros: u64,
}

impl CommitTimes {
    /// Number of commits.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Cumulative counts in Prometheus' form: `(le in seconds, commits ≤ le)`, ending with
    /// `(f64::INFINITY, count)`.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        self.counts
            .iter()
            .enumerate()
            .map(|(i, n)| {
                total += n;
                let le = COMMIT_BUCKETS_MICROS
                    .get(i)
                    .map_or(f64::INFINITY, |&us| us as f64 / 1e6);
                (le, total)
            })
            .collect()
    }

    /// What happened between `earlier` and this snapshot (counts never go down).
    pub fn since(&self, earlier: &CommitTimes) -> CommitTimes {
        CommitTimes {
            counts: std::array::from_fn(|i| self.counts[i].saturating_sub(earlier.counts[i])),
            sum_micros: self.sum_micros.saturating_sub(earlier.sum_micros),
        }
    }

    /// The `q` quantile (0..=1) in microseconds, interpolated linearly inside its bucket as
    /// Prometheus' `histogram_quantile` does; `None` without commits or when it falls in
    /// `+Inf`.
    pub fn quantile_micros(&self, q: f64) -> Option<f64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * count as f64;
        let mut below = 0u64;
        for (i, &n) in self.counts.iter().enumerate() {
            if n > 0 && (below + n) as f64 >= rank {
                let hi = *COMMIT_BUCKETS_MICROS.get(i)? as f64;
                let lo = i
                    .checked_sub(1)
                    .map_or(0.0, |j| COMMIT_BUCKETS_MICROS[j] as f64);
                return Some(lo + (hi - lo) * (rank - below as f64) / n as f64);
            }
            below += n;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(x: f64) -> Duration {
        Duration::from_secs_f64(x / 1000.0)
    }

    #[test]
    fn each_commit_lands_in_the_first_bucket_that_holds_it() {
        let h = CommitHistogram::default();
        for took in [ms(0.1), ms(0.25), ms(0.26), ms(3.0), ms(5000.0)] {
            h.observe(took);
        }
        let t = h.snapshot();
        assert_eq!(t.counts[0], 2, "0.1 and exactly 0.25 ms: le=0.00025");
        assert_eq!(t.counts[1], 1, "0.26 ms: le=0.0005");
        assert_eq!(t.counts[4], 1, "3 ms: le=0.004");
        assert_eq!(t.counts[SLOTS - 1], 1, "5 s: +Inf");
        assert_eq!(t.count(), 5);
        assert_eq!(t.sum_micros, 100 + 250 + 260 + 3_000 + 5_000_000);
    }

    #[test]
    fn cumulative_counts_end_with_inf_at_the_total() {
        let h = CommitHistogram::default();
        h.observe(ms(0.3));
        h.observe(ms(1.5));
        h.observe(ms(1.9));
        let c = h.snapshot().cumulative();
        assert_eq!(c.len(), SLOTS);
        assert_eq!(c[0], (0.00025, 0));
        assert_eq!(c[1], (0.0005, 1));
        assert_eq!(c[3], (0.002, 3));
        assert_eq!(*c.last().unwrap(), (f64::INFINITY, 3));
        assert!(c.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
    }

    #[test]
    fn a_difference_of_snapshots_is_what_happened_between_them() {
        let h = CommitHistogram::default();
        h.observe(ms(0.3));
        let before = h.snapshot();
        h.observe(ms(3.0));
        h.observe(ms(3.5));
        let d = h.snapshot().since(&before);
        assert_eq!(d.count(), 2);
        assert_eq!(d.counts[4], 2);
        assert_eq!(d.sum_micros, 6_500);
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        let mut t = CommitTimes::default();
        assert_eq!(t.quantile_micros(0.5), None, "no commits");
        // Four commits in (2, 4] ms: the median is halfway through that bucket.
        t.counts[4] = 4;
        assert_eq!(t.quantile_micros(0.5), Some(3_000.0));
        assert_eq!(t.quantile_micros(1.0), Some(4_000.0));
        // One more, beyond the last bound: the maximum is not a number of the histogram.
        t.counts[SLOTS - 1] = 1;
        assert_eq!(t.quantile_micros(1.0), None);
        assert_eq!(t.quantile_micros(0.4), Some(3_000.0));
    }
}
