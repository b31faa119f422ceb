//! The running agent: keeps one QUIC connection to the hub (reconnecting with backoff),
//! submits the outbox, verifies and stores deliveries, and stores relayed receipts.
//! Every answer sent to the hub follows a durable commit.

use crate::paths::AgentPaths;
use crate::state::{AgentStore, BodyAt, InRecord, OutRecord, RecipientStatus, INLINE_MAX};
use anyhow::{Context, Result};
use poros_certs::{Signer, SigningTrust};
use poros_config::AgentConfig;
use poros_protocol::envelope::ENVELOPE_CONTEXT;
use poros_protocol::receipt::{ACCEPTANCE_CONTEXT, NOTICE_CONTEXT, RECEIPT_CONTEXT};
use poros_protocol::{
    AgencyId, DocumentId, Envelope, Frame, Metadata, NoticeKind, Outcome, Receipt, Refusal,
    RefusalCode, SignedEnvelope, SignedReceipt, SignedStatement, SigningKey, StorageParty,
};
use poros_protocol::{Reason, ReasonCode};
use poros_store::{Blobs, Db};
use poros_transport::{
    read_frame, recv_small_body, send_body, send_body_verified, write_frame, BodyReader, Limits,
};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify, Semaphore};
use tracing::{debug, info, warn, Instrument};

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
}

/// The agent's current keys and certificates (replaced as a whole on renewal).
#[derive(Clone)]
struct Creds {
    sign_key: Arc<SigningKey>,
    sign_cert: Vec<u8>,
    client_tls: rustls::ClientConfig,
    not_before: i64,
    not_after: i64,
}

/// QUIC application close code: the agent closed this connection to reconnect with renewed
/// certificates.
const CLOSE_RENEWED: u32 = 0x20;

fn read_creds(paths: &AgentPaths, agency: &AgencyId) -> Result<(Creds, Vec<u8>)> {
    let read = |p: std::path::PathBuf| {
        std::fs::read_to_string(&p).with_context(|| {
            format!(
                "reading {} (enrol with `poros-agent enroll --token ...`, or have the hub administrator run `poros-hub node add --agency {} --requests {} --out {}`)",
                p.display(),
                agency,
                paths.at("requests").display(),
                paths.at("certs").display()
            )
        })
    };
    let first = |pem: String, what: &str| -> Result<Vec<u8>> {
        poros_certs::pem_to_der_certs(&pem)?
            .into_iter()
            .next()
            .with_context(|| format!("no certificate in {what}"))
    };
    let tls_cert = first(read(paths.at("certs/tls.crt"))?, "certs/tls.crt")?;
    let sign_cert = first(read(paths.at("certs/sign.crt"))?, "certs/sign.crt")?;
    let network_ca = first(
        read(paths.at("certs/network-ca.crt"))?,
        "certs/network-ca.crt",
    )?;
    let signing_ca = first(
        read(paths.at("certs/signing-ca.crt"))?,
        "certs/signing-ca.crt",
    )?;
    for (der, what) in [(&tls_cert, "certs/tls.crt"), (&sign_cert, "certs/sign.crt")] {
        let a = poros_certs::agency_from_cert(der).with_context(|| what.to_string())?;
        if &a != agency {
            anyhow::bail!("{what} is issued to {a}, but agent.toml says agency = {agency}");
        }
    }
    let not_before = poros_certs::cert_not_before_unix(&tls_cert)?;
    let not_after = poros_certs::cert_not_after_unix(&tls_cert)?;
    let tls_key = poros_certs::load_key_pem(&paths.at("keys/tls.key"))?;
    let sign_key = poros_certs::load_key_pem(&paths.at("keys/sign.key"))?;
    let client_tls = poros_certs::agent_client_config(
        &network_ca,
        vec![tls_cert],
        poros_certs::key_pkcs8_der(&tls_key),
    )?;
    let sign_key = SigningKey::from_pkcs8(&poros_certs::key_pkcs8_der(&sign_key))?;
    Ok((
        Creds {
            sign_key: Arc::new(sign_key),
            sign_cert,
            client_tls,
            not_before,
            not_after,
        },
        signing_ca,
    ))
}

/// Replace a file atomically: write a sibling, then rename over it.
fn replace_file(path: &std::path::Path, data: &[u8], secret: bool) -> Result<()> {
    let tmp = path.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    if secret {
        poros_certs::write_secret_file(&tmp, data)?;
    } else {
        poros_certs::write_public_file(&tmp, data)?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
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
        let db = Db::open(&paths.at("data/agent.redb"))?;
        let store = AgentStore::open(db)?;
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
        }))
    }

    /// Sign a monthly paper-only count and deliver it to the hub, which counts it in the
    /// electronic-exchange rate. Needs the hub connection.
    pub async fn report_paper(&self, month: &str, sent: u64, received: u64) -> Result<()> {
        if !poros_protocol::PaperReport::month_is_valid(month) {
            anyhow::bail!("month {month:?} is not YYYY-MM");
        }
        let report = poros_protocol::PaperReport {
            agency: self.cfg.agency.clone(),
            month: month.to_string(),
            sent,
            received,
            time_ms: now_ms(),
        };
        let c = self.creds();
        let signed = poros_protocol::SignedPaperReport::sign(&report, &c.sign_key, &c.sign_cert)?;
        let conn =
            self.conn.borrow().clone().context(
                "not connected to the hub; the report is sent when the agent is connected",
            )?;
        match poros_transport::request(&conn, &Frame::PaperReport { report: signed }).await? {
            Frame::Ack { .. } => {
                info!(agency = %self.cfg.agency, month, sent, received, "paper report accepted by hub");
                Ok(())
            }
            Frame::Refused(r) => anyhow::bail!("hub refused the report: {}", r.message),
            _ => anyhow::bail!("unexpected answer to a paper report"),
        }
    }

    /// Verify a signed statement as of `at_secs`, the time it was made (a stored one again,
    /// as of its own time): a signer certificate since retired by renewal is accepted for
    /// statements made before its retirement.
    pub fn trust_verify(
        &self,
        blob: &poros_protocol::SignedBlob,
        context: &[u8],
        at_secs: u64,
    ) -> Result<Signer, poros_certs::VerifyError> {
        self.trust_verify_signed_at(blob, context, at_secs, at_secs)
    }

    /// Verify a statement now that claims to have been made at `signed_at_secs`.
    pub fn trust_verify_signed_at(
        &self,
        blob: &poros_protocol::SignedBlob,
        context: &[u8],
        now_secs: u64,
        signed_at_secs: u64,
    ) -> Result<Signer, poros_certs::VerifyError> {
        match self.trust.read() {
            Ok(t) => t.verify_signed_at(blob, context, now_secs, signed_at_secs),
            Err(p) => p
                .into_inner()
                .verify_signed_at(blob, context, now_secs, signed_at_secs),
        }
    }

    /// This agency.
    pub fn agency(&self) -> &AgencyId {
        &self.cfg.agency
    }

    /// Whether a hub connection is up.
    pub fn connected(&self) -> bool {
        self.conn.borrow().is_some()
    }

    /// Sign and durably store a new outgoing document whose body was already received into
    /// `body` (inline bytes or a committed file); returns its ID.
    pub async fn create_document(
        &self,
        recipients: Vec<AgencyId>,
        meta: Metadata,
        body: StagedBody,
    ) -> Result<DocumentId, SendError> {
        let (digest, len, inline, _guard) = match body {
            StagedBody::Inline(b) => (poros_protocol::sha256(&b), b.len() as u64, Some(b), None),
            StagedBody::File(d, l, g) => (d, l, None, Some(g)),
        };
        let mut rand = [0u8; 10];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut rand)
            .map_err(|_| SendError::Invalid("system random generator failed".into()))?;
        let now = now_ms();
        let env = Envelope {
            id: DocumentId::new_v7(now, rand),
            sender: self.cfg.agency.clone(),
            recipients: recipients.clone(),
            meta,
            created_ms: now,
            body_len: len,
            body_sha256: digest,
        };
        env.validate()
            .map_err(|e| SendError::Invalid(e.to_string()))?;
        let c = self.creds();
        let signed = SignedEnvelope::sign(&env, &c.sign_key, &c.sign_cert)
            .map_err(|e| SendError::Invalid(format!("signing failed: {e}")))?;
        let rec = OutRecord {
            envelope: signed,
            body_at: if inline.is_some() {
                BodyAt::Inline
            } else {
                BodyAt::File
            },
            body_sha256: digest,
            body_len: len,
            acceptance: None,
            refused: None,
        };
        self.store
            .put_outgoing(env.id, rec, recipients, inline)
            .await?;
        info!(doc = %env.id, agency = %self.cfg.agency, recipients = env.recipients.len(), bytes = len, "document signed and stored in outbox");
        self.submit_wake.notify_one();
        Ok(env.id)
    }

    /// The current signing key and certificate (they change on renewal).
    pub(crate) fn signing(&self) -> (Arc<SigningKey>, Vec<u8>) {
        let c = self.creds();
        (c.sign_key, c.sign_cert)
    }

    /// The hub connection, changing as it comes and goes.
    pub(crate) fn connection(&self) -> watch::Receiver<Option<quinn::Connection>> {
        self.conn.subscribe()
    }

    fn creds(&self) -> Creds {
        match self.creds.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
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

    /// Renews keys and certificates at two thirds of their lifetime, over the live connection.
    async fn renewer(self: Arc<Self>) {
        loop {
            let c = self.creds();
            let lifetime = (c.not_after - c.not_before).max(1);
            let due = c.not_before + lifetime * 2 / 3;
            let now = (now_ms() / 1000) as i64;
            // Check often enough for short test lifetimes, rarely for real ones.
            let tick = Duration::from_secs((lifetime as u64 / 20).clamp(1, 60));
            if now >= due {
                let conn = self.conn.borrow().clone();
                if let Some(conn) = conn {
                    match self.renew(&conn).await {
                        Ok(()) => continue,
                        Err(e) => {
                            warn!(agency = %self.cfg.agency, error = %e, "certificate renewal failed; will retry")
                        }
                    }
                }
            }
            tokio::time::sleep(tick).await;
        }
    }

    async fn renew(&self, conn: &quinn::Connection) -> Result<()> {
        let tls_key = poros_certs::generate_key()?;
        let sign_key = poros_certs::generate_key()?;
        let tls_csr = poros_certs::make_csr(&tls_key, &self.cfg.agency)?;
        let sign_csr = poros_certs::make_csr(&sign_key, &self.cfg.agency)?;
        let creds =
            match poros_transport::request(conn, &Frame::Renew { tls_csr, sign_csr }).await? {
                Frame::Credentials(c) => c,
                Frame::Refused(r) => anyhow::bail!("hub refused renewal: {r}"),
                _ => anyhow::bail!("unexpected answer to a renewal"),
            };
        // New keys first, then certificates: at every instant the files on disk are either
        // the old pair or the new one only once both renames are done; a crash in between
        // leaves a key whose certificate is missing, which `run` reports clearly.
        let p = &self.paths;
        replace_file(
            &p.at("keys/tls.key"),
            tls_key.serialize_pem().as_bytes(),
            true,
        )?;
        replace_file(
            &p.at("keys/sign.key"),
            sign_key.serialize_pem().as_bytes(),
            true,
        )?;
        replace_file(&p.at("certs/tls.crt"), creds.tls_cert.as_bytes(), false)?;
        replace_file(&p.at("certs/sign.crt"), creds.sign_cert.as_bytes(), false)?;
        let (new, _) = read_creds(p, &self.cfg.agency)?;
        let (nb, na) = (new.not_before, new.not_after);
        match self.creds.write() {
            Ok(mut c) => *c = new,
            Err(pz) => *pz.into_inner() = new,
        }
        info!(agency = %self.cfg.agency, not_before = nb, not_after = na, "certificates renewed with fresh keys");
        // Reconnect with the new TLS certificate; in-flight operations are retried.
        conn.close(CLOSE_RENEWED.into(), b"renewed");
        Ok(())
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

    async fn connection_manager(self: Arc<Self>) {
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

    async fn submitter(self: Arc<Self>) {
        let permits = Arc::new(Semaphore::new(self.cfg.submit_in_flight as usize));
        let in_flight: Arc<Mutex<HashSet<DocumentId>>> = Arc::default();
        let mut conn_rx = self.conn.subscribe();
        loop {
            let notified = self.submit_wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let conn = conn_rx.borrow_and_update().clone();
            let Some(conn) = conn else {
                let _ = conn_rx.changed().await;
                continue;
            };
            let skip = in_flight.lock().map(|s| s.clone()).unwrap_or_default();
            let queue = self.store.submission_queue(256, &skip).unwrap_or_else(|e| {
                warn!(error = %e, "reading the submission queue failed");
                Vec::new()
            });
            let started = queue.len();
            for id in queue {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                if let Ok(mut s) = in_flight.lock() {
                    s.insert(id);
                }
                let (me, conn, inf) = (self.clone(), conn.clone(), in_flight.clone());
                tokio::spawn(async move {
                    if let Err(e) = me.submit_one(&conn, id).await {
                        warn!(doc = %id, error = %e, "submission attempt failed; will retry");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    if let Ok(mut s) = inf.lock() {
                        s.remove(&id);
                    }
                    drop(permit);
                    me.submit_wake.notify_one();
                });
            }
            if started == 0 {
                tokio::select! {
                    _ = notified => {}
                    _ = conn_rx.changed() => {}
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
        }
    }

    async fn submit_one(&self, conn: &quinn::Connection, id: DocumentId) -> Result<()> {
        let mut rec = self
            .store
            .outgoing(&id)?
            .with_context(|| format!("queued document {id} has no record"))?;
        let creds = self.creds();
        if rec.envelope.0.signer_cert != creds.sign_cert {
            // Signed before a renewal: the hub refuses the superseded certificate once the new
            // one is in use, so the same envelope is signed again with the current key (the hub
            // recognises a resubmission by its content, not its signature).
            let resigned = SignedEnvelope::from_blob(poros_protocol::SignedBlob::sign(
                ENVELOPE_CONTEXT,
                rec.envelope.0.payload.clone(),
                &creds.sign_key,
                &creds.sign_cert,
            )?);
            rec = self
                .store
                .resign_outgoing(id, resigned)
                .await?
                .with_context(|| format!("queued document {id} has no record"))?;
            debug!(doc = %id, "envelope signed again with the renewed certificate");
        }
        let (mut send, mut recv) = conn.open_bi().await?;
        write_frame(
            &mut send,
            &Frame::Submit {
                envelope: rec.envelope.clone(),
            },
        )
        .await?;
        let body_write = async {
            match rec.body_at {
                BodyAt::Inline => {
                    let b = self
                        .store
                        .inline_body(&rec.body_sha256)?
                        .with_context(|| format!("inline body of {id} missing"))?;
                    send.write_all(&b).await?;
                }
                BodyAt::File => {
                    let mut f = self.blobs.open_read(&rec.body_sha256).await?;
                    send_body(&mut send, &mut f, rec.body_len).await?;
                }
                BodyAt::None => anyhow::bail!("outgoing document {id} has no body"),
            }
            let _ = send.finish();
            Ok(())
        };
        // The hub may answer (and stop reading) before the whole body is sent, e.g. for a
        // duplicate or a refusal; so read the answer concurrently with writing the body.
        let (w, reply) = tokio::join!(body_write, read_frame(&mut recv));
        let reply = match (reply, w) {
            (Ok(f), _) => f,
            (Err(e), Err(we)) => return Err(we.context(e.to_string())),
            (Err(e), Ok(())) => return Err(e.into()),
        };
        match reply {
            Frame::Accepted { acceptance } => {
                match self.trust_verify(&acceptance.0, ACCEPTANCE_CONTEXT, now_ms() / 1000) {
                    Ok(Signer::Hub) => {}
                    Ok(_) => anyhow::bail!("acceptance for {id} is not signed by the hub"),
                    Err(e) => anyhow::bail!("acceptance for {id}: {e}"),
                }
                let a = acceptance.acceptance()?;
                if a.doc_id != id || a.body_sha256 != rec.body_sha256 || &a.sender != self.agency()
                {
                    anyhow::bail!("hub acceptance does not match document {id}");
                }
                self.store
                    .submission_done(id, Some(acceptance), None)
                    .await?;
                self.reasons.submission_done(id);
                // A replace request waits for its new document to be accepted.
                self.statement_wake.notify_one();
                info!(doc = %id, agency = %self.cfg.agency, "accepted by hub");
            }
            Frame::Refused(r) if r.code.is_retryable() => {
                // Still queued; the status shows why until the hub accepts it.
                self.reasons.submission_refused(id, r.message.clone());
                anyhow::bail!("hub temporarily unavailable: {}", r.message);
            }
            Frame::Refused(r) => {
                warn!(doc = %id, agency = %self.cfg.agency, refusal = %r, "refused by hub");
                self.store
                    .submission_done(id, None, Some(r.to_string()))
                    .await?;
                self.reasons.submission_done(id);
                self.statement_wake.notify_one();
            }
            _ => anyhow::bail!("hub answered a submission with an unexpected frame"),
        }
        Ok(())
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

    /// Send the hub a body it lost, from the outbox: the original signed envelope, then the
    /// body, both checked against that envelope first. Refused with `NotFound` when the body
    /// is no longer held and `BodyMismatch` when the copy here is damaged too.
    async fn reupload(&self, doc: DocumentId, send: &mut quinn::SendStream) -> Result<()> {
        let refuse = |code, message: String| Frame::Refused(Refusal { code, message });
        let rec = self.store.outgoing(&doc)?;
        let answer = match &rec {
            None => refuse(
                RefusalCode::NotFound,
                format!("document {doc} is not in the outbox of {}", self.cfg.agency),
            ),
            Some(rec) => match rec.body_at {
                BodyAt::Inline => match self.store.inline_body(&rec.body_sha256)? {
                    None => refuse(
                        RefusalCode::NotFound,
                        format!("the body of {doc} is no longer held"),
                    ),
                    Some(b) if poros_protocol::sha256(&b) != rec.body_sha256 => refuse(
                        RefusalCode::BodyMismatch,
                        format!("the copy of the body of {doc} here is damaged too"),
                    ),
                    Some(_) => Frame::Submit {
                        envelope: rec.envelope.clone(),
                    },
                },
                BodyAt::File => {
                    let (blobs, digest) = (self.blobs.clone(), rec.body_sha256);
                    let (check, _) =
                        tokio::task::spawn_blocking(move || blobs.verify(&digest)).await??;
                    match check {
                        poros_store::BlobCheck::Intact => Frame::Submit {
                            envelope: rec.envelope.clone(),
                        },
                        poros_store::BlobCheck::Missing => refuse(
                            RefusalCode::NotFound,
                            format!("the body of {doc} is no longer held"),
                        ),
                        _ => refuse(
                            RefusalCode::BodyMismatch,
                            format!("the copy of the body of {doc} here is damaged too"),
                        ),
                    }
                }
                BodyAt::None => refuse(
                    RefusalCode::NotFound,
                    format!("the body of {doc} is no longer held"),
                ),
            },
        };
        write_frame(send, &answer).await?;
        if let (Frame::Submit { .. }, Some(rec)) = (&answer, &rec) {
            match rec.body_at {
                BodyAt::Inline => {
                    let b = self
                        .store
                        .inline_body(&rec.body_sha256)?
                        .with_context(|| format!("inline body of {doc} missing"))?;
                    send.write_all(&b).await?;
                }
                _ => {
                    let mut f = self.blobs.open_read(&rec.body_sha256).await?;
                    send_body_verified(send, &mut f, rec.body_len, &rec.body_sha256).await?;
                }
            }
            info!(doc = %doc, agency = %self.cfg.agency, bytes = rec.body_len, "body uploaded again at the hub's request");
        } else {
            warn!(doc = %doc, agency = %self.cfg.agency, "hub asked for a body this agency cannot supply");
        }
        send.finish()?;
        Ok(())
    }

    /// Put a signing CRL pushed by the hub in force (signatures by revoked certificates are
    /// refused from now on) and keep it for restarts.
    fn apply_crl(&self, crl: Vec<u8>) -> Result<Frame> {
        let mut trust = match self.trust.write() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        if let Err(e) = trust.set_crls(std::slice::from_ref(&crl)) {
            return Ok(Frame::Refused(Refusal {
                code: RefusalCode::Malformed,
                message: format!("CRL refused: {e}"),
            }));
        }
        drop(trust);
        replace_file(&self.paths.at("certs/signing.crl"), &crl, false)?;
        debug!(agency = %self.cfg.agency, bytes = crl.len(), "signing CRL updated");
        Ok(Frame::Ack {
            doc_id: DocumentId::from_bytes([0; 16]),
        })
    }

    fn sign_receipt(&self, r: &Receipt) -> Result<SignedReceipt> {
        let c = self.creds();
        Ok(SignedReceipt::sign(r, &c.sign_key, &c.sign_cert)?)
    }

    /// Verify and durably store a delivery; returns the signed receipt or rejection to send.
    /// `added_by` is the sender's update that added this agency, for a document whose
    /// envelope does not list it.
    async fn receive(
        &self,
        signed: SignedEnvelope,
        added_by: Option<SignedStatement>,
        recv: &mut quinn::RecvStream,
    ) -> Result<Frame> {
        let env = match signed.envelope() {
            Ok(e) => e,
            Err(e) => {
                return Ok(Frame::Refused(Refusal {
                    code: RefusalCode::InvalidEnvelope,
                    message: format!("envelope does not decode: {e}"),
                }))
            }
        };
        if let Some(known) = self.store.received(&env.id)? {
            debug!(doc = %env.id, "redelivery answered with the original receipt");
            let creds = self.creds();
            if known.receipt.0.signer_cert == creds.sign_cert {
                return Ok(Frame::Receipt {
                    receipt: known.receipt,
                });
            }
            // The same receipt, signed again with the current key: the hub refuses a signer
            // certificate that a renewal has retired.
            let receipt = SignedReceipt::from_blob(poros_protocol::SignedBlob::sign(
                RECEIPT_CONTEXT,
                known.receipt.0.payload.clone(),
                &creds.sign_key,
                &creds.sign_cert,
            )?);
            return Ok(Frame::Receipt { receipt });
        }
        let now = now_ms();
        let mut reason: Option<Reason> = None;
        match self.trust_verify_signed_at(
            &signed.0,
            ENVELOPE_CONTEXT,
            now / 1000,
            env.created_ms / 1000,
        ) {
            Ok(Signer::Agency(a)) if a == env.sender => {}
            Ok(Signer::Agency(a)) => {
                reason = Some(Reason::new(
                    ReasonCode::SignerNotForAgency,
                    format!("envelope claims sender {} but is signed by {a}", env.sender),
                ))
            }
            Ok(Signer::Hub) => {
                reason = Some(Reason::new(
                    ReasonCode::SignerNotForAgency,
                    "envelope is signed by the hub, not by an agency",
                ))
            }
            Err(e) => {
                reason = Some(Reason::new(
                    e.reason_code(),
                    format!("sender signature: {e}"),
                ))
            }
        }
        if reason.is_none() {
            if let Err(e) = env.validate() {
                reason = Some(Reason::new(
                    ReasonCode::Other,
                    format!("invalid envelope: {e}"),
                ));
            } else if !env.recipients.contains(&self.cfg.agency)
                && !added_by
                    .as_ref()
                    .is_some_and(|u| crate::statements::adds_this_agency(self, &env, u, now))
            {
                reason = Some(Reason::new(
                    ReasonCode::NotAddressed,
                    format!("document is not addressed to {}", self.cfg.agency),
                ));
            }
        }
        let too_large = env.body_len > self.cfg.max_body_bytes;
        if reason.is_none() && too_large {
            reason = Some(Reason::new(
                ReasonCode::TooLarge,
                format!(
                    "body of {} bytes exceeds this agency's limit of {} bytes",
                    env.body_len, self.cfg.max_body_bytes
                ),
            ));
        }
        // Read the body unless it is too large to accept at all. A file body keeps the orphan
        // sweep away from the moment it is committed until its record is.
        let mut _guard = None;
        let (digest, len, body_at, inline) = if too_large {
            (env.body_sha256, 0, BodyAt::None, None)
        } else if env.body_len <= INLINE_MAX {
            let b = recv_small_body(recv, env.body_len).await?;
            (
                poros_protocol::sha256(&b),
                b.len() as u64,
                BodyAt::Inline,
                Some(b),
            )
        } else {
            let mut w = self.blobs.writer().await?;
            let mut reader = BodyReader::new(env.body_len);
            while let Some(c) = reader.next(recv).await? {
                w.write(&c).await?;
            }
            _guard = Some(self.blobs.reference_guard().await);
            let (d, l) = w.commit().await?;
            (d, l, BodyAt::File, None)
        };
        if reason.is_none() && (digest != env.body_sha256 || len != env.body_len) {
            reason = Some(Reason::new(
                ReasonCode::BodyHashMismatch,
                format!(
                    "body SHA-256 {} does not match the signed envelope ({})",
                    hex::encode(digest),
                    hex::encode(env.body_sha256)
                ),
            ));
        }
        let receipt = Receipt {
            doc_id: env.id,
            sender: env.sender.clone(),
            recipient: self.cfg.agency.clone(),
            body_sha256: digest,
            outcome: match &reason {
                None => Outcome::Delivered,
                Some(r) => Outcome::RejectedFor(r.clone()),
            },
            time_ms: now_ms(),
        };
        let signed_receipt = self.sign_receipt(&receipt)?;
        let rec = InRecord {
            envelope: signed,
            receipt: signed_receipt,
            received_ms: receipt.time_ms,
            body_at,
            body_sha256: digest,
            body_len: len,
            reason: reason.as_ref().map(|r| r.text.clone()),
        };
        // The update is kept with a document it admitted, as a statement received.
        let admitted_by_update = !env.recipients.contains(&self.cfg.agency);
        let update = added_by
            .filter(|_| reason.is_none() && admitted_by_update)
            .map(|u| (u, now));
        let stored = self
            .store
            .put_received_with(env.id, rec, inline, update)
            .await?;
        match &reason {
            None => {
                info!(doc = %env.id, sender = %env.sender, bytes = len, "received into inbox; receipt signed")
            }
            Some(r) => {
                warn!(doc = %env.id, sender = %env.sender, reason = %r, "delivery rejected and quarantined")
            }
        }
        Ok(Frame::Receipt {
            receipt: stored.receipt,
        })
    }

    async fn store_relayed_receipt(&self, receipt: SignedReceipt) -> Result<Frame> {
        let refuse = |msg: String| {
            warn!(reason = %msg, "relayed receipt refused");
            Ok(Frame::Refused(Refusal {
                code: RefusalCode::BadSignature,
                message: msg,
            }))
        };
        // The claimed time only matters for a signer since retired by renewal, which the hub
        // refused to relay if it signed after the retirement.
        let claimed = receipt.receipt().map(|r| r.time_ms / 1000).unwrap_or(0);
        let signer = match self.trust_verify_signed_at(
            &receipt.0,
            RECEIPT_CONTEXT,
            now_ms() / 1000,
            claimed,
        ) {
            Ok(Signer::Agency(a)) => a,
            Ok(Signer::Hub) => {
                return refuse("receipt is signed by the hub, not the recipient".into())
            }
            Err(e) => return refuse(format!("receipt signature: {e}")),
        };
        let r = receipt.receipt()?;
        if r.recipient != signer {
            return refuse(format!(
                "receipt names recipient {} but is signed by {signer}",
                r.recipient
            ));
        }
        let Some(out) = self.store.outgoing(&r.doc_id)? else {
            return refuse(format!("receipt for unknown document {}", r.doc_id));
        };
        let status = match &r.outcome {
            Outcome::Delivered => {
                if r.body_sha256 != out.body_sha256 {
                    return refuse(format!(
                        "receipt for {} acknowledges a different body",
                        r.doc_id
                    ));
                }
                RecipientStatus::Delivered(receipt)
            }
            Outcome::Rejected { .. } | Outcome::RejectedFor(_) => {
                RecipientStatus::Rejected(receipt)
            }
        };
        self.reasons.answered(r.doc_id, &r.recipient);
        if !self
            .store
            .set_status(r.doc_id, r.recipient.clone(), status)
            .await?
        {
            return refuse(format!(
                "{} is not a recipient of {}",
                r.recipient, r.doc_id
            ));
        }
        match &r.outcome {
            Outcome::Delivered => {
                info!(doc = %r.doc_id, agency = %self.cfg.agency, recipient = %r.recipient, "receipt stored")
            }
            outcome => {
                let reason = outcome
                    .rejection()
                    .map(|r| r.to_string())
                    .unwrap_or_default();
                warn!(doc = %r.doc_id, agency = %self.cfg.agency, recipient = %r.recipient, %reason, "rejection stored")
            }
        }
        Ok(Frame::Ack { doc_id: r.doc_id })
    }

    async fn store_notice(&self, notice: poros_protocol::SignedNotice) -> Result<Frame> {
        let refuse = |msg: String| {
            Ok(Frame::Refused(Refusal {
                code: RefusalCode::BadSignature,
                message: msg,
            }))
        };
        match self.trust_verify(&notice.0, NOTICE_CONTEXT, now_ms() / 1000) {
            Ok(Signer::Hub) => {}
            Ok(_) => return refuse("notice is not signed by the hub".into()),
            Err(e) => return refuse(format!("notice signature: {e}")),
        }
        let n = notice.notice()?;
        if &n.sender != self.agency() {
            return refuse(format!(
                "notice concerns sender {}, not this agency",
                n.sender
            ));
        }
        match n.kind {
            NoticeKind::BodyLost { reason } => {
                self.store
                    .set_status(n.doc_id, n.recipient.clone(), RecipientStatus::Lost(notice))
                    .await?;
                warn!(doc = %n.doc_id, agency = %self.cfg.agency, recipient = %n.recipient, reason = reason.code(), "delivery ended: the hub lost the body");
            }
            NoticeKind::Expired => {
                self.store
                    .set_status(
                        n.doc_id,
                        n.recipient.clone(),
                        RecipientStatus::Expired(notice),
                    )
                    .await?;
                self.reasons.answered(n.doc_id, &n.recipient);
                warn!(doc = %n.doc_id, agency = %self.cfg.agency, recipient = %n.recipient, "delivery expired at hub");
            }
            NoticeKind::Delayed { reason } => {
                // Advisory: shown beside a status that is still pending, never stored over
                // an answer (a late notice must not hide a receipt).
                let pending = self
                    .store
                    .statuses(&n.doc_id)?
                    .into_iter()
                    .any(|(a, st)| a == n.recipient && matches!(st, RecipientStatus::Pending));
                if pending {
                    self.reasons
                        .delayed(n.doc_id, n.recipient.clone(), reason.to_string());
                    warn!(doc = %n.doc_id, agency = %self.cfg.agency, recipient = %n.recipient, %reason, "delivery delayed; the hub keeps retrying");
                }
            }
        }
        Ok(Frame::Ack { doc_id: n.doc_id })
    }
}

/// A body received from the local caller, before the envelope is signed.
pub enum StagedBody {
    /// Small body in memory.
    Inline(Vec<u8>),
    /// Committed file: digest, length, and the guard taken before its commit, which keeps
    /// the orphan sweep off the file until the document referencing it is stored.
    File(poros_protocol::Digest, u64, poros_store::ReferenceGuard),
}
