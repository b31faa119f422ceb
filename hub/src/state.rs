//! The hub's durable state: registry, documents, per-recipient queues, receipts to relay.
//! This module is the seam between routing logic and storage (redb today, a shared engine later).
//!
//! Every method that changes state returns only after the change is durable (group commit).
//! Tables:
//! - `nodes`: agency → [`NodeRecord`]
//! - `docs`: doc ID → [`DocRecord`] (envelope, acceptance, body location)
//! - `inline_bodies`: body digest → bytes, for bodies up to [`INLINE_MAX`]; larger bodies are
//!   content-addressed files. `body_refs` counts the documents using each body.
//! - `deliveries`: (doc, recipient) → [`DeliveryRecord`]
//! - `queue`: (recipient, doc) → accepted time — pending deliveries, in document order
//! - `expiry`: (accepted time, doc, recipient) — pending deliveries in age order
//! - `relays`: (sender, doc, recipient) → [`RelayItem`] — answers not yet acknowledged by the sender
//! - `retention`: (all-answered time, doc) — bodies waiting for removal
//! - `answered`: doc → recipients that answered or expired so far
//! - `counters`: name → count, updated in the same commit as the event counted
//! - `held`, `damaged_bodies`, `repairs`: deliveries waiting for a damaged body to be
//!   repaired from its sender (see [`bodies`])
//! - `doc_states`, `statements`, `statement_relays`, … : the statement path (see
//!   [`statements`]); deliveries an update adds live in `deliveries`/`queue`/`expiry` like the
//!   others, with `added_recipients` saying which update added them

use poros_protocol::{
    AgencyId, Digest, DocumentId, SignedAcceptance, SignedEnvelope, SignedNotice, SignedReceipt,
};
use poros_store::{Db, StoreError};
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

mod bodies;
mod statements;
pub use bodies::{DamageRecord, HeldDelivery};
pub use statements::{
    HistoryEntry, StatementOutcome, StatementRefusal, StatementRelay, StoredStatement,
};

/// Bodies up to this size live inside the database (one fsync per group commit instead of
/// two per file); larger ones are files.
pub const INLINE_MAX: u64 = 64 * 1024;

const NODES: TableDefinition<&str, &[u8]> = TableDefinition::new("nodes");
const DOCS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("docs");
const INLINE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("inline_bodies");
const BODY_REFS: TableDefinition<&[u8], u64> = TableDefinition::new("body_refs");
const DELIVERIES: TableDefinition<(&[u8], &str), &[u8]> = TableDefinition::new("deliveries");
const QUEUE: TableDefinition<(&str, &[u8]), u64> = TableDefinition::new("queue");
const EXPIRY: TableDefinition<(u64, &[u8], &str), ()> = TableDefinition::new("expiry");
const RELAYS: TableDefinition<(&str, &[u8], &str), &[u8]> = TableDefinition::new("relays");
const RETENTION: TableDefinition<(u64, &[u8]), ()> = TableDefinition::new("retention");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");
const ANSWERED: TableDefinition<&[u8], u32> = TableDefinition::new("answered");
const TOKENS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("enrolment_tokens");
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
const REVOKED: TableDefinition<&str, &[u8]> = TableDefinition::new("revoked_serials");
/// Serials retired by renewal (CRL reason `superseded`): statements signed before the
/// retirement stay verifiable, unlike those of `revoked_serials`.
const SUPERSEDED: TableDefinition<&str, &[u8]> = TableDefinition::new("superseded_serials");
const MONITORS: TableDefinition<&str, &[u8]> = TableDefinition::new("monitor_credentials");

/// A read-only monitor credential (the token itself is never stored, only its SHA-256).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MonitorRecord {
    /// Name given by the admin.
    pub name: String,
    /// SHA-256 of the token.
    pub token_sha256: [u8; 32],
    /// Created, Unix ms.
    pub created_ms: u64,
    /// Revoked, Unix ms.
    pub revoked_ms: Option<u64>,
}

/// Lifecycle state of a registered node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Registered, waiting for enrolment by token.
    Pending,
    /// May connect and exchange.
    Active,
    /// Connections refused; documents to it are held.
    Suspended,
    /// Certificates revoked.
    Revoked,
}

/// A registered agency node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Agency code.
    pub agency: AgencyId,
    /// Human name.
    pub name: String,
    /// State.
    pub state: NodeState,
    /// Serial (hex) of the node's TLS certificate.
    pub tls_serial: String,
    /// Serial (hex) of the node's signing certificate.
    pub sign_serial: String,
    /// Expiry of the TLS certificate, Unix seconds.
    pub tls_not_after: i64,
    /// When registered, Unix ms.
    pub registered_ms: u64,
    /// Issue time of the TLS certificate, Unix seconds (for renewal warnings).
    pub tls_not_before: i64,
    /// Last connection or disconnection seen, Unix ms.
    pub last_seen_ms: Option<u64>,
    /// Certificates replaced by the latest renewal and not yet retired (admitted only during the
    /// renewal overlap).
    pub superseded: Option<Superseded>,
    /// Identity conflicts seen: two live connections presenting this agency's certificate.
    pub conflicts: u64,
    /// The latest identity conflict.
    pub last_conflict: Option<Conflict>,
}

/// Certificates a renewal replaced, admitted for a short overlap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Superseded {
    /// Serial (hex) of the replaced TLS certificate.
    pub tls_serial: String,
    /// Serial (hex) of the replaced signing certificate.
    pub sign_serial: String,
    /// When the renewal was issued (the supersession time, by the hub's clock), Unix ms.
    pub at_ms: u64,
}

/// Two live connections claimed one agency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// When, Unix ms.
    pub at_ms: u64,
    /// Address of the connection already serving the agency.
    pub kept: String,
    /// Address of the connection refused.
    pub refused: String,
}

/// Whether a presented certificate serial is admitted for a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SerialCheck {
    /// The certificate the hub currently holds for the agency.
    Current,
    /// The certificate replaced by the latest renewal, still inside its overlap.
    Superseded,
    /// Any other certificate: an earlier one, or one the hub never issued.
    Unknown,
}

impl NodeRecord {
    /// Check a TLS certificate serial against the registry (pure: the time is an argument).
    pub fn check_tls_serial(&self, serial: &str, now_ms: u64, overlap_ms: u64) -> SerialCheck {
        self.check_serial(
            serial,
            now_ms,
            overlap_ms,
            |s| &s.tls_serial,
            &self.tls_serial,
        )
    }

    /// Check a signing certificate serial against the registry (pure: the time is an argument).
    pub fn check_sign_serial(&self, serial: &str, now_ms: u64, overlap_ms: u64) -> SerialCheck {
        self.check_serial(
            serial,
            now_ms,
            overlap_ms,
            |s| &s.sign_serial,
            &self.sign_serial,
        )
    }

    fn check_serial(
        &self,
        serial: &str,
        now_ms: u64,
        overlap_ms: u64,
        old: impl Fn(&Superseded) -> &String,
        current: &str,
    ) -> SerialCheck {
        if !current.is_empty() && serial.eq_ignore_ascii_case(current) {
            return SerialCheck::Current;
        }
        match &self.superseded {
            Some(s)
                if old(s).eq_ignore_ascii_case(serial)
                    && now_ms < s.at_ms.saturating_add(overlap_ms) =>
            {
                SerialCheck::Superseded
            }
            _ => SerialCheck::Unknown,
        }
    }

    /// A newly registered node, waiting for its certificates.
    pub fn pending(agency: &AgencyId, name: &str, now_ms: u64) -> Self {
        NodeRecord {
            agency: agency.clone(),
            name: name.to_string(),
            state: NodeState::Pending,
            tls_serial: String::new(),
            sign_serial: String::new(),
            tls_not_after: 0,
            tls_not_before: 0,
            registered_ms: now_ms,
            last_seen_ms: None,
            superseded: None,
            conflicts: 0,
            last_conflict: None,
        }
    }
}

/// `NodeRecord` as stored before certificate rotation and conflicts were recorded; read so that
/// stores written by earlier versions keep working.
#[derive(Deserialize)]
struct NodeRecordV1 {
    agency: AgencyId,
    name: String,
    state: NodeState,
    tls_serial: String,
    sign_serial: String,
    tls_not_after: i64,
    registered_ms: u64,
    tls_not_before: i64,
    last_seen_ms: Option<u64>,
}

fn dec_node(b: &[u8]) -> Result<NodeRecord, StoreError> {
    if let Ok(n) = postcard::from_bytes::<NodeRecord>(b) {
        return Ok(n);
    }
    let v: NodeRecordV1 = dec(b)?;
    Ok(NodeRecord {
        agency: v.agency,
        name: v.name,
        state: v.state,
        tls_serial: v.tls_serial,
        sign_serial: v.sign_serial,
        tls_not_after: v.tls_not_after,
        registered_ms: v.registered_ms,
        tls_not_before: v.tls_not_before,
        last_seen_ms: v.last_seen_ms,
        superseded: None,
        conflicts: 0,
        last_conflict: None,
    })
}

/// One administrative action, as recorded (who, what, when).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When, Unix ms.
    pub time_ms: u64,
    /// Who: `admin@<address>` for the admin API, `enrolment@<address>` for token use,
    /// `node:<agency>` for actions a node takes itself (renewal).
    pub actor: String,
    /// What, e.g. `node add`, `suspend`, `enrol refused`.
    pub action: String,
    /// Agency concerned.
    pub agency: Option<AgencyId>,
    /// Details (e.g. the refusal reason, serials issued).
    pub detail: String,
}

/// A stored enrolment token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The token as issued.
    pub token: poros_protocol::EnrollToken,
    /// When it was used, if it was.
    pub used_ms: Option<u64>,
}

/// A revoked certificate serial.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RevokedSerial {
    /// Agency it belonged to.
    pub agency: AgencyId,
    /// `tls` (network CA) or `sign` (signing CA).
    pub kind: String,
    /// Revocation time, Unix ms.
    pub revoked_ms: u64,
}

/// Where a body lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BodyAt {
    /// In `inline_bodies`.
    Inline,
    /// A content-addressed file.
    File,
    /// Removed after retention.
    Removed,
}

/// A document the hub accepted.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DocRecord {
    /// As signed by the sender.
    pub envelope: SignedEnvelope,
    /// As signed by the hub.
    pub acceptance: SignedAcceptance,
    /// Sender.
    pub sender: AgencyId,
    /// Recipients.
    pub recipients: Vec<AgencyId>,
    /// Body digest.
    pub body_sha256: Digest,
    /// Body length.
    pub body_len: u64,
    /// Body location.
    pub body_at: BodyAt,
    /// Accepted at, Unix ms.
    pub accepted_ms: u64,
}

/// State of one delivery.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum DeliveryState {
    /// Not yet answered.
    Pending,
    /// Recipient's signed receipt.
    Delivered(SignedReceipt),
    /// Recipient's signed rejection.
    Rejected(SignedReceipt, String),
    /// Hub's signed expiry notice.
    Expired(SignedNotice),
    /// Hub's signed notice that the body was lost and could not be repaired (counted like an
    /// expiry in the statistics: the delivery failed without the recipient's fault).
    Lost(SignedNotice),
}

/// One (document, recipient) delivery.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// State.
    pub state: DeliveryState,
    /// When answered, Unix ms.
    pub answered_ms: Option<u64>,
}

/// Something to relay to a sender.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum RelayItem {
    /// A recipient's receipt or rejection.
    Receipt(SignedReceipt),
    /// A hub notice.
    Notice(SignedNotice),
}

/// Result of trying to store a submission.
#[derive(Debug)]
pub enum AcceptOutcome {
    /// Newly stored.
    Stored(SignedAcceptance),
    /// Same document seen before: the original acceptance.
    Duplicate(SignedAcceptance),
    /// Same ID, different document.
    Conflict,
}

/// A body supplied with a submission.
pub enum NewBody {
    /// Small body, stored in the database.
    Inline(Vec<u8>),
    /// Large body already committed as a file under its digest.
    File,
}

fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_allocvec(v).map_err(|e| StoreError::Other(format!("encode: {e}")))
}

fn dec<T: for<'a> Deserialize<'a>>(b: &[u8]) -> Result<T, StoreError> {
    postcard::from_bytes(b).map_err(|e| StoreError::Corrupt(format!("decode: {e}")))
}

/// Add to counters; one table open for all of them (opens are a large part of a small job).
fn bump(txn: &redb::WriteTransaction, counts: &[(&str, u64)]) -> Result<(), StoreError> {
    let mut t = txn.open_table(COUNTERS)?;
    for (name, by) in counts {
        let v = t.get(*name)?.map(|g| g.value()).unwrap_or(0);
        t.insert(*name, v + by)?;
    }
    Ok(())
}

/// Handle on the hub's durable state.
#[derive(Clone)]
pub struct HubStore {
    db: Db,
    stats: std::sync::Arc<crate::stats::StatsHook>,
    /// Deliveries answered within this many ms of acceptance count as on time.
    on_time_ms: u64,
    /// Working-day calendar and registration window of the business figures.
    business: std::sync::Arc<(crate::business::Calendar, u32)>,
}

/// A pending delivery ready to push.
#[derive(Clone, Debug)]
pub struct Pending {
    /// Document.
    pub doc: DocumentId,
    /// Accepted at.
    pub accepted_ms: u64,
}

impl HubStore {
    /// Open (creating tables).
    pub fn open(db: Db) -> Result<Self, StoreError> {
        db.write_blocking(|txn| {
            txn.open_table(NODES)?;
            txn.open_table(DOCS)?;
            txn.open_table(INLINE)?;
            txn.open_table(BODY_REFS)?;
            txn.open_table(DELIVERIES)?;
            txn.open_table(QUEUE)?;
            txn.open_table(EXPIRY)?;
            txn.open_table(RELAYS)?;
            txn.open_table(RETENTION)?;
            txn.open_table(COUNTERS)?;
            txn.open_table(ANSWERED)?;
            txn.open_table(TOKENS)?;
            txn.open_table(AUDIT)?;
            txn.open_table(REVOKED)?;
            txn.open_table(SUPERSEDED)?;
            txn.open_table(MONITORS)?;
            bodies::create_tables(txn)?;
            statements::create_tables(txn)?;
            txn.open_table(crate::stats::STATS)?;
            txn.open_table(crate::stats::SEEN)?;
            txn.open_table(crate::stats::PAPER)?;
            Ok(())
        })?;
        let stats = std::sync::Arc::new(crate::stats::StatsHook::default());
        db.set_batch_hook(stats.clone());
        Ok(HubStore {
            db,
            stats,
            on_time_ms: 3_600_000,
            business: std::sync::Arc::new((crate::business::Calendar::default(), 1)),
        })
    }

    /// Set the working-day calendar and the registration window (working days) of the
    /// business figures.
    pub fn with_business(mut self, cal: crate::business::Calendar, working_days: u32) -> Self {
        self.business = std::sync::Arc::new((cal, working_days));
        self
    }

    /// Set the on-time target used when counting answers.
    pub fn with_on_time_ms(mut self, ms: u64) -> Self {
        self.on_time_ms = ms;
        self
    }

    /// The underlying database (for statistics).
    pub fn db(&self) -> &Db {
        &self.db
    }

    // ---- registry ----

    /// Insert or replace a node record and record the action, in one commit.
    pub async fn put_node_audited(
        &self,
        rec: NodeRecord,
        audit: AuditRecord,
    ) -> Result<(), StoreError> {
        self.db
            .write(move |txn| {
                txn.open_table(NODES)?
                    .insert(rec.agency.as_str(), enc(&rec)?.as_slice())?;
                audit_in(txn, &audit)
            })
            .await
    }

    /// Record an action on its own.
    pub async fn audit(&self, audit: AuditRecord) -> Result<(), StoreError> {
        self.db.write(move |txn| audit_in(txn, &audit)).await
    }

    /// Audit records, oldest first, optionally only those about `agency`.
    pub fn audit_log(&self, agency: Option<&AgencyId>) -> Result<Vec<AuditRecord>, StoreError> {
        // Only the matching records are kept: the whole log can be far larger.
        let r = self.db.read()?;
        let t = r.open_table(AUDIT)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (_, v) = e?;
            let a: AuditRecord = dec(v.value())?;
            if agency.is_none() || a.agency.as_ref() == agency {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// Audit records after sequence number `after`, oldest first, at most `limit`; with the
    /// sequence number to continue after when there are more.
    pub fn audit_page(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<AuditRecord>, Option<u64>), StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(AUDIT)?;
        let mut out = Vec::new();
        let mut last = after;
        for e in t.range(after.saturating_add(1)..)? {
            let (k, v) = e?;
            if out.len() == limit {
                return Ok((out, Some(last)));
            }
            out.push(dec(v.value())?);
            last = k.value();
        }
        Ok((out, None))
    }

    /// Store a new enrolment token (keyed by the SHA-256 of its secret) with its node record.
    pub async fn put_token(
        &self,
        rec: NodeRecord,
        token: poros_protocol::EnrollToken,
        audit: AuditRecord,
    ) -> Result<(), StoreError> {
        self.db
            .write(move |txn| {
                let key = poros_protocol::sha256(token.secret.as_bytes());
                let tr = TokenRecord {
                    token: token.clone(),
                    used_ms: None,
                };
                txn.open_table(TOKENS)?
                    .insert(key.as_slice(), enc(&tr)?.as_slice())?;
                txn.open_table(NODES)?
                    .insert(rec.agency.as_str(), enc(&rec)?.as_slice())?;
                audit_in(txn, &audit)
            })
            .await
    }

    /// Look up a token by its secret.
    pub fn token(&self, secret: &str) -> Result<Option<TokenRecord>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(TOKENS)?;
        let key = poros_protocol::sha256(secret.as_bytes());
        let v = t.get(key.as_slice())?;
        v.map(|g| dec(g.value())).transpose()
    }

    /// Mark a token used and activate the node, atomically; fails (returns false) if the
    /// token was used meanwhile.
    pub async fn redeem_token(
        &self,
        secret: String,
        rec: NodeRecord,
        now_ms: u64,
        audit: AuditRecord,
    ) -> Result<bool, StoreError> {
        self.db
            .write(move |txn| {
                let key = poros_protocol::sha256(secret.as_bytes());
                let mut t = txn.open_table(TOKENS)?;
                let cur = t.get(key.as_slice())?.map(|g| g.value().to_vec());
                let Some(cur) = cur else { return Ok(false) };
                let mut tr: TokenRecord = dec(&cur)?;
                if tr.used_ms.is_some() {
                    return Ok(false);
                }
                tr.used_ms = Some(now_ms);
                t.insert(key.as_slice(), enc(&tr)?.as_slice())?;
                txn.open_table(NODES)?
                    .insert(rec.agency.as_str(), enc(&rec)?.as_slice())?;
                audit_in(txn, &audit)?;
                Ok(true)
            })
            .await
    }

    /// Revoke a node: state, its certificate serials, and the action, in one commit.
    pub async fn revoke(
        &self,
        rec: NodeRecord,
        now_ms: u64,
        audit: AuditRecord,
    ) -> Result<(), StoreError> {
        self.db
            .write(move |txn| {
                txn.open_table(NODES)?
                    .insert(rec.agency.as_str(), enc(&rec)?.as_slice())?;
                let mut rv = txn.open_table(REVOKED)?;
                // Certificates superseded by a renewal and not yet retired are revoked too.
                let old = rec.superseded.iter();
                let serials = [(&rec.tls_serial, "tls"), (&rec.sign_serial, "sign")]
                    .into_iter()
                    .chain(old.flat_map(|o| [(&o.tls_serial, "tls"), (&o.sign_serial, "sign")]));
                for (serial, kind) in serials {
                    if serial.is_empty() {
                        continue;
                    }
                    let r = RevokedSerial {
                        agency: rec.agency.clone(),
                        kind: kind.into(),
                        revoked_ms: now_ms,
                    };
                    rv.insert(serial.as_str(), enc(&r)?.as_slice())?;
                }
                drop(rv);
                audit_in(txn, &audit)
            })
            .await
    }

    /// Every revoked serial (hex) with its record.
    pub fn revoked(&self) -> Result<Vec<(String, RevokedSerial)>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(REVOKED)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (k, v) = e?;
            out.push((k.value().to_string(), dec(v.value())?));
        }
        Ok(out)
    }

    /// Pending deliveries held for `recipient`.
    pub fn pending_count(&self, recipient: &AgencyId) -> Result<u64, StoreError> {
        let r = self.db.read()?;
        let q = r.open_table(QUEUE)?;
        let lo: &[u8] = &[];
        let hi: &[u8] = &[0xff; 17];
        let mut n = 0;
        for e in q.range((recipient.as_str(), lo)..(recipient.as_str(), hi))? {
            e?;
            n += 1;
        }
        Ok(n)
    }

    /// Insert or replace a node record.
    pub async fn put_node(&self, rec: NodeRecord) -> Result<(), StoreError> {
        self.db
            .write(move |txn| {
                let mut t = txn.open_table(NODES)?;
                t.insert(rec.agency.as_str(), enc(&rec)?.as_slice())?;
                Ok(())
            })
            .await
    }

    /// All nodes.
    pub fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(NODES)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (_, v) = e?;
            out.push(dec_node(v.value())?);
        }
        Ok(out)
    }

    /// Retire a node's superseded certificates: clear them from its record and list their
    /// serials as superseded (CRL reason `superseded`, dated `now_ms`), with an audit record,
    /// in one commit. Returns the updated record, or `None` if there was nothing to retire.
    pub async fn retire_superseded(
        &self,
        agency: AgencyId,
        now_ms: u64,
        audit: AuditRecord,
    ) -> Result<Option<NodeRecord>, StoreError> {
        self.db
            .write(move |txn| {
                let mut nodes = txn.open_table(NODES)?;
                let Some(mut rec) = nodes
                    .get(agency.as_str())?
                    .map(|g| dec_node(g.value()))
                    .transpose()?
                else {
                    return Ok(None);
                };
                let Some(old) = rec.superseded.take() else {
                    return Ok(None);
                };
                nodes.insert(agency.as_str(), enc(&rec)?.as_slice())?;
                drop(nodes);
                let mut t = txn.open_table(SUPERSEDED)?;
                for (serial, kind) in [(&old.tls_serial, "tls"), (&old.sign_serial, "sign")] {
                    if serial.is_empty() {
                        continue;
                    }
                    let r = RevokedSerial {
                        agency: agency.clone(),
                        kind: kind.into(),
                        revoked_ms: now_ms,
                    };
                    t.insert(serial.as_str(), enc(&r)?.as_slice())?;
                }
                drop(t);
                audit_in(txn, &audit)?;
                Ok(Some(rec))
            })
            .await
    }

    /// Every serial retired by renewal (hex) with its record.
    pub fn superseded(&self) -> Result<Vec<(String, RevokedSerial)>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(SUPERSEDED)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (k, v) = e?;
            out.push((k.value().to_string(), dec(v.value())?));
        }
        Ok(out)
    }

    /// Every record of a table whose values are encoded records, in key order.
    fn all<K: redb::Key + 'static, T: for<'a> Deserialize<'a>>(
        &self,
        def: TableDefinition<K, &[u8]>,
    ) -> Result<Vec<T>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(def)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (_, v) = e?;
            out.push(dec(v.value())?);
        }
        Ok(out)
    }

    // ---- documents ----

    /// A stored document.
    pub fn doc(&self, id: &DocumentId) -> Result<Option<DocRecord>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(DOCS)?;
        let x = t.get(id.as_bytes().as_slice())?;
        x.map(|g| dec(g.value())).transpose()
    }

    /// Store an accepted document with one pending delivery per recipient, atomically.
    pub async fn accept(&self, rec: DocRecord, body: NewBody) -> Result<AcceptOutcome, StoreError> {
        let inline = match body {
            NewBody::Inline(b) => Some(b),
            NewBody::File => None,
        };
        let stats = self.stats.clone();
        self.db
            .write(move |txn| {
                let id = rec
                    .envelope
                    .envelope()
                    .map_err(|e| StoreError::Other(e.to_string()))?
                    .id;
                let key = id.as_bytes().as_slice();
                let existing = {
                    let docs = txn.open_table(DOCS)?;
                    let v = docs.get(key)?.map(|g| g.value().to_vec());
                    v
                };
                if let Some(bytes) = existing {
                    let old: DocRecord = dec(&bytes)?;
                    return Ok(if old.envelope.0.payload == rec.envelope.0.payload {
                        AcceptOutcome::Duplicate(old.acceptance)
                    } else {
                        AcceptOutcome::Conflict
                    });
                }
                let mut rec = rec.clone();
                rec.body_at = if inline.is_some() {
                    BodyAt::Inline
                } else {
                    BodyAt::File
                };
                if let Some(b) = &inline {
                    txn.open_table(INLINE)?
                        .insert(rec.body_sha256.as_slice(), b.as_slice())?;
                }
                {
                    let mut refs = txn.open_table(BODY_REFS)?;
                    let n = refs
                        .get(rec.body_sha256.as_slice())?
                        .map(|g| g.value())
                        .unwrap_or(0);
                    refs.insert(rec.body_sha256.as_slice(), n + 1)?;
                }
                txn.open_table(DOCS)?.insert(key, enc(&rec)?.as_slice())?;
                let pending = enc(&DeliveryRecord {
                    state: DeliveryState::Pending,
                    answered_ms: None,
                })?;
                let mut del = txn.open_table(DELIVERIES)?;
                let mut q = txn.open_table(QUEUE)?;
                let mut ex = txn.open_table(EXPIRY)?;
                for r in &rec.recipients {
                    del.insert((key, r.as_str()), pending.as_slice())?;
                    q.insert((r.as_str(), key), rec.accepted_ms)?;
                    ex.insert((rec.accepted_ms, key, r.as_str()), ())?;
                }
                drop((del, q, ex));
                statements::on_accept(txn, key, &rec)?;
                crate::stats::on_accept(&stats, &rec.sender, &rec.recipients, rec.accepted_ms);
                bump(
                    txn,
                    &[
                        ("documents_accepted", 1),
                        ("deliveries_queued", rec.recipients.len() as u64),
                        ("body_bytes_accepted", rec.body_len),
                    ],
                )?;
                Ok(AcceptOutcome::Stored(rec.acceptance.clone()))
            })
            .await
    }

    /// Up to `limit` pending deliveries for `recipient`, oldest first, skipping `skip`.
    pub fn pending_for(
        &self,
        recipient: &AgencyId,
        limit: usize,
        skip: &std::collections::HashSet<DocumentId>,
    ) -> Result<Vec<Pending>, StoreError> {
        let r = self.db.read()?;
        let q = r.open_table(QUEUE)?;
        let lo: &[u8] = &[];
        let hi: &[u8] = &[0xff; 17];
        let mut out = Vec::new();
        for e in q.range((recipient.as_str(), lo)..(recipient.as_str(), hi))? {
            let (k, v) = e?;
            let (_, doc) = k.value();
            let doc = DocumentId::from_bytes(
                doc.try_into()
                    .map_err(|_| StoreError::Corrupt("queue key".into()))?,
            );
            if skip.contains(&doc) {
                continue;
            }
            out.push(Pending {
                doc,
                accepted_ms: v.value(),
            });
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Documents referencing a body.
    pub fn body_refs(&self, digest: &Digest) -> Result<u64, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(BODY_REFS)?;
        let v = t.get(digest.as_slice())?;
        Ok(v.map(|g| g.value()).unwrap_or(0))
    }

    /// An inline body.
    pub fn inline_body(&self, digest: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(INLINE)?;
        let x = t.get(digest.as_slice())?;
        Ok(x.map(|g| g.value().to_vec()))
    }

    /// Record a recipient's answer (idempotent: a second answer is ignored) and queue it for
    /// relay to the sender. Returns the sender if a relay was queued.
    pub async fn record_answer(
        &self,
        doc: DocumentId,
        recipient: AgencyId,
        state: DeliveryState,
        now_ms: u64,
    ) -> Result<Option<AgencyId>, StoreError> {
        let on_time = self.on_time_ms;
        let stats = self.stats.clone();
        self.db
            .write(move |txn| {
                answer_in(txn, &stats, doc, &recipient, state.clone(), now_ms, on_time)
            })
            .await
    }

    /// Relays waiting for `sender`, up to `limit`, skipping keys in flight.
    pub fn relays_for(
        &self,
        sender: &AgencyId,
        limit: usize,
        skip: &std::collections::HashSet<(DocumentId, AgencyId)>,
    ) -> Result<Vec<(DocumentId, AgencyId, RelayItem)>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(RELAYS)?;
        let lo: &[u8] = &[];
        let hi: &[u8] = &[0xff; 17];
        let mut out = Vec::new();
        for e in t.range((sender.as_str(), lo, "")..(sender.as_str(), hi, ""))? {
            let (k, v) = e?;
            let (_, doc, rcpt) = k.value();
            let doc = DocumentId::from_bytes(
                doc.try_into()
                    .map_err(|_| StoreError::Corrupt("relay key".into()))?,
            );
            let rcpt = AgencyId::parse(rcpt).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if skip.contains(&(doc, rcpt.clone())) {
                continue;
            }
            out.push((doc, rcpt, dec(v.value())?));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// The sender acknowledged (stored) a relayed answer.
    pub async fn relay_done(
        &self,
        sender: AgencyId,
        doc: DocumentId,
        recipient: AgencyId,
    ) -> Result<(), StoreError> {
        self.db
            .write(move |txn| {
                let mut t = txn.open_table(RELAYS)?;
                t.remove((
                    sender.as_str(),
                    doc.as_bytes().as_slice(),
                    recipient.as_str(),
                ))?;
                Ok(())
            })
            .await
    }

    /// All delivery records of a document.
    pub fn deliveries(
        &self,
        doc: &DocumentId,
    ) -> Result<Vec<(AgencyId, DeliveryRecord)>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(DELIVERIES)?;
        let key = doc.as_bytes().as_slice();
        let mut out = Vec::new();
        for e in t.range((key, "")..=(key, "~"))? {
            let (k, v) = e?;
            let (_, rcpt) = k.value();
            let a = AgencyId::parse(rcpt).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            out.push((a, dec(v.value())?));
        }
        Ok(out)
    }

    /// Pending deliveries accepted before `cutoff_ms` (oldest first), at most `limit`.
    pub fn expired_before(
        &self,
        cutoff_ms: u64,
        limit: usize,
    ) -> Result<Vec<(DocumentId, AgencyId)>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(EXPIRY)?;
        let lo: &[u8] = &[];
        let mut out = Vec::new();
        for e in t.range((0u64, lo, "")..(cutoff_ms, lo, ""))? {
            let (k, _) = e?;
            let (_, doc, rcpt) = k.value();
            let doc = DocumentId::from_bytes(
                doc.try_into()
                    .map_err(|_| StoreError::Corrupt("expiry key".into()))?,
            );
            out.push((
                doc,
                AgencyId::parse(rcpt).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            ));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Documents fully answered before `cutoff_ms` whose bodies may go. Removes them from the
    /// retention index, marks the body removed and returns digests of file bodies whose last
    /// reference went (the caller deletes those files after this commit is durable).
    pub async fn release_bodies(
        &self,
        cutoff_ms: u64,
        limit: usize,
    ) -> Result<Vec<Digest>, StoreError> {
        self.db
            .write(move |txn| {
                let mut due = Vec::new();
                {
                    let t = txn.open_table(RETENTION)?;
                    let lo: &[u8] = &[];
                    for e in t.range((0u64, lo)..(cutoff_ms, lo))? {
                        let (k, _) = e?;
                        let (ts, doc) = k.value();
                        due.push((ts, doc.to_vec()));
                        if due.len() >= limit {
                            break;
                        }
                    }
                }
                let mut files = Vec::new();
                let mut ret = txn.open_table(RETENTION)?;
                let mut docs = txn.open_table(DOCS)?;
                let mut refs = txn.open_table(BODY_REFS)?;
                let mut inl = txn.open_table(INLINE)?;
                for (ts, doc) in due {
                    ret.remove((ts, doc.as_slice()))?;
                    let Some(mut rec) = docs
                        .get(doc.as_slice())?
                        .map(|g| dec::<DocRecord>(g.value()))
                        .transpose()?
                    else {
                        continue;
                    };
                    let n = refs
                        .get(rec.body_sha256.as_slice())?
                        .map(|g| g.value())
                        .unwrap_or(1);
                    if n <= 1 {
                        refs.remove(rec.body_sha256.as_slice())?;
                        match rec.body_at {
                            BodyAt::Inline => {
                                inl.remove(rec.body_sha256.as_slice())?;
                            }
                            BodyAt::File => files.push(rec.body_sha256),
                            BodyAt::Removed => {}
                        }
                    } else {
                        refs.insert(rec.body_sha256.as_slice(), n - 1)?;
                    }
                    rec.body_at = BodyAt::Removed;
                    docs.insert(doc.as_slice(), enc(&rec)?.as_slice())?;
                }
                Ok(files)
            })
            .await
    }

    /// Store a monitor credential (replacing one of the same name) and record the action.
    pub async fn put_monitor(
        &self,
        rec: MonitorRecord,
        audit: AuditRecord,
    ) -> Result<(), StoreError> {
        self.db
            .write(move |txn| {
                txn.open_table(MONITORS)?
                    .insert(rec.name.as_str(), enc(&rec)?.as_slice())?;
                audit_in(txn, &audit)
            })
            .await
    }

    /// All monitor credentials.
    pub fn monitors(&self) -> Result<Vec<MonitorRecord>, StoreError> {
        self.all(MONITORS)
    }

    /// Mark agencies as seen (connected) now.
    pub async fn mark_seen(&self, agencies: Vec<AgencyId>, now_ms: u64) -> Result<(), StoreError> {
        self.db
            .write(move |txn| {
                for a in &agencies {
                    crate::stats::on_seen(txn, a, now_ms)?;
                }
                Ok(())
            })
            .await
    }

    /// Store an agency's paper-only counts for a month.
    pub async fn put_paper(
        &self,
        agency: AgencyId,
        month: String,
        count: crate::stats::PaperCount,
    ) -> Result<(), StoreError> {
        self.db
            .write(move |txn| crate::stats::on_paper(txn, &agency, &month, &count))
            .await
    }

    /// Pending deliveries accepted in `[from_ms, to_ms)` and older than `older_than_ms`,
    /// counted per recipient (the pending set, not the history, is scanned).
    pub fn overdue(
        &self,
        from_ms: u64,
        to_ms: u64,
        older_than_ms: u64,
    ) -> Result<HashMap<String, u64>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(EXPIRY)?;
        let lo: &[u8] = &[];
        let mut out: HashMap<String, u64> = HashMap::new();
        let end = to_ms.min(older_than_ms);
        if end <= from_ms {
            return Ok(out);
        }
        for e in t.range((from_ms, lo, "")..(end, lo, ""))? {
            let (k, _) = e?;
            *out.entry(k.value().2.to_string()).or_default() += 1;
        }
        Ok(out)
    }

    /// Recount the statistics of `periods` from the stored delivery records (slow: scans the
    /// whole history; used to check the live counters).
    pub fn recount(&self, on_time_ms: u64) -> Result<crate::stats::Sums, StoreError> {
        let r = self.db.read()?;
        let docs = r.open_table(DOCS)?;
        let dels = r.open_table(DELIVERIES)?;
        let mut out: crate::stats::Sums = HashMap::new();
        let mut add = |scope: &str, metric: &str, by: u64| {
            *out.entry(scope.to_string())
                .or_default()
                .entry(metric.to_string())
                .or_default() += by;
        };
        for e in docs.iter()? {
            let (k, v) = e?;
            let rec: DocRecord = dec(v.value())?;
            let sender_group = format!("group:{}", rec.sender.group());
            add(rec.sender.as_str(), "sent", 1);
            add(&sender_group, "sent", 1);
            add(crate::stats::NATIONAL, "sent", 1);
            // Deliveries an update added count from the update's time, like the live hooks.
            let added = statements::added_for_recount(&r, k.value())?;
            add(
                rec.sender.as_str(),
                "out_due",
                (rec.recipients.len() + added.len()) as u64,
            );
            let all = rec
                .recipients
                .iter()
                .map(|a| (a.clone(), rec.accepted_ms))
                .chain(added);
            for (rcpt, due_ms) in all {
                let rcpt = &rcpt;
                let rcpt_group = format!("group:{}", rcpt.group());
                add(rcpt.as_str(), "in_due", 1);
                add(&rcpt_group, "in_due", 1);
                add(crate::stats::NATIONAL, "in_due", 1);
                let Some(g) = dels.get((k.value(), rcpt.as_str()))? else {
                    continue;
                };
                let d: DeliveryRecord = dec(g.value())?;
                let m = match d.state {
                    DeliveryState::Pending => continue,
                    DeliveryState::Delivered(_)
                        if d.answered_ms.unwrap_or(0).saturating_sub(due_ms) <= on_time_ms =>
                    {
                        "ontime"
                    }
                    DeliveryState::Delivered(_) => "late",
                    DeliveryState::Rejected(ref r, _) => {
                        let by = format!("rej:{}", crate::stats::rejection_code(r));
                        for scope in crate::stats::scopes(rcpt) {
                            add(&scope, &by, 1);
                        }
                        "rejected"
                    }
                    DeliveryState::Expired(_) | DeliveryState::Lost(_) => "expired",
                };
                add(rcpt.as_str(), &format!("in_{m}"), 1);
                add(&rcpt_group, &format!("in_{m}"), 1);
                add(crate::stats::NATIONAL, &format!("in_{m}"), 1);
                add(rec.sender.as_str(), &format!("out_{m}"), 1);
            }
        }
        Ok(out)
    }

    /// Counter values.
    pub fn counters(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(COUNTERS)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (k, v) = e?;
            out.push((k.value().to_string(), v.value()));
        }
        Ok(out)
    }

    /// Number of pending deliveries (queue depth).
    pub fn queue_depth(&self) -> Result<u64, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(QUEUE)?;
        Ok(t.len()?)
    }
}

fn audit_in(txn: &redb::WriteTransaction, a: &AuditRecord) -> Result<(), StoreError> {
    let mut t = txn.open_table(AUDIT)?;
    let seq = t.last()?.map(|(k, _)| k.value() + 1).unwrap_or(1);
    t.insert(seq, enc(a)?.as_slice())?;
    Ok(())
}

/// Whether an answer was a delivery receipt (the rules' state changes only then).
enum StateKind {
    Delivered,
    Other,
}

fn answer_in(
    txn: &redb::WriteTransaction,
    stats: &crate::stats::StatsHook,
    doc: DocumentId,
    recipient: &AgencyId,
    state: DeliveryState,
    now_ms: u64,
    on_time_ms: u64,
) -> Result<Option<AgencyId>, StoreError> {
    let key = doc.as_bytes().as_slice();
    let mut del = txn.open_table(DELIVERIES)?;
    let cur: DeliveryRecord = match del.get((key, recipient.as_str()))? {
        Some(g) => dec(g.value())?,
        None => return Ok(None),
    };
    if !matches!(cur.state, DeliveryState::Pending) {
        return Ok(None);
    }
    let docs = txn.open_table(DOCS)?;
    let rec: DocRecord = match docs.get(key)? {
        Some(g) => dec(g.value())?,
        None => {
            return Err(StoreError::Corrupt(format!(
                "delivery without document {doc}"
            )))
        }
    };
    // A delivery an update added fell due when the update was accepted, not the document.
    let due_ms = statements::added_at(txn, key, recipient)?.unwrap_or(rec.accepted_ms);
    let (end, reason) = match &state {
        DeliveryState::Delivered(_) if now_ms.saturating_sub(due_ms) <= on_time_ms => {
            (crate::stats::End::OnTime, None)
        }
        DeliveryState::Delivered(_) => (crate::stats::End::Late, None),
        DeliveryState::Rejected(r, _) => (
            crate::stats::End::Rejected,
            Some(crate::stats::rejection_code(r)),
        ),
        DeliveryState::Expired(_) | DeliveryState::Lost(_) => (crate::stats::End::Expired, None),
        DeliveryState::Pending => return Ok(None),
    };
    let (relay, counter) = match &state {
        DeliveryState::Delivered(r) => (RelayItem::Receipt(r.clone()), "deliveries_delivered"),
        DeliveryState::Rejected(r, _) => (RelayItem::Receipt(r.clone()), "deliveries_rejected"),
        DeliveryState::Expired(n) => (RelayItem::Notice(n.clone()), "deliveries_expired"),
        DeliveryState::Lost(n) => (RelayItem::Notice(n.clone()), "deliveries_lost"),
        DeliveryState::Pending => return Ok(None),
    };
    // A delivery held for a body repair leaves the holding table when it ends some other way.
    let was_held = matches!(state, DeliveryState::Expired(_) | DeliveryState::Lost(_));
    let state_kind = if matches!(state, DeliveryState::Delivered(_)) {
        StateKind::Delivered
    } else {
        StateKind::Other
    };
    del.insert(
        (key, recipient.as_str()),
        enc(&DeliveryRecord {
            state,
            answered_ms: Some(now_ms),
        })?
        .as_slice(),
    )?;
    txn.open_table(QUEUE)?.remove((recipient.as_str(), key))?;
    if was_held {
        bodies::unhold(txn, recipient, key)?;
    }
    txn.open_table(EXPIRY)?
        .remove((due_ms, key, recipient.as_str()))?;
    if matches!(state_kind, StateKind::Delivered) {
        statements::on_delivered(txn, key, recipient)?;
    }
    txn.open_table(RELAYS)?.insert(
        (rec.sender.as_str(), key, recipient.as_str()),
        enc(&relay)?.as_slice(),
    )?;
    // The count lives apart from the document record so an answer never rewrites the record.
    let answered = {
        let mut t = txn.open_table(ANSWERED)?;
        let n = t.get(key)?.map(|g| g.value()).unwrap_or(0) + 1;
        t.insert(key, n)?;
        n
    };
    if answered as usize >= statements::delivery_count(txn, key, &rec)? {
        txn.open_table(RETENTION)?.insert((now_ms, key), ())?;
    }
    drop(del);
    drop(docs);
    bump(txn, &[(counter, 1)])?;
    crate::stats::on_end(stats, &rec.sender, recipient, due_ms, now_ms, end, reason);
    Ok(Some(rec.sender))
}

/// Mark a pending delivery expired (hub-signed notice), queueing the notice for the sender.
pub async fn expire(
    store: &HubStore,
    doc: DocumentId,
    recipient: AgencyId,
    notice: SignedNotice,
    now_ms: u64,
) -> Result<Option<AgencyId>, StoreError> {
    store
        .record_answer(doc, recipient, DeliveryState::Expired(notice), now_ms)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use poros_protocol::{
        Acceptance, Envelope, HubNotice, Metadata, NoticeKind, Outcome, Receipt, SigningKey,
    };

    fn key() -> SigningKey {
        let rng = ring::rand::SystemRandom::new();
        let doc = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &rng,
        )
        .unwrap();
        SigningKey::from_pkcs8(doc.as_ref()).unwrap()
    }

    fn a(s: &str) -> AgencyId {
        AgencyId::parse(s).unwrap()
    }

    #[test]
    fn serial_checks_follow_renewal_and_overlap() {
        let mut n = NodeRecord::pending(&a("000.00.00.G01"), "G01", 0);
        assert_eq!(
            n.check_tls_serial("", 0, 10),
            SerialCheck::Unknown,
            "pending: none holds"
        );
        n.tls_serial = "aa01".into();
        n.sign_serial = "bb01".into();
        assert_eq!(n.check_tls_serial("AA01", 5, 10), SerialCheck::Current);
        assert_eq!(
            n.check_sign_serial("aa01", 5, 10),
            SerialCheck::Unknown,
            "TLS serial as signer"
        );
        assert_eq!(
            n.check_tls_serial("cc99", 5, 10),
            SerialCheck::Unknown,
            "never issued"
        );
        // Renewed at t = 1000 with a 10 ms overlap: the old pair is admitted until t = 1010.
        n.superseded = Some(Superseded {
            tls_serial: "aa01".into(),
            sign_serial: "bb01".into(),
            at_ms: 1000,
        });
        n.tls_serial = "aa02".into();
        n.sign_serial = "bb02".into();
        assert_eq!(n.check_tls_serial("aa02", 1005, 10), SerialCheck::Current);
        assert_eq!(
            n.check_tls_serial("aa01", 1009, 10),
            SerialCheck::Superseded
        );
        assert_eq!(
            n.check_sign_serial("bb01", 1009, 10),
            SerialCheck::Superseded
        );
        assert_eq!(
            n.check_tls_serial("aa01", 1010, 10),
            SerialCheck::Unknown,
            "overlap over"
        );
        assert_eq!(n.check_sign_serial("bb01", 1010, 10), SerialCheck::Unknown);
    }

    #[test]
    fn node_records_of_earlier_versions_still_decode() {
        #[derive(Serialize)]
        struct V1<'a> {
            agency: &'a AgencyId,
            name: &'a str,
            state: NodeState,
            tls_serial: &'a str,
            sign_serial: &'a str,
            tls_not_after: i64,
            registered_ms: u64,
            tls_not_before: i64,
            last_seen_ms: Option<u64>,
        }
        let g = a("000.00.00.G01");
        let old = postcard::to_allocvec(&V1 {
            agency: &g,
            name: "Ministry",
            state: NodeState::Active,
            tls_serial: "aa01",
            sign_serial: "bb01",
            tls_not_after: 99,
            registered_ms: 7,
            tls_not_before: 9,
            last_seen_ms: Some(8),
        })
        .unwrap();
        let n = dec_node(&old).unwrap();
        assert_eq!(
            (n.name.as_str(), n.tls_serial.as_str(), n.last_seen_ms),
            ("Ministry", "aa01", Some(8))
        );
        assert_eq!(
            (n.superseded.clone(), n.conflicts, n.last_conflict.clone()),
            (None, 0, None)
        );
        // And a current record round-trips with its new fields.
        let mut cur = n.clone();
        cur.conflicts = 3;
        assert_eq!(dec_node(&enc(&cur).unwrap()).unwrap(), cur);
    }

    fn doc(k: &SigningKey, n: u8, body: &[u8], recipients: &[&str]) -> (DocumentId, DocRecord) {
        let env = Envelope {
            id: DocumentId::new_v7(1000 + n as u64, [n; 10]),
            sender: a("000.00.00.G01"),
            recipients: recipients.iter().map(|r| a(r)).collect(),
            meta: Metadata {
                subject: "s".into(),
                ..Default::default()
            },
            created_ms: 1,
            body_len: body.len() as u64,
            body_sha256: poros_protocol::sha256(body),
        };
        let acc = Acceptance {
            doc_id: env.id,
            sender: env.sender.clone(),
            recipients: env.recipients.clone(),
            body_sha256: env.body_sha256,
            body_len: env.body_len,
            accepted_ms: 5_000,
        };
        let rec = DocRecord {
            envelope: SignedEnvelope::sign(&env, k, b"c").unwrap(),
            acceptance: SignedAcceptance::sign(&acc, k, b"c").unwrap(),
            sender: env.sender.clone(),
            recipients: env.recipients.clone(),
            body_sha256: env.body_sha256,
            body_len: env.body_len,
            body_at: BodyAt::Inline,
            accepted_ms: 5_000,
        };
        (env.id, rec)
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn accept_is_idempotent_and_conflicts_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = HubStore::open(Db::open(&dir.path().join("h.redb")).unwrap()).unwrap();
        let k = key();
        let (id, rec) = doc(&k, 1, b"body", &["000.00.00.H01", "000.00.00.H02"]);
        let rt = rt();
        let first = rt
            .block_on(store.accept(rec.clone(), NewBody::Inline(b"body".to_vec())))
            .unwrap();
        assert!(matches!(first, AcceptOutcome::Stored(_)));
        let again = rt
            .block_on(store.accept(rec.clone(), NewBody::Inline(b"body".to_vec())))
            .unwrap();
        assert!(matches!(again, AcceptOutcome::Duplicate(x) if x == rec.acceptance));
        let (_, mut other) = doc(&k, 1, b"other", &["000.00.00.H01"]);
        other.acceptance = rec.acceptance.clone();
        let c = rt
            .block_on(store.accept(other, NewBody::Inline(b"other".to_vec())))
            .unwrap();
        assert!(matches!(c, AcceptOutcome::Conflict));
        // One pending delivery per recipient, stored once.
        let none = std::collections::HashSet::new();
        assert_eq!(
            store
                .pending_for(&a("000.00.00.H01"), 10, &none)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            store.pending_for(&a("000.00.00.H02"), 10, &none).unwrap()[0].doc,
            id
        );
        assert_eq!(store.queue_depth().unwrap(), 2);
        let counters: HashMap<String, u64> = store.counters().unwrap().into_iter().collect();
        assert_eq!(counters["documents_accepted"], 1);
    }

    use std::collections::HashMap;

    #[test]
    fn answers_relay_once_expiry_notifies_and_retention_frees_bodies() {
        let dir = tempfile::tempdir().unwrap();
        let store = HubStore::open(Db::open(&dir.path().join("h.redb")).unwrap()).unwrap();
        let k = key();
        let (id, rec) = doc(&k, 2, b"payload", &["000.00.00.H01", "000.00.00.H02"]);
        let rt = rt();
        rt.block_on(store.accept(rec, NewBody::Inline(b"payload".to_vec())))
            .unwrap();
        let receipt = poros_protocol::SignedReceipt::sign(
            &Receipt {
                doc_id: id,
                sender: a("000.00.00.G01"),
                recipient: a("000.00.00.H01"),
                body_sha256: poros_protocol::sha256(b"payload"),
                outcome: Outcome::Delivered,
                time_ms: 6_000,
            },
            &k,
            b"c",
        )
        .unwrap();
        let st = DeliveryState::Delivered(receipt);
        let sender = rt
            .block_on(store.record_answer(id, a("000.00.00.H01"), st.clone(), 6_000))
            .unwrap();
        assert_eq!(sender, Some(a("000.00.00.G01")));
        // A second answer for the same delivery is ignored (no second relay).
        assert_eq!(
            rt.block_on(store.record_answer(id, a("000.00.00.H01"), st, 6_001))
                .unwrap(),
            None
        );
        let none = std::collections::HashSet::new();
        assert_eq!(
            store
                .relays_for(&a("000.00.00.G01"), 10, &none)
                .unwrap()
                .len(),
            1
        );

        // H02 never answers: it expires once older than the cutoff, and the sender is told.
        assert!(store.expired_before(5_000, 10).unwrap().is_empty());
        let due = store.expired_before(5_001, 10).unwrap();
        assert_eq!(due, vec![(id, a("000.00.00.H02"))]);
        let notice = SignedNotice::sign(
            &HubNotice {
                doc_id: id,
                sender: a("000.00.00.G01"),
                recipient: a("000.00.00.H02"),
                kind: NoticeKind::Expired,
                time_ms: 7_000,
            },
            &k,
            b"c",
        )
        .unwrap();
        rt.block_on(expire(&store, id, a("000.00.00.H02"), notice, 7_000))
            .unwrap();
        assert!(store
            .pending_for(&a("000.00.00.H02"), 10, &std::collections::HashSet::new())
            .unwrap()
            .is_empty());
        let relays = store.relays_for(&a("000.00.00.G01"), 10, &none).unwrap();
        assert_eq!(relays.len(), 2);
        assert!(relays
            .iter()
            .any(|(_, r, item)| r == &a("000.00.00.H02") && matches!(item, RelayItem::Notice(_))));

        // Every recipient answered at 7_000: the body goes only after retention.
        assert!(rt
            .block_on(store.release_bodies(7_000, 10))
            .unwrap()
            .is_empty());
        assert!(store
            .inline_body(&poros_protocol::sha256(b"payload"))
            .unwrap()
            .is_some());
        rt.block_on(store.release_bodies(7_001, 10)).unwrap();
        assert!(store
            .inline_body(&poros_protocol::sha256(b"payload"))
            .unwrap()
            .is_none());
        let d = store.doc(&id).unwrap().unwrap();
        assert_eq!(d.body_at, BodyAt::Removed);
        // Metadata and receipts stay.
        assert_eq!(store.deliveries(&id).unwrap().len(), 2);
    }

    #[test]
    fn damaged_body_holds_deliveries_until_repaired_or_lost() {
        let dir = tempfile::tempdir().unwrap();
        let store = HubStore::open(Db::open(&dir.path().join("h.redb")).unwrap()).unwrap();
        let k = key();
        let (h1, h2) = (a("000.00.00.H01"), a("000.00.00.H02"));
        let (id, rec) = doc(&k, 3, b"payload", &["000.00.00.H01", "000.00.00.H02"]);
        let digest = rec.body_sha256;
        let rt = rt();
        rt.block_on(store.accept(rec, NewBody::Inline(b"payload".to_vec())))
            .unwrap();
        let none = std::collections::HashSet::new();
        let sender = a("000.00.00.G01");

        // Found damaged twice (two recipients' attempts): one request, both deliveries held.
        let asked = rt
            .block_on(store.hold_damaged(id, "missing".into(), 6_000))
            .unwrap();
        assert_eq!(asked, Some(sender.clone()));
        assert_eq!(
            rt.block_on(store.hold_damaged(id, "missing".into(), 6_001))
                .unwrap(),
            None
        );
        assert!(store.pending_for(&h1, 10, &none).unwrap().is_empty());
        assert_eq!(store.held_count(None).unwrap(), 2);
        assert_eq!(
            store.repairs_for(&sender, 10, &none).unwrap(),
            vec![(id, digest)]
        );

        // Repaired: back in both queues, request gone.
        let wake = rt
            .block_on(store.body_repaired(digest, Some(b"payload".to_vec())))
            .unwrap();
        assert_eq!(wake.len(), 2);
        assert_eq!(store.pending_for(&h2, 10, &none).unwrap()[0].doc, id);
        assert!(store.repairs_for(&sender, 10, &none).unwrap().is_empty());
        assert_eq!(store.held_count(None).unwrap(), 0);

        // Damaged again and lost: each held delivery ends with its notice, relayed like an
        // expiry and counted as one.
        rt.block_on(store.hold_damaged(id, "missing".into(), 7_000))
            .unwrap();
        let held = store.held_for(&digest).unwrap();
        assert_eq!(held.len(), 2);
        let notices = held
            .into_iter()
            .map(|h| {
                let n = SignedNotice::sign(
                    &HubNotice {
                        doc_id: h.doc,
                        sender: h.sender.clone(),
                        recipient: h.recipient.clone(),
                        kind: NoticeKind::BodyLost {
                            reason: poros_protocol::BodyLostReason::SenderHasNoCopy,
                        },
                        time_ms: 8_000,
                    },
                    &k,
                    b"c",
                )
                .unwrap();
                (h, n)
            })
            .collect();
        let wake = rt
            .block_on(store.body_lost(digest, notices, 8_000))
            .unwrap();
        assert_eq!(wake, vec![sender.clone(), sender.clone()]);
        assert_eq!(store.held_count(None).unwrap(), 0);
        assert!(store.damage(&digest).unwrap().is_none());
        assert!(store.expired_before(u64::MAX, 10).unwrap().is_empty());
        let no_relays = std::collections::HashSet::new();
        assert_eq!(store.relays_for(&sender, 10, &no_relays).unwrap().len(), 2);
        let counters: HashMap<String, u64> = store.counters().unwrap().into_iter().collect();
        assert_eq!(counters["deliveries_lost"], 2);
        assert_eq!(counters["bodies_lost"], 1);
        assert_eq!(counters["bodies_repaired"], 1);
        assert_eq!(counters["body_repairs_requested"], 2);
        let recount = store.recount(3_600_000).unwrap();
        assert_eq!(recount[sender.as_str()]["out_expired"], 2);
    }

    #[test]
    fn audit_is_paged_from_a_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let store = HubStore::open(Db::open(&dir.path().join("h.redb")).unwrap()).unwrap();
        for i in 0..25 {
            let rec = AuditRecord {
                time_ms: i,
                actor: "admin@test".into(),
                action: format!("action {i}"),
                agency: None,
                detail: String::new(),
            };
            store
                .db
                .write_blocking(move |txn| audit_in(txn, &rec))
                .unwrap();
        }
        let (mut seen, mut after, mut pages) = (Vec::new(), 0, 0);
        loop {
            let (page, next) = store.audit_page(after, 10).unwrap();
            assert!(page.len() <= 10);
            seen.extend(page.into_iter().map(|a| a.time_ms));
            pages += 1;
            match next {
                Some(n) => after = n,
                None => break,
            }
        }
        assert_eq!(seen, (0..25).collect::<Vec<_>>());
        assert_eq!(pages, 3);
    }
}
