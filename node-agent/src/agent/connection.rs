//! The hub connection: one QUIC connection to one of the hub instances, kept up by moving to
//! the next address when it goes away, with backoff only when no hub answers (and re-made
//! after a renewal), and the dispatch of each stream the hub opens to the job that answers it.

use super::Agent;
use anyhow::Result;
use poros_protocol::backoff::Backoff;
use poros_protocol::{DocumentId, Frame, Refusal, RefusalCode, StorageParty};
use poros_transport::{read_frame, write_frame, Limits};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn, Instrument};

/// The current hub connection, waiting while there is none; `None` once the agent is gone
/// (the sender side of `rx` dropped), so a submitter stops instead of spinning.
pub(crate) async fn connected(
    rx: &mut watch::Receiver<Option<quinn::Connection>>,
) -> Option<quinn::Connection> {
    loop {
        if let Some(c) = rx.borrow_and_update().clone() {
            return Some(c);
        }
        rx.changed().await.ok()?;
    }
}

/// How a served connection ended.
enum Served {
    /// The agent is stopping.
    Shutdown,
    /// Closed here to reconnect with renewed certificates (same hub).
    Renewed,
    /// Closed by the hub or the network; `lasted`: it served for a while (not a refusal).
    Closed { lasted: bool },
}

/// Why one connection attempt failed.
enum Attempt {
    /// The hub answered with a refusal: up, but admitting no more handshakes now.
    Refused(quinn::ConnectionError),
    /// No answer in time, a handshake that failed, or a local error.
    Failed(anyhow::Error),
}

fn random_byte() -> u8 {
    let mut j = [0u8; 1];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut j);
    j[0]
}

impl Agent {
    /// The hub connection, changing as it comes and goes.
    pub(crate) fn connection(&self) -> watch::Receiver<Option<quinn::Connection>> {
        self.conn.subscribe()
    }

    /// Close the hub connection (shutdown).
    pub async fn close(&self) {
        self.shutting_down
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(c) = self.conn.borrow().as_ref() {
            c.close(0u32.into(), b"agent shutting down");
        }
        // Let the close reach the hub, so it shows this node offline at once rather than
        // after its idle timeout.
        let ep = self.endpoint.lock().ok().and_then(|e| e.clone());
        if let Some(ep) = ep {
            let _ = tokio::time::timeout(Duration::from_secs(1), ep.wait_idle()).await;
        }
    }

    /// Keep one connection to a hub up. The hub addresses are tried in turn, from a random
    /// one (so agents spread over the instances); a connection that goes away is followed
    /// after a short random pause by an attempt on the next address, and only a round in
    /// which no hub answered waits, with jittered exponential backoff
    /// ([`poros_protocol::backoff`]).
    pub(super) async fn connection_manager(self: Arc<Self>) {
        let mut endpoints: Vec<(bool, quinn::Endpoint)> = Vec::new();
        let mut backoff = Backoff::default();
        let mut next = usize::from(random_byte());
        loop {
            if self.shutting_down.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            let hubs = self.cfg.hub.clone();
            let addrs = tokio::task::spawn_blocking(move || hubs.resolve())
                .await
                .unwrap_or_default();
            if addrs.is_empty() {
                warn!(hub = %self.cfg.hub, "no hub address resolves; retrying");
            }
            // Quick to leave a silent hub when there is another to go to (see the config).
            let limits = Limits::agent(self.cfg.hub_idle_timeout(addrs.len()));
            let mut served = false;
            let mut busy = false;
            let mut renewed = false;
            for i in 0..addrs.len() {
                let at = (next + i) % addrs.len();
                let addr = addrs[at];
                let endpoint = match self.endpoint_for(&mut endpoints, addr, &limits) {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::error!(hub = %addr, error = %e, "cannot create the QUIC endpoint");
                        continue;
                    }
                };
                let conn = match self.connect_once(&endpoint, addr, &limits).await {
                    Ok(c) => c,
                    Err(Attempt::Refused(e)) => {
                        // Up but busy (a reconnect storm): readmitted within a second or two.
                        info!(hub = %addr, error = %e, "hub refused the connection as busy; trying the next address");
                        busy = true;
                        continue;
                    }
                    Err(Attempt::Failed(e)) => {
                        warn!(hub = %addr, error = %e, "cannot connect to hub; trying the next address");
                        continue;
                    }
                };
                match self.serve(conn, addr).await {
                    Served::Shutdown => return,
                    Served::Renewed => {
                        renewed = true;
                        next = at;
                        break;
                    }
                    // A TLS 1.3 client finishes its handshake before the hub has checked its
                    // certificate, so a refused node "connects" and is closed at once: only a
                    // connection that lasted counts as served.
                    Served::Closed { lasted: false } => continue,
                    Served::Closed { lasted: true } => {
                        served = true;
                        next = at + 1;
                        break;
                    }
                }
            }
            if renewed {
                continue;
            }
            // Jitter spreads the reconnections of many agents after a hub goes away.
            let wait = if served {
                backoff.served(random_byte())
            } else if busy {
                backoff.refused(random_byte())
            } else {
                backoff.failed(random_byte())
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// The client endpoint for `addr`'s address family, made once per family.
    fn endpoint_for(
        &self,
        endpoints: &mut Vec<(bool, quinn::Endpoint)>,
        addr: std::net::SocketAddr,
        limits: &Limits,
    ) -> Result<quinn::Endpoint> {
        let v6 = addr.is_ipv6();
        if let Some((_, e)) = endpoints.iter().find(|(f, _)| *f == v6) {
            return Ok(e.clone());
        }
        let e = poros_transport::client_endpoint(self.creds().client_tls, limits, v6)?;
        if let Ok(mut slot) = self.endpoint.lock() {
            *slot = Some(e.clone());
        }
        endpoints.push((v6, e.clone()));
        Ok(e)
    }

    /// One connection attempt, bounded: a hub that is gone never answers a handshake, and
    /// the next address should not wait for the whole idle timeout.
    async fn connect_once(
        &self,
        endpoint: &quinn::Endpoint,
        addr: std::net::SocketAddr,
        limits: &Limits,
    ) -> Result<quinn::Connection, Attempt> {
        // The current credentials: they change when the agent renews.
        let config = poros_transport::quic_client_config(self.creds().client_tls, limits)
            .map_err(|e| Attempt::Failed(e.into()))?;
        let connecting = endpoint
            .connect_with(config, addr, &self.cfg.hub_server_name)
            .map_err(|e| Attempt::Failed(e.into()))?;
        match tokio::time::timeout(Backoff::ATTEMPT_TIMEOUT, connecting).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) if poros_transport::refused_by_peer(&e) => Err(Attempt::Refused(e)),
            Ok(Err(e)) => Err(Attempt::Failed(e.into())),
            Err(_) => Err(Attempt::Failed(anyhow::anyhow!(
                "no answer within {:?}",
                Backoff::ATTEMPT_TIMEOUT
            ))),
        }
    }

    /// Serve a hub connection until it closes.
    async fn serve(
        self: &Arc<Self>,
        conn: quinn::Connection,
        addr: std::net::SocketAddr,
    ) -> Served {
        info!(hub = %addr, agency = %self.cfg.agency, "connected to hub");
        let since = std::time::Instant::now();
        self.conn.send_replace(Some(conn.clone()));
        self.submit_wake.notify_one();
        let end = loop {
            match conn.accept_bi().await {
                Ok((send, recv)) => {
                    let me = self.clone();
                    tokio::spawn(async move { me.handle_incoming(send, recv).await });
                }
                Err(quinn::ConnectionError::LocallyClosed) => {
                    // Closed here either to reconnect after a renewal or to stop.
                    if self.shutting_down.load(std::sync::atomic::Ordering::SeqCst) {
                        return Served::Shutdown;
                    }
                    info!("reconnecting with renewed certificates");
                    break Served::Renewed;
                }
                Err(e) => {
                    warn!(hub = %addr, reason = %e, "hub connection closed");
                    break Served::Closed {
                        lasted: since.elapsed() >= Backoff::SERVED_AFTER,
                    };
                }
            }
        };
        self.conn.send_replace(None);
        end
    }

    async fn handle_incoming(
        self: Arc<Self>,
        mut send: quinn::SendStream,
        mut recv: quinn::RecvStream,
    ) {
        let frame = match read_frame(&mut recv).await {
            Ok(f) => f,
            Err(e) => {
                warn!(error = %e, "malformed frame from hub");
                let _ = write_frame(
                    &mut send,
                    &Frame::Refused(Refusal {
                        code: RefusalCode::Malformed,
                        message: format!("malformed frame: {e}"),
                    }),
                )
                .await;
                let _ = send.finish();
                return;
            }
        };
        if let Frame::Reupload { doc_id } = frame {
            let _ = recv.stop(0u32.into());
            if let Err(e) = self.reupload(doc_id, &mut send).await {
                warn!(doc = %doc_id, error = %e, "re-upload of a body to the hub failed");
            }
            return;
        }
        let reply = match frame {
            Frame::Deliver { envelope } => {
                let span = tracing::info_span!("deliver", agency = %self.cfg.agency);
                let answer = self
                    .receive(envelope, None, &mut recv)
                    .instrument(span)
                    .await;
                self.storage_refusal(answer)
            }
            Frame::DeliverAdded { envelope, update } => {
                let span = tracing::info_span!("deliver_added", agency = %self.cfg.agency);
                let answer = self
                    .receive(envelope, Some(update), &mut recv)
                    .instrument(span)
                    .await;
                self.storage_refusal(answer)
            }
            Frame::Statement { statement } => {
                let answer = crate::statements::receive(&self, statement).await;
                self.storage_refusal(answer)
            }
            Frame::RelayReceipt { receipt } => self.store_relayed_receipt(receipt).await,
            Frame::Notice { notice } => self.store_notice(notice).await,
            Frame::CrlUpdate { signing_crl } => self.apply_crl(signing_crl),
            Frame::Resync { epoch, since_ms } => self.resync(epoch, since_ms).await,
            Frame::Ping => Ok(Frame::Ack {
                doc_id: DocumentId::from_bytes([0; 16]),
            }),
            _ => Ok(Frame::Refused(Refusal {
                code: RefusalCode::Malformed,
                message: "unexpected frame from hub".into(),
            })),
        };
        match reply {
            Ok(f) => {
                let _ = recv.stop(0u32.into());
                let _ = write_frame(&mut send, &f).await;
                let _ = send.finish();
            }
            // The hub was forwarding a body it was still receiving, and that upload failed or
            // was refused: nothing was kept here, and nothing is owed.
            Err(e)
                if e.downcast_ref::<poros_transport::WireError>()
                    .and_then(poros_transport::WireError::reset_code)
                    == Some(poros_transport::RESET_BODY_ABANDONED.into()) =>
            {
                info!("the hub abandoned a delivery part-way (its upload did not complete); nothing was kept")
            }
            // No answer: the hub keeps the delivery pending and retries.
            Err(e) => warn!(error = %e, "incoming request failed"),
        }
    }

    /// The hub's store was restored from a backup: queue again what it accepted since, once
    /// per restore, and wake the submitter.
    async fn resync(&self, epoch: u64, since_ms: u64) -> Result<Frame> {
        let queued = self.store.requeue_for_resync(epoch, since_ms).await?;
        if !queued.is_empty() {
            warn!(
                agency = %self.cfg.agency,
                documents = queued.documents,
                statements = queued.statements,
                since_ms,
                "the hub was restored from a backup: submitting again the documents and statements it accepted since"
            );
            self.submit_wake.notify_one();
            self.statement_wake.notify_one();
        }
        Ok(Frame::Ack {
            doc_id: DocumentId::from_bytes([0; 16]),
        })
    }

    /// A delivery this agent could not store because its storage cannot write is refused
    /// with the retryable "recipient storage full / unavailable" (the hub keeps retrying and
    /// tells the sender), instead of a dropped stream that says nothing.
    pub(crate) fn storage_refusal(&self, answer: Result<Frame>) -> Result<Frame> {
        let fault = match &answer {
            Err(e) => e
                .downcast_ref::<poros_store::StoreError>()
                .and_then(poros_store::StoreError::fault),
            Ok(_) => None,
        };
        match fault {
            Some(f) => {
                self.store.db().report_fault(f);
                warn!(agency = %self.cfg.agency, fault = %f, "delivery refused: cannot store it now");
                Ok(Frame::Refused(Refusal::storage(
                    StorageParty::Recipient,
                    f.is_full(),
                )))
            }
            None => answer,
        }
    }
}
