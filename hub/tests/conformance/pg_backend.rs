//! `HubBackend` for `PgStore` while the crate itself does not implement it: a newtype that
//! hands every area's method to `PgStore`'s own implementation of that area, and the
//! backend's health to its inherent methods. Nothing here decides anything; delete this file
//! (and use `Arc::new(store)`) once `poros_hub` has `impl HubBackend for PgStore`.

use async_trait::async_trait;
use poros_hub::state::pg::PgStore;
use poros_hub::state::*;
use poros_protocol::{AgencyId, Digest, DocumentId, SignedStatement, Statement};
use poros_store::{CommitStats, ReceivedBody, StorageFault, StoreError};
use std::collections::{HashMap, HashSet};

/// `PgStore` as a [`HubBackend`].
pub struct PgBackend(pub PgStore);

#[async_trait]
impl RegistryBackend for PgBackend {
    async fn put_node_audited(
        &self,
        rec: NodeRecord,
        audit: AuditRecord,
    ) -> Result<(), StoreError> {
        RegistryBackend::put_node_audited(&self.0, rec, audit).await
    }
    async fn audit(&self, audit: AuditRecord) -> Result<(), StoreError> {
        RegistryBackend::audit(&self.0, audit).await
    }
    async fn audit_log(&self, agency: Option<&AgencyId>) -> Result<Vec<AuditRecord>, StoreError> {
        RegistryBackend::audit_log(&self.0, agency).await
    }
    async fn audit_page(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<AuditRecord>, Option<u64>), StoreError> {
        RegistryBackend::audit_page(&self.0, after, limit).await
    }
    async fn add_node(
        &self,
        rec: NodeRecord,
        token: Option<poros_protocol::EnrollToken>,
        audit: AuditRecord,
    ) -> Result<Result<(), RegistryRefusal>, StoreError> {
        RegistryBackend::add_node(&self.0, rec, token, audit).await
    }
    async fn edit_node(
        &self,
        agency: AgencyId,
        edit: NodeEdit,
        audit: AuditRecord,
    ) -> Result<Result<NodeRecord, RegistryRefusal>, StoreError> {
        RegistryBackend::edit_node(&self.0, agency, edit, audit).await
    }
    async fn token(&self, secret: &str) -> Result<Option<TokenRecord>, StoreError> {
        RegistryBackend::token(&self.0, secret).await
    }
    async fn redeem_token(
        &self,
        secret: String,
        rec: NodeRecord,
        now_ms: u64,
        audit: AuditRecord,
    ) -> Result<bool, StoreError> {
        RegistryBackend::redeem_token(&self.0, secret, rec, now_ms, audit).await
    }
    async fn revoke(
        &self,
        rec: NodeRecord,
        now_ms: u64,
        audit: AuditRecord,
    ) -> Result<(), StoreError> {
        RegistryBackend::revoke(&self.0, rec, now_ms, audit).await
    }
    async fn revoked(&self) -> Result<Vec<(String, RevokedSerial)>, StoreError> {
        RegistryBackend::revoked(&self.0).await
    }
    async fn put_node(&self, rec: NodeRecord) -> Result<(), StoreError> {
        RegistryBackend::put_node(&self.0, rec).await
    }
    async fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        RegistryBackend::nodes(&self.0).await
    }
    async fn retire_superseded(
        &self,
        agency: AgencyId,
        now_ms: u64,
        audit: AuditRecord,
    ) -> Result<Option<NodeRecord>, StoreError> {
        RegistryBackend::retire_superseded(&self.0, agency, now_ms, audit).await
    }
    async fn superseded(&self) -> Result<Vec<(String, RevokedSerial)>, StoreError> {
        RegistryBackend::superseded(&self.0).await
    }
    async fn put_monitor(&self, rec: MonitorRecord, audit: AuditRecord) -> Result<(), StoreError> {
        RegistryBackend::put_monitor(&self.0, rec, audit).await
    }
    async fn monitors(&self) -> Result<Vec<MonitorRecord>, StoreError> {
        RegistryBackend::monitors(&self.0).await
    }
}

#[async_trait]
impl ExchangeBackend for PgBackend {
    async fn doc(&self, id: &DocumentId) -> Result<Option<DocRecord>, StoreError> {
        ExchangeBackend::doc(&self.0, id).await
    }
    async fn accept(
        &self,
        rec: DocRecord,
        body: ReceivedBody,
    ) -> Result<AcceptOutcome, StoreError> {
        ExchangeBackend::accept(&self.0, rec, body).await
    }
    async fn pending_for(
        &self,
        recipient: &AgencyId,
        limit: usize,
        skip: &HashSet<DocumentId>,
    ) -> Result<Vec<Pending>, StoreError> {
        ExchangeBackend::pending_for(&self.0, recipient, limit, skip).await
    }
    async fn body_refs(&self, digest: &Digest) -> Result<u64, StoreError> {
        ExchangeBackend::body_refs(&self.0, digest).await
    }
    async fn inline_body(&self, digest: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        ExchangeBackend::inline_body(&self.0, digest).await
    }
    async fn record_answer(
        &self,
        doc: DocumentId,
        recipient: AgencyId,
        answer: Answer,
        now_ms: u64,
    ) -> Result<AnswerOutcome, StoreError> {
        ExchangeBackend::record_answer(&self.0, doc, recipient, answer, now_ms).await
    }
    async fn relays_for(
        &self,
        sender: &AgencyId,
        limit: usize,
        skip: &HashSet<(DocumentId, AgencyId)>,
    ) -> Result<Vec<(DocumentId, AgencyId, RelayItem)>, StoreError> {
        ExchangeBackend::relays_for(&self.0, sender, limit, skip).await
    }
    async fn relay_done(
        &self,
        sender: AgencyId,
        doc: DocumentId,
        recipient: AgencyId,
    ) -> Result<(), StoreError> {
        ExchangeBackend::relay_done(&self.0, sender, doc, recipient).await
    }
    async fn deliveries(
        &self,
        doc: &DocumentId,
    ) -> Result<Vec<(AgencyId, DeliveryRecord)>, StoreError> {
        ExchangeBackend::deliveries(&self.0, doc).await
    }
    async fn pending_count(&self, recipient: &AgencyId) -> Result<u64, StoreError> {
        ExchangeBackend::pending_count(&self.0, recipient).await
    }
    async fn queue_depth(&self) -> Result<u64, StoreError> {
        ExchangeBackend::queue_depth(&self.0).await
    }
    async fn expired_before(
        &self,
        cutoff_ms: u64,
        limit: usize,
    ) -> Result<Vec<(DocumentId, AgencyId)>, StoreError> {
        ExchangeBackend::expired_before(&self.0, cutoff_ms, limit).await
    }
    async fn release_bodies(
        &self,
        cutoff_ms: u64,
        limit: usize,
    ) -> Result<Vec<Digest>, StoreError> {
        ExchangeBackend::release_bodies(&self.0, cutoff_ms, limit).await
    }
}

#[async_trait]
impl StatementBackend for PgBackend {
    async fn accept_statement(
        &self,
        signed: SignedStatement,
        stmt: Statement,
        now_ms: u64,
    ) -> Result<StatementOutcome, StoreError> {
        StatementBackend::accept_statement(&self.0, signed, stmt, now_ms).await
    }
    async fn statement_relays_for(
        &self,
        addressee: &AgencyId,
        limit: usize,
        in_flight: &HashSet<DocumentId>,
    ) -> Result<Vec<StatementRelay>, StoreError> {
        StatementBackend::statement_relays_for(&self.0, addressee, limit, in_flight).await
    }
    async fn hub_statement_relays_for(
        &self,
        addressee: &AgencyId,
        limit: usize,
        in_flight: &HashSet<DocumentId>,
    ) -> Result<Vec<StatementRelay>, StoreError> {
        StatementBackend::hub_statement_relays_for(&self.0, addressee, limit, in_flight).await
    }
    async fn statement_relay_done(
        &self,
        addressee: AgencyId,
        seq: u64,
        refused: bool,
    ) -> Result<(), StoreError> {
        StatementBackend::statement_relay_done(&self.0, addressee, seq, refused).await
    }
    async fn statement_relay_depth(&self) -> Result<u64, StoreError> {
        StatementBackend::statement_relay_depth(&self.0).await
    }
    async fn statement_history(&self, doc: &DocumentId) -> Result<Vec<HistoryEntry>, StoreError> {
        StatementBackend::statement_history(&self.0, doc).await
    }
    async fn pending_without_added(
        &self,
        recipient: &AgencyId,
        limit: usize,
        skip: &HashSet<DocumentId>,
    ) -> Result<Vec<Pending>, StoreError> {
        StatementBackend::pending_without_added(&self.0, recipient, limit, skip).await
    }
    async fn added_by(
        &self,
        doc: &DocumentId,
        recipient: &AgencyId,
    ) -> Result<Option<SignedStatement>, StoreError> {
        StatementBackend::added_by(&self.0, doc, recipient).await
    }
    async fn statement_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        StatementBackend::statement_counts(&self.0).await
    }
    async fn statement_relay_docs(
        &self,
        addressee: &AgencyId,
    ) -> Result<Vec<DocumentId>, StoreError> {
        StatementBackend::statement_relay_docs(&self.0, addressee).await
    }
}

#[async_trait]
impl RepairBackend for PgBackend {
    async fn hold_damaged(
        &self,
        doc: DocumentId,
        what: String,
        now_ms: u64,
    ) -> Result<Option<AgencyId>, StoreError> {
        RepairBackend::hold_damaged(&self.0, doc, what, now_ms).await
    }
    async fn repairs_for(
        &self,
        sender: &AgencyId,
        limit: usize,
        skip: &HashSet<DocumentId>,
    ) -> Result<Vec<(DocumentId, Digest)>, StoreError> {
        RepairBackend::repairs_for(&self.0, sender, limit, skip).await
    }
    async fn damage(&self, digest: &Digest) -> Result<Option<DamageRecord>, StoreError> {
        RepairBackend::damage(&self.0, digest).await
    }
    async fn body_repaired(
        &self,
        digest: Digest,
        inline: Option<Vec<u8>>,
    ) -> Result<Vec<AgencyId>, StoreError> {
        RepairBackend::body_repaired(&self.0, digest, inline).await
    }
    async fn repair_failed(&self, digest: Digest) -> Result<u32, StoreError> {
        RepairBackend::repair_failed(&self.0, digest).await
    }
    async fn held_for(&self, digest: &Digest) -> Result<Vec<HeldDelivery>, StoreError> {
        RepairBackend::held_for(&self.0, digest).await
    }
    async fn body_lost(
        &self,
        digest: Digest,
        notices: Vec<(HeldDelivery, Answer)>,
        now_ms: u64,
    ) -> Result<Vec<AgencyId>, StoreError> {
        RepairBackend::body_lost(&self.0, digest, notices, now_ms).await
    }
    async fn held_count(&self, recipient: Option<&AgencyId>) -> Result<u64, StoreError> {
        RepairBackend::held_count(&self.0, recipient).await
    }
    async fn live_bodies(
        &self,
        after: Option<Digest>,
        limit: usize,
    ) -> Result<Vec<(Digest, bool)>, StoreError> {
        RepairBackend::live_bodies(&self.0, after, limit).await
    }
    async fn docs_using(
        &self,
        digests: &HashSet<Digest>,
    ) -> Result<HashMap<Digest, Vec<DocumentId>>, StoreError> {
        RepairBackend::docs_using(&self.0, digests).await
    }
    async fn count_checked(&self, n: u64) -> Result<(), StoreError> {
        RepairBackend::count_checked(&self.0, n).await
    }
    async fn repair_senders(&self) -> Result<Vec<AgencyId>, StoreError> {
        RepairBackend::repair_senders(&self.0).await
    }
}

#[async_trait]
impl StatisticsBackend for PgBackend {
    async fn mark_seen(&self, agencies: Vec<AgencyId>, now_ms: u64) -> Result<(), StoreError> {
        StatisticsBackend::mark_seen(&self.0, agencies, now_ms).await
    }
    async fn put_paper(
        &self,
        agency: AgencyId,
        month: String,
        count: poros_hub::stats::PaperCount,
    ) -> Result<(), StoreError> {
        StatisticsBackend::put_paper(&self.0, agency, month, count).await
    }
    async fn overdue(
        &self,
        from_ms: u64,
        to_ms: u64,
        older_than_ms: u64,
    ) -> Result<HashMap<String, u64>, StoreError> {
        StatisticsBackend::overdue(&self.0, from_ms, to_ms, older_than_ms).await
    }
    async fn recount(&self, on_time_ms: u64) -> Result<poros_hub::stats::Sums, StoreError> {
        StatisticsBackend::recount(&self.0, on_time_ms).await
    }
    async fn counters(&self) -> Result<Vec<(String, u64)>, StoreError> {
        StatisticsBackend::counters(&self.0).await
    }
    async fn stats_snapshot(&self) -> Result<Box<dyn StatsView>, StoreError> {
        StatisticsBackend::stats_snapshot(&self.0).await
    }
}
impl HubBackend for PgBackend {
    fn kind(&self) -> &'static str {
        "postgres"
    }
    fn health(&self) -> Option<StorageFault> {
        self.0.health()
    }
    fn report_fault(&self, fault: StorageFault) {
        self.0.report_fault(fault)
    }
    fn commit_stats(&self) -> CommitStats {
        self.0.commit_stats()
    }
    fn health_metrics(&self) -> String {
        self.0.health_metrics()
    }
}
