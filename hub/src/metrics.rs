//! In-process operational counters of the hub (connections, refusals, handshake failures),
//! rendered with the durable counters from the store as Prometheus text on `/metrics`; and the
//! pieces of that exposition: metric families kept together ([`Exposition`]), the `# HELP` line
//! of every family ([`with_help`]), label escaping and the store filesystem's free space.
//!
//! The alerting rules and the Grafana dashboard shipped in `config/monitoring/` use these
//! names; `tests/alerts.rs` checks that every name they use is on `/metrics`.

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
    cut_through: Mutex<BTreeMap<&'static str, u64>>,
}

/// How a body forwarded to a recipient while the hub was still receiving it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CutThrough {
    /// Sent whole after the acceptance, and the recipient's answer recorded.
    Forwarded,
    /// Reset before its last piece: the upload failed or was refused, the hub could not
    /// store it, or the recipient could not keep up (the pusher delivers it later).
    Abandoned,
    /// Failed after the acceptance (the recipient or its connection): the pusher delivers it.
    Failed,
}

impl CutThrough {
    const ALL: [CutThrough; 3] = [
        CutThrough::Forwarded,
        CutThrough::Abandoned,
        CutThrough::Failed,
    ];

    /// The `outcome` label.
    pub fn label(self) -> &'static str {
        match self {
            CutThrough::Forwarded => "forwarded",
            CutThrough::Abandoned => "abandoned",
            CutThrough::Failed => "failed",
        }
    }
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

    /// Count a cut-through forward by how it ended.
    pub fn cut_through(&self, how: CutThrough) {
        if let Ok(mut m) = self.cut_through.lock() {
            *m.entry(how.label()).or_default() += 1;
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
        if let Ok(mut m) = self.delays.lock().map(|m| m.clone()) {
            // Every reason from the start, at 0 until it happens.
            use poros_protocol::DelayReason as R;
            for r in [R::RecipientStorageFull, R::RecipientUnavailable] {
                m.entry(r.label()).or_default();
            }
            for (k, v) in m.iter() {
                let _ = writeln!(out, "poros_delivery_delays_total{{reason=\"{k}\"}} {v}");
            }
        }
        let _ = writeln!(out, "# TYPE poros_cut_through_total counter");
        if let Ok(mut m) = self.cut_through.lock().map(|m| m.clone()) {
            for how in CutThrough::ALL {
                m.entry(how.label()).or_default();
            }
            for (k, v) in m.iter() {
                let _ = writeln!(out, "poros_cut_through_total{{outcome=\"{k}\"}} {v}");
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

/// Metric families in the order first seen, each rendered as one group (`# TYPE` then its
/// samples), as the text format requires.
#[derive(Default)]
pub struct Exposition {
    order: Vec<String>,
    families: std::collections::HashMap<String, (&'static str, String)>,
}

impl Exposition {
    /// One sample of family `name` (of Prometheus type `kind`), labels given as `{a="b"}` or
    /// empty.
    pub fn sample(
        &mut self,
        name: &str,
        kind: &'static str,
        labels: &str,
        v: impl std::fmt::Display,
    ) {
        self.sample_of(name, name, kind, labels, v);
    }

    /// A histogram `family`: `buckets` are (upper bound as Prometheus writes it, commits or
    /// items at or below it), cumulative, ending with `+Inf` at the count; `labels` are the
    /// other labels without braces (`agency="X"`) or empty.
    pub fn histogram(
        &mut self,
        family: &str,
        labels: &str,
        buckets: impl IntoIterator<Item = (String, u64)>,
        sum: impl std::fmt::Display,
    ) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut count = 0;
        for (le, cumulative) in buckets {
            let l = format!("{{{labels}{sep}le=\"{le}\"}}");
            self.sample_of(
                family,
                &format!("{family}_bucket"),
                "histogram",
                &l,
                cumulative,
            );
            count = cumulative;
        }
        let l = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        self.sample_of(family, &format!("{family}_sum"), "histogram", &l, sum);
        self.sample_of(family, &format!("{family}_count"), "histogram", &l, count);
    }

    /// One sample named `sample` of family `family` (a histogram's `_bucket`, `_sum`, `_count`).
    pub fn sample_of(
        &mut self,
        family: &str,
        sample: &str,
        kind: &'static str,
        labels: &str,
        v: impl std::fmt::Display,
    ) {
        use std::fmt::Write;
        if !self.families.contains_key(family) {
            self.order.push(family.to_string());
        }
        let f = self
            .families
            .entry(family.to_string())
            .or_insert_with(|| (kind, String::new()));
        let _ = writeln!(f.1, "{sample}{labels} {v}");
    }

    /// The configured `[monitoring] alert_below_percent`, as a ratio, for the alert on the
    /// electronic-exchange rate to compare against.
    pub fn threshold(&mut self, percent: f64) {
        self.sample(
            "poros_monitoring_alert_below_ratio",
            "gauge",
            "",
            percent / 100.0,
        );
    }

    /// A scope's electronic-exchange rate from its summed counters: documents exchanged through
    /// the hub (sent and accepted, or delivered with a receipt) ÷ (those + the paper-only counts
    /// reported). Nothing when the scope has exchanged nothing either way.
    pub fn exchange_ratio(&mut self, name: &str, labels: &str, m: &BTreeMap<String, u64>) {
        let g = |k: &str| m.get(k).copied().unwrap_or(0);
        let electronic = g("sent") + g("in_ontime") + g("in_late");
        let paper = g("paper_sent") + g("paper_received");
        if electronic + paper > 0 {
            let ratio = electronic as f64 / (electronic + paper) as f64;
            self.sample(name, "gauge", labels, ratio);
        }
    }

    /// One agency's series for the year from its summed counters.
    pub fn agency_year(&mut self, agency: &str, m: &BTreeMap<String, u64>) {
        use crate::business::{self as b, DONE_BUCKETS_SECS};
        let g = |k: &str| m.get(k).copied().unwrap_or(0);
        let l = format!("{{agency=\"{agency}\"}}");
        self.sample(
            "poros_agency_documents_sent_total",
            "counter",
            &l,
            g("sent"),
        );
        self.sample(
            "poros_agency_deliveries_due_total",
            "counter",
            &l,
            g("in_due"),
        );
        for o in ["ontime", "late", "rejected", "expired"] {
            self.sample(
                "poros_agency_deliveries_total",
                "counter",
                &format!("{{agency=\"{agency}\",outcome=\"{o}\"}}"),
                g(&format!("in_{o}")),
            );
        }
        // Acceptance to verified receipt, summed over the receipted deliveries (the mean is
        // this over the `ontime` and `late` deliveries).
        self.sample(
            "poros_agency_delivery_latency_seconds_total",
            "counter",
            &l,
            g("in_latency_ms") as f64 / 1000.0,
        );
        for (k, v) in m {
            if let Some(reason) = k.strip_prefix("rej:") {
                self.sample(
                    "poros_agency_rejections_total",
                    "counter",
                    &format!("{{agency=\"{agency}\",reason=\"{}\"}}", label(reason)),
                    v,
                );
            }
        }
        self.sample(
            "poros_agency_business_delivered_total",
            "counter",
            &l,
            g(b::DELIVERED),
        );
        self.sample(
            "poros_agency_registered_in_time_total",
            "counter",
            &l,
            g(b::REGISTERED_IN_WINDOW),
        );
        let mut cumulative = 0;
        let buckets: Vec<(String, u64)> = DONE_BUCKETS_SECS
            .iter()
            .map(u64::to_string)
            .chain(["+Inf".to_string()])
            .enumerate()
            .map(|(k, le)| {
                cumulative += g(&b::done_bucket_metric(k));
                (le, cumulative)
            })
            .collect();
        self.histogram(
            "poros_agency_completion_seconds",
            &format!("agency=\"{agency}\""),
            buckets,
            g(b::DONE_SECS),
        );
        self.exchange_ratio("poros_agency_electronic_exchange_ratio", &l, m);
    }

    /// The text of every family, in the order first seen.
    pub fn finish(self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        for name in &self.order {
            let (kind, lines) = &self.families[name];
            let _ = writeln!(out, "# TYPE {name} {kind}");
            out.push_str(lines);
        }
        out
    }
}

/// A label value escaped for the text format (backslash, double quote, line feed).
pub fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Bytes available to the hub (not reserved for root) and total size of the filesystem
/// holding `dir`.
pub fn filesystem(dir: &std::path::Path) -> std::io::Result<(u64, u64)> {
    let s = rustix::fs::statvfs(dir)?;
    Ok((
        s.f_bavail.saturating_mul(s.f_frsize),
        s.f_blocks.saturating_mul(s.f_frsize),
    ))
}

/// The store's durable counters (`poros_<key>_total`), shown at 0 until first counted.
pub const STORE_COUNTERS: [&str; 15] = [
    "documents_accepted",
    "deliveries_queued",
    "body_bytes_accepted",
    "deliveries_delivered",
    "deliveries_rejected",
    "deliveries_expired",
    "deliveries_lost",
    "statements_accepted",
    "statements_relayed",
    "statements_relay_refused",
    "bodies_damaged",
    "body_repairs_requested",
    "bodies_repaired",
    "bodies_lost",
    "bodies_checked",
];

/// What each family on `/metrics` measures (its `# HELP` text).
const HELP: &[(&str, &str)] = &[
    ("poros_build_info", "Version of the running poros-hub (always 1)."),
    ("poros_documents_accepted_total", "Documents the hub accepted (durable, shared by all instances)."),
    ("poros_deliveries_queued_total", "Deliveries queued, one per recipient of each accepted document."),
    ("poros_body_bytes_accepted_total", "Bytes of document bodies accepted."),
    ("poros_deliveries_delivered_total", "Deliveries ended by the recipient's verified receipt."),
    ("poros_deliveries_rejected_total", "Deliveries ended by the recipient's signed rejection."),
    ("poros_deliveries_expired_total", "Deliveries the hub gave up on after the retention period."),
    ("poros_deliveries_lost_total", "Deliveries ended because their body was lost for good."),
    ("poros_statements_accepted_total", "Statements (status, answers, updates) the hub accepted."),
    ("poros_statements_relayed_total", "Statements relayed to their addressees."),
    ("poros_statements_relay_refused_total", "Relayed statements their addressee refused."),
    ("poros_bodies_damaged_total", "Stored bodies found damaged or missing."),
    ("poros_cut_through_total", "Large bodies forwarded to a connected recipient while the hub was still receiving them, by outcome (abandoned and failed ones are delivered from the hub's copy)."),
    ("poros_body_repairs_requested_total", "Re-uploads asked of senders for damaged bodies."),
    ("poros_bodies_repaired_total", "Damaged bodies repaired by a re-upload."),
    ("poros_bodies_lost_total", "Bodies lost for good (no sender could upload them again)."),
    ("poros_bodies_checked_total", "Stored bodies checked by the scrub."),
    ("poros_statements_total", "Accepted statements by kind."),
    ("poros_statement_relay_depth", "Statements queued for their addressees."),
    ("poros_queue_depth", "Pending deliveries (all recipients), not counting those held for repair."),
    ("poros_deliveries_held_for_repair", "Deliveries held until a damaged body is uploaded again."),
    ("poros_connected_nodes", "Agencies connected to this hub instance now."),
    ("poros_store_commits_total", "Store commits (group commits) by this instance."),
    ("poros_store_commit_jobs_total", "Write jobs carried by those commits."),
    ("poros_store_last_commit_seconds", "Duration of the last store commit."),
    ("poros_store_commit_seconds", "Durations of this instance's store commits (each with its fsync, or PostgreSQL's commit)."),
    ("poros_store_filesystem_avail_bytes", "Bytes available to the hub on the filesystem of its store directory."),
    ("poros_store_filesystem_size_bytes", "Size of the filesystem of the hub's store directory."),
    ("poros_store_writable", "1 while the store accepts writes, 0 while it refuses them (disk full, lost database)."),
    ("poros_store_write_failures_total", "Store writes that failed."),
    ("poros_store_pg_retries_total", "PostgreSQL transactions retried (serialization failures, lost connections)."),
    ("poros_store_pg_resolved_total", "PostgreSQL commits of unknown outcome resolved by reading."),
    ("poros_monitoring_alert_below_ratio", "Configured [monitoring] alert_below_percent as a ratio: rates below it are flagged."),
    ("poros_node_certificate_expiry_timestamp_seconds", "Expiry (Unix seconds) of each active agency's newest certificate, by kind."),
    ("poros_agency_last_seen_timestamp_seconds", "When each active agency was last connected (now while connected; registration if never)."),
    ("poros_agency_connected", "1 while the agency is connected to this hub instance."),
    ("poros_agency_deliveries_overdue", "Deliveries to the agency still pending past [monitoring] on_time_secs."),
    ("poros_national_electronic_exchange_ratio", "National electronic-exchange rate, year to date (documents through the hub / those + paper-only)."),
    ("poros_agency_electronic_exchange_ratio", "The agency's electronic-exchange rate, year to date."),
    ("poros_agency_documents_sent_total", "Documents the agency sent, year to date."),
    ("poros_agency_deliveries_due_total", "Deliveries addressed to the agency, year to date."),
    ("poros_agency_deliveries_total", "Deliveries to the agency by outcome, year to date."),
    ("poros_agency_delivery_latency_seconds_total", "Sum of the times from acceptance to verified receipt of deliveries to the agency, year to date."),
    ("poros_agency_rejections_total", "Deliveries the agency rejected, by reason code, year to date."),
    ("poros_agency_business_delivered_total", "Documents delivered to the agency (business figures), year to date."),
    ("poros_agency_registered_in_time_total", "Delivered documents the agency registered within the configured working days, year to date."),
    ("poros_agency_completion_seconds", "Time from delivery to completion of the agency's documents, year to date."),
    ("poros_connections_total", "Agency connections established with this instance since it started."),
    ("poros_identity_conflicts_total", "Second live connections refused for an agency already connected."),
    ("poros_refusals_total", "Requests this instance refused since it started, by reason."),
    ("poros_handshake_failures_total", "TLS handshakes that failed at this instance since it started, by reason."),
    ("poros_delivery_delays_total", "Delivery attempts a recipient refused for now, by reason."),
];

/// `text` with a `# HELP` line before each `# TYPE` line (the store's counters not in the table
/// are described by their key).
pub fn with_help(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64 * HELP.len());
    for line in text.lines() {
        if let Some(name) = line
            .strip_prefix("# TYPE ")
            .and_then(|r| r.split_whitespace().next())
        {
            match HELP.iter().find(|(n, _)| *n == name) {
                Some((_, h)) => out.push_str(&format!("# HELP {name} {h}\n")),
                None => {
                    let what = name
                        .trim_start_matches("poros_")
                        .trim_end_matches("_total")
                        .replace('_', " ");
                    out.push_str(&format!("# HELP {name} Hub counter: {what}.\n"));
                }
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}
