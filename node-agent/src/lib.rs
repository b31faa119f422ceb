//! The Poros node agent: signs what its agency sends, verifies every signature it receives,
//! and keeps documents and signed receipts in an embedded durable store.
//!
//! # Layout
//! - [`paths`]: the agent directory and `init` (local key generation, certificate requests).
//! - [`enroll`]: one-command enrolment with a token from the hub administrator.
//! - [`state`]: durable outbox, inbox, quarantine and per-recipient status;
//!   [`state::statements`]: statements made and received, each document's rule state, the
//!   statement queue and their events.
//! - [`agent`]: the running agent, one job a submodule: credentials and renewal, the hub
//!   connection, the outbox and submitter, receiving (deliveries, receipts, notices), trust.
//! - [`statements`]: making statements (the agent is the authority on the rules), submitting
//!   them in order, receiving relayed ones.
//! - [`backup`]: `poros-agent backup` and `restore` (a consistent snapshot taken while the
//!   agent runs, verified on restore).
//! - [`reasons`]: why a sent document is still pending (hub or recipient storage full, ...).
//! - [`refusal`]: the local API's error answers, with a stable code and the message in the
//!   request's language.
//! - [`listing`]: cursor pagination over the outbox, inbox, quarantine and receipts.
//! - [`api`]: the loopback HTTP API, [`statement_api`] its statement verbs, [`views`] the
//!   JSON of documents with their timelines, [`api_types`] the request and answer types the
//!   API and the CLI share; [`openapi`] the API's OpenAPI document, generated from the
//!   handlers; [`cli`]: the `poros-agent` command line.
#![forbid(unsafe_code)]

pub mod agent;
pub mod api;
pub mod api_types;
pub mod backup;
pub mod cli;
pub mod enroll;
pub mod listing;
pub mod openapi;
pub mod paths;
pub mod reasons;
pub mod refusal;
pub mod state;
pub mod statement_api;
pub mod statements;
pub mod vdxp;
pub mod views;

pub use poros_transport::init_tracing;
