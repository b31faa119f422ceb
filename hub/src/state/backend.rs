//! The backend seam: everything the hub keeps durably, as one trait ([`HubBackend`]) with two
//! implementations — the embedded redb store ([`HubStore`], the default for one machine) and
//! PostgreSQL (`super::pg`, for several hub instances on a replicated cluster).
//!
//! The trait is split by area so each area reads on its own: [`RegistryBackend`] (nodes,
//! tokens, audit, revocations, monitors), [`ExchangeBackend`] (documents, queues, answers,
//! relays, expiry and retention), [`StatementBackend`] (the statement path),
//! [`RepairBackend`] (bodies found damaged and the deliveries they hold) and
//! [`StatisticsBackend`] (counters, exact statistics, connections, paper counts) and
//! [`CoordinationBackend`] (what several hub instances share beyond the state: leases on each
//! agency's delivery and relay work, and events that reach every instance).
//!
//! The contract every implementation keeps, checked by one conformance suite run against both
//! (`hub/tests/conformance.rs`):
//! - a method that changes state returns `Ok` only once the change is durable (for
//!   PostgreSQL: its COMMIT returned, so a synchronous standby holds it); each is one
//!   transaction, all or nothing;
//! - a commit whose outcome is unknown is resolved by reading, never guessed;
//! - accepting a document or statement twice stores it once; an answer ends a delivery once;
//! - counters stay equal to a recount of what they count.

use super::*;
use async_trait::async_trait;
use poros_protocol::{SignedStatement, Statement};
use poros_store::{CommitStats, ReceivedBody, StorageFault};
use std::collections::HashSet;

/// Nodes, enrolment tokens, the audit log, revoked and superseded serials, monitors.
#[async_trait]
pub trait RegistryBackend: Send + Sync {
    /// Store a node record derived from `read` and its audit record in one commit, if the
    /// stored record is still `read` (apart from connection bookkeeping, which the record
    /// written keeps); else nothing is stored and the answer is [`NodeChanged`]. Returns the
    /// record written.
    async fn put_node_audited(
        &self,
        rec: NodeRecord,
        read: NodeRecord,
        audit: AuditRecord,
    ) -> Result<Result<NodeRecord, NodeChanged>, StoreError>;
    /// Append an audit record.
    async fn audit(&self, audit: AuditRecord) -> Result<(), StoreError>;
    /// The audit log, of one agency or all, oldest first.
    async fn audit_log(&self, agency: Option<&AgencyId>) -> Result<Vec<AuditRecord>, StoreError>;
    /// Up to `limit` audit records after cursor `after`, and the next cursor.
    async fn audit_page(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<AuditRecord>, Option<u64>), StoreError>;
    /// Register a node (and its enrolment token), checking its parent in the same commit.
    async fn add_node(
        &self,
        rec: NodeRecord,
        token: Option<poros_protocol::EnrollToken>,
        audit: AuditRecord,
    ) -> Result<Result<(), RegistryRefusal>, StoreError>;
    /// Change a node's directory fields.
    async fn edit_node(
        &self,
        agency: AgencyId,
        edit: NodeEdit,
        audit: AuditRecord,
    ) -> Result<Result<NodeRecord, RegistryRefusal>, StoreError>;
    /// An enrolment token by its secret.
    async fn token(&self, secret: &str) -> Result<Option<TokenRecord>, StoreError>;
    /// Redeem a token once: `false` if it was used, expired or unknown.
    async fn redeem_token(
        &self,
        secret: String,
        rec: NodeRecord,
        now_ms: u64,
        audit: AuditRecord,
    ) -> Result<bool, StoreError>;
    /// Revoke a node: its record and its serials in the revocation list, in one commit, under
    /// the same condition as [`Self::put_node_audited`]. Returns the record written.
    async fn revoke(
        &self,
        rec: NodeRecord,
        read: NodeRecord,
        now_ms: u64,
        audit: AuditRecord,
    ) -> Result<Result<NodeRecord, NodeChanged>, StoreError>;
    /// Revoked serials.
    async fn revoked(&self) -> Result<Vec<(String, RevokedSerial)>, StoreError>;
    /// Store a node record.
    async fn put_node(&self, rec: NodeRecord) -> Result<(), StoreError>;
    /// Every node record, by agency.
    async fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError>;
    /// Retire a renewed node's superseded serials once their overlap is over.
    async fn retire_superseded(
        &self,
        agency: AgencyId,
        now_ms: u64,
        audit: AuditRecord,
    ) -> Result<Option<NodeRecord>, StoreError>;
    /// Serials retired by renewal.
    async fn superseded(&self) -> Result<Vec<(String, RevokedSerial)>, StoreError>;
    /// Store a monitor credential and its audit record.
    async fn put_monitor(&self, rec: MonitorRecord, audit: AuditRecord) -> Result<(), StoreError>;
    /// Every monitor credential.
    async fn monitors(&self) -> Result<Vec<MonitorRecord>, StoreError>;
}

/// Documents, pending deliveries, answers and their relays, expiry and body retention.
#[async_trait]
pub trait ExchangeBackend: Send + Sync {
    /// A stored document.
    async fn doc(&self, id: &DocumentId) -> Result<Option<DocRecord>, StoreError>;
    /// Store an accepted document with one pending delivery per recipient (idempotent).
    async fn accept(&self, rec: DocRecord, body: ReceivedBody)
        -> Result<AcceptOutcome, StoreError>;
    /// Up to `limit` pending deliveries for `recipient`, oldest first, skipping `skip`.
    async fn pending_for(
        &self,
        recipient: &AgencyId,
        limit: usize,
        skip: &HashSet<DocumentId>,
    ) -> Result<Vec<Pending>, StoreError>;
    /// Documents referencing a body.
    async fn body_refs(&self, digest: &Digest) -> Result<u64, StoreError>;
    /// A body stored in the database.
    async fn inline_body(&self, digest: &Digest) -> Result<Option<Vec<u8>>, StoreError>;
    /// Record an answer that ends a delivery (once) and queue it for the sender.
    async fn record_answer(
        &self,
        doc: DocumentId,
        recipient: AgencyId,
        answer: Answer,
        now_ms: u64,
    ) -> Result<AnswerOutcome, StoreError>;
    /// `poros/1` relays waiting for `sender`, skipping those in flight.
    async fn relays_for(
        &self,
        sender: &AgencyId,
        limit: usize,
        skip: &HashSet<(DocumentId, AgencyId)>,
    ) -> Result<Vec<(DocumentId, AgencyId, RelayItem)>, StoreError>;
    /// The sender acknowledged a `poros/1` relay.
    async fn relay_done(
        &self,
        sender: AgencyId,
        doc: DocumentId,
        recipient: AgencyId,
    ) -> Result<(), StoreError>;
    /// Every delivery of a document.
    async fn deliveries(
        &self,
        doc: &DocumentId,
    ) -> Result<Vec<(AgencyId, DeliveryRecord)>, StoreError>;
    /// Pending deliveries of one recipient.
    async fn pending_count(&self, recipient: &AgencyId) -> Result<u64, StoreError>;
    /// Pending deliveries of all recipients.
    async fn queue_depth(&self) -> Result<u64, StoreError>;
    /// Pending deliveries accepted before `cutoff_ms` (to expire), oldest first.
    async fn expired_before(
        &self,
        cutoff_ms: u64,
        limit: usize,
    ) -> Result<Vec<(DocumentId, AgencyId)>, StoreError>;
    /// Bodies of documents all answered before `cutoff_ms`, released once no document uses
    /// them; returns the digests whose last reference went.
    async fn release_bodies(&self, cutoff_ms: u64, limit: usize)
        -> Result<Vec<Digest>, StoreError>;
}

/// Statements: accepted from their maker, queued for their addressees, a document's history.
#[async_trait]
pub trait StatementBackend: Send + Sync {
    /// Accept a verified statement under the exchange rules (idempotent).
    async fn accept_statement(
        &self,
        signed: SignedStatement,
        stmt: Statement,
        now_ms: u64,
    ) -> Result<StatementOutcome, StoreError>;
    /// Statements queued for `addressee`, in order, not about documents in flight.
    async fn statement_relays_for(
        &self,
        addressee: &AgencyId,
        limit: usize,
        in_flight: &HashSet<DocumentId>,
    ) -> Result<Vec<StatementRelay>, StoreError>;
    /// As [`Self::statement_relays_for`], only the hub's own statements (for `poros/1`).
    async fn hub_statement_relays_for(
        &self,
        addressee: &AgencyId,
        limit: usize,
        in_flight: &HashSet<DocumentId>,
    ) -> Result<Vec<StatementRelay>, StoreError>;
    /// The addressee stored (or refused) a relayed statement.
    async fn statement_relay_done(
        &self,
        addressee: AgencyId,
        seq: u64,
        refused: bool,
    ) -> Result<(), StoreError>;
    /// Statements queued for all addressees.
    async fn statement_relay_depth(&self) -> Result<u64, StoreError>;
    /// A document's statements in acceptance order.
    async fn statement_history(&self, doc: &DocumentId) -> Result<Vec<HistoryEntry>, StoreError>;
    /// Pending deliveries of `recipient` that no update added (for `poros/1`).
    async fn pending_without_added(
        &self,
        recipient: &AgencyId,
        limit: usize,
        skip: &HashSet<DocumentId>,
    ) -> Result<Vec<Pending>, StoreError>;
    /// The update that added `recipient` to `doc`, if one did.
    async fn added_by(
        &self,
        doc: &DocumentId,
        recipient: &AgencyId,
    ) -> Result<Option<SignedStatement>, StoreError>;
    /// Accepted statements by kind.
    async fn statement_counts(&self) -> Result<Vec<(String, u64)>, StoreError>;
    /// Documents with statements queued for `addressee`.
    async fn statement_relay_docs(
        &self,
        addressee: &AgencyId,
    ) -> Result<Vec<DocumentId>, StoreError>;
}

/// Bodies found damaged or missing, the deliveries they hold, and their repair.
#[async_trait]
pub trait RepairBackend: Send + Sync {
    /// Hold a document's deliveries for a damaged body; the sender to ask, if newly damaged.
    async fn hold_damaged(
        &self,
        doc: DocumentId,
        what: String,
        now_ms: u64,
    ) -> Result<Option<AgencyId>, StoreError>;
    /// Repairs to ask of `sender`.
    async fn repairs_for(
        &self,
        sender: &AgencyId,
        limit: usize,
        skip: &HashSet<DocumentId>,
    ) -> Result<Vec<(DocumentId, Digest)>, StoreError>;
    /// A damaged body's record.
    async fn damage(&self, digest: &Digest) -> Result<Option<DamageRecord>, StoreError>;
    /// A body was uploaded again: release its held deliveries; the recipients to wake.
    async fn body_repaired(
        &self,
        digest: Digest,
        inline: Option<Vec<u8>>,
    ) -> Result<Vec<AgencyId>, StoreError>;
    /// A re-upload failed; the attempts so far.
    async fn repair_failed(&self, digest: Digest) -> Result<u32, StoreError>;
    /// Deliveries held for a body.
    async fn held_for(&self, digest: &Digest) -> Result<Vec<HeldDelivery>, StoreError>;
    /// A body is lost for good: end its held deliveries with the hub's notices.
    async fn body_lost(
        &self,
        digest: Digest,
        notices: Vec<(HeldDelivery, Answer)>,
        now_ms: u64,
    ) -> Result<Vec<AgencyId>, StoreError>;
    /// Held deliveries (of one recipient, or all).
    async fn held_count(&self, recipient: Option<&AgencyId>) -> Result<u64, StoreError>;
    /// Referenced bodies after `after`, in digest order, and whether each is in the database.
    async fn live_bodies(
        &self,
        after: Option<Digest>,
        limit: usize,
    ) -> Result<Vec<(Digest, bool)>, StoreError>;
    /// The documents using each of `digests`.
    async fn docs_using(
        &self,
        digests: &HashSet<Digest>,
    ) -> Result<HashMap<Digest, Vec<DocumentId>>, StoreError>;
    /// Count bodies checked by the scrub.
    async fn count_checked(&self, n: u64) -> Result<(), StoreError>;
    /// Senders with repairs to ask.
    async fn repair_senders(&self) -> Result<Vec<AgencyId>, StoreError>;
}

/// Counters, exact statistics per agency and period, connections and paper counts.
#[async_trait]
pub trait StatisticsBackend: Send + Sync {
    /// Mark agencies as seen (connected) now.
    async fn mark_seen(&self, agencies: Vec<AgencyId>, now_ms: u64) -> Result<(), StoreError>;
    /// Store an agency's paper count for a month (replacing an earlier one).
    async fn put_paper(
        &self,
        agency: AgencyId,
        month: String,
        count: crate::stats::PaperCount,
    ) -> Result<(), StoreError>;
    /// Deliveries accepted in `[from_ms, to_ms)` still pending after `older_than_ms`, per
    /// recipient.
    async fn overdue(
        &self,
        from_ms: u64,
        to_ms: u64,
        older_than_ms: u64,
    ) -> Result<HashMap<String, u64>, StoreError>;
    /// The statistics counted again from the stored documents and answers.
    async fn recount(&self, on_time_ms: u64) -> Result<crate::stats::Sums, StoreError>;
    /// Counter values.
    async fn counters(&self) -> Result<Vec<(String, u64)>, StoreError>;
    /// One consistent read of the statistics.
    async fn stats_snapshot(&self) -> Result<Box<dyn StatsView>, StoreError>;
    /// Fold the counters' pending increments into their totals, where the backend keeps them
    /// apart so that no single row is written by every accept (PostgreSQL); returns how many
    /// were folded. Values read are the same before and after. Run by the hub's sweeper.
    async fn compact_counters(&self) -> Result<u64, StoreError>;
}

/// One consistent read of the statistics: every figure of a report comes from the same commit.
#[async_trait]
pub trait StatsView: Send + Sync {
    /// Every counter of every scope (or of `scope` only) summed over `periods`.
    async fn sums(
        &self,
        periods: &[String],
        scope: Option<&str>,
    ) -> Result<crate::stats::Sums, StoreError>;
    /// Paper-only counts of the given months per agency, group and nation.
    async fn paper_sums(&self, months: &[String]) -> Result<crate::stats::Sums, StoreError>;
    /// Agencies seen (connected) in any of `periods`.
    async fn seen(&self, periods: &[String]) -> Result<HashSet<String>, StoreError>;
}

/// Something every hub instance must hear about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HubEvent {
    /// New work for this agency (a delivery, an answer, a statement to relay): its pusher,
    /// wherever the agency is connected, should look now.
    Work(AgencyId),
    /// The agency's registry record changed (suspended, revoked, renewed, edited): reload it,
    /// cut its connection if it is no longer active, and rebuild the revocation lists.
    Registry(AgencyId),
    /// Events may have been missed (the listening connection was lost): wake every pusher and
    /// reload the registry.
    Resync,
}

impl HubEvent {
    /// The wire form (a NOTIFY payload): `w <agency>`, `r <agency>`, `s`.
    pub fn encode(&self) -> String {
        match self {
            HubEvent::Work(a) => format!("w {a}"),
            HubEvent::Registry(a) => format!("r {a}"),
            HubEvent::Resync => "s".into(),
        }
    }

    /// Parse the wire form.
    pub fn decode(s: &str) -> Option<HubEvent> {
        let agency = |rest: &str| AgencyId::parse(rest).ok();
        match s.split_once(' ') {
            Some(("w", a)) => agency(a).map(HubEvent::Work),
            Some(("r", a)) => agency(a).map(HubEvent::Registry),
            None if s == "s" => Some(HubEvent::Resync),
            _ => None,
        }
    }
}

/// A change to one node record, applied to the stored record inside one transaction (never to
/// a cached copy written back, which could undo a revocation made meanwhile by another hub).
pub type NodeChange = Box<dyn Fn(&mut NodeRecord) + Send + Sync>;

/// What several hub instances share beyond the state. The embedded store serves one hub: its
/// leases are always held and its events stay in the process.
#[async_trait]
pub trait CoordinationBackend: Send + Sync {
    /// This instance's name as a lease holder (unique among the instances).
    fn holder(&self) -> String;
    /// Claim, or renew, the lease on `agency`'s delivery and relay work for `holder` until
    /// `ttl` from now. `false`: another holder's lease is still running.
    async fn claim_agency(
        &self,
        agency: &AgencyId,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError>;
    /// Give the lease up (the agency disconnected from this instance).
    async fn release_agency(&self, agency: &AgencyId, holder: &str) -> Result<(), StoreError>;
    /// Tell every other hub instance about `event`.
    async fn publish(&self, event: HubEvent) -> Result<(), StoreError>;
    /// Events from the other instances; `None` when there are none (one hub).
    fn events(&self) -> Option<tokio::sync::broadcast::Receiver<HubEvent>>;
    /// One node record as stored now.
    async fn node(&self, agency: &AgencyId) -> Result<Option<NodeRecord>, StoreError>;
    /// Apply `change` to the stored record of `agency` in one transaction; the record as
    /// stored after it (`None`: not registered).
    async fn modify_node(
        &self,
        agency: AgencyId,
        change: NodeChange,
    ) -> Result<Option<NodeRecord>, StoreError>;
    /// The restore this state came from, if it was brought back to an earlier point (a
    /// backup restored, a database recovered to a point in time): every instance asks each
    /// agent at connect to submit again what the hub accepted since.
    async fn recovery_point(&self) -> Result<Option<RecoveryPoint>, StoreError>;
    /// Record that this state was brought back to `point` (replacing an earlier mark).
    async fn mark_restored(&self, point: RecoveryPoint) -> Result<(), StoreError>;
}

/// The hub's durable state: every area, plus the backend's own health.
pub trait HubBackend:
    RegistryBackend
    + ExchangeBackend
    + StatementBackend
    + RepairBackend
    + StatisticsBackend
    + CoordinationBackend
{
    /// `redb` or `postgres`, for logs and metrics.
    fn kind(&self) -> &'static str;
    /// Why writes are refused now, if they are (a full disk, a lost database).
    fn health(&self) -> Option<StorageFault>;
    /// Note a storage fault seen outside the backend (e.g. a body file that could not be
    /// written), so health reports it until a probe succeeds.
    fn report_fault(&self, fault: StorageFault);
    /// Commit figures for `/metrics`.
    fn commit_stats(&self) -> CommitStats;
    /// The backend's own `/metrics` lines (health, failures).
    fn health_metrics(&self) -> String;
    /// The embedded redb store, if this is it (backups and restores are its own; a
    /// PostgreSQL cluster is backed up with PostgreSQL's tools).
    fn embedded(&self) -> Option<&super::HubStore> {
        None
    }
}
