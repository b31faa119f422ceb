//! The hub's part in a deployment of several instances on one shared store: events from the
//! other instances (new work, registry changes), and the lease each instance holds on the
//! delivery and relay work of the agencies connected to it.
//!
//! With the embedded store there is one instance: its leases are always held and there are
//! no events, so nothing here changes what a single hub does.

use crate::hub::{close, Hub};
use crate::state::HubEvent;
use poros_protocol::AgencyId;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tracing::{debug, info, warn};

/// How long a lease runs without renewal: an instance that stops (crashed, frozen) loses its
/// agencies' work to the instance they reconnect to after this.
pub const LEASE_TTL: Duration = Duration::from_secs(10);
/// How often a held lease is renewed.
const RENEW_EVERY: Duration = Duration::from_secs(3);
/// How often a lease held by another instance is tried again.
const RETRY_EVERY: Duration = Duration::from_millis(500);

/// Apply the other instances' events to this one, for as long as the hub runs.
pub fn listen(hub: &Arc<Hub>) {
    let Some(mut rx) = hub.store.events() else {
        return;
    };
    let hub = hub.clone();
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(HubEvent::Work(a)) => {
                    hub.wake_local(&a);
                }
                Ok(HubEvent::Registry(a)) => {
                    debug!(agency = %a, "registry changed through another hub");
                    if let Err(e) = hub.registry_changed_elsewhere(&a).await {
                        warn!(agency = %a, error = %e, "applying a registry change made through another hub failed");
                    }
                }
                Ok(HubEvent::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    info!("resynchronising with the other hubs (events may have been missed)");
                    if let Err(e) = hub.resync_registry().await {
                        warn!(error = %e, "resynchronising the registry failed");
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

/// Hold the lease on `agency`'s work for as long as `conn` lives. The receiver says whether
/// it is held now; the pusher sends nothing while it is not. A lease lost while held (this
/// instance was frozen past the lease and another took the agency over) closes `conn`: the
/// agent is served by the other instance now.
pub(crate) fn keep_lease(
    hub: &Arc<Hub>,
    agency: &AgencyId,
    conn: &quinn::Connection,
) -> watch::Receiver<bool> {
    // One instance: the work is always its own, and nothing needs renewing.
    if !hub.shared {
        return watch::channel(true).1;
    }
    let (tx, rx) = watch::channel(false);
    let (hub, agency, conn) = (hub.clone(), agency.clone(), conn.clone());
    tokio::spawn(async move {
        let holder = hub.store.holder();
        let mut held = false;
        let mut failing = false;
        loop {
            let now_held = match hub.store.claim_agency(&agency, &holder, LEASE_TTL).await {
                Ok(h) => {
                    failing = false;
                    h
                }
                Err(e) => {
                    // Unknown: keep the last answer (a held lease runs out by itself).
                    if !failing {
                        warn!(agency = %agency, error = %e, "claiming or renewing the agency lease failed; retrying");
                    }
                    failing = true;
                    held
                }
            };
            if held && !now_held {
                warn!(agency = %agency, "another hub took this agency's work over; closing this connection");
                conn.close(
                    close::REPLACED.into(),
                    b"served by another hub instance now",
                );
            }
            if now_held != held {
                held = now_held;
                tx.send_replace(held);
            }
            let wait = if held { RENEW_EVERY } else { RETRY_EVERY };
            tokio::select! {
                _ = conn.closed() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        tx.send_replace(false);
        if held {
            if let Err(e) = hub.store.release_agency(&agency, &holder).await {
                debug!(agency = %agency, error = %e, "releasing the agency lease failed; it runs out by itself");
            }
        }
    });
    rx
}

/// Wait until the lease is held; `false` if the connection closed first.
pub(crate) async fn lease_held(
    lease: &mut watch::Receiver<bool>,
    conn: &quinn::Connection,
) -> bool {
    loop {
        if *lease.borrow_and_update() {
            return true;
        }
        tokio::select! {
            changed = lease.changed() => {
                if changed.is_err() {
                    return false;
                }
            }
            _ = conn.closed() => return false,
        }
    }
}
