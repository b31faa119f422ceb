//! In-process operational counters of the hub (connections, refusals, handshake failures),
//! rendered with the durable counters from the store as Prometheus text on `/metrics`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Counters since process start (durable business counters live in the store).
#[derive(Default)]
pub struct Metrics {
    /// Connections established.
    pub connections: AtomicU64,
    /// Second live connections refused because the agency was already connected and answering.
    identity_conflicts: AtomicU64,
    refusals: Mutex<BTreeMap<String, u64>>,
    /// Shared with the TLS verifier, which counts each certificate refusal by its typed reason.
    handshake_failures: Arc<Mutex<BTreeMap<String, u64>>>,
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

    /// The observer the hub's TLS verifier reports refused client certificates to.
    pub fn cert_observer(&self) -> poros_certs::RefusalObserver {
        let failures = self.handshake_failures.clone();
        Arc::new(move |r: poros_certs::ClientCertRefusal| {
            if let Ok(mut m) = failures.lock() {
                *m.entry(r.label().to_string()).or_default() += 1;
            }
        })
    }

    /// Count a failed handshake. Certificate refusals were counted, with their own reasons, by
    /// the verifier ([`Metrics::cert_observer`]); the rest are told apart by the TLS alert.
    pub fn handshake_failure(&self, e: &quinn::ConnectionError) {
        let Some(reason) = handshake_reason(e) else {
            return;
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

/// TLS alerts (RFC 8446 §6) a failed handshake can end with.
mod alert {
    pub const BAD_CERTIFICATE: u8 = 42;
    pub const UNSUPPORTED_CERTIFICATE: u8 = 43;
    pub const CERTIFICATE_REVOKED: u8 = 44;
    pub const CERTIFICATE_EXPIRED: u8 = 45;
    pub const CERTIFICATE_UNKNOWN: u8 = 46;
    pub const UNKNOWN_CA: u8 = 48;
    pub const DECODE_ERROR: u8 = 50;
    pub const PROTOCOL_VERSION: u8 = 70;
    pub const CERTIFICATE_REQUIRED: u8 = 116;
    pub const NO_APPLICATION_PROTOCOL: u8 = 120;
}

/// The label of a handshake failure that the certificate verifier did not already count.
fn handshake_reason(e: &quinn::ConnectionError) -> Option<&'static str> {
    use quinn::TransportErrorCode as Code;
    let quinn::ConnectionError::TransportError(te) = e else {
        return Some(match e {
            quinn::ConnectionError::TimedOut => "timeout",
            quinn::ConnectionError::Reset => "reset",
            quinn::ConnectionError::VersionMismatch => "quic_version",
            _ => "other",
        });
    };
    let is = |a: u8| te.code == Code::crypto(a);
    if [
        alert::BAD_CERTIFICATE,
        alert::UNSUPPORTED_CERTIFICATE,
        alert::CERTIFICATE_REVOKED,
        alert::CERTIFICATE_EXPIRED,
        alert::CERTIFICATE_UNKNOWN,
        alert::UNKNOWN_CA,
    ]
    .into_iter()
    .any(is)
    {
        return None;
    }
    Some(if is(alert::CERTIFICATE_REQUIRED) {
        "no_certificate"
    } else if is(alert::NO_APPLICATION_PROTOCOL) {
        "wrong_alpn"
    } else if is(alert::PROTOCOL_VERSION) {
        "tls_version"
    } else if is(alert::DECODE_ERROR) {
        "malformed_handshake"
    } else {
        "other"
    })
}
