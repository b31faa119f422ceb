//! In-process operational counters of the hub (connections, refusals, handshake failures),
//! rendered with the durable counters from the store as Prometheus text on `/metrics`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Counters since process start (durable business counters live in the store).
#[derive(Default)]
pub struct Metrics {
    /// Connections established.
    pub connections: AtomicU64,
    /// Second live connections refused because the agency was already connected and answering.
    identity_conflicts: AtomicU64,
    refusals: Mutex<BTreeMap<String, u64>>,
    handshake_failures: Mutex<BTreeMap<String, u64>>,
    delays: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    /// Count an identity conflict (two live connections claiming one agency).
    pub fn identity_conflict(&self) {
        self.identity_conflicts.fetch_add(1, Ordering::Relaxed);
    }

    /// Count a refusal by reason.
    pub fn refuse(&self, reason: &str) {
        if let Ok(mut m) = self.refusals.lock() {
            *m.entry(reason.to_string()).or_default() += 1;
        }
    }

    /// Count a delivery attempt a recipient refused for a temporary reason.
    pub fn delay(&self, reason: poros_protocol::DelayReason) {
        if let Ok(mut m) = self.delays.lock() {
            *m.entry(reason.label()).or_default() += 1;
        }
    }

    /// Count a failed handshake by a coarse reason.
    pub fn handshake_failure(&self, e: &quinn::ConnectionError) {
        let text = e.to_string();
        let reason = if text.contains("expired") {
            "expired"
        } else if text.contains("UnknownIssuer") || text.contains("unknown issuer") {
            "unknown_issuer"
        } else if text.contains("revoked") || text.contains("Revoked") {
            "revoked"
        } else if text.contains("timed out") {
            "timeout"
        } else {
            "other"
        };
        if let Ok(mut m) = self.handshake_failures.lock() {
            *m.entry(reason.to_string()).or_default() += 1;
        }
    }

    /// Prometheus text for the process counters.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(out, "# TYPE poros_connections_total counter");
        let _ = writeln!(
            out,
            "poros_connections_total {}",
            self.connections.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# TYPE poros_identity_conflicts_total counter");
        let _ = writeln!(
            out,
            "poros_identity_conflicts_total {}",
            self.identity_conflicts.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# TYPE poros_refusals_total counter");
        if let Ok(m) = self.refusals.lock() {
            for (k, v) in m.iter() {
                let _ = writeln!(out, "poros_refusals_total{{reason=\"{k}\"}} {v}");
            }
        }
        let _ = writeln!(out, "# TYPE poros_handshake_failures_total counter");
        if let Ok(m) = self.handshake_failures.lock() {
            for (k, v) in m.iter() {
                let _ = writeln!(out, "poros_handshake_failures_total{{reason=\"{k}\"}} {v}");
            }
        }
        let _ = writeln!(out, "# TYPE poros_delivery_delays_total counter");
        if let Ok(m) = self.delays.lock() {
            for (k, v) in m.iter() {
                let _ = writeln!(out, "poros_delivery_delays_total{{reason=\"{k}\"}} {v}");
            }
        }
    }
}
