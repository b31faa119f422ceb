//! [`HubBackend`] for the embedded redb store: the methods of [`HubStore`] itself. Reads are
//! short memory-mapped lookups and run in place; the long scans (`recount`, `docs_using`)
//! run on the blocking pool.

use super::backend::*;
use super::*;
use async_trait::async_trait;
use poros_protocol::{SignedStatement, Statement};
use poros_store::{CommitStats, ReceivedBody, StorageFault};
use std::collections::HashSet;

#[async_trait]
impl RegistryBackend for HubStore {
    async fn put_node_audited(
        &self,
        rec: NodeRecord,
        read: NodeRecord,
        audit: AuditRecord,
    ) -> Result<Result<NodeRecord, NodeChanged>, StoreError> {
        HubStore::put_node_audited(self, rec, read, audit).await
    }
    async fn audit(&self, audit: AuditRecord) -> Result<(), StoreError> {
        HubStore::audit(self, audit).await
    }
    async fn audit_log(&self, agency: Option<&AgencyId>) -> Result<Vec<AuditRecord>, StoreError> {
        HubStore::audit_log(self, agency)
    }
    async fn audit_page(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<AuditRecord>, Option<u64>), StoreError> {
        HubStore::audit_page(self, after, limit)
    }
    async fn add_node(
        &self,
        rec: NodeRecord,
        token: Option<poros_protocol::EnrollToken>,
        audit: AuditRecord,
    ) -> Result<Result<(), RegistryRefusal>, StoreError> {
        HubStore::add_node(self, rec, token, audit).await
    }
    async fn edit_node(
        &self,
        agency: AgencyId,
        edit: NodeEdit,
        audit: AuditRecord,
    ) -> Result<Result<NodeRecord, RegistryRefusal>, StoreError> {
        HubStore::edit_node(self, agency, edit, audit).await
    }
    async fn token(&self, secret: &str) -> Result<Option<TokenRecord>, StoreError> {
        HubStore::token(self, secret)
    }
    async fn redeem_token(
        &self,
        secret: String,
        rec: NodeRecord,
        now_ms: u64,
        audit: AuditRecord,
    ) -> Result<bool, StoreError> {
        HubStore::redeem_token(self, secret, rec, now_ms, audit).await
    }
    async fn revoke(
        &self,
        rec: NodeRecord,
        read: NodeRecord,
        now_ms: u64,
        audit: AuditRecord,
    ) -> Result<Result<NodeRecord, NodeChanged>, StoreError> {
        HubStore::revoke(self, rec, read, now_ms, audit).await
    }
    async fn revoked(&self) -> Result<Vec<(String, RevokedSerial)>, StoreError> {
        HubStore::revoked(self)
    }
    async fn put_node(&self, rec: NodeRecord) -> Result<(), StoreError> {
        HubStore::put_node(self, rec).await
    }
    async fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        HubStore::nodes(self)
    }
    async fn retire_superseded(
        &self,
        agency: AgencyId,
        now_ms: u64,
        audit: AuditRecord,
    ) -> Result<Option<NodeRecord>, StoreError> {
        HubStore::retire_superseded(self, agency, now_ms, audit).await
    }
    async fn superseded(&self) -> Result<Vec<(String, RevokedSerial)>, StoreError> {
        HubStore::superseded(self)
    }
    async fn put_monitor(&self, rec: MonitorRecord, audit: AuditRecord) -> Result<(), StoreError> {
        HubStore::put_monitor(self, rec, audit).await
    }
    async fn monitors(&self) -> Result<Vec<MonitorRecord>, StoreError> {
        HubStore::monitors(self)
    }
}

#[async_trait]
impl ExchangeBackend for HubStore {
    async fn doc(&self, id: &DocumentId) -> Result<Option<DocRecord>, StoreError> {
        HubStore::doc(self, id)
    }
    async fn accept(
        &self,
        rec: DocRecord,
        body: ReceivedBody,
    ) -> Result<AcceptOutcome, StoreError> {
        HubStore::accept(self, rec, body).await
    }
    async fn pending_for(
        &self,
        recipient: &AgencyId,
        limit: usize,
        skip: &HashSet<DocumentId>,
    ) -> Result<Vec<Pending>, StoreError> {
        HubStore::pending_for(self, recipient, limit, skip)
    }
    async fn body_refs(&self, digest: &Digest) -> Result<u64, StoreError> {
        HubStore::body_refs(self, digest)
    }
    async fn inline_body(&self, digest: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        HubStore::inline_body(self, digest)
    }
    async fn record_answer(
        &self,
        doc: DocumentId,
        recipient: AgencyId,
        answer: Answer,
        now_ms: u64,
    ) -> Result<AnswerOutcome, StoreError> {
        HubStore::record_answer(self, doc, recipient, answer, now_ms).await
    }
    async fn relays_for(
        &self,
        sender: &AgencyId,
        limit: usize,
        skip: &HashSet<(DocumentId, AgencyId)>,
    ) -> Result<Vec<(DocumentId, AgencyId, RelayItem)>, StoreError> {
        HubStore::relays_for(self, sender, limit, skip)
    }
    async fn relay_done(
        &self,
        sender: AgencyId,
        doc: DocumentId,
        recipient: AgencyId,
    ) -> Result<(), StoreError> {
        HubStore::relay_done(self, sender, doc, recipient).await
    }
    async fn deliveries(
        &self,
        doc: &DocumentId,
    ) -> Result<Vec<(AgencyId, DeliveryRecord)>, StoreError> {
        HubStore::deliveries(self, doc)
    }
    async fn pending_count(&self, recipient: &AgencyId) -> Result<u64, StoreError> {
        HubStore::pending_count(self, recipient)
    }
    async fn queue_depth(&self) -> Result<u64, StoreError> {
        HubStore::queue_depth(self)
    }
    async fn expired_before(
        &self,
        cutoff_ms: u64,
        limit: usize,
    ) -> Result<Vec<(DocumentId, AgencyId)>, StoreError> {
        HubStore::expired_before(self, cutoff_ms, limit)
    }
    async fn release_bodies(
        &self,
        cutoff_ms: u64,
        limit: usize,
    ) -> Result<Vec<Digest>, StoreError> {
        HubStore::release_bodies(self, cutoff_ms, limit).await
    }
}

#[async_trait]
impl StatementBackend for HubStore {
    async fn accept_statement(
        &self,
        signed: SignedStatement,
        stmt: Statement,
        now_ms: u64,
    ) -> Result<StatementOutcome, StoreError> {
        HubStore::accept_statement(self, signed, stmt, now_ms).await
    }
    async fn statement_relays_for(
        &self,
        addressee: &AgencyId,
        limit: usize,
        in_flight: &HashSet<DocumentId>,
    ) -> Result<Vec<StatementRelay>, StoreError> {
        HubStore::statement_relays_for(self, addressee, limit, in_flight)
    }
    async fn hub_statement_relays_for(
        &self,
        addressee: &AgencyId,
        limit: usize,
        in_flight: &HashSet<DocumentId>,
    ) -> Result<Vec<StatementRelay>, StoreError> {
        HubStore::hub_statement_relays_for(self, addressee, limit, in_flight)
    }
    async fn statement_relay_done(
        &self,
        addressee: AgencyId,
        seq: u64,
        refused: bool,
    ) -> Result<(), StoreError> {
        HubStore::statement_relay_done(self, addressee, seq, refused).await
    }
    async fn statement_relay_depth(&self) -> Result<u64, StoreError> {
        HubStore::statement_relay_depth(self)
    }
    async fn statement_history(&self, doc: &DocumentId) -> Result<Vec<HistoryEntry>, StoreError> {
        HubStore::statement_history(self, doc)
    }
    async fn pending_without_added(
        &self,
        recipient: &AgencyId,
        limit: usize,
        skip: &HashSet<DocumentId>,
    ) -> Result<Vec<Pending>, StoreError> {
        HubStore::pending_without_added(self, recipient, limit, skip)
    }
    async fn added_by(
        &self,
        doc: &DocumentId,
        recipient: &AgencyId,
    ) -> Result<Option<SignedStatement>, StoreError> {
        HubStore::added_by(self, doc, recipient)
    }
    async fn statement_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        HubStore::statement_counts(self)
    }
    async fn statement_relay_docs(
        &self,
        addressee: &AgencyId,
    ) -> Result<Vec<DocumentId>, StoreError> {
        HubStore::statement_relay_docs(self, addressee)
    }
}

#[async_trait]
impl RepairBackend for HubStore {
    async fn hold_damaged(
        &self,
        doc: DocumentId,
        what: String,
        now_ms: u64,
    ) -> Result<Option<AgencyId>, StoreError> {
        HubStore::hold_damaged(self, doc, what, now_ms).await
    }
    async fn repairs_for(
        &self,
        sender: &AgencyId,
        limit: usize,
        skip: &HashSet<DocumentId>,
    ) -> Result<Vec<(DocumentId, Digest)>, StoreError> {
        HubStore::repairs_for(self, sender, limit, skip)
    }
    async fn damage(&self, digest: &Digest) -> Result<Option<DamageRecord>, StoreError> {
        HubStore::damage(self, digest)
    }
    async fn body_repaired(
        &self,
        digest: Digest,
        inline: Option<Vec<u8>>,
    ) -> Result<Vec<AgencyId>, StoreError> {
        HubStore::body_repaired(self, digest, inline).await
    }
    async fn repair_failed(&self, digest: Digest) -> Result<u32, StoreError> {
        HubStore::repair_failed(self, digest).await
    }
    async fn held_for(&self, digest: &Digest) -> Result<Vec<HeldDelivery>, StoreError> {
        HubStore::held_for(self, digest)
    }
    async fn body_lost(
        &self,
        digest: Digest,
        notices: Vec<(HeldDelivery, Answer)>,
        now_ms: u64,
    ) -> Result<Vec<AgencyId>, StoreError> {
        HubStore::body_lost(self, digest, notices, now_ms).await
    }
    async fn held_count(&self, recipient: Option<&AgencyId>) -> Result<u64, StoreError> {
        HubStore::held_count(self, recipient)
    }
    async fn live_bodies(
        &self,
        after: Option<Digest>,
        limit: usize,
    ) -> Result<Vec<(Digest, bool)>, StoreError> {
        HubStore::live_bodies(self, after, limit)
    }
    async fn docs_using(
        &self,
        digests: &HashSet<Digest>,
    ) -> Result<HashMap<Digest, Vec<DocumentId>>, StoreError> {
        let (store, digests) = (self.clone(), digests.clone());
        blocking(move || store.docs_using(&digests)).await
    }
    async fn count_checked(&self, n: u64) -> Result<(), StoreError> {
        HubStore::count_checked(self, n).await
    }
    async fn repair_senders(&self) -> Result<Vec<AgencyId>, StoreError> {
        HubStore::repair_senders(self)
    }
}

#[async_trait]
impl StatisticsBackend for HubStore {
    async fn mark_seen(&self, agencies: Vec<AgencyId>, now_ms: u64) -> Result<(), StoreError> {
        HubStore::mark_seen(self, agencies, now_ms).await
    }
    async fn put_paper(
        &self,
        agency: AgencyId,
        month: String,
        count: crate::stats::PaperCount,
    ) -> Result<(), StoreError> {
        HubStore::put_paper(self, agency, month, count).await
    }
    async fn overdue(
        &self,
        from_ms: u64,
        to_ms: u64,
        older_than_ms: u64,
    ) -> Result<HashMap<String, u64>, StoreError> {
        HubStore::overdue(self, from_ms, to_ms, older_than_ms)
    }
    async fn recount(&self, on_time_ms: u64) -> Result<crate::stats::Sums, StoreError> {
        let store = self.clone();
        blocking(move || store.recount(on_time_ms)).await
    }
    async fn counters(&self) -> Result<Vec<(String, u64)>, StoreError> {
        HubStore::counters(self)
    }
    async fn stats_snapshot(&self) -> Result<Box<dyn StatsView>, StoreError> {
        Ok(Box::new(HubStore::stats_snapshot(self)?))
    }
    async fn compact_counters(&self) -> Result<u64, StoreError> {
        // Counters are updated in place, in the accept's own write transaction.
        Ok(0)
    }
}

#[async_trait]
impl StatsView for StatsSnapshot {
    async fn sums(
        &self,
        periods: &[String],
        scope: Option<&str>,
    ) -> Result<crate::stats::Sums, StoreError> {
        StatsSnapshot::sums(self, periods, scope)
    }
    async fn paper_sums(&self, months: &[String]) -> Result<crate::stats::Sums, StoreError> {
        StatsSnapshot::paper_sums(self, months)
    }
    async fn seen(&self, periods: &[String]) -> Result<HashSet<String>, StoreError> {
        StatsSnapshot::seen(self, periods)
    }
}

impl HubBackend for HubStore {
    fn kind(&self) -> &'static str {
        "redb"
    }
    fn embedded(&self) -> Option<&HubStore> {
        Some(self)
    }
    fn health(&self) -> Option<StorageFault> {
        self.db.health()
    }
    fn report_fault(&self, fault: StorageFault) {
        self.db.report_fault(fault)
    }
    fn commit_stats(&self) -> CommitStats {
        self.db.stats()
    }
    fn health_metrics(&self) -> String {
        poros_store::health_metrics(&self.db)
    }
}

/// Run a long read on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Other(format!("store task: {e}")))?
}

/// One hub: every lease is its own, and its events never leave the process (the hub wakes
/// its pushers and applies registry changes itself).
#[async_trait]
impl CoordinationBackend for HubStore {
    fn holder(&self) -> String {
        "local".into()
    }
    async fn claim_agency(
        &self,
        _agency: &AgencyId,
        _holder: &str,
        _ttl: std::time::Duration,
    ) -> Result<bool, StoreError> {
        Ok(true)
    }
    async fn release_agency(&self, _agency: &AgencyId, _holder: &str) -> Result<(), StoreError> {
        Ok(())
    }
    async fn publish(&self, _event: HubEvent) -> Result<(), StoreError> {
        Ok(())
    }
    fn events(&self) -> Option<tokio::sync::broadcast::Receiver<HubEvent>> {
        None
    }
    async fn node(&self, agency: &AgencyId) -> Result<Option<NodeRecord>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(NODES)?;
        let v = t.get(agency.as_str())?;
        v.map(|g| dec_node(g.value())).transpose()
    }
    async fn modify_node(
        &self,
        agency: AgencyId,
        change: NodeChange,
    ) -> Result<Option<NodeRecord>, StoreError> {
        self.db
            .write(move |txn| {
                let mut t = txn.open_table(NODES)?;
                let stored = t
                    .get(agency.as_str())?
                    .map(|g| dec_node(g.value()))
                    .transpose()?;
                let Some(mut rec) = stored else {
                    return Ok(None);
                };
                change(&mut rec);
                t.insert(agency.as_str(), enc(&rec)?.as_slice())?;
                Ok(Some(rec))
            })
            .await
    }
    async fn recovery_point(&self) -> Result<Option<RecoveryPoint>, StoreError> {
        HubStore::recovery_point(self)
    }
    async fn mark_restored(&self, point: RecoveryPoint) -> Result<(), StoreError> {
        self.db
            .write(move |txn| super::snapshot::put_recovery_point(txn, point))
            .await
    }
}
