//! The Poros node agent: signs what its agency sends, verifies every signature it receives,
//! and keeps documents and signed receipts in an embedded durable store.
//!
//! # Layout
//! - [`paths`]: the agent directory and `init` (local key generation, certificate requests).
//! - [`enroll`]: one-command enrolment with a token from the hub administrator.
//! - [`state`]: durable outbox, inbox, quarantine and per-recipient status.
//! - [`node`]: the hub connection, submission, delivery verification and receipts.
//! - [`api`]: the loopback HTTP API; [`cli`]: the `poros-agent` command line.
#![forbid(unsafe_code)]

pub mod api;
pub mod cli;
pub mod enroll;
pub mod node;
pub mod paths;
pub mod state;

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
