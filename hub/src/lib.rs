//! The Poros hub: routes digitally signed documents between agency nodes over mutual-TLS QUIC,
//! storing and forwarding for nodes that are offline.
//!
//! # Layout
//! - [`deployment`]: the deployment directory — `init`, node certificate issuance, key loading.
//! - [`hub`]: the hub handle (store, keys, registry cache, live connections, shared checks).
//! - [`bodies`]: where large bodies are kept (files beside redb, chunks in PostgreSQL).
//! - [`state`]: durable state behind one narrow seam (registry, documents, queues, relays).
//! - [`enrolment`]: the token enrolment endpoint, bounded per source and per step.
//! - [`lifecycle`]: registration, enrolment, suspension, revocation (CRLs) and renewal.
//! - [`coordination`]: several hub instances on one shared store: events, agency leases.
//! - [`server`]: the QUIC endpoint: connection admission, stream dispatch, submissions, the
//!   per-node pusher (deliveries, receipts, relays) and the sweepers.
//! - [`statements`]: statements on the wire: accepted from their maker, relayed to addressees.
//! - [`delays`]: deliveries a recipient refused for now (e.g. its disk is full), told to senders.
//! - [`repair`]: bodies lost on disk: checks before delivery, re-upload from the sender, scrub.
//! - [`ops`]: the operations HTTP listener (health, metrics, admin API).
//! - [`metrics`]: in-process counters; [`stats`]: exact exchange statistics per agency and period.
//! - [`cli`]: the `poros-hub` command line; [`demo`]: the one-command local exchange.
#![forbid(unsafe_code)]

pub mod backup;
pub mod bodies;
pub mod business;
pub mod cli;
pub mod coordination;
pub mod delays;
pub mod demo;
pub mod deployment;
pub mod enrolment;
pub mod hub;
pub mod lifecycle;
pub mod metrics;
pub mod migrate;
pub mod ops;
pub mod repair;
pub mod report;
pub(crate) mod seen;
pub mod server;
pub mod state;
pub mod statements;
pub mod stats;

pub use poros_transport::init_tracing;
