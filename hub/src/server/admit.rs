//! Connection admission: the agency from the verified certificate, its registry state and
//! current serial, settlement of a second live connection, then the connection's life.

use crate::hub::{close, now_ms, Hub};
use crate::state::{Conflict, NodeChange, NodeState, SerialCheck};
use poros_protocol::{AgencyId, Frame};
use poros_transport::loglimit::LogLimiter;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, info_span, warn, Instrument};

use super::dispatch::handle_stream;
use super::push::{pusher, DeliverySlots};

/// Warnings one connection may write per [`LOG_WINDOW`] about its requests.
const LOG_BURST: u32 = 10;
/// The window of [`LOG_BURST`].
const LOG_WINDOW: Duration = Duration::from_secs(10);

/// Admit and then serve one connection. `admission` is held until the TLS handshake is over
/// (see `serve`'s admission control).
pub(super) async fn serve_connection(
    hub: Arc<Hub>,
    inc: quinn::Incoming,
    admission: tokio::sync::OwnedSemaphorePermit,
) {
    let remote = inc.remote_address();
    let handshake = inc.await;
    // The handshake's cryptography is what admission control bounds; what follows waits on
    // the store and the agent, not on this machine's CPU.
    drop(admission);
    let conn = match handshake {
        Ok(c) => c,
        Err(e) => {
            hub.metrics.handshake_failure(&e);
            warn!(%remote, error = %e, "handshake refused");
            return;
        }
    };
    let certs = conn.peer_identity().and_then(|i| {
        i.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
            .ok()
    });
    let agency = match certs.as_deref().map(|c| poros_certs::peer_agency(c)) {
        Some(Ok(a)) => a,
        other => {
            let why = match other {
                Some(Err(e)) => e.to_string(),
                _ => "no client certificate".into(),
            };
            hub.metrics.refuse("no_identity");
            warn!(%remote, %why, "connection refused: no agency identity");
            conn.close(close::NO_IDENTITY.into(), b"certificate names no agency");
            return;
        }
    };
    let serial = certs
        .as_deref()
        .and_then(|c| c.first())
        .and_then(|c| poros_certs::cert_serial_hex(c).ok())
        .unwrap_or_default();
    let span = info_span!("conn", agency = %agency, %remote);
    async move {
        // Several instances: the record may have changed through another one (enrolled,
        // renewed, revoked) a moment ago; the store, not the cache, decides admission.
        if hub.shared {
            match hub.store.node(&agency).await {
                Ok(Some(rec)) => hub.cache_node(rec),
                Ok(None) => {}
                Err(e) => {
                    warn!(error = %e, "reading the agency's record failed; using the cached one")
                }
            }
        }
        match hub.node_state(&agency) {
            Some(NodeState::Active) => {
                if !admit_certificate(&hub, &agency, &serial, &conn) {
                    return;
                }
            }
            Some(NodeState::Pending) => {
                hub.metrics.refuse("not_active");
                warn!("connection refused: agency has not enrolled");
                conn.close(
                    close::NOT_ACTIVE.into(),
                    format!("agency {agency} has not enrolled").as_bytes(),
                );
                return;
            }
            Some(state) => {
                hub.metrics.refuse("not_active");
                warn!(?state, "connection refused: agency is not active");
                conn.close(
                    close::NOT_ACTIVE.into(),
                    format!("agency {agency} is {state:?}").as_bytes(),
                );
                return;
            }
            None => {
                hub.metrics.refuse("unknown_agency");
                warn!("connection refused: agency is not registered");
                conn.close(
                    close::UNKNOWN_AGENCY.into(),
                    format!("agency {agency} is not registered at this hub").as_bytes(),
                );
                return;
            }
        }
        if !settle_identity(&hub, &agency, &conn, remote).await {
            return;
        }
        let (id, wake) = hub.attach(&agency, &conn);
        hub.metrics.connections.fetch_add(1, Ordering::Relaxed);
        info!("node connected");
        hub.seen(&agency).await;
        // The agent must hold the current CRL before it is handed any held document, or it
        // could accept one signed by a certificate revoked while it was offline.
        hub.push_crl_to(&agency, conn.clone()).await;
        if let Some(point) = hub.recovery {
            tokio::spawn(
                crate::backup::recovery::ask_again(agency.clone(), conn.clone(), point)
                    .in_current_span(),
            );
        }
        let lease = crate::coordination::keep_lease(&hub, &agency, &conn);
        let slots = DeliverySlots::new(&hub, &conn, wake, lease);
        hub.offer_slots(&agency, id, slots.clone());
        let pusher = tokio::spawn(pusher(hub.clone(), agency.clone(), slots).in_current_span());
        // A node flooding bad requests gets a few warnings per window, then a count.
        let log = Arc::new(LogLimiter::new(LOG_BURST, LOG_WINDOW));
        let current = crate::statements::speaks_statements(&conn);
        loop {
            match conn.accept_bi().await {
                Ok((send, recv)) => {
                    let hub = hub.clone();
                    let agency = agency.clone();
                    let log = log.clone();
                    tokio::spawn(
                        handle_stream(hub, agency, log, current, send, recv).in_current_span(),
                    );
                }
                Err(e) => {
                    info!(reason = %e, "node disconnected");
                    break;
                }
            }
        }
        pusher.abort();
        hub.detach(&agency, id);
        hub.seen(&agency).await;
    }
    .instrument(span)
    .await
}

/// Admit a node only with the TLS certificate the hub holds for it now, or during a renewal's
/// overlap the one it replaced; the first use of a new certificate retires the old pair.
fn admit_certificate(
    hub: &Arc<Hub>,
    agency: &AgencyId,
    serial: &str,
    conn: &quinn::Connection,
) -> bool {
    let Some(rec) = hub.node(agency) else {
        return false;
    };
    let overlap = hub.renewal_overlap_ms();
    match rec.check_tls_serial(serial, now_ms(), overlap) {
        SerialCheck::Current => {
            if rec.superseded.is_some() {
                let (hub, agency) = (hub.clone(), agency.clone());
                tokio::spawn(async move {
                    if let Err(e) = hub
                        .retire_superseded(&agency, "new certificate in use")
                        .await
                    {
                        warn!(agency = %agency, error = %e, "retiring superseded certificates failed; the sweeper retries");
                    }
                });
            }
            true
        }
        SerialCheck::Superseded => {
            info!(
                serial,
                "admitted with the certificate its renewal replaced (overlap)"
            );
            true
        }
        SerialCheck::Unknown => {
            hub.metrics.refuse("not_current_certificate");
            warn!(
                serial,
                current = %rec.tls_serial,
                "connection refused: not the agency's current certificate (superseded or never issued)"
            );
            conn.close(
                close::NOT_CURRENT_CERT.into(),
                format!("certificate {serial} is not the current certificate of {agency}")
                    .as_bytes(),
            );
            false
        }
    }
}

/// A second connection for an agency that is already connected: if the first still answers,
/// two parties hold the agency's credentials. That conflict is logged, counted and recorded,
/// and the newcomer is refused: the agency's mail is never silently handed to it. A first
/// connection that no longer answers is a stale one (a reconnect) and is replaced.
async fn settle_identity(
    hub: &Arc<Hub>,
    agency: &AgencyId,
    conn: &quinn::Connection,
    remote: std::net::SocketAddr,
) -> bool {
    let Some(old) = hub.connection_of(agency) else {
        return true;
    };
    if old.close_reason().is_some() || !answers_ping(&old).await {
        return true;
    }
    hub.metrics.identity_conflict();
    let kept = old.remote_address().to_string();
    warn!(%kept, refused = %remote, "identity conflict: a second live connection presents this agency's certificate; refused");
    conn.close(
        close::IDENTITY_CONFLICT.into(),
        format!("another live connection already serves {agency}").as_bytes(),
    );
    // Into the record as stored (never a cached copy written back).
    let conflict = Conflict {
        at_ms: now_ms(),
        kept,
        refused: remote.to_string(),
    };
    let change: NodeChange = Box::new(move |rec| {
        rec.conflicts += 1;
        rec.last_conflict = Some(conflict.clone());
    });
    match hub.store.modify_node(agency.clone(), change).await {
        Ok(Some(rec)) => hub.cache_node(rec),
        Ok(None) => {}
        Err(e) => warn!(error = %e, "recording the identity conflict failed"),
    }
    false
}

/// Whether a connection's agent answers a ping within a few seconds.
async fn answers_ping(conn: &quinn::Connection) -> bool {
    let ping = poros_transport::request(conn, &Frame::Ping);
    matches!(
        tokio::time::timeout(Duration::from_secs(3), ping).await,
        Ok(Ok(_))
    )
}
