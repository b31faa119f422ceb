//! Rate limits for repeated log lines: a flood of bad requests from one peer writes a few
//! warnings and then a count of what was suppressed, not one line per request.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lets `burst` occurrences through per `window`, and counts the rest.
#[derive(Debug)]
pub struct LogLimiter {
    burst: u32,
    window: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    started: Instant,
    seen: u32,
    suppressed: u64,
}

/// What to do with one occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Log it; `suppressed` occurrences were dropped since the last logged one.
    Log {
        /// Occurrences dropped before this one.
        suppressed: u64,
    },
    /// Drop it (it is counted).
    Suppress,
}

impl LogLimiter {
    /// `burst` lines per `window`.
    pub fn new(burst: u32, window: Duration) -> Self {
        LogLimiter {
            burst,
            window,
            state: Mutex::new(State {
                started: Instant::now(),
                seen: 0,
                suppressed: 0,
            }),
        }
    }

    /// Decide for one occurrence now.
    pub fn admit(&self) -> Admit {
        self.admit_at(Instant::now())
    }

    /// Decide for one occurrence at `now` (the time is an argument so tests need no clock).
    pub fn admit_at(&self, now: Instant) -> Admit {
        let Ok(mut s) = self.state.lock() else {
            return Admit::Log { suppressed: 0 };
        };
        if now.duration_since(s.started) >= self.window {
            s.started = now;
            s.seen = 0;
        }
        if s.seen < self.burst {
            s.seen += 1;
            let suppressed = std::mem::take(&mut s.suppressed);
            Admit::Log { suppressed }
        } else {
            s.suppressed += 1;
            Admit::Suppress
        }
    }
}

/// `tracing::warn!` through a [`LogLimiter`]: the first lines of a burst are written, the rest
/// counted, and the count is reported with the next line written.
#[macro_export]
macro_rules! warn_limited {
    ($limiter:expr, $($arg:tt)+) => {
        match $limiter.admit() {
            $crate::loglimit::Admit::Log { suppressed } => {
                if suppressed > 0 {
                    tracing::warn!(suppressed, "similar warnings were suppressed");
                }
                tracing::warn!($($arg)+);
            }
            $crate::loglimit::Admit::Suppress => {}
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_logged_then_counted_then_reported() {
        let l = LogLimiter::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.admit_at(t0), Admit::Log { suppressed: 0 });
        }
        for _ in 0..100 {
            assert_eq!(l.admit_at(t0), Admit::Suppress);
        }
        let later = t0 + Duration::from_secs(11);
        assert_eq!(l.admit_at(later), Admit::Log { suppressed: 100 });
        assert_eq!(l.admit_at(later), Admit::Log { suppressed: 0 });
    }
}
