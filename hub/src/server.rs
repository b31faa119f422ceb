//! The running hub: accepts mutually authenticated QUIC connections, takes submissions,
//! pushes deliveries and relays answers to each connected node, and sweeps expiry/retention.
//! Identity comes only from the verified client certificate (see `poros-certs`).

use crate::deployment::{HubKeys, HubPaths};
use crate::metrics::Metrics;
use crate::repair::BodySource;
use crate::state::{
    AcceptOutcome, BodyAt, Conflict, DeliveryState, DocRecord, HubStore, NewBody, NodeRecord,
    NodeState, RelayItem, SerialCheck, INLINE_MAX,
};
use anyhow::{Context, Result};
use poros_certs::Signer;
use poros_config::HubConfig;
use poros_protocol::envelope::ENVELOPE_CONTEXT;
use poros_protocol::receipt::RECEIPT_CONTEXT;
use poros_protocol::{
    Acceptance, AgencyId, DelayReason, DocumentId, Frame, HubNotice, NoticeKind, Outcome, Refusal,
    RefusalCode, SignedAcceptance, SignedEnvelope, SignedNotice, StorageParty,
};
use poros_store::{Blobs, Db};
use poros_transport::loglimit::LogLimiter;
use poros_transport::warn_limited;
use poros_transport::{
    read_frame, recv_small_body, send_body_verified, write_frame, BodyReader, Limits, WireError,
};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tracing::{debug, info, info_span, warn, Instrument};

/// QUIC application close codes.
pub mod close {
    /// The agency is not registered.
    pub const UNKNOWN_AGENCY: u32 = 0x10;
    /// The agency is suspended or revoked.
    pub const NOT_ACTIVE: u32 = 0x11;
    /// A newer connection of the same agency replaced this one.
    pub const REPLACED: u32 = 0x12;
    /// The hub is shutting down.
    pub const SHUTDOWN: u32 = 0x13;
    /// The peer certificate names no agency.
    pub const NO_IDENTITY: u32 = 0x14;
    /// The certificate is not the one the hub holds for the agency (superseded or never issued).
    pub const NOT_CURRENT_CERT: u32 = 0x15;
    /// Another live connection already serves this agency (identity conflict).
    pub const IDENTITY_CONFLICT: u32 = 0x16;
}

pub use poros_transport::now_ms;

/// Why a statement is not accepted as the agency's own.
#[derive(Debug, thiserror::Error)]
pub enum AgencyCheck {
    /// Signed by someone else.
    #[error("signed by {0}, not by the connected agency")]
    OtherSigner(String),
    /// The signature or the signer's chain does not verify.
    #[error("signature: {0}")]
    Invalid(poros_certs::VerifyError),
    /// A valid certificate of the agency's, but not the one the hub holds for it now.
    #[error(
        "signed with certificate {0}, which is not the agency's current signing certificate \
         (superseded by a renewal, or never issued by this hub)"
    )]
    NotCurrent(String),
}

struct Connected {
    conn: quinn::Connection,
    wake: Arc<Notify>,
    id: u64,
}

/// Shared hub state.
pub struct Hub {
    /// Configuration.
    pub cfg: HubConfig,
    /// Durable state.
    pub store: HubStore,
    /// Body files.
    pub blobs: Blobs,
    pub(crate) keys: HubKeys,
    /// Orders body-file removal after retention against new references to the same file.
    /// The bound QUIC endpoint (its server config is swapped when CRLs change).
    pub(crate) endpoint: Mutex<Option<quinn::Endpoint>>,
    /// Address of the enrolment endpoint, once bound (carried by tokens).
    pub(crate) enroll_addr: Mutex<Option<std::net::SocketAddr>>,
    /// Deployment paths.
    pub(crate) paths: HubPaths,
    /// Registry cache (the store is authoritative; admin changes update both).
    registry: RwLock<HashMap<AgencyId, NodeRecord>>,
    connected: Mutex<HashMap<AgencyId, Connected>>,
    next_conn: AtomicU64,
    /// Operational counters.
    pub metrics: Metrics,
    /// Deliveries a recipient refused for now, and whether their senders know.
    pub delays: crate::delays::Delays,
    /// The body scrub job (see `repair`).
    pub(crate) scrub: Mutex<crate::repair::ScrubState>,
}

impl Hub {
    /// Open the deployment's store and keys.
    pub fn open(paths: &HubPaths, cfg: HubConfig) -> Result<Arc<Hub>> {
        let metrics = Metrics::default();
        let keys = crate::deployment::load_keys(paths, Some(metrics.cert_observer()))?;
        let db = Db::open(&paths.db())?;
        let store = HubStore::open(db)?
            .with_on_time_ms(cfg.monitoring.on_time_secs * 1000)
            .with_business(
                crate::business::Calendar::of_config(&cfg.monitoring),
                cfg.monitoring.registration_working_days,
            );
        let blobs = Blobs::open(&paths.bodies())?;
        let registry = store
            .nodes()?
            .into_iter()
            .map(|n| (n.agency.clone(), n))
            .collect();
        Ok(Arc::new(Hub {
            cfg,
            store,
            blobs,
            keys,
            endpoint: Mutex::new(None),
            enroll_addr: Mutex::new(None),
            paths: paths.clone(),
            registry: RwLock::new(registry),
            connected: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            metrics,
            delays: Default::default(),
            scrub: Mutex::default(),
        }))
    }

    /// Registry snapshot.
    pub fn nodes(&self) -> Vec<NodeRecord> {
        let mut v: Vec<_> = self
            .registry
            .read()
            .map(|r| r.values().cloned().collect())
            .unwrap_or_default();
        v.sort_by(|a: &NodeRecord, b| a.agency.cmp(&b.agency));
        v
    }

    fn node_state(&self, a: &AgencyId) -> Option<NodeState> {
        self.registry.read().ok()?.get(a).map(|n| n.state)
    }

    /// Agencies connected now.
    pub fn connected_agencies(&self) -> Vec<AgencyId> {
        self.connected
            .lock()
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn wake_agency(&self, a: &AgencyId) {
        self.wake(a)
    }

    fn wake(&self, a: &AgencyId) {
        if let Ok(c) = self.connected.lock() {
            if let Some(c) = c.get(a) {
                c.wake.notify_one();
            }
        }
    }

    /// Verify a signed statement against the signing CA and current CRL.
    pub fn verify(
        &self,
        blob: &poros_protocol::SignedBlob,
        context: &[u8],
        now_secs: u64,
    ) -> Result<Signer, poros_certs::VerifyError> {
        match self.keys.signing_trust.read() {
            Ok(t) => t.verify(blob, context, now_secs),
            Err(p) => p.into_inner().verify(blob, context, now_secs),
        }
    }

    /// How long a renewed node's replaced certificates stay admitted, in ms.
    pub(crate) fn renewal_overlap_ms(&self) -> u64 {
        self.cfg.enrolment.renewal_overlap_secs.saturating_mul(1000)
    }

    /// Verify a statement that `agency` must have signed with the signing certificate the hub
    /// currently holds for it (or, during a renewal's overlap, the one it replaced): a
    /// superseded or never-issued certificate is refused by the hub's clock, whatever the
    /// statement claims.
    pub fn verify_agency(
        &self,
        blob: &poros_protocol::SignedBlob,
        context: &[u8],
        agency: &AgencyId,
    ) -> Result<(), AgencyCheck> {
        let now = now_ms();
        match self.verify(blob, context, now / 1000) {
            Ok(Signer::Agency(a)) if &a == agency => {}
            Ok(Signer::Agency(a)) => return Err(AgencyCheck::OtherSigner(a.to_string())),
            Ok(Signer::Hub) => return Err(AgencyCheck::OtherSigner("the hub".into())),
            Err(e) => return Err(AgencyCheck::Invalid(e)),
        }
        let serial = poros_certs::cert_serial_hex(&blob.signer_cert)
            .map_err(|e| AgencyCheck::Invalid(poros_certs::VerifyError::NoIdentity(e)))?;
        let overlap = self.renewal_overlap_ms();
        match self
            .node(agency)
            .map(|n| n.check_sign_serial(&serial, now, overlap))
        {
            Some(SerialCheck::Current) | Some(SerialCheck::Superseded) => Ok(()),
            _ => Err(AgencyCheck::NotCurrent(serial)),
        }
    }

    /// Record that a node was seen now (connect or disconnect).
    async fn seen(&self, a: &AgencyId) {
        if let Err(e) = self.store.mark_seen(vec![a.clone()], now_ms()).await {
            warn!(error = %e, "recording a connection in the statistics failed");
        }
        let Some(mut rec) = self.node(a) else { return };
        rec.last_seen_ms = Some(now_ms());
        if self.store.put_node(rec.clone()).await.is_ok() {
            self.cache_node(rec);
        }
    }

    pub(crate) fn node(&self, a: &AgencyId) -> Option<NodeRecord> {
        self.registry.read().ok()?.get(a).cloned()
    }

    pub(crate) fn cache_node(&self, rec: NodeRecord) {
        if let Ok(mut r) = self.registry.write() {
            r.insert(rec.agency.clone(), rec);
        }
    }

    pub(crate) fn connections(&self) -> Vec<(AgencyId, quinn::Connection)> {
        self.connected
            .lock()
            .map(|c| c.iter().map(|(a, c)| (a.clone(), c.conn.clone())).collect())
            .unwrap_or_default()
    }

    pub(crate) fn connection_of(&self, a: &AgencyId) -> Option<quinn::Connection> {
        self.connected.lock().ok()?.get(a).map(|c| c.conn.clone())
    }

    pub(crate) fn sign_notice(&self, n: &HubNotice) -> Result<SignedNotice> {
        Ok(SignedNotice::sign(
            n,
            &self.keys.hub_sign_key,
            &self.keys.hub_sign_cert,
        )?)
    }
}

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
                let hub = hub.clone();
                tokio::spawn(async move {
                    serve_connection(hub, inc).await;
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

/// Transport limits from the configuration.
pub fn limits(cfg: &HubConfig) -> Limits {
    Limits {
        max_streams: cfg.limits.max_streams_per_node,
        ..Limits::default()
    }
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

async fn serve_connection(hub: Arc<Hub>, inc: quinn::Incoming) {
    let remote = inc.remote_address();
    let conn = match inc.await {
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
        let id = hub.next_conn.fetch_add(1, Ordering::Relaxed);
        let wake = Arc::new(Notify::new());
        if let Ok(mut c) = hub.connected.lock() {
            if let Some(old) = c.insert(
                agency.clone(),
                Connected {
                    conn: conn.clone(),
                    wake: wake.clone(),
                    id,
                },
            ) {
                old.conn
                    .close(close::REPLACED.into(), b"replaced by a newer connection");
            }
        }
        hub.metrics.connections.fetch_add(1, Ordering::Relaxed);
        info!("node connected");
        hub.seen(&agency).await;
        // The agent must hold the current CRL before it is handed any held document, or it
        // could accept one signed by a certificate revoked while it was offline.
        hub.push_crl_to(&agency, conn.clone()).await;
        let pusher =
            tokio::spawn(pusher(hub.clone(), agency.clone(), conn.clone(), wake).in_current_span());
        // A node flooding bad requests gets a few warnings per window, then a count.
        let log = Arc::new(LogLimiter::new(LOG_BURST, LOG_WINDOW));
        loop {
            match conn.accept_bi().await {
                Ok((send, recv)) => {
                    let hub = hub.clone();
                    let agency = agency.clone();
                    let log = log.clone();
                    tokio::spawn(handle_stream(hub, agency, log, send, recv).in_current_span());
                }
                Err(e) => {
                    info!(reason = %e, "node disconnected");
                    break;
                }
            }
        }
        pusher.abort();
        if let Ok(mut c) = hub.connected.lock() {
            if c.get(&agency).is_some_and(|c| c.id == id) {
                c.remove(&agency);
            }
        }
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
    if let Some(mut rec) = hub.node(agency) {
        rec.conflicts += 1;
        rec.last_conflict = Some(Conflict {
            at_ms: now_ms(),
            kept,
            refused: remote.to_string(),
        });
        match hub.store.put_node(rec.clone()).await {
            Ok(()) => hub.cache_node(rec),
            Err(e) => warn!(error = %e, "recording the identity conflict failed"),
        }
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

async fn refuse(send: &mut quinn::SendStream, code: RefusalCode, message: String) {
    debug!(?code, %message, "refused");
    let _ = write_frame(send, &Frame::Refused(Refusal { code, message })).await;
    let _ = send.finish();
}

/// Warnings one connection may write per [`LOG_WINDOW`] about its requests.
const LOG_BURST: u32 = 10;
/// The window of [`LOG_BURST`].
const LOG_WINDOW: Duration = Duration::from_secs(10);

async fn handle_stream(
    hub: Arc<Hub>,
    agency: AgencyId,
    log: Arc<LogLimiter>,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let frame = match tokio::time::timeout(Duration::from_secs(30), read_frame(&mut recv)).await {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => {
            hub.metrics.refuse("malformed");
            warn_limited!(log, error = %e, "malformed frame");
            refuse(&mut send, RefusalCode::Malformed, e.to_string()).await;
            let _ = recv.stop(0u32.into());
            return;
        }
        Err(_) => {
            refuse(
                &mut send,
                RefusalCode::Malformed,
                "no frame within 30 s".into(),
            )
            .await;
            let _ = recv.stop(0u32.into());
            return;
        }
    };
    match frame {
        Frame::Submit { envelope } => {
            if let Err(e) = handle_submit(&hub, &agency, &log, &mut send, &mut recv, envelope).await
            {
                warn_limited!(log, error = %e, "submission failed");
            }
        }
        Frame::PaperReport { report } => {
            let reply = match paper_report(&hub, &agency, report).await {
                Ok(()) => Frame::Ack {
                    doc_id: DocumentId::from_bytes([0; 16]),
                },
                Err(message) => {
                    warn!(reason = %message, "paper report refused");
                    Frame::Refused(Refusal {
                        code: RefusalCode::InvalidEnvelope,
                        message,
                    })
                }
            };
            let _ = write_frame(&mut send, &reply).await;
            let _ = send.finish();
        }
        Frame::Statement { statement } => {
            crate::statements::handle(&hub, &agency, &log, &mut send, statement).await
        }
        Frame::Renew { tls_csr, sign_csr } => {
            let reply = match hub.renew(&agency, &tls_csr, &sign_csr).await {
                Ok(c) => Frame::Credentials(c),
                Err(e) => Frame::Refused(Refusal {
                    code: RefusalCode::NotAllowed,
                    message: format!("renewal refused: {e:#}"),
                }),
            };
            let _ = write_frame(&mut send, &reply).await;
            let _ = send.finish();
        }
        other => {
            hub.metrics.refuse("malformed");
            let name = format!("{other:?}");
            let name = name
                .split([' ', '(', '{'])
                .next()
                .unwrap_or("?")
                .to_string();
            refuse(
                &mut send,
                RefusalCode::Malformed,
                format!("unexpected frame {name} from a node (expected Submit)"),
            )
            .await;
        }
    }
}

/// The refusal for a failed store operation. A storage fault is the retryable "hub storage is
/// full / unavailable" (and marks the store unwritable, for /readyz); any other error is
/// logged here and answered without its details, which may name internal paths.
pub(crate) fn store_refusal(
    hub: &Hub,
    e: &poros_store::StoreError,
) -> (RefusalCode, String, &'static str) {
    match e.fault() {
        Some(f) => {
            hub.store.db().report_fault(f);
            let r = Refusal::storage(StorageParty::Hub, f.is_full());
            let metric = if f.is_full() {
                "storage_full"
            } else {
                "storage_unavailable"
            };
            (r.code, r.message, metric)
        }
        None => {
            warn!(error = %e, "hub store error");
            (
                RefusalCode::Unavailable,
                "hub store error, retrying".into(),
                "store",
            )
        }
    }
}

async fn handle_submit(
    hub: &Arc<Hub>,
    agency: &AgencyId,
    log: &LogLimiter,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    signed: SignedEnvelope,
) -> Result<(), WireError> {
    macro_rules! refuse {
        ($code:expr, $metric:expr, $($arg:tt)*) => {{
            hub.metrics.refuse($metric);
            let msg = format!($($arg)*);
            warn_limited!(log, reason = %msg, "submission refused");
            refuse(send, $code, msg).await;
            let _ = recv.stop(0u32.into());
            return Ok(());
        }};
    }
    match hub.verify_agency(&signed.0, ENVELOPE_CONTEXT, agency) {
        Ok(()) => {}
        Err(e @ AgencyCheck::OtherSigner(_)) => refuse!(
            RefusalCode::SenderMismatch,
            "sender_mismatch",
            "envelope is {e}"
        ),
        Err(e @ AgencyCheck::Invalid(_)) => {
            refuse!(RefusalCode::BadSignature, "bad_signature", "envelope {e}")
        }
        Err(e @ AgencyCheck::NotCurrent(_)) => refuse!(
            RefusalCode::BadSignature,
            "superseded_certificate",
            "envelope {e}"
        ),
    }
    let env = match signed.envelope() {
        Ok(e) => e,
        Err(e) => refuse!(RefusalCode::InvalidEnvelope, "invalid_envelope", "{e}"),
    };
    let span = info_span!("doc", doc = %env.id);
    let _g = span.enter();
    if &env.sender != agency {
        refuse!(
            RefusalCode::SenderMismatch,
            "sender_mismatch",
            "envelope claims sender {} but this connection is {agency}",
            env.sender
        );
    }
    if let Err(e) = env.validate() {
        refuse!(RefusalCode::InvalidEnvelope, "invalid_envelope", "{e}");
    }
    if env.body_len > hub.cfg.limits.max_body_bytes {
        refuse!(
            RefusalCode::TooLarge,
            "too_large",
            "body of {} bytes exceeds the hub limit of {} bytes",
            env.body_len,
            hub.cfg.limits.max_body_bytes
        );
    }
    for r in &env.recipients {
        match hub.node_state(r) {
            Some(NodeState::Active) | Some(NodeState::Suspended) | Some(NodeState::Pending) => {}
            Some(NodeState::Revoked) => refuse!(
                RefusalCode::UnknownRecipient,
                "unknown_recipient",
                "recipient {r} is revoked"
            ),
            None => refuse!(
                RefusalCode::UnknownRecipient,
                "unknown_recipient",
                "recipient {r} is not registered at this hub"
            ),
        }
    }
    drop(_g);
    // Resubmission: answer with the original acceptance without reading the body again.
    match hub.store.doc(&env.id) {
        Ok(Some(old)) if old.envelope.0.payload == signed.0.payload => {
            let _ = recv.stop(0u32.into());
            write_frame(
                send,
                &Frame::Accepted {
                    acceptance: old.acceptance,
                },
            )
            .await?;
            send.finish()?;
            debug!(doc = %env.id, "duplicate submission answered with original acceptance");
            return Ok(());
        }
        Ok(Some(_)) => refuse!(
            RefusalCode::Conflict,
            "conflict",
            "document ID {} is already used by a different document",
            env.id
        ),
        Ok(None) => {}
        Err(e) => {
            let (code, msg, metric) = store_refusal(hub, &e);
            refuse!(code, metric, "{msg}")
        }
    }

    let mut gc_guard = None;
    let body = if env.body_len <= INLINE_MAX {
        let buf = recv_small_body(recv, env.body_len).await?;
        if poros_protocol::sha256(&buf) != env.body_sha256 {
            refuse!(
                RefusalCode::BodyMismatch,
                "body_mismatch",
                "body does not match the SHA-256 in the signed envelope"
            );
        }
        NewBody::Inline(buf)
    } else {
        let mut w = match hub.blobs.writer().await {
            Ok(w) => w,
            Err(e) => {
                let (code, msg, metric) = store_refusal(hub, &e);
                refuse!(code, metric, "{msg}")
            }
        };
        let mut reader = BodyReader::new(env.body_len);
        while let Some(c) = reader.next(recv).await? {
            if let Err(e) = w.write(&c).await {
                let (code, msg, metric) = store_refusal(hub, &e);
                refuse!(code, metric, "{msg}");
            }
        }
        // Held until the document's reference to the file is committed, so retention cannot
        // delete a file this document is about to share with an older one.
        gc_guard = Some(hub.blobs.reference_guard().await);
        match w.commit_expecting(&env.body_sha256).await {
            Ok(_) => NewBody::File,
            Err(poros_store::StoreError::DigestMismatch { .. }) => refuse!(
                RefusalCode::BodyMismatch,
                "body_mismatch",
                "body does not match the SHA-256 in the signed envelope"
            ),
            Err(e) => {
                let (code, msg, metric) = store_refusal(hub, &e);
                refuse!(code, metric, "{msg}")
            }
        }
    };
    let acceptance = Acceptance {
        doc_id: env.id,
        sender: agency.clone(),
        recipients: env.recipients.clone(),
        body_sha256: env.body_sha256,
        body_len: env.body_len,
        accepted_ms: now_ms(),
    };
    let signed_acc = match SignedAcceptance::sign(
        &acceptance,
        &hub.keys.hub_sign_key,
        &hub.keys.hub_sign_cert,
    ) {
        Ok(s) => s,
        Err(e) => refuse!(RefusalCode::Unavailable, "sign", "hub cannot sign: {e}"),
    };
    let rec = DocRecord {
        envelope: signed,
        acceptance: signed_acc,
        sender: agency.clone(),
        recipients: env.recipients.clone(),
        body_sha256: env.body_sha256,
        body_len: env.body_len,
        body_at: BodyAt::Inline,
        accepted_ms: acceptance.accepted_ms,
    };
    let acc = match hub.store.accept(rec, body).await {
        Ok(AcceptOutcome::Stored(a)) => {
            info!(doc = %env.id, sender = %agency, recipients = env.recipients.len(), bytes = env.body_len, "accepted");
            for r in &env.recipients {
                hub.wake(r);
            }
            a
        }
        Ok(AcceptOutcome::Duplicate(a)) => a,
        Ok(AcceptOutcome::Conflict) => refuse!(
            RefusalCode::Conflict,
            "conflict",
            "document ID {} is already used by a different document",
            env.id
        ),
        Err(e) => {
            let (code, msg, metric) = store_refusal(hub, &e);
            refuse!(code, metric, "{msg}")
        }
    };
    drop(gc_guard);
    write_frame(send, &Frame::Accepted { acceptance: acc }).await?;
    send.finish()?;
    Ok(())
}

/// Verify and store a monthly paper-count report from the connected agency.
async fn paper_report(
    hub: &Arc<Hub>,
    agency: &AgencyId,
    report: poros_protocol::SignedPaperReport,
) -> Result<(), String> {
    hub.verify_agency(&report.0, poros_protocol::receipt::PAPER_CONTEXT, agency)
        .map_err(|e| format!("paper report {e}"))?;
    let r = report
        .report()
        .map_err(|e| format!("paper report does not decode: {e}"))?;
    if &r.agency != agency {
        return Err(format!(
            "paper report names {} but this connection is {agency}",
            r.agency
        ));
    }
    if !poros_protocol::PaperReport::month_is_valid(&r.month) {
        return Err(format!("month {:?} is not YYYY-MM", r.month));
    }
    let signed = postcard::to_allocvec(&report).map_err(|e| e.to_string())?;
    hub.store
        .put_paper(
            agency.clone(),
            r.month.clone(),
            crate::stats::PaperCount {
                sent: r.sent,
                received: r.received,
                signed,
            },
        )
        .await
        .map_err(|e| store_refusal(hub, &e).1)?;
    info!(agency = %agency, month = %r.month, sent = r.sent, received = r.received, "paper report stored");
    Ok(())
}

/// Work items of one kind in flight on a connection: a scan skips them until they finish.
pub(crate) struct InFlight<K>(Arc<Mutex<HashSet<K>>>);

impl<K: Clone + Eq + std::hash::Hash + Send + 'static> InFlight<K> {
    pub(crate) fn new() -> Self {
        InFlight(Arc::default())
    }

    /// The items to skip in the next scan.
    pub(crate) fn snapshot(&self) -> HashSet<K> {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Run `work` for `key` while holding `permit`. A failed attempt waits before the item
    /// may be picked up again, so a broken item is retried every few seconds, not in a loop;
    /// the pusher is woken when the item is done either way.
    pub(crate) fn spawn(
        &self,
        key: K,
        doc: DocumentId,
        what: &'static str,
        permit: tokio::sync::OwnedSemaphorePermit,
        wake: &Arc<Notify>,
        work: impl std::future::Future<Output = Result<()>> + Send + 'static,
    ) {
        if let Ok(mut s) = self.0.lock() {
            s.insert(key.clone());
        }
        let (set, wake) = (self.0.clone(), wake.clone());
        tokio::spawn(
            async move {
                if let Err(e) = work.await {
                    warn!(doc = %doc, error = %e, "{what} attempt failed; will retry");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                if let Ok(mut s) = set.lock() {
                    s.remove(&key);
                }
                drop(permit);
                wake.notify_one();
            }
            .in_current_span(),
        );
    }
}

/// A queue that could not be read is logged and scanned again at the next wake-up.
fn queue_error<T>(what: &str, e: &poros_store::StoreError) -> Vec<T> {
    warn!(error = %e, "reading the {what} queue failed");
    Vec::new()
}

/// Per-connection worker: pushes pending deliveries, relays answers and asks for lost bodies
/// again, for one node.
async fn pusher(hub: Arc<Hub>, agency: AgencyId, conn: quinn::Connection, wake: Arc<Notify>) {
    let permits = Arc::new(Semaphore::new(hub.cfg.limits.deliveries_in_flight as usize));
    let deliveries: InFlight<DocumentId> = InFlight::new();
    let relays: InFlight<(DocumentId, AgencyId)> = InFlight::new();
    let repairs: InFlight<DocumentId> = InFlight::new();
    let statements: InFlight<DocumentId> = InFlight::new();
    // What this connection's protocol version may be sent (see `statements`).
    let v2 = crate::statements::speaks_statements(&conn);
    loop {
        if conn.close_reason().is_some() {
            return;
        }
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let mut started = 0;

        let pending = hub
            .store
            .pending_for(&agency, 256, &deliveries.snapshot())
            .unwrap_or_else(|e| queue_error("delivery", &e));
        let pending = crate::statements::for_version(&hub, &agency, v2, pending);
        for p in pending {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            started += 1;
            let (hub, agency, conn) = (hub.clone(), agency.clone(), conn.clone());
            let work = async move { deliver_one(&hub, &agency, &conn, p.doc).await };
            deliveries.spawn(p.doc, p.doc, "delivery", permit, &wake, work);
        }

        let answers = hub
            .store
            .relays_for(&agency, 256, &relays.snapshot())
            .unwrap_or_else(|e| queue_error("relay", &e));
        for (doc, rcpt, item) in answers {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            started += 1;
            let key = (doc, rcpt.clone());
            let (hub, agency, conn) = (hub.clone(), agency.clone(), conn.clone());
            let work = async move { relay_one(&hub, &agency, &conn, doc, &rcpt, item).await };
            relays.spawn(key, doc, "relay", permit, &wake, work);
        }

        if v2 {
            let scan =
                crate::statements::relay_scan(&hub, &agency, &conn, &permits, &statements, &wake);
            let Some(n) = scan.await else { return };
            started += n;
        }

        // Bodies the hub lost and this agency, as their sender, is asked to upload again.
        let lost = hub
            .store
            .repairs_for(&agency, 64, &repairs.snapshot())
            .unwrap_or_else(|e| queue_error("repair", &e));
        for (doc, digest) in lost {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            started += 1;
            let (hub, conn) = (hub.clone(), conn.clone());
            let work = async move { crate::repair::repair_one(&hub, &conn, doc, digest).await };
            repairs.spawn(doc, doc, "body re-upload", permit, &wake, work);
        }
        if started == 0 {
            tokio::select! {
                _ = notified => {}
                _ = conn.closed() => return,
                _ = tokio::time::sleep(Duration::from_secs(10)) => {}
            }
        }
    }
}

async fn deliver_one(
    hub: &Arc<Hub>,
    agency: &AgencyId,
    conn: &quinn::Connection,
    doc: DocumentId,
) -> Result<()> {
    let rec = hub
        .store
        .doc(&doc)?
        .with_context(|| format!("queued document {doc} has no record"))?;
    // A body lost or damaged on the hub's disk is never sent: the deliveries are held and the
    // sender is asked for it again (length and, for inline bodies, hash checked up front; a
    // file's hash is checked as it streams).
    let body = match crate::repair::body_for_delivery(hub, &rec).await? {
        Ok(BodySource::Removed) => {
            anyhow::bail!("body of {doc} was removed while a delivery was pending")
        }
        Ok(b) => b,
        Err(what) => return crate::repair::body_damaged(hub, doc, what).await,
    };
    let frame = crate::statements::delivery_frame(hub, agency, &rec)?;
    let (mut send, mut recv) = conn.open_bi().await?;
    write_frame(&mut send, &frame).await?;
    match body {
        BodySource::Inline(b) => send.write_all(&b).await?,
        BodySource::File(mut f) => {
            match send_body_verified(&mut send, &mut f, rec.body_len, &rec.body_sha256).await {
                Ok(()) => {}
                Err(e @ (WireError::BodyDamaged | WireError::ShortBody { .. })) => {
                    return crate::repair::body_damaged(hub, doc, e.to_string()).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        BodySource::Removed => {}
    }
    send.finish()?;
    let reply = read_frame(&mut recv).await?;
    let receipt = match reply {
        Frame::Receipt { receipt } => receipt,
        Frame::Refused(r) => {
            if let Some(reason) = DelayReason::of_refusal(r.code) {
                crate::delays::delayed(hub, doc, &rec.sender, agency, reason).await;
            }
            anyhow::bail!("recipient refused delivery: {r}")
        }
        _ => anyhow::bail!("recipient answered a delivery with an unexpected frame"),
    };
    if let Err(e) = hub.verify_agency(&receipt.0, RECEIPT_CONTEXT, agency) {
        anyhow::bail!("receipt from {agency} refused: {e}");
    }
    let r = receipt.receipt()?;
    if r.doc_id != doc || &r.recipient != agency {
        anyhow::bail!("receipt names another document or recipient");
    }
    let state = match &r.outcome {
        Outcome::Delivered => {
            if r.body_sha256 != rec.body_sha256 {
                anyhow::bail!("receipt acknowledges a different body hash");
            }
            DeliveryState::Delivered(receipt)
        }
        outcome => {
            let why = outcome
                .rejection()
                .map(|r| r.to_string())
                .unwrap_or_default();
            DeliveryState::Rejected(receipt, why)
        }
    };
    let outcome = match &state {
        DeliveryState::Delivered(_) => "delivered".to_string(),
        DeliveryState::Rejected(_, why) => format!("rejected: {why}"),
        _ => String::new(),
    };
    if let Some(sender) = hub
        .store
        .record_answer(doc, agency.clone(), state, now_ms())
        .await?
    {
        hub.delays.clear(doc, agency);
        info!(doc = %doc, recipient = %agency, sender = %sender, %outcome, "answered");
        hub.wake(&sender);
    }
    Ok(())
}

async fn relay_one(
    _hub: &Arc<Hub>,
    sender: &AgencyId,
    conn: &quinn::Connection,
    doc: DocumentId,
    recipient: &AgencyId,
    item: RelayItem,
) -> Result<()> {
    let frame = match item {
        RelayItem::Receipt(receipt) => Frame::RelayReceipt { receipt },
        RelayItem::Notice(notice) => Frame::Notice { notice },
    };
    match poros_transport::request(conn, &frame).await? {
        Frame::Ack { doc_id } if doc_id == doc => {}
        Frame::Refused(r) => {
            // The sender's agent checked and refused it; retrying cannot change that.
            warn!(doc = %doc, recipient = %recipient, refusal = %r, "sender refused a relayed answer; dropping it");
        }
        _ => anyhow::bail!("sender answered a relay with an unexpected frame"),
    }
    _hub.store
        .relay_done(sender.clone(), doc, recipient.clone())
        .await?;
    debug!(doc = %doc, recipient = %recipient, "answer relayed to sender");
    Ok(())
}

/// Periodically expires deliveries pending too long and removes bodies past retention.
async fn sweeper(hub: Arc<Hub>) {
    let every = Duration::from_secs(hub.cfg.delivery.sweep_interval_secs);
    loop {
        if let Err(e) = sweep_once(&hub).await {
            warn!(error = %e, "sweep failed");
        }
        tokio::time::sleep(every).await;
    }
}

/// At start and then periodically, removes body files that no document references and that
/// are older than the grace period (a crash between storing a body and its document, or a
/// retention pass that committed but did not get to delete the file).
async fn orphan_sweeper(hub: Arc<Hub>) {
    let every = Duration::from_secs(hub.cfg.delivery.orphan_sweep_interval_secs);
    loop {
        if let Err(e) = sweep_orphans(&hub).await {
            warn!(error = %e, "orphan body sweep failed");
        }
        tokio::time::sleep(every).await;
    }
}

/// One orphan sweep over the hub's body files.
pub async fn sweep_orphans(hub: &Arc<Hub>) -> Result<poros_store::SweepReport> {
    let grace = Duration::from_secs(hub.cfg.delivery.orphan_grace_secs);
    let h = hub.clone();
    let report = tokio::task::spawn_blocking(move || {
        h.blobs
            .sweep_unreferenced(grace, |d| Ok(h.store.body_refs(d)? > 0))
    })
    .await??;
    if report.removed > 0 {
        info!(
            removed = report.removed,
            bytes = report.removed_bytes,
            examined = report.examined,
            "unreferenced body files removed"
        );
    }
    Ok(report)
}

/// One expiry and retention pass.
pub async fn sweep_once(hub: &Arc<Hub>) -> Result<()> {
    let now = now_ms();
    // Connected agencies count as seen on every day they stay connected.
    hub.store.mark_seen(hub.connected_agencies(), now).await?;
    hub.retire_expired_overlaps(now).await?;
    let cutoff = now.saturating_sub(hub.cfg.delivery.expiry_secs.saturating_mul(1000));
    for (doc, rcpt) in hub.store.expired_before(cutoff, 10_000)? {
        let Some(rec) = hub.store.doc(&doc)? else {
            continue;
        };
        let notice = hub.sign_notice(&HubNotice {
            doc_id: doc,
            sender: rec.sender.clone(),
            recipient: rcpt.clone(),
            kind: NoticeKind::Expired,
            time_ms: now,
        })?;
        if let Some(sender) =
            crate::state::expire(&hub.store, doc, rcpt.clone(), notice, now).await?
        {
            hub.delays.clear(doc, &rcpt);
            info!(doc = %doc, recipient = %rcpt, sender = %sender, "delivery expired");
            hub.wake(&sender);
        }
    }
    let cutoff = now.saturating_sub(hub.cfg.delivery.body_retention_secs.saturating_mul(1000));
    for digest in hub.store.release_bodies(cutoff, 10_000).await? {
        // A document accepted meanwhile may have taken a new reference to the same content.
        let _gc = hub.blobs.removal_guard().await;
        if hub.store.body_refs(&digest)? > 0 {
            continue;
        }
        match hub.blobs.remove(&digest) {
            Ok(_) => debug!(digest = %hex::encode(digest), "body removed after retention"),
            Err(e) => warn!(error = %e, "removing body file failed"),
        }
    }
    Ok(())
}
