//! How an agent paces its attempts to reach a hub: the rule every agent follows, once, so
//! that the agent and the scale benchmark's simulated agents reconnect the same way.
//!
//! A connection that served for a while and then went away is followed by a new attempt
//! after a short random pause (up to [`SERVED_JITTER_MS`]); a round in which no hub answered
//! waits, with exponential backoff from [`Backoff::MIN`] to [`Backoff::MAX`] and jitter of up
//! to half the wait. A round in which a hub answered but refused the attempt (too many
//! handshakes in flight: it is up and busy) waits a random time up to [`Backoff::BUSY_MAX`],
//! and does not grow the backoff: the hub admits the refused agents in a second or two,
//! whereas doubling waits up to 10 s left a few agents out for half a minute after a
//! restart. Jitter spreads ten thousand agents that lost the same hub over time instead of
//! having them knock at once. No IO and no clock: the caller sleeps, and brings the random
//! byte.

use std::time::Duration;

/// The longest pause, in milliseconds, after a served connection ended (a random byte).
pub const SERVED_JITTER_MS: u64 = 255;

/// The backoff state of one agent's connection attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: Self::MIN }
    }
}

impl Backoff {
    /// The first wait after a round in which no hub answered.
    pub const MIN: Duration = Duration::from_millis(100);
    /// The longest wait between rounds.
    pub const MAX: Duration = Duration::from_secs(10);
    /// The longest wait for one hub to answer a connection attempt: a hub that is gone never
    /// answers a handshake, and the next address should not wait for the idle timeout.
    pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
    /// A connection counts as served (not as a refusal) once it lasted this long: a TLS 1.3
    /// client finishes its handshake before the hub has checked its certificate, so a
    /// refused agent "connects" and is closed at once.
    pub const SERVED_AFTER: Duration = Duration::from_secs(10);
    /// The longest wait after a hub refused an attempt because it was busy.
    pub const BUSY_MAX: Duration = Duration::from_secs(2);

    /// A connection served: the next failure starts again from [`Backoff::MIN`]. Returns
    /// the pause before the next attempt, from `jitter` (a random byte).
    pub fn served(&mut self, jitter: u8) -> Duration {
        self.next = Self::MIN;
        Duration::from_millis(u64::from(jitter) * SERVED_JITTER_MS / 255)
    }

    /// A round in which a hub refused the attempt as busy (and none served): a wait drawn
    /// evenly up to [`Backoff::BUSY_MAX`] from `jitter`; the backoff stays as it was.
    pub fn refused(&mut self, jitter: u8) -> Duration {
        Self::BUSY_MAX * u32::from(jitter) / 255
    }

    /// A round in which no hub answered: the wait before the next round (the current
    /// backoff plus up to half of it, from `jitter`), and the backoff doubles up to
    /// [`Backoff::MAX`].
    pub fn failed(&mut self, jitter: u8) -> Duration {
        let wait = self.next + self.next * u32::from(jitter) / 512;
        self.next = (self.next * 2).min(Self::MAX);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_double_up_to_the_maximum_and_a_served_connection_starts_again() {
        let mut b = Backoff::default();
        let waits: Vec<u128> = (0..10).map(|_| b.failed(0).as_millis()).collect();
        assert_eq!(
            waits,
            [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]
        );
        assert_eq!(b.served(0), Duration::ZERO);
        assert_eq!(b.failed(0), Backoff::MIN);
    }

    #[test]
    fn a_busy_hub_is_tried_again_within_two_seconds_and_the_backoff_stays() {
        let mut b = Backoff::default();
        b.failed(0);
        b.failed(0);
        assert_eq!(b.refused(0), Duration::ZERO);
        assert_eq!(b.refused(255), Backoff::BUSY_MAX);
        assert_eq!(b.refused(51).as_millis(), 400);
        // The no-answer backoff went on from where it was (100, 200, then 400 ms).
        assert_eq!(b.failed(0).as_millis(), 400);
    }

    #[test]
    fn jitter_adds_at_most_half_the_wait_and_a_quarter_second_after_service() {
        let mut b = Backoff::default();
        assert_eq!(b.failed(255).as_millis(), 100 + 100 * 255 / 512);
        let mut top = Backoff::default();
        for _ in 0..20 {
            top.failed(0);
        }
        assert!(top.failed(255) < Backoff::MAX * 3 / 2);
        assert_eq!(b.served(255), Duration::from_millis(SERVED_JITTER_MS));
    }
}
