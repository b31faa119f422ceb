//! The hub's QUIC server: binds the endpoint with its TLS config and limits, accepts
//! connections up to the configured number and starts the background sweepers.

//! Layout: [`admit`] (connection admission and identity), [`dispatch`] (one stream, one
//! request), [`submit`], [`directory`] (the agency directory for agents), [`push`] (the
//! per-connection pusher), [`cut_through`] (large bodies forwarded while they are received),
//! [`inflight`], [`sweep`].

mod admit;
mod cut_through;
mod directory;
mod dispatch;
pub(crate) mod inflight;
pub(crate) mod push;
mod submit;
pub mod sweep;

use crate::hub::{close, limits, Hub};
use anyhow::{Context, Result};
use poros_transport::loglimit::{Admit, LogLimiter};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tracing::{info, warn};

/// At most one warning per this window about attempts refused by admission control.
const STORM_LOG_WINDOW: Duration = Duration::from_secs(10);

use admit::serve_connection;
pub(crate) use dispatch::store_paper;
use sweep::{orphan_sweeper, sweeper};

/// Run the hub until `shutdown` resolves.
pub async fn serve(
    hub: Arc<Hub>,
    endpoint: quinn::Endpoint,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    tokio::spawn(sweeper(hub.clone()));
    tokio::spawn(crate::repair::scrubber(hub.clone()));
    tokio::spawn(orphan_sweeper(hub.clone()));
    let conns = Arc::new(Semaphore::new(hub.cfg.limits.max_connections as usize));
    let admitting = Arc::new(Semaphore::new(hub.cfg.limits.handshakes_in_flight as usize));
    let storm_log = LogLimiter::new(1, STORM_LOG_WINDOW);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            inc = endpoint.accept() => {
                let Some(inc) = inc else { break };
                let Ok(permit) = conns.clone().try_acquire_owned() else {
                    hub.metrics.refuse("connection_limit");
                    inc.refuse();
                    continue;
                };
                // Admission control: an attempt beyond the handshakes in flight is refused at
                // once (one small packet, no cryptography), and its agent backs off and comes
                // back, rather than waiting out its attempt timeout in a queue, giving up
                // and trying again while the hub still works on the abandoned handshake.
                let Ok(admission) = admitting.clone().try_acquire_owned() else {
                    hub.metrics.refuse("handshake_limit");
                    if let Admit::Log { suppressed } = storm_log.admit() {
                        warn!(
                            limit = hub.cfg.limits.handshakes_in_flight,
                            refused_since_last = suppressed + 1,
                            "connection attempts refused: too many handshakes in flight (agents retry with backoff)"
                        );
                    }
                    inc.refuse();
                    continue;
                };
                let hub = hub.clone();
                tokio::spawn(async move {
                    serve_connection(hub, inc, admission).await;
                    drop(permit);
                });
            }
        }
    }
    info!("shutting down: closing connections");
    endpoint.close(close::SHUTDOWN.into(), b"hub shutting down");
    let _ = tokio::time::timeout(Duration::from_secs(5), endpoint.wait_idle()).await;
    Ok(())
}

/// Bind the hub's QUIC endpoint.
pub fn bind(hub: &Hub, tls: rustls::ServerConfig) -> Result<quinn::Endpoint> {
    let reset_key = hub.keys.reset_key;
    let ep = poros_transport::server_endpoint(
        hub.cfg.network.listen,
        tls,
        &limits(&hub.cfg),
        &reset_key,
    )
    .with_context(|| format!("binding QUIC listener {}", hub.cfg.network.listen))?;
    if let Ok(mut e) = hub.endpoint.lock() {
        *e = Some(ep.clone());
    }
    Ok(ep)
}

/// The rustls server config (cloned out so `bind` can consume it).
pub fn server_tls(hub: &Hub) -> rustls::ServerConfig {
    hub.keys.server_tls.clone()
}
