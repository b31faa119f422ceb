//! The hub handle: configuration, the store, body files and keys, the registry cache and the
//! live connections, with the checks every path shares (signatures, current serials) and the
//! hub-wide vocabulary (close codes, transport limits). Identity comes only from the verified
//! client certificate (see `poros-certs`).

use crate::bodies::{BodyStore, FileBodies};
use crate::deployment::{HubKeys, HubPaths};
use crate::metrics::Metrics;
use crate::state::pg::{PgBodies, PgOptions, PgStore};
use crate::state::{
    HubBackend, HubEvent, HubStore, NodeChange, NodeRecord, NodeState, SerialCheck,
};
use anyhow::Result;
use poros_certs::Signer;
use poros_config::{HubConfig, StoreBackend};
use poros_protocol::{AgencyId, HubNotice, Refusal, RefusalCode, SignedNotice, StorageParty};
use poros_store::Blobs;
use poros_transport::Limits;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::Notify;
use tracing::{debug, warn};

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

/// Where a hub keeps its large bodies, by the store it runs on (see [`crate::bodies`]).
pub enum BodiesIn {
    /// Body files in the deployment's body directory (the redb store's companion).
    Files,
    /// Chunks in the PostgreSQL database of this store (the cluster holds everything).
    Database(PgStore),
}

/// Open the store `[store]` names: the redb file in the deployment directory, or the
/// PostgreSQL database (schema migrated at start), with the statistics settings of `cfg`;
/// and where its large bodies go.
pub async fn open_store(
    paths: &HubPaths,
    cfg: &HubConfig,
) -> Result<(Arc<dyn HubBackend>, BodiesIn)> {
    let cal = crate::business::Calendar::of_config(&cfg.monitoring);
    let days = cfg.monitoring.registration_working_days;
    let on_time = cfg.monitoring.on_time_secs * 1000;
    Ok(match cfg.store.backend {
        StoreBackend::Redb => {
            let file = paths.db();
            let store = tokio::task::spawn_blocking(move || -> Result<HubStore> {
                Ok(HubStore::open_file(&file)?.0)
            })
            .await??;
            (
                Arc::new(store.with_on_time_ms(on_time).with_business(cal, days)),
                BodiesIn::Files,
            )
        }
        StoreBackend::Postgres => {
            let mut opts = PgOptions::new(&cfg.store.url);
            opts.pool_size = cfg.store.pool_size;
            opts.commit_timeout = std::time::Duration::from_secs(cfg.store.commit_timeout_secs);
            if !cfg.store.instance.is_empty() {
                opts.instance = cfg.store.instance.clone();
            } else {
                // Unique among hubs on one machine too (tests run several).
                opts.instance = format!("{}/{}", opts.instance, std::process::id());
            }
            if let Some(f) = &cfg.store.password_file {
                opts.password = Some(read_secret_file(&paths.at(&f.to_string_lossy()))?);
            }
            let pg = PgStore::connect(opts)
                .await
                .map_err(|e| anyhow::anyhow!("[store] backend = \"postgres\": {e}"))?
                .with_on_time_ms(on_time)
                .with_business(cal, days);
            (Arc::new(pg.clone()), BodiesIn::Database(pg))
        }
    })
}

/// A secret from a file only its owner may read (0600), trimmed.
fn read_secret_file(path: &std::path::Path) -> Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| anyhow::anyhow!("store.password_file {}: {e}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        anyhow::bail!(
            "store.password_file {} may be read by others (mode {:o}); make it 0600",
            path.display(),
            meta.permissions().mode() & 0o777
        );
    }
    Ok(std::fs::read_to_string(path)?.trim().to_string())
}

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
    /// Its pusher's delivery slots, once the pusher runs.
    slots: Option<crate::server::push::DeliverySlots>,
}

/// Shared hub state.
pub struct Hub {
    /// Configuration.
    pub cfg: HubConfig,
    /// Durable state (redb or PostgreSQL).
    pub store: Arc<dyn HubBackend>,
    /// Whether other hub instances share the store (its events exist), decided once at open.
    pub(crate) shared: bool,
    /// Where large bodies are received and checked before they are stored (and, with the
    /// redb store, stored: the committed files are the bodies).
    pub blobs: Blobs,
    /// Large bodies: body files, or chunks in the PostgreSQL cluster.
    pub bodies: Arc<dyn BodyStore>,
    pub(crate) keys: HubKeys,
    /// Orders body-file removal after retention against new references to the same file.
    /// The bound QUIC endpoint (its server config is swapped when CRLs change).
    pub(crate) endpoint: Mutex<Option<quinn::Endpoint>>,
    /// Address of the enrolment endpoint, once bound (carried by tokens).
    pub(crate) enroll_addr: Mutex<Option<std::net::SocketAddr>>,
    /// Deployment paths.
    pub(crate) paths: HubPaths,
    /// Registry cache (the store is authoritative; admin changes update both).
    /// Each record behind an `Arc`: a snapshot of ten thousand of them (`/metrics`, the node
    /// list) copies pointers, not certificates.
    registry: RwLock<HashMap<AgencyId, Arc<NodeRecord>>>,
    connected: Mutex<HashMap<AgencyId, Connected>>,
    next_conn: AtomicU64,
    /// Operational counters.
    pub metrics: Metrics,
    /// Deliveries a recipient refused for now, and whether their senders know.
    pub delays: crate::delays::Delays,
    /// The body scrub job (see `repair`).
    pub(crate) scrub: Mutex<crate::repair::ScrubState>,
    /// Set when the store was restored from a backup: agents are asked at connect to submit
    /// again what the backup may lack (see `backup::recovery`).
    pub(crate) recovery: Option<crate::state::RecoveryPoint>,
    /// Agencies this instance has written as seen today (see `seen`).
    pub(crate) seen_marks: crate::seen::SeenMarks,
}

impl Hub {
    /// Open the deployment's store (by `[store]`: the embedded redb store, or the shared
    /// PostgreSQL database) and keys.
    pub async fn open(paths: &HubPaths, cfg: HubConfig) -> Result<Arc<Hub>> {
        let (store, bodies) = open_store(paths, &cfg).await?;
        Hub::with_stores(paths, cfg, store, bodies).await
    }

    /// A hub over a store opened by the caller, its large bodies in files.
    pub async fn with_store(
        paths: &HubPaths,
        cfg: HubConfig,
        store: Arc<dyn HubBackend>,
    ) -> Result<Arc<Hub>> {
        Hub::with_stores(paths, cfg, store, BodiesIn::Files).await
    }

    /// A hub over a store opened by the caller, its large bodies where `bodies` says: body
    /// files only beside a store on this machine, the database's chunks only with PostgreSQL.
    pub async fn with_stores(
        paths: &HubPaths,
        cfg: HubConfig,
        store: Arc<dyn HubBackend>,
        bodies: BodiesIn,
    ) -> Result<Arc<Hub>> {
        let metrics = Metrics::default();
        let keys = crate::deployment::load_keys(paths, Some(metrics.cert_observer()))?;
        let blobs = Blobs::open(&paths.bodies())?;
        let bodies: Arc<dyn BodyStore> = match bodies {
            BodiesIn::Files if store.kind() == "postgres" => anyhow::bail!(
                "a hub on PostgreSQL keeps its bodies in the database, not in local files"
            ),
            BodiesIn::Files => Arc::new(FileBodies::new(blobs.clone(), store.clone())),
            BodiesIn::Database(pg) => {
                if store.kind() != "postgres" {
                    anyhow::bail!("bodies in PostgreSQL need the hub's state there too");
                }
                let lease = std::time::Duration::from_secs(cfg.delivery.orphan_grace_secs);
                Arc::new(PgBodies::new(pg, blobs.clone(), lease))
            }
        };
        let registry = store
            .nodes()
            .await?
            .into_iter()
            .map(|n| (n.agency.clone(), Arc::new(n)))
            .collect();
        let shared = store.events().is_some();
        let recovery = store.recovery_point().await?;
        if let Some(p) = recovery {
            tracing::warn!(
                epoch = p.epoch,
                snapshot_ms = p.snapshot_ms,
                "this store was restored (a backup, or a database brought back to an earlier point): agents are asked at connect to submit again what the hub accepted since"
            );
        }
        Ok(Arc::new(Hub {
            cfg,
            shared,
            store,
            blobs,
            bodies,
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
            recovery,
            seen_marks: Default::default(),
        }))
    }

    /// Registry snapshot, by agency code.
    pub fn nodes(&self) -> Vec<Arc<NodeRecord>> {
        let mut v: Vec<_> = self
            .registry
            .read()
            .map(|r| r.values().cloned().collect())
            .unwrap_or_default();
        v.sort_by(|a: &Arc<NodeRecord>, b| a.agency.cmp(&b.agency));
        v
    }

    pub(crate) fn node_state(&self, a: &AgencyId) -> Option<NodeState> {
        self.registry.read().ok()?.get(a).map(|n| n.state)
    }

    /// Agencies connected now, collected as the caller needs them: a `HashSet` to look
    /// agencies up in (a registry of ten thousand asked whether each is in a list of ten
    /// thousand took a hundred million comparisons), a `Vec` to list or write them.
    pub fn connected_agencies<C: FromIterator<AgencyId>>(&self) -> C {
        match self.connected.lock() {
            Ok(c) => c.keys().cloned().collect(),
            Err(_) => std::iter::empty().collect(),
        }
    }

    /// Whether `a` is connected now.
    pub fn is_connected(&self, a: &AgencyId) -> bool {
        self.connected.lock().is_ok_and(|c| c.contains_key(a))
    }

    /// How many agencies are registered (any state).
    pub fn node_count(&self) -> usize {
        self.registry.read().map(|r| r.len()).unwrap_or(0)
    }

    /// New work for `a`: wake its pusher if it is connected here, or tell the other hub
    /// instances (one of them may hold its connection).
    pub(crate) fn wake(&self, a: &AgencyId) {
        if self.wake_local(a) {
            return;
        }
        if self.shared {
            let (store, a) = (self.store.clone(), a.clone());
            tokio::spawn(async move {
                if let Err(e) = store.publish(HubEvent::Work(a.clone())).await {
                    // The other hub's pusher still finds the work on its next periodic scan.
                    debug!(agency = %a, error = %e, "announcing new work to the other hubs failed");
                }
            });
        }
    }

    /// Wake the agency's pusher if it is connected to this instance.
    pub(crate) fn wake_local(&self, a: &AgencyId) -> bool {
        if let Ok(c) = self.connected.lock() {
            if let Some(c) = c.get(a) {
                c.wake.notify_one();
                return true;
            }
        }
        false
    }

    /// Wake every pusher of this instance (events may have been missed).
    pub(crate) fn wake_all_local(&self) {
        if let Ok(c) = self.connected.lock() {
            for c in c.values() {
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
        self.verify_with_serial(blob, context, now_secs)
            .map(|(signer, _)| signer)
    }

    /// [`Hub::verify`], also giving the signer certificate's serial (hex).
    fn verify_with_serial(
        &self,
        blob: &poros_protocol::SignedBlob,
        context: &[u8],
        now_secs: u64,
    ) -> Result<(Signer, std::sync::Arc<str>), poros_certs::VerifyError> {
        match self.keys.signing_trust.read() {
            Ok(t) => t.verify_with_serial(blob, context, now_secs),
            Err(p) => p.into_inner().verify_with_serial(blob, context, now_secs),
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
        let serial = match self.verify_with_serial(blob, context, now / 1000) {
            Ok((Signer::Agency(a), serial)) if &a == agency => serial,
            Ok((Signer::Agency(a), _)) => return Err(AgencyCheck::OtherSigner(a.to_string())),
            Ok((Signer::Hub, _)) => return Err(AgencyCheck::OtherSigner("the hub".into())),
            Err(e) => return Err(AgencyCheck::Invalid(e)),
        };
        let overlap = self.renewal_overlap_ms();
        match self
            .node(agency)
            .map(|n| n.check_sign_serial(&serial, now, overlap))
        {
            Some(SerialCheck::Current) | Some(SerialCheck::Superseded) => Ok(()),
            _ => Err(AgencyCheck::NotCurrent(serial.to_string())),
        }
    }

    /// Count `agencies` as seen on the day of `now_ms` in the statistics, writing only those
    /// this instance has not written yet that day.
    pub(crate) async fn mark_seen(
        &self,
        agencies: Vec<AgencyId>,
        now_ms: u64,
    ) -> Result<(), poros_store::StoreError> {
        let todo = self.seen_marks.unmarked(agencies, now_ms);
        if todo.is_empty() {
            return Ok(());
        }
        self.store.mark_seen(todo.clone(), now_ms).await?;
        self.seen_marks.marked(&todo, now_ms);
        Ok(())
    }

    /// Record that a node was seen now (connect or disconnect). Only the time is written,
    /// into the record as stored: a cached copy written back could undo a suspension or a
    /// revocation made meanwhile through another hub instance.
    pub(crate) async fn seen(&self, a: &AgencyId) {
        if let Err(e) = self.mark_seen(vec![a.clone()], now_ms()).await {
            warn!(error = %e, "recording a connection in the statistics failed");
        }
        let now = now_ms();
        let change: NodeChange = Box::new(move |rec| rec.last_seen_ms = Some(now));
        match self.store.modify_node(a.clone(), change).await {
            Ok(Some(rec)) => self.cache_node(rec),
            Ok(None) => {}
            Err(e) => debug!(agency = %a, error = %e, "recording when a node was seen failed"),
        }
    }

    pub(crate) fn node(&self, a: &AgencyId) -> Option<NodeRecord> {
        self.registry
            .read()
            .ok()?
            .get(a)
            .map(|n| NodeRecord::clone(n))
    }

    pub(crate) fn cache_node(&self, rec: NodeRecord) {
        if let Ok(mut r) = self.registry.write() {
            r.insert(rec.agency.clone(), Arc::new(rec));
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

    /// Make `conn` the agency's live connection, closing one it replaces; returns the
    /// connection's id (for [`Hub::detach`]) and the handle that wakes its pusher.
    pub(crate) fn attach(&self, agency: &AgencyId, conn: &quinn::Connection) -> (u64, Arc<Notify>) {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let wake = Arc::new(Notify::new());
        if let Ok(mut c) = self.connected.lock() {
            if let Some(old) = c.insert(
                agency.clone(),
                Connected {
                    conn: conn.clone(),
                    wake: wake.clone(),
                    id,
                    slots: None,
                },
            ) {
                old.conn
                    .close(close::REPLACED.into(), b"replaced by a newer connection");
            }
        }
        (id, wake)
    }

    /// Record the delivery slots of the pusher of the agency's connection `id` (unless a newer
    /// connection has replaced it), for submissions that forward bodies to it.
    pub(crate) fn offer_slots(
        &self,
        agency: &AgencyId,
        id: u64,
        slots: crate::server::push::DeliverySlots,
    ) {
        if let Ok(mut c) = self.connected.lock() {
            if let Some(c) = c.get_mut(agency).filter(|c| c.id == id) {
                c.slots = Some(slots);
            }
        }
    }

    /// The delivery slots of the agency's connection to this instance, if its pusher runs.
    pub(crate) fn delivery_slots(
        &self,
        agency: &AgencyId,
    ) -> Option<crate::server::push::DeliverySlots> {
        self.connected.lock().ok()?.get(agency)?.slots.clone()
    }

    /// Forget the agency's connection `id`, unless a newer one has replaced it.
    pub(crate) fn detach(&self, agency: &AgencyId, id: u64) {
        if let Ok(mut c) = self.connected.lock() {
            if c.get(agency).is_some_and(|c| c.id == id) {
                c.remove(agency);
            }
        }
    }

    /// The refusal for a failed store operation. A storage fault is the retryable "hub storage
    /// is full / unavailable" (and marks the store unwritable, for /readyz); any other error is
    /// logged here and answered without its details, which may name internal paths.
    pub(crate) fn store_refusal(
        &self,
        e: &poros_store::StoreError,
    ) -> (RefusalCode, String, &'static str) {
        match e.fault() {
            Some(f) => {
                self.store.report_fault(f);
                // "Full" says it all; other faults name their cause (the database unreachable,
                // no synchronous standby).
                let r = match f.is_full() {
                    true => Refusal::storage(StorageParty::Hub, true),
                    false => Refusal::storage_because(StorageParty::Hub, false, &f.to_string()),
                };
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

    /// Sign a statement the hub makes (acceptances and delivery notices).
    pub(crate) fn sign_statement(
        &self,
        s: &poros_protocol::Statement,
    ) -> Result<poros_protocol::SignedStatement> {
        Ok(poros_protocol::SignedStatement::sign(
            s,
            &self.keys.hub_sign_key,
            &self.keys.hub_sign_cert,
        )?)
    }

    pub(crate) fn sign_notice(&self, n: &HubNotice) -> Result<SignedNotice> {
        Ok(SignedNotice::sign(
            n,
            &self.keys.hub_sign_key,
            &self.keys.hub_sign_cert,
        )?)
    }
}

/// Transport limits from the configuration.
pub fn limits(cfg: &HubConfig) -> Limits {
    Limits::hub(cfg.limits.max_streams_per_node)
}
