//! The token enrolment endpoint: server-authenticated QUIC where new agents redeem one-time
//! tokens. Owns its admission rules: connections per source address, a deadline for every step,
//! and processing slots held only while a request is being processed.

use crate::hub::Hub;
use anyhow::{Context, Result};
use poros_protocol::{Frame, Refusal, RefusalCode};
use poros_transport::{read_frame, write_frame, Limits};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

/// QUIC application close codes of the enrolment endpoint.
pub mod close {
    /// No request (or no complete request) arrived within the step deadline.
    pub const IDLE: u32 = 0x30;
    /// The request was answered.
    pub const DONE: u32 = 0x31;
}

/// What a busy endpoint tells an agent (the agent retries on `RefusalCode::Unavailable`).
pub const BUSY: &str = "the hub's enrolment service is busy; retry in a few seconds";

/// Connections open at once over all sources, as a multiple of the processing slots: waiting
/// connections cost a task and a little memory each, never a processing slot.
const OPEN_PER_SLOT: usize = 4;

/// Bind the enrolment endpoint (server-authenticated only) and remember its address.
pub fn bind(hub: &Hub) -> Result<quinn::Endpoint> {
    let mut chain = hub.keys.tls_chain.clone();
    chain.push(hub.keys.network_ca.cert_der().to_vec());
    let tls = poros_certs::hub_enroll_server_config(chain, hub.keys.tls_key.clone())?;
    let mut reset = hub.keys.reset_key;
    reset[0] ^= 0x5a; // a distinct key per endpoint
    let ep = poros_transport::server_endpoint(
        hub.cfg.enrolment.listen,
        tls,
        &Limits {
            max_streams: 4,
            ..Limits::default()
        },
        &reset,
    )
    .with_context(|| format!("binding enrolment listener {}", hub.cfg.enrolment.listen))?;
    if let Ok(mut a) = hub.enroll_addr.lock() {
        *a = ep.local_addr().ok();
    }
    Ok(ep)
}

/// Open enrolment connections per source address; a slot is given back when its guard drops.
#[derive(Clone, Default)]
struct PerSource(Arc<Mutex<HashMap<IpAddr, u32>>>);

struct SourceSlot {
    table: PerSource,
    ip: IpAddr,
}

impl PerSource {
    fn try_take(&self, ip: IpAddr, max: u32) -> Option<SourceSlot> {
        let mut t = self.0.lock().ok()?;
        let n = t.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(SourceSlot {
            table: self.clone(),
            ip,
        })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        if let Ok(mut t) = self.table.0.lock() {
            if let Some(n) = t.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    t.remove(&self.ip);
                }
            }
        }
    }
}

/// Serve token enrolments until the endpoint closes.
pub async fn serve(hub: Arc<Hub>, endpoint: quinn::Endpoint) {
    let cfg = hub.cfg.enrolment.clone();
    let slots = Arc::new(Semaphore::new(cfg.max_in_progress as usize));
    let open = Arc::new(Semaphore::new(cfg.max_in_progress as usize * OPEN_PER_SLOT));
    let per_source = PerSource::default();
    while let Some(inc) = endpoint.accept().await {
        let remote = inc.remote_address();
        // Refused before the handshake, so a flood costs no cryptography; the agent reports a
        // refused connection as a busy enrolment service and retries.
        let Some(source) = per_source.try_take(remote.ip(), cfg.max_per_source) else {
            hub.metrics.refuse("enrol_per_source_limit");
            debug!(%remote, "enrolment connection refused: too many from this address");
            inc.refuse();
            continue;
        };
        let Ok(open_permit) = open.clone().try_acquire_owned() else {
            hub.metrics.refuse("enrol_busy");
            inc.refuse();
            continue;
        };
        let (hub, slots) = (hub.clone(), slots.clone());
        let step = Duration::from_secs(cfg.step_timeout_secs);
        tokio::spawn(async move {
            if let Err(e) = one_connection(&hub, inc, &slots, step).await {
                warn!(%remote, error = %e, "enrolment connection failed");
            }
            drop(open_permit);
            drop(source);
        });
    }
}

/// One enrolment connection, every step under the deadline `step`.
async fn one_connection(
    hub: &Arc<Hub>,
    inc: quinn::Incoming,
    slots: &Semaphore,
    step: Duration,
) -> Result<()> {
    let remote = inc.remote_address();
    let conn = tokio::time::timeout(step, inc)
        .await
        .context("handshake not completed in time")??;
    let request = async {
        let (send, mut recv) = conn.accept_bi().await?;
        let frame = read_frame(&mut recv).await?;
        Ok::<_, anyhow::Error>((send, frame))
    };
    let (mut send, frame) = match tokio::time::timeout(step, request).await {
        Ok(r) => r?,
        Err(_) => {
            hub.metrics.refuse("enrol_idle");
            debug!(%remote, "enrolment connection closed: no request in time");
            conn.close(
                close::IDLE.into(),
                format!("no enrolment request within {} s", step.as_secs()).as_bytes(),
            );
            return Ok(());
        }
    };
    // A processing slot is held only from here to the answer.
    let reply = match tokio::time::timeout(step, slots.acquire()).await {
        Ok(Ok(_slot)) => answer(hub, frame, remote).await,
        _ => {
            hub.metrics.refuse("enrol_busy");
            Frame::Refused(Refusal {
                code: RefusalCode::Unavailable,
                message: BUSY.into(),
            })
        }
    };
    let deliver = async {
        write_frame(&mut send, &reply).await?;
        send.finish()?;
        // The agent closes once it has read the answer.
        conn.closed().await;
        Ok::<_, anyhow::Error>(())
    };
    let delivered = tokio::time::timeout(step, deliver).await;
    conn.close(close::DONE.into(), b"done");
    match delivered {
        Ok(r) => r,
        Err(_) => {
            info!(%remote, "enrolment answer not collected in time; connection closed");
            Ok(())
        }
    }
}

async fn answer(hub: &Arc<Hub>, frame: Frame, remote: std::net::SocketAddr) -> Frame {
    match frame {
        Frame::Enroll {
            agency,
            secret,
            tls_csr,
            sign_csr,
        } => match hub
            .enrol(
                &agency,
                &secret,
                &tls_csr,
                &sign_csr,
                &format!("enrolment@{remote}"),
            )
            .await
        {
            Ok(c) => Frame::Credentials(c),
            Err(r) => Frame::Refused(r),
        },
        _ => Frame::Refused(Refusal {
            code: RefusalCode::Malformed,
            message: "expected an Enroll frame".into(),
        }),
    }
}
