//! The hub connection: one QUIC connection kept up with backoff (and re-made after a
//! renewal), and the dispatch of each stream the hub opens to the job that answers it.

use super::Agent;
use anyhow::Result;
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

    pub(super) async fn connection_manager(self: Arc<Self>) {
        let limits = Limits::default();
        let endpoint = match poros_transport::client_endpoint(
            self.creds().client_tls,
            &limits,
            self.cfg.hub.is_ipv6(),
        ) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "cannot create the QUIC endpoint");
                return;
            }
        };
        if let Ok(mut e) = self.endpoint.lock() {
            *e = Some(endpoint.clone());
        }
        let mut backoff = Duration::from_millis(100);
        loop {
            if self.shutting_down.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            let mut renewed = false;
            let attempt = async {
                // The current credentials: they change when the agent renews.
                let config = poros_transport::quic_client_config(self.creds().client_tls, &limits)?;
                let connecting =
                    endpoint.connect_with(config, self.cfg.hub, &self.cfg.hub_server_name)?;
                Ok::<_, anyhow::Error>(connecting.await?)
            };
            match attempt.await {
                Ok(conn) => {
                    info!(hub = %self.cfg.hub, agency = %self.cfg.agency, "connected to hub");
                    let since = std::time::Instant::now();
                    self.conn.send_replace(Some(conn.clone()));
                    self.submit_wake.notify_one();
                    loop {
                        match conn.accept_bi().await {
                            Ok((send, recv)) => {
                                let me = self.clone();
                                tokio::spawn(async move { me.handle_incoming(send, recv).await });
                            }
                            Err(quinn::ConnectionError::LocallyClosed) => {
                                // Closed here either to reconnect after a renewal or to stop.
                                if self.shutting_down.load(std::sync::atomic::Ordering::SeqCst) {
                                    return;
                                }
                                info!("reconnecting with renewed certificates");
                                renewed = true;
                                break;
                            }
                            Err(e) => {
                                warn!(reason = %e, "hub connection closed");
                                break;
                            }
                        }
                    }
                    self.conn.send_replace(None);
                    // A TLS 1.3 client finishes its handshake before the hub has checked its
                    // certificate, so a refused node "connects" and is closed at once: only
                    // a connection that lasted resets the backoff.
                    if since.elapsed() > Duration::from_secs(10) {
                        backoff = Duration::from_millis(100);
                    }
                }
                Err(e) => {
                    warn!(hub = %self.cfg.hub, error = %e, "cannot connect to hub; retrying in {:?}", backoff)
                }
            }
            if renewed {
                continue;
            }
            // Jitter spreads reconnections of many agents after a hub restart.
            let mut j = [0u8; 1];
            let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut j);
            tokio::time::sleep(backoff + backoff * u32::from(j[0]) / 512).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
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
            // No answer: the hub keeps the delivery pending and retries.
            Err(e) => warn!(error = %e, "incoming request failed"),
        }
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
