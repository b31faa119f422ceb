//! The running agent: one [`Agent`] value shared by its tasks, its store and body files.
//! Each job is a submodule; this module owns the handle, its start and the orphan sweep.
//!
//! # Layout
//! - [`creds`]: keys and certificates, and their renewal over the hub connection.
//! - [`connection`]: the one QUIC connection to the hub (reconnecting with backoff) and the
//!   dispatch of the streams the hub opens.
//! - [`outbox`]: signing new documents into the outbox, submitting them (the hub answers
//!   with its `Accepted` statement), paper counts (`PaperCount` statements).
//! - [`receive`]: verifying and storing deliveries (answered with this agency's `Receipt`
//!   statement), the recipients' receipts and the hub's notices relayed as statements or in
//!   the frames of `poros/1`, and uploading a body again at the hub's request.
//! - [`trust`]: signature checks against the signing CA and the CRL the hub pushes.
//! - [`directory`]: the hub's agency directory, fetched over the connection and cached.
//!
//! Every answer sent to the hub follows a durable commit.

mod connection;
pub(crate) use connection::connected;
mod creds;
mod directory;
pub use directory::{Directory, DirectoryError};
mod outbox;
#[cfg(test)]
pub(crate) use outbox::tests as outbox_tests;
mod receive;
#[cfg(test)]
pub(crate) use receive::tests as receive_tests;
mod trust;

use crate::paths::AgentPaths;
use crate::state::AgentStore;
use anyhow::Result;
use creds::{read_creds, Creds};
use poros_certs::SigningTrust;
use poros_config::AgentConfig;
use poros_protocol::AgencyId;
use poros_store::Blobs;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tracing::{info, warn};

pub use poros_transport::now_ms;

/// A running agent.
pub struct Agent {
    /// Configuration.
    pub cfg: AgentConfig,
    /// Durable state.
    pub store: AgentStore,
    /// Body files.
    pub blobs: Blobs,
    /// Why sent documents are still pending (advisory, in memory).
    pub reasons: crate::reasons::PendingReasons,
    paths: AgentPaths,
    creds: std::sync::RwLock<Creds>,
    trust: std::sync::RwLock<SigningTrust>,
    conn: watch::Sender<Option<quinn::Connection>>,
    submit_wake: Notify,
    /// Wakes the statement submitter ([`crate::statements`]).
    pub(crate) statement_wake: Notify,
    endpoint: Mutex<Option<quinn::Endpoint>>,
    shutting_down: std::sync::atomic::AtomicBool,
    directory_cache: directory::DirectoryCache,
}

/// Errors the local API reports to its caller.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Bad request from the caller.
    #[error("{0}")]
    Invalid(String),
    /// Too large.
    #[error("document body exceeds the limit of {0} bytes")]
    TooLarge(u64),
    /// Storage failure.
    #[error("store: {0}")]
    Store(#[from] poros_store::StoreError),
}

impl Agent {
    /// Load keys and open the store.
    pub fn open(paths: &AgentPaths, cfg: AgentConfig) -> Result<Arc<Agent>> {
        let (creds, signing_ca) = read_creds(paths, &cfg.agency)?;
        let crls: Vec<Vec<u8>> = std::fs::read(paths.at("certs/signing.crl"))
            .into_iter()
            .collect();
        let trust = SigningTrust::new(&[signing_ca], &crls)?;
        let (store, _) = AgentStore::open_file(&paths.at("data/agent.redb"))?;
        let blobs = Blobs::open(&paths.at("data/bodies"))?;
        Ok(Arc::new(Agent {
            cfg,
            store,
            blobs,
            reasons: Default::default(),
            paths: paths.clone(),
            creds: std::sync::RwLock::new(creds),
            trust: std::sync::RwLock::new(trust),
            conn: watch::channel(None).0,
            submit_wake: Notify::new(),
            statement_wake: Notify::new(),
            endpoint: Mutex::new(None),
            shutting_down: std::sync::atomic::AtomicBool::new(false),
            directory_cache: Default::default(),
        }))
    }

    /// This agency.
    pub fn agency(&self) -> &AgencyId {
        &self.cfg.agency
    }

    /// Whether a hub connection is up.
    pub fn connected(&self) -> bool {
        self.conn.borrow().is_some()
    }

    /// Start the connection manager, submitter, renewal watch and orphan sweep.
    pub fn start(self: &Arc<Self>) {
        tokio::spawn(self.clone().connection_manager());
        tokio::spawn(self.clone().submitter());
        tokio::spawn(crate::statements::submitter(self.clone()));
        tokio::spawn(self.clone().renewer());
        tokio::spawn(self.clone().body_sweeper());
    }

    /// At start and then periodically, removes body files that no record references and
    /// that are older than the grace period (left by a crash between staging and storing).
    async fn body_sweeper(self: Arc<Self>) {
        let every = Duration::from_secs(self.cfg.body_sweep_interval_secs);
        loop {
            if let Err(e) = self.sweep_bodies().await {
                warn!(agency = %self.cfg.agency, error = %e, "body sweep failed; will retry");
            }
            tokio::time::sleep(every).await;
        }
    }

    /// One orphan sweep over the body files.
    pub async fn sweep_bodies(&self) -> Result<poros_store::SweepReport> {
        let (blobs, store) = (self.blobs.clone(), self.store.clone());
        let grace = Duration::from_secs(self.cfg.orphan_grace_secs);
        let report = tokio::task::spawn_blocking(move || {
            blobs.sweep_unreferenced(grace, |d| store.body_file_referenced(d))
        })
        .await??;
        if report.removed > 0 {
            info!(agency = %self.cfg.agency, removed = report.removed, bytes = report.removed_bytes, examined = report.examined, "unreferenced body files removed");
        }
        Ok(report)
    }
}
