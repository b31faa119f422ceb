//! Which agencies this hub instance has already counted as seen on the current UTC day.
//!
//! The statistics count an agency as active on every day it connects or stays connected
//! (`stats::on_seen`): each connection writes it, and the sweeper writes every connected
//! agency once a minute. With ten thousand agencies connected, that sweep rewrote thirty
//! thousand keys that were already there, and committed them, every minute. The store stays
//! the record; this only remembers what this instance wrote successfully today, so that an
//! agency is written once a day per instance (and again after a restart, which forgets).

use poros_protocol::AgencyId;
use std::collections::HashSet;
use std::sync::Mutex;

const DAY_MS: u64 = 24 * 3600 * 1000;

/// The agencies marked seen today by this instance.
#[derive(Default)]
pub(crate) struct SeenMarks {
    /// The UTC day (days since the epoch) and who was marked on it.
    today: Mutex<(u64, HashSet<AgencyId>)>,
}

impl SeenMarks {
    /// Those of `agencies` not yet marked on the day of `now_ms`.
    pub(crate) fn unmarked(&self, agencies: Vec<AgencyId>, now_ms: u64) -> Vec<AgencyId> {
        let day = now_ms / DAY_MS;
        let Ok(t) = self.today.lock() else {
            return agencies;
        };
        if t.0 != day {
            return agencies;
        }
        agencies.into_iter().filter(|a| !t.1.contains(a)).collect()
    }

    /// `agencies` were written as seen on the day of `now_ms` (a day later than the one
    /// remembered starts a new day; an earlier one, from a slow writer, is ignored).
    pub(crate) fn marked(&self, agencies: &[AgencyId], now_ms: u64) {
        let day = now_ms / DAY_MS;
        let Ok(mut t) = self.today.lock() else {
            return;
        };
        if day > t.0 {
            *t = (day, HashSet::new());
        }
        if day == t.0 {
            t.1.extend(agencies.iter().cloned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> AgencyId {
        s.parse().unwrap()
    }

    #[test]
    fn an_agency_is_written_once_a_day() {
        let m = SeenMarks::default();
        let t = 20_000 * DAY_MS + 5;
        let both = vec![a("000.00.00.G01"), a("000.00.00.H01")];
        assert_eq!(m.unmarked(both.clone(), t), both);
        m.marked(&both[..1], t);
        assert_eq!(m.unmarked(both.clone(), t + 1000), vec![a("000.00.00.H01")]);
        m.marked(&both[1..], t + 1000);
        assert!(m.unmarked(both.clone(), t + DAY_MS - 10).is_empty());
        // The next UTC day counts again.
        assert_eq!(m.unmarked(both.clone(), t + DAY_MS), both);
        m.marked(&both[..1], t + DAY_MS);
        assert_eq!(
            m.unmarked(both.clone(), t + DAY_MS),
            vec![a("000.00.00.H01")]
        );
        // A write that finished late for yesterday does not count for today.
        m.marked(&both[1..], t);
        assert_eq!(m.unmarked(both, t + DAY_MS), vec![a("000.00.00.H01")]);
    }
}
