//! The Poros hub: routes digitally signed documents between agency nodes over mutual-TLS QUIC,
//! storing and forwarding for nodes that are offline.
//!
//! # Layout
//! - [`deployment`]: the deployment directory — `init`, node certificate issuance, key loading.
//! - [`state`]: durable state behind one narrow seam (registry, documents, queues, relays).
//! - [`lifecycle`]: registration, enrolment, suspension, revocation (CRLs) and renewal.
//! - [`server`]: connections, submissions, per-node delivery/relay worker, expiry sweeper.
//! - [`ops`]: the operations HTTP listener (health, metrics, admin API).
//! - [`metrics`]: in-process counters; [`stats`]: exact exchange statistics per agency and period.
//! - [`cli`]: the `poros-hub` command line; [`demo`]: the one-command local exchange.
#![forbid(unsafe_code)]

pub mod cli;
pub mod demo;
pub mod deployment;
pub mod lifecycle;
pub mod metrics;
pub mod ops;
pub mod report;
pub mod server;
pub mod state;
pub mod stats;

/// Install the tracing subscriber (`RUST_LOG` overrides the default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
