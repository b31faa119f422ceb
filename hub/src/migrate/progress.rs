//! Progress of `store migrate` on the terminal: one line on stderr, redrawn a few times a
//! second, only when stderr is a terminal (nothing at all otherwise, so scripts and logs see
//! the report alone).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A shared progress line; cheap to clone, updated from any thread.
#[derive(Clone)]
pub(super) struct Progress {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    phase: Mutex<String>,
    rows: AtomicU64,
    total: AtomicU64,
    bytes: AtomicU64,
    started: Instant,
    stop: AtomicBool,
}

impl Progress {
    /// Progress shown if `wanted` and stderr is a terminal; otherwise a no-op.
    pub(super) fn start(wanted: bool) -> Progress {
        if !wanted || !std::io::stderr().is_terminal() {
            return Progress { inner: None };
        }
        let inner = Arc::new(Inner {
            phase: Mutex::new(String::new()),
            rows: AtomicU64::new(0),
            total: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            started: Instant::now(),
            stop: AtomicBool::new(false),
        });
        let i = inner.clone();
        std::thread::spawn(move || {
            while !i.stop.load(Ordering::Relaxed) {
                i.draw();
                // A display refresh interval, not a synchronisation.
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Progress { inner: Some(inner) }
    }

    /// A new phase (counters reset).
    pub(super) fn phase(&self, name: &str) {
        if let Some(i) = &self.inner {
            if let Ok(mut p) = i.phase.lock() {
                *p = name.to_string();
            }
            i.rows.store(0, Ordering::Relaxed);
            i.bytes.store(0, Ordering::Relaxed);
        }
    }

    /// Rows expected in this phase.
    pub(super) fn set_total(&self, n: u64) {
        if let Some(i) = &self.inner {
            i.total.store(n, Ordering::Relaxed);
        }
    }

    /// Rows and body bytes done so far.
    pub(super) fn at(&self, rows: u64, bytes: u64) {
        if let Some(i) = &self.inner {
            i.rows.store(rows, Ordering::Relaxed);
            i.bytes.store(bytes, Ordering::Relaxed);
        }
    }

    /// Body bytes done so far.
    pub(super) fn at_bytes(&self, bytes: u64) {
        if let Some(i) = &self.inner {
            i.bytes.store(bytes, Ordering::Relaxed);
        }
    }

    /// Clear the line and stop redrawing.
    pub(super) fn stop(&self) {
        if let Some(i) = &self.inner {
            i.stop.store(true, Ordering::Relaxed);
            let mut e = std::io::stderr().lock();
            let _ = write!(e, "\r\x1b[2K");
            let _ = e.flush();
        }
    }
}

impl Inner {
    fn draw(&self) {
        let phase = self.phase.lock().map(|p| p.clone()).unwrap_or_default();
        if phase.is_empty() {
            return;
        }
        let (rows, total) = (
            self.rows.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        );
        let mib = self.bytes.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0);
        let secs = self.started.elapsed().as_secs_f64();
        let pct = match total {
            0 => String::new(),
            t => format!(" ({:.0} %)", 100.0 * rows.min(t) as f64 / t as f64),
        };
        let mut e = std::io::stderr().lock();
        let _ = write!(
            e,
            "\r\x1b[2K{phase}: {rows} of {total} rows{pct}, {mib:.1} MiB of body files, {secs:.0} s"
        );
        let _ = e.flush();
    }
}
