//! The agent's durable state: outbox (with submission queue and per-recipient status),
//! inbox, quarantine, and small bodies. Every change returns only once durable.
//!
//! Tables: `outbox` doc → [`OutRecord`]; `out_queue` doc → () (not yet accepted by the hub);
//! `out_status` (doc, recipient) → [`RecipientStatus`]; `inbox` doc → [`InRecord`];
//! `quarantine` doc → [`InRecord`]; `inline_bodies` digest → bytes; `body_files` digest → ()
//! for every body file a record references (what the orphan sweep keeps); `meta` name → u64.
//! Statements about documents and their rule state live in [`statements`]; what the
//! agency's document-management software has still to take, in [`dms`].

pub mod dms;
pub mod snapshot;
pub mod statements;
mod tables;

use tables::{AgentSet, AgentTables};

use poros_protocol::{
    AgencyId, Digest, DocumentId, Outcome, Party, Reason, ReasonCode, Receipt, SignedAcceptance,
    SignedBlob, SignedEnvelope, SignedNotice, SignedReceipt, SignedStatement, Statement,
    StatementKind,
};
use poros_store::{Db, Format, Opened, StoreError};
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

/// Bodies up to this size are stored in the database; larger ones as files.
pub use poros_store::INLINE_MAX;

pub(crate) const OUTBOX: TableDefinition<&[u8], &[u8]> = TableDefinition::new("outbox");
const OUT_QUEUE: TableDefinition<&[u8], ()> = TableDefinition::new("out_queue");
pub(crate) const OUT_STATUS: TableDefinition<(&[u8], &str), &[u8]> =
    TableDefinition::new("out_status");
pub(crate) const INBOX: TableDefinition<&[u8], &[u8]> = TableDefinition::new("inbox");
pub(crate) const QUARANTINE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("quarantine");
const INLINE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("inline_bodies");
pub(crate) const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const BODY_FILES: TableDefinition<&[u8], ()> = TableDefinition::new("body_files");
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Set once `body_files` holds every file reference (stores made before it existed are
/// indexed once, at open).
const BODY_FILES_INDEXED: &str = "body_files_indexed";
/// In `meta`: the hub restore (`Resync` epoch) whose documents were queued again.
const RESYNC_EPOCH: &str = "hub_resync_epoch";

/// What a hub restore's `Resync` queued again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Requeued {
    /// Documents the hub had accepted since the backup.
    pub documents: usize,
    /// Statements made here that the hub had accepted since the backup.
    pub statements: usize,
}

impl Requeued {
    /// Whether anything was queued.
    pub fn is_empty(&self) -> bool {
        self.documents == 0 && self.statements == 0
    }
}

/// An answer recorded for a sent document, in the order the agent stored them; local
/// software follows this log with a cursor instead of rescanning the outbox.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Event {
    /// Document.
    pub doc: DocumentId,
    /// Recipient concerned.
    pub recipient: AgencyId,
    /// `delivered`, `rejected`, `expired` or `lost`.
    pub state: String,
    /// When the agent stored it, Unix ms.
    pub stored_ms: u64,
}

/// Where a body is kept (`Gone`: a quarantined delivery whose body was never read); shared
/// with the hub.
pub use poros_store::BodyAt;

/// A document this agency sent.
///
/// Stored as the layout of `poros/1` followed by `accepted`; a record stored before that
/// field existed is read by [`OutRecord::decode`] with `accepted` absent.
#[derive(Clone, Debug, Serialize)]
pub struct OutRecord {
    /// As signed by this agency.
    pub envelope: SignedEnvelope,
    /// Body location.
    pub body_at: BodyAt,
    /// Body digest.
    pub body_sha256: Digest,
    /// Body length.
    pub body_len: u64,
    /// The hub's signed acceptance in the `poros/1` form, once accepted (records stored
    /// before `poros/3`; see `accepted`).
    pub acceptance: Option<SignedAcceptance>,
    /// The hub's refusal, if it refused the document for good.
    pub refused: Option<String>,
    /// The hub's `Accepted` statement, once accepted over `poros/3`.
    pub accepted: Option<SignedStatement>,
}

/// [`OutRecord`] as stored before the `accepted` field (kept to read such records).
#[derive(Deserialize)]
struct OutRecordV1 {
    envelope: SignedEnvelope,
    body_at: BodyAt,
    body_sha256: Digest,
    body_len: u64,
    acceptance: Option<SignedAcceptance>,
    refused: Option<String>,
}

impl OutRecordV1 {
    fn with(self, accepted: Option<SignedStatement>) -> OutRecord {
        OutRecord {
            envelope: self.envelope,
            body_at: self.body_at,
            body_sha256: self.body_sha256,
            body_len: self.body_len,
            acceptance: self.acceptance,
            refused: self.refused,
            accepted,
        }
    }
}

impl OutRecord {
    /// Read a stored record, in either layout: the current one (the old fields, then
    /// `accepted`) or the one before it (which ends where `accepted` would begin).
    pub fn decode(b: &[u8]) -> Result<OutRecord, StoreError> {
        if let Ok((old, accepted)) =
            postcard::from_bytes::<(OutRecordV1, Option<SignedStatement>)>(b)
        {
            return Ok(old.with(accepted));
        }
        let old: OutRecordV1 = dec(b)?;
        Ok(old.with(None))
    }

    /// Whether the hub accepted it (in either form).
    pub fn is_accepted(&self) -> bool {
        self.acceptance.is_some() || self.accepted.is_some()
    }

    /// When the hub accepted it, by the hub's clock.
    pub fn accepted_ms(&self) -> Option<u64> {
        match (&self.accepted, &self.acceptance) {
            (Some(s), _) => s.statement().ok().map(|s| s.time_ms),
            (None, Some(a)) => a.acceptance().ok().map(|a| a.accepted_ms),
            (None, None) => None,
        }
    }
}

/// What recording a relayed answer about a delivery did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerStored {
    /// Stored now.
    New,
    /// The same statement is held already.
    AlreadyHeld,
    /// The recipient was answered before (or the same delay is stored last): kept as it was.
    AnsweredBefore,
}

/// Record a recipient's answer inside a write transaction; see [`AgentStore::set_status`].
fn set_status_in(
    t: &mut AgentTables<'_>,
    id: DocumentId,
    recipient: &AgencyId,
    status: &RecipientStatus,
    now_ms: u64,
) -> Result<bool, StoreError> {
    let key = id.as_bytes().as_slice();
    let st = t.out_status.open(t.txn)?;
    let cur = st
        .get((key, recipient.as_str()))?
        .map(|g| g.value().to_vec());
    let Some(cur) = cur else { return Ok(false) };
    if dec::<RecipientStatus>(&cur)?.is_pending() {
        st.insert((key, recipient.as_str()), enc(status)?.as_slice())?;
        if status.is_delivered() {
            statements::mark_delivered_in(t.doc_state.open(t.txn)?, id, recipient)?;
        }
        let seq =
            statements::next_event_seq_in(t.events.open(t.txn)?, t.statement_events.open(t.txn)?)?;
        let e = Event {
            doc: id,
            recipient: recipient.clone(),
            state: status.state().into(),
            stored_ms: now_ms,
        };
        t.events.open(t.txn)?.insert(seq, enc(&e)?.as_slice())?;
    }
    Ok(true)
}

/// Where a sent document stands with one recipient. The variants holding a statement are the
/// `poros/3` forms of the ones before them (added at the end: stored values keep decoding).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum RecipientStatus {
    /// No answer yet.
    Pending,
    /// Receipt signed by the recipient.
    Delivered(SignedReceipt),
    /// Rejection signed by the recipient.
    Rejected(SignedReceipt),
    /// Hub-signed expiry notice.
    Expired(SignedNotice),
    /// Hub-signed notice that the hub lost the body and this agency could not supply it
    /// again (the notice carries the reason code).
    Lost(SignedNotice),
    /// `Receipt` statement signed by the recipient, outcome delivered.
    DeliveredStatement(SignedStatement),
    /// `Receipt` statement signed by the recipient, outcome rejected.
    RejectedStatement(SignedStatement),
    /// Hub-signed `Notice` statement: expired.
    ExpiredStatement(SignedStatement),
    /// Hub-signed `Notice` statement: the body was lost.
    LostStatement(SignedStatement),
}

impl RecipientStatus {
    /// `pending`, `delivered`, `rejected`, `expired` or `lost`, whatever the form.
    pub fn state(&self) -> &'static str {
        match self {
            RecipientStatus::Pending => "pending",
            RecipientStatus::Delivered(_) | RecipientStatus::DeliveredStatement(_) => "delivered",
            RecipientStatus::Rejected(_) | RecipientStatus::RejectedStatement(_) => "rejected",
            RecipientStatus::Expired(_) | RecipientStatus::ExpiredStatement(_) => "expired",
            RecipientStatus::Lost(_) | RecipientStatus::LostStatement(_) => "lost",
        }
    }

    /// Whether no answer is recorded yet.
    pub fn is_pending(&self) -> bool {
        matches!(self, RecipientStatus::Pending)
    }

    /// Whether the recipient signed a receipt saying it holds the document.
    pub fn is_delivered(&self) -> bool {
        matches!(
            self,
            RecipientStatus::Delivered(_) | RecipientStatus::DeliveredStatement(_)
        )
    }

    /// The signed statement recorded, if the answer came in the current form.
    pub fn signed_statement(&self) -> Option<&SignedStatement> {
        match self {
            RecipientStatus::DeliveredStatement(s)
            | RecipientStatus::RejectedStatement(s)
            | RecipientStatus::ExpiredStatement(s)
            | RecipientStatus::LostStatement(s) => Some(s),
            _ => None,
        }
    }

    /// The statement recorded, in whichever form it was signed: a `poros/1` receipt or
    /// notice shown as the statement it stands for.
    pub fn statement(&self) -> Option<Statement> {
        match self {
            RecipientStatus::Pending => None,
            RecipientStatus::Delivered(r) | RecipientStatus::Rejected(r) => {
                r.receipt().ok().map(|r| r.as_statement())
            }
            RecipientStatus::Expired(n) | RecipientStatus::Lost(n) => {
                n.notice().ok().map(|n| n.as_statement())
            }
            RecipientStatus::DeliveredStatement(s)
            | RecipientStatus::RejectedStatement(s)
            | RecipientStatus::ExpiredStatement(s)
            | RecipientStatus::LostStatement(s) => s.statement().ok(),
        }
    }
}

/// The `Receipt` statement a receipt of `poros/1` stands for: from the recipient, to the
/// sender, no staff. A rejection of the time before reasons had codes gets the code its
/// wording stands for (a statement always carries one).
pub(crate) fn receipt_statement(r: &Receipt) -> Statement {
    let mut s = r.as_statement();
    if let StatementKind::Receipt { outcome, .. } = &mut s.kind {
        if let (Outcome::Rejected { .. }, Some(why)) = (&*outcome, outcome.rejection()) {
            *outcome = Outcome::RejectedFor(why);
        }
    }
    s
}

/// This agency's signed answer to a delivery it received (delivered or rejected), signed
/// once, in the form of the version that stored it.
#[derive(Clone, Debug, PartialEq)]
pub enum OwnReceipt {
    /// A receipt of `poros/1`: records stored before receipts were statements.
    Legacy(SignedReceipt),
    /// The `Receipt` statement sent over `poros/3`.
    Statement(SignedStatement),
}

impl OwnReceipt {
    /// The answer as the `Receipt` statement it is or stands for (a receipt of `poros/1` as
    /// `receipt_statement` makes it); not verified (it was signed here).
    pub fn statement(&self) -> Result<Statement, StoreError> {
        let corrupt = |e: postcard::Error| StoreError::Corrupt(format!("own receipt: {e}"));
        match self {
            OwnReceipt::Legacy(r) => Ok(receipt_statement(&r.receipt().map_err(corrupt)?)),
            OwnReceipt::Statement(s) => s.statement().map_err(corrupt),
        }
    }

    /// This agency, as the answer names it.
    pub fn agency(&self) -> Result<AgencyId, StoreError> {
        match self.statement()?.from {
            Party::Agency(a) => Ok(a),
            Party::Hub => Err(StoreError::Corrupt(
                "own receipt: made by the hub, not this agency".into(),
            )),
        }
    }

    /// Delivered, or rejected and why.
    pub fn outcome(&self) -> Result<Outcome, StoreError> {
        match self.statement()?.kind {
            StatementKind::Receipt { outcome, .. } => Ok(outcome),
            other => Err(StoreError::Corrupt(format!(
                "own receipt: a {}, not a receipt",
                other.label()
            ))),
        }
    }

    /// The signed bytes, whichever the form.
    fn blob(&self) -> &SignedBlob {
        match self {
            OwnReceipt::Legacy(r) => r.blob(),
            OwnReceipt::Statement(s) => s.blob(),
        }
    }
}

/// A document received (inbox) or quarantined.
///
/// Stored by [`InRecord::encode`] in one of two layouts, told apart by [`InRecord::decode`]:
/// - V1 (`poros/1`; records with [`OwnReceipt::Legacy`]): the fields in order, the receipt's
///   signed bytes in the answer slot, nothing after `reason`.
/// - tagged ([`OwnReceipt::Statement`]): the same fields with the statement's signed bytes
///   in the answer slot, then the byte `STATEMENT_FORM` (2). The two signed forms encode alike
///   (both are a [`SignedBlob`]), so the tag alone says which one the slot holds; V1 bytes
///   end where the tag would begin, so they never read as the tagged layout.
#[derive(Clone, Debug)]
pub struct InRecord {
    /// As signed by the sender.
    pub envelope: SignedEnvelope,
    /// Our signed answer (receipt or rejection).
    pub receipt: OwnReceipt,
    /// When stored, Unix ms.
    pub received_ms: u64,
    /// Body location.
    pub body_at: BodyAt,
    /// Digest of the bytes actually received.
    pub body_sha256: Digest,
    /// Length of the bytes actually received.
    pub body_len: u64,
    /// Why it was quarantined.
    pub reason: Option<String>,
}

/// The tag after the fields of an [`InRecord`] whose answer is a statement. Not 0 or 1: an
/// unreleased layout put an `Option` there (0 none, 1 some), and such a record must not read
/// as a statement; it reads as V1 (its receipt of `poros/1` in the answer slot).
const STATEMENT_FORM: u8 = 2;

/// The fields of [`InRecord`] as stored, in order (both layouts share them).
#[derive(Serialize, Deserialize)]
struct InFields<E, B, R> {
    envelope: E,
    answer: B,
    received_ms: u64,
    body_at: BodyAt,
    body_sha256: Digest,
    body_len: u64,
    reason: R,
}

/// The stored fields, read owned.
type InFieldsOwned = InFields<SignedEnvelope, SignedBlob, Option<String>>;

impl InFieldsOwned {
    /// The record, its answer slot read in the form `form` makes of it.
    fn with(self, form: impl FnOnce(SignedBlob) -> OwnReceipt) -> InRecord {
        InRecord {
            envelope: self.envelope,
            receipt: form(self.answer),
            received_ms: self.received_ms,
            body_at: self.body_at,
            body_sha256: self.body_sha256,
            body_len: self.body_len,
            reason: self.reason,
        }
    }
}

impl InRecord {
    /// The stored bytes: V1 for a legacy answer (as the version that signed it wrote it), the
    /// tagged layout for a statement.
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        let fields = InFields {
            envelope: &self.envelope,
            answer: self.receipt.blob(),
            received_ms: self.received_ms,
            body_at: self.body_at,
            body_sha256: self.body_sha256,
            body_len: self.body_len,
            reason: &self.reason,
        };
        match &self.receipt {
            OwnReceipt::Legacy(_) => enc(&fields),
            OwnReceipt::Statement(_) => enc(&(fields, STATEMENT_FORM)),
        }
    }

    /// Read a stored record in either layout: the tagged one first, then V1 (whose bytes end
    /// where the tag would begin, so the tagged read fails on them).
    pub fn decode(b: &[u8]) -> Result<InRecord, StoreError> {
        if let Ok((f, STATEMENT_FORM)) = postcard::from_bytes::<(InFieldsOwned, u8)>(b) {
            return Ok(f.with(|b| OwnReceipt::Statement(SignedStatement::from_blob(b))));
        }
        let f: InFieldsOwned = dec(b)?;
        Ok(f.with(|b| OwnReceipt::Legacy(SignedReceipt::from_blob(b))))
    }
}

/// The envelope of a received document as stored (it was checked on arrival).
pub(crate) fn stored_envelope(rec: &InRecord) -> Result<poros_protocol::Envelope, StoreError> {
    rec.envelope
        .envelope()
        .map_err(|e| StoreError::Corrupt(format!("stored envelope: {e}")))
}

/// An outgoing document's record and, for an inline body, the body.
pub type Submission = (OutRecord, Option<Vec<u8>>);

pub(crate) fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_allocvec(v).map_err(|e| StoreError::Other(format!("encode: {e}")))
}

pub(crate) fn dec<T: for<'a> Deserialize<'a>>(b: &[u8]) -> Result<T, StoreError> {
    postcard::from_bytes(b).map_err(|e| StoreError::Corrupt(format!("decode: {e}")))
}

pub(crate) fn id_of(b: &[u8]) -> Result<DocumentId, StoreError> {
    Ok(DocumentId::from_bytes(
        b.try_into()
            .map_err(|_| StoreError::Corrupt("document key".into()))?,
    ))
}

/// Handle on the agent's durable state.
#[derive(Clone)]
pub struct AgentStore {
    db: Db,
}

/// The agent store's format history (see [`poros_store::format`]): a step is one function
/// and one line here.
pub const FORMAT: Format = Format {
    kind: "agent",
    legacy_table: "outbox",
    steps: &[poros_store::format::RECORD_STEP],
};

impl AgentStore {
    /// Open the store file at `path` (creating it if absent): an older store is backed up and
    /// upgraded, a newer one or another kind's refused ([`FORMAT`]); then as
    /// [`AgentStore::open`].
    pub fn open_file(path: &std::path::Path) -> Result<(Self, Opened), StoreError> {
        let (db, opened) = FORMAT.open(path)?;
        Ok((AgentStore::open(db)?, opened))
    }

    /// Open, creating tables, a database opened at this binary's format version; a new store
    /// gets its format record in the same transaction as its tables.
    pub fn open(db: Db) -> Result<Self, StoreError> {
        let path = db.path().to_owned();
        db.write_blocking(move |txn| {
            FORMAT.record(txn, &path)?;
            txn.open_table(OUTBOX)?;
            txn.open_table(OUT_QUEUE)?;
            txn.open_table(OUT_STATUS)?;
            txn.open_table(INBOX)?;
            txn.open_table(QUARANTINE)?;
            txn.open_table(INLINE)?;
            txn.open_table(EVENTS)?;
            txn.open_table(BODY_FILES)?;
            statements::create_tables(txn)?;
            dms::create_tables(txn)?;
            let mut meta = txn.open_table(META)?;
            if meta.get(BODY_FILES_INDEXED)?.is_none() {
                let mut files = txn.open_table(BODY_FILES)?;
                for (def, outgoing) in [(OUTBOX, true), (INBOX, false), (QUARANTINE, false)] {
                    let t = txn.open_table(def)?;
                    for e in t.iter()? {
                        let (_, v) = e?;
                        let (at, digest) = match outgoing {
                            true => {
                                let r = OutRecord::decode(v.value())?;
                                (r.body_at, r.body_sha256)
                            }
                            _ => {
                                let r = InRecord::decode(v.value())?;
                                (r.body_at, r.body_sha256)
                            }
                        };
                        if at == BodyAt::File {
                            files.insert(digest.as_slice(), ())?;
                        }
                    }
                }
                meta.insert(BODY_FILES_INDEXED, 1)?;
            }
            Ok(())
        })?;
        Ok(AgentStore { db })
    }

    /// The underlying database (health, metrics).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// A read snapshot (listings read a page's keys and items from the same one).
    pub(crate) fn snapshot(&self) -> Result<redb::ReadTransaction, StoreError> {
        self.db.read()
    }

    /// Whether a stored record references the body file with this digest.
    pub fn body_file_referenced(&self, digest: &Digest) -> Result<bool, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(BODY_FILES)?;
        let found = t.get(digest.as_slice())?.is_some();
        Ok(found)
    }

    /// Store a new outgoing document, queued for submission, pending for every recipient of
    /// its envelope. Its rule state is not stored: until a statement changes it, it is folded
    /// from the envelope and the recipients' answers (`statements::load_state`), which saves
    /// the commit a table.
    pub async fn put_outgoing(
        &self,
        id: DocumentId,
        rec: OutRecord,
        inline: Option<Vec<u8>>,
    ) -> Result<(), StoreError> {
        // Encoded and decoded here, not in the closure: the closure runs on the committer
        // thread every writer of this store waits on (and again if its batch is retried).
        let (digest, at_file) = (rec.body_sha256, rec.body_at == BodyAt::File);
        let bytes = enc(&rec)?;
        let env = rec
            .envelope
            .envelope()
            .map_err(|e| StoreError::Other(format!("own envelope: {e}")))?;
        let pending = enc(&RecipientStatus::Pending)?;
        self.db
            .write_with::<AgentSet, _, _>(move |t| {
                let key = id.as_bytes().as_slice();
                if let Some(b) = &inline {
                    t.inline
                        .open(t.txn)?
                        .insert(digest.as_slice(), b.as_slice())?;
                }
                if at_file {
                    t.body_files.open(t.txn)?.insert(digest.as_slice(), ())?;
                }
                t.outbox.open(t.txn)?.insert(key, bytes.as_slice())?;
                t.out_queue.open(t.txn)?.insert(key, ())?;
                let st = t.out_status.open(t.txn)?;
                for r in &env.recipients {
                    st.insert((key, r.as_str()), pending.as_slice())?;
                }
                // Only `dms_ids`, outside the set.
                dms::index_dms_id(t.txn, id, &env)?;
                Ok(())
            })
            .await
    }

    /// Outgoing documents not yet accepted, oldest first.
    pub fn submission_queue(
        &self,
        limit: usize,
        skip: &std::collections::HashSet<DocumentId>,
    ) -> Result<Vec<DocumentId>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(OUT_QUEUE)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (k, _) = e?;
            let id = id_of(k.value())?;
            if !skip.contains(&id) {
                out.push(id);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// The hub's store was restored from a backup (the hub's `Resync`): queue again every
    /// document the hub accepted from `since_ms` on whose body is still held, and every
    /// statement made here from then on that the hub had accepted, so the restored hub gets
    /// what it lost. Done once per `epoch`, in one commit with the epoch recorded; returns what
    /// was queued (nothing when this restore was handled already).
    pub async fn requeue_for_resync(
        &self,
        epoch: u64,
        since_ms: u64,
    ) -> Result<Requeued, StoreError> {
        self.db
            .write(move |txn| {
                let mut meta = txn.open_table(META)?;
                if meta.get(RESYNC_EPOCH)?.map(|g| g.value()) == Some(epoch) {
                    return Ok(Requeued::default());
                }
                meta.insert(RESYNC_EPOCH, epoch)?;
                let outbox = txn.open_table(OUTBOX)?;
                let mut queue = txn.open_table(OUT_QUEUE)?;
                let mut queued = 0;
                for row in outbox.iter()? {
                    let (k, v) = row?;
                    let rec = OutRecord::decode(v.value())?;
                    let since = rec.accepted_ms().is_some_and(|at| at >= since_ms);
                    if since && rec.refused.is_none() && rec.body_at != BodyAt::Gone {
                        queue.insert(k.value(), ())?;
                        queued += 1;
                    }
                }
                Ok(Requeued {
                    documents: queued,
                    statements: statements::requeue_made_since(txn, since_ms)?,
                })
            })
            .await
    }

    /// One outgoing document.
    pub fn outgoing(&self, id: &DocumentId) -> Result<Option<OutRecord>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(OUTBOX)?;
        let v = t.get(id.as_bytes().as_slice())?;
        v.map(|g| OutRecord::decode(g.value())).transpose()
    }

    /// One outgoing document and, for an inline body, the body, read from one snapshot: what
    /// a submission sends.
    pub fn outgoing_with_body(&self, id: &DocumentId) -> Result<Option<Submission>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(OUTBOX)?;
        let Some(rec) = t
            .get(id.as_bytes().as_slice())?
            .map(|g| OutRecord::decode(g.value()))
            .transpose()?
        else {
            return Ok(None);
        };
        let body = if rec.body_at == BodyAt::Inline {
            let t = r.open_table(INLINE)?;
            let v = t.get(rec.body_sha256.as_slice())?;
            v.map(|g| g.value().to_vec())
        } else {
            None
        };
        Ok(Some((rec, body)))
    }

    /// All outgoing documents, oldest first.
    pub fn outbox(&self) -> Result<Vec<(DocumentId, OutRecord)>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(OUTBOX)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (k, v) = e?;
            out.push((id_of(k.value())?, OutRecord::decode(v.value())?));
        }
        Ok(out)
    }

    /// Replace the signed envelope of a document not yet accepted (re-signed after a renewal
    /// with the same content); returns the record as stored.
    pub async fn resign_outgoing(
        &self,
        id: DocumentId,
        envelope: SignedEnvelope,
    ) -> Result<Option<OutRecord>, StoreError> {
        self.db
            .write(move |txn| {
                let key = id.as_bytes().as_slice();
                let mut ob = txn.open_table(OUTBOX)?;
                let cur = ob.get(key)?.map(|g| g.value().to_vec());
                let Some(cur) = cur else { return Ok(None) };
                let mut rec = OutRecord::decode(&cur)?;
                if !rec.is_accepted() && rec.envelope.0.payload == envelope.0.payload {
                    rec.envelope = envelope.clone();
                    ob.insert(key, enc(&rec)?.as_slice())?;
                }
                Ok(Some(rec))
            })
            .await
    }

    /// Record the hub's acceptance or final refusal; leaves the submission queue. Unhurried
    /// (it joins the next commit): the hub holds its answer, and a document whose answer is
    /// lost to a crash is still queued, so it is submitted again and the hub answers again
    /// (an acceptance of a duplicate carries the first acceptance's time).
    pub async fn submission_done(
        &self,
        id: DocumentId,
        acceptance: Option<SignedAcceptance>,
        refused: Option<String>,
    ) -> Result<(), StoreError> {
        self.db
            .write_unhurried_with::<AgentSet, _, _>(move |t| {
                let key = id.as_bytes().as_slice();
                let ob = t.outbox.open(t.txn)?;
                let cur = ob.get(key)?.map(|g| g.value().to_vec());
                let Some(cur) = cur else { return Ok(()) };
                let mut rec = OutRecord::decode(&cur)?;
                if rec.acceptance.is_none() && rec.refused.is_none() {
                    rec.acceptance = acceptance.clone();
                    rec.refused = refused.clone();
                    ob.insert(key, enc(&rec)?.as_slice())?;
                }
                t.out_queue.open(t.txn)?.remove(key)?;
                Ok(())
            })
            .await
    }

    /// Per-recipient status of an outgoing document.
    pub fn statuses(
        &self,
        id: &DocumentId,
    ) -> Result<Vec<(AgencyId, RecipientStatus)>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(OUT_STATUS)?;
        let key = id.as_bytes().as_slice();
        let mut out = Vec::new();
        for e in t.range((key, "")..=(key, "~"))? {
            let (k, v) = e?;
            let a = AgencyId::parse(k.value().1).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            out.push((a, dec(v.value())?));
        }
        Ok(out)
    }

    /// Record a recipient's answer, stored at `now_ms`, unless one is already recorded.
    /// Returns false if the document/recipient pair is unknown.
    pub async fn set_status(
        &self,
        id: DocumentId,
        recipient: AgencyId,
        status: RecipientStatus,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        self.db
            .write_with::<AgentSet, _, _>(move |t| {
                set_status_in(t, id, &recipient, &status, now_ms)
            })
            .await
    }

    /// Record the hub's `Accepted` statement for a document submitted here (verified and
    /// checked against the record by the caller, `outbox::check_acceptance`: it changes no
    /// rule state): it leaves the submission queue and the record keeps the statement, which
    /// is where timelines read it. A document already answered keeps its first answer.
    /// Unhurried (it joins the next commit), like [`AgentStore::submission_done`].
    pub async fn accept_submission(
        &self,
        id: DocumentId,
        signed: SignedStatement,
    ) -> Result<Result<(), Reason>, StoreError> {
        self.db
            .write_unhurried_with::<AgentSet, _, _>(move |t| {
                let key = id.as_bytes().as_slice();
                let ob = t.outbox.open(t.txn)?;
                let cur = ob.get(key)?.map(|g| g.value().to_vec());
                let Some(cur) = cur else {
                    return Ok(Err(Reason::new(
                        ReasonCode::UnknownDocument,
                        format!("document {id} is not in the outbox"),
                    )));
                };
                let mut rec = OutRecord::decode(&cur)?;
                if !rec.is_accepted() && rec.refused.is_none() {
                    rec.accepted = Some(signed.clone());
                    ob.insert(key, enc(&rec)?.as_slice())?;
                }
                t.out_queue.open(t.txn)?.remove(key)?;
                Ok(Ok(()))
            })
            .await
    }

    /// Record a relayed answer about the delivery of a sent document to `recipient` (a
    /// `Receipt` statement, or the hub's `Notice`), verified by the caller, after `check`
    /// allowed it, in one commit. An answer that ends the delivery (`status`) becomes the
    /// recipient's status, with its event; the status holds the signed statement, which is
    /// where timelines read it. A notice that ends nothing (a delay) is stored with the
    /// document's other statements. The first answer stands: once the recipient is answered
    /// (or for a delay already stored with the same reason) nothing more is stored.
    pub async fn put_delivery_answer(
        &self,
        signed: SignedStatement,
        recipient: AgencyId,
        status: Option<RecipientStatus>,
        now_ms: u64,
        mut check: statements::Check,
    ) -> Result<Result<AnswerStored, Reason>, StoreError> {
        let stmt = signed
            .statement()
            .map_err(|e| StoreError::Other(format!("statement does not decode: {e}")))?;
        self.db
            .write_with::<AgentSet, _, _>(move |t| {
                let id = stmt.doc_id;
                let key = id.as_bytes().as_slice();
                let cur = t
                    .out_status
                    .open(t.txn)?
                    .get((key, recipient.as_str()))?
                    .map(|g| g.value().to_vec());
                let Some(cur) = cur else {
                    return Ok(Err(Reason::new(
                        ReasonCode::NotAddressed,
                        format!("{recipient} is not a recipient of {id} sent here"),
                    )));
                };
                if !dec::<RecipientStatus>(&cur)?.is_pending() {
                    return Ok(Ok(AnswerStored::AnsweredBefore));
                }
                if let Some(status) = &status {
                    // What the rules ask of an answer that ends a delivery (a recipient of this
                    // document, not answered yet) is what the status table holds, checked
                    // above; `set_status_in` records its effect (delivered) in the rule state.
                    set_status_in(t, id, &recipient, status, now_ms)?;
                    return Ok(Ok(AnswerStored::New));
                }
                // A notice that ends nothing (a delay): the statement path, which opens its
                // tables itself.
                let txn = t.release();
                if statements::same_delay_last(txn, &stmt)? {
                    return Ok(Ok(AnswerStored::AnsweredBefore));
                }
                if statements::is_held(txn, &signed.payload_digest())? {
                    return Ok(Ok(AnswerStored::AlreadyHeld));
                }
                let direction = statements::Direction::Received;
                match statements::put_in(txn, &signed, &stmt, direction, now_ms, &mut check)? {
                    Err(r) => Ok(Err(r)),
                    Ok(statements::Stored::AlreadyHeld) => Ok(Ok(AnswerStored::AlreadyHeld)),
                    Ok(statements::Stored::New(_)) => Ok(Ok(AnswerStored::New)),
                }
            })
            .await
    }

    /// A received or quarantined document (inbox first).
    pub fn received(&self, id: &DocumentId) -> Result<Option<InRecord>, StoreError> {
        let r = self.db.read()?;
        for def in [INBOX, QUARANTINE] {
            let t = r.open_table(def)?;
            if let Some(g) = t.get(id.as_bytes().as_slice())? {
                return Ok(Some(InRecord::decode(g.value())?));
            }
        }
        Ok(None)
    }

    /// Store a received document in the inbox (or quarantine when `rec.reason` is set), unless
    /// it is already known; returns the record now stored (the earlier one for a redelivery).
    pub async fn put_received(
        &self,
        id: DocumentId,
        rec: InRecord,
        inline: Option<Vec<u8>>,
    ) -> Result<InRecord, StoreError> {
        self.put_received_with(id, rec, inline, None).await
    }

    /// [`AgentStore::put_received`] for a document an update added this agency to: the
    /// sender's signed update (`added_by`, received at `now_ms`) is stored with it, in the
    /// same transaction.
    pub async fn put_received_with(
        &self,
        id: DocumentId,
        rec: InRecord,
        inline: Option<Vec<u8>>,
        added_by: Option<(SignedStatement, u64)>,
    ) -> Result<InRecord, StoreError> {
        self.db
            .write_with::<AgentSet, _, _>(move |t| {
                let key = id.as_bytes().as_slice();
                for held in [&mut t.inbox, &mut t.quarantine] {
                    let v = held.open(t.txn)?.get(key)?.map(|g| g.value().to_vec());
                    if let Some(v) = v {
                        return InRecord::decode(&v);
                    }
                }
                if let Some(b) = &inline {
                    t.inline
                        .open(t.txn)?
                        .insert(rec.body_sha256.as_slice(), b.as_slice())?;
                }
                if rec.body_at == BodyAt::File {
                    t.body_files
                        .open(t.txn)?
                        .insert(rec.body_sha256.as_slice(), ())?;
                }
                let into = if rec.reason.is_some() {
                    &mut t.quarantine
                } else {
                    &mut t.inbox
                };
                into.open(t.txn)?.insert(key, rec.encode()?.as_slice())?;
                let env = stored_envelope(&rec)?;
                if added_by.is_some() {
                    // The update is stored as a statement, with the rule state it starts.
                    statements::init_received(t.release(), id, &rec, &env, added_by.clone())?;
                }
                // Only the DMS tables, outside the set.
                dms::on_received_doc(t.txn, id, &rec, &env)?;
                Ok(rec.clone())
            })
            .await
    }

    /// The `Receipt` statement stored with a received document. A record whose answer is a
    /// receipt of `poros/1` (stored before receipts were statements) takes `made` (the same
    /// answer as a statement) in its place first. Returns the one stored.
    pub async fn own_receipt_statement(
        &self,
        id: DocumentId,
        made: SignedStatement,
    ) -> Result<SignedStatement, StoreError> {
        self.db
            .write(move |txn| {
                let key = id.as_bytes().as_slice();
                for def in [INBOX, QUARANTINE] {
                    let mut t = txn.open_table(def)?;
                    let v = t.get(key)?.map(|g| g.value().to_vec());
                    let Some(v) = v else { continue };
                    let mut rec = InRecord::decode(&v)?;
                    if let OwnReceipt::Statement(s) = rec.receipt {
                        return Ok(s);
                    }
                    // The statement says what the receipt said: the receipt is no longer
                    // needed, and the record keeps one signed answer.
                    rec.receipt = OwnReceipt::Statement(made.clone());
                    t.insert(key, rec.encode()?.as_slice())?;
                    return Ok(made.clone());
                }
                Err(StoreError::Other(format!("no received document {id}")))
            })
            .await
    }

    /// Events after sequence number `after`, at most `limit`.
    pub fn events(&self, after: u64, limit: usize) -> Result<Vec<(u64, Event)>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(EVENTS)?;
        let mut out = Vec::new();
        for e in t.range(after.saturating_add(1)..)? {
            let (k, v) = e?;
            out.push((k.value(), dec(v.value())?));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// An inline body.
    pub fn inline_body(&self, digest: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(INLINE)?;
        let v = t.get(digest.as_slice())?;
        Ok(v.map(|g| g.value().to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::statements::tests::{a, envelope, key, receipt, Fixture, R1, R2, S};
    use super::*;
    use poros_protocol::{Acceptance, Staff};

    fn accepted(id: DocumentId) -> SignedStatement {
        let s = Statement {
            doc_id: id,
            from: Party::Hub,
            to: vec![a(S)],
            kind: StatementKind::Accepted {
                recipients: vec![a(R1), a(R2)],
                body_sha256: poros_protocol::sha256(b"x"),
                body_len: 1,
            },
            staff: Staff::default(),
            note: None,
            time_ms: 77,
        };
        SignedStatement::sign(&s, &key(), b"hub").unwrap()
    }

    fn legacy_acceptance(id: DocumentId) -> SignedAcceptance {
        let acc = Acceptance {
            doc_id: id,
            sender: a(S),
            recipients: vec![a(R1), a(R2)],
            body_sha256: poros_protocol::sha256(b"x"),
            body_len: 1,
            accepted_ms: 66,
        };
        SignedAcceptance::sign(&acc, &key(), b"hub").unwrap()
    }

    #[test]
    fn records_stored_before_poros_3_still_decode_and_new_ones_keep_their_statement() {
        let f = Fixture::new();
        let store = f.open();
        let (old_out, new_out) = (
            DocumentId::new_v7(1, [1; 10]),
            DocumentId::new_v7(2, [2; 10]),
        );
        // The layout written by the previous version, field by field.
        let out_v1 = postcard::to_allocvec(&(
            envelope(old_out, &[R1, R2]),
            BodyAt::Inline,
            poros_protocol::sha256(b"x"),
            1u64,
            Some(legacy_acceptance(old_out)),
            None::<String>,
        ))
        .unwrap();
        let status_v1 = postcard::to_allocvec(&RecipientStatus::Delivered(receipt(old_out, R1)));
        let new_rec = OutRecord {
            envelope: envelope(new_out, &[R1, R2]),
            body_at: BodyAt::Inline,
            body_sha256: poros_protocol::sha256(b"x"),
            body_len: 1,
            acceptance: None,
            refused: None,
            accepted: Some(accepted(new_out)),
        };
        let (out_v1c, new_enc) = (out_v1.clone(), enc(&new_rec).unwrap());
        let status_v1 = status_v1.unwrap();
        store
            .db()
            .write_blocking(move |txn| {
                txn.open_table(OUTBOX)?
                    .insert(old_out.as_bytes().as_slice(), out_v1c.as_slice())?;
                txn.open_table(OUTBOX)?
                    .insert(new_out.as_bytes().as_slice(), new_enc.as_slice())?;
                txn.open_table(OUT_STATUS)?
                    .insert((old_out.as_bytes().as_slice(), R1), status_v1.as_slice())?;
                Ok(())
            })
            .unwrap();
        let old = store.outgoing(&old_out).unwrap().unwrap();
        assert!(old.accepted.is_none() && old.is_accepted());
        assert_eq!(old.accepted_ms(), Some(66));
        let new = store.outgoing(&new_out).unwrap().unwrap();
        assert!(new.acceptance.is_none() && new.is_accepted());
        assert_eq!(new.accepted_ms(), Some(77));
        assert_eq!(new.accepted, new_rec.accepted);
        let st = store.statuses(&old_out).unwrap();
        assert_eq!(st[0].1.state(), "delivered");
        assert!(st[0].1.is_delivered());
        assert_eq!(
            st[0].1.statement().unwrap().kind.label(),
            "delivered",
            "a receipt of poros/1 shows as the statement it stands for"
        );
        // Old bytes are never read as the new layout.
        assert!(postcard::from_bytes::<(OutRecordV1, Option<SignedStatement>)>(&out_v1).is_err());
    }

    /// The fields of a received record in stored order, `answer` in the answer slot.
    fn in_fields<A: Serialize>(env: &SignedEnvelope, answer: &A) -> Vec<u8> {
        postcard::to_allocvec(&(
            env,
            answer,
            5u64,
            BodyAt::Inline,
            poros_protocol::sha256(b"x"),
            1u64,
            Some("quarantined".to_string()),
        ))
        .unwrap()
    }

    #[test]
    fn received_records_hold_one_answer_read_back_in_the_form_stored() {
        let f = Fixture::new();
        let store = f.open();
        let (old_in, new_in) = (
            DocumentId::new_v7(3, [3; 10]),
            DocumentId::new_v7(4, [4; 10]),
        );
        // V1, byte for byte as the previous version wrote it: a receipt of poros/1.
        let (env, legacy) = (envelope(old_in, &[R1]), receipt(old_in, R1));
        let in_v1 = in_fields(&env, &legacy);
        let in_v1c = in_v1.clone();
        store
            .db()
            .write_blocking(move |txn| {
                txn.open_table(QUARANTINE)?
                    .insert(old_in.as_bytes().as_slice(), in_v1c.as_slice())?;
                Ok(())
            })
            .unwrap();
        let q = store.received(&old_in).unwrap().unwrap();
        assert_eq!(q.receipt, OwnReceipt::Legacy(legacy.clone()));
        assert_eq!(q.reason.as_deref(), Some("quarantined"));
        assert_eq!(q.received_ms, 5);
        assert_eq!(q.receipt.agency().unwrap(), a(R1));
        assert_eq!(q.receipt.outcome().unwrap(), Outcome::Delivered);
        let as_stmt = receipt_statement(&legacy.receipt().unwrap());
        assert_eq!(q.receipt.statement().unwrap(), as_stmt);
        // A legacy record is written back as V1, unchanged.
        assert_eq!(q.encode().unwrap(), in_v1);
        // V1 bytes end where the tag would begin: never read as the tagged layout.
        assert!(postcard::from_bytes::<(InFieldsOwned, u8)>(&in_v1).is_err());

        // The tagged layout: the same fields with the statement in the answer slot, then the
        // tag; read back as a statement, never as a receipt of poros/1.
        let mine = SignedStatement::sign(&as_stmt, &key(), b"me").unwrap();
        let rec = InRecord {
            receipt: OwnReceipt::Statement(mine.clone()),
            ..q.clone()
        };
        let mut tagged = in_fields(&env, &mine);
        tagged.push(STATEMENT_FORM);
        assert_eq!(rec.encode().unwrap(), tagged);
        let back = InRecord::decode(&tagged).unwrap();
        assert_eq!(back.receipt, OwnReceipt::Statement(mine.clone()));
        assert_eq!(back.receipt.statement().unwrap(), as_stmt);
        assert_eq!(
            (back.reason, back.received_ms, back.body_len),
            (rec.reason, 5, 1)
        );
        // The unreleased layout (V1, then an optional statement) reads as its V1 part.
        for trailing in [
            vec![0],
            [vec![1], postcard::to_allocvec(&mine).unwrap()].concat(),
        ] {
            let b = [in_v1.clone(), trailing].concat();
            assert_eq!(
                InRecord::decode(&b).unwrap().receipt,
                OwnReceipt::Legacy(legacy.clone())
            );
        }

        // A new delivery is stored with its statement alone, in the tagged layout.
        let new_rec = InRecord {
            envelope: envelope(new_in, &[R1]),
            receipt: OwnReceipt::Statement(mine.clone()),
            received_ms: 6,
            body_at: BodyAt::Inline,
            body_sha256: poros_protocol::sha256(b"x"),
            body_len: 1,
            reason: None,
        };
        f.rt.block_on(store.put_received(new_in, new_rec, Some(b"x".to_vec())))
            .unwrap();
        let got = store.received(&new_in).unwrap().unwrap();
        assert_eq!(got.receipt, OwnReceipt::Statement(mine.clone()));
        assert!(
            store
                .doc_state(&new_in)
                .unwrap()
                .unwrap()
                .track(&a(R1))
                .unwrap()
                .delivered
        );

        // A legacy record gets its statement once, in the receipt's place; then it is the
        // one kept, and the record is in the tagged layout.
        let other = SignedStatement::sign(&as_stmt, &key(), b"me2").unwrap();
        let own = |m: SignedStatement| f.rt.block_on(store.own_receipt_statement(old_in, m));
        assert_eq!(own(mine.clone()).unwrap(), mine);
        assert_eq!(own(other.clone()).unwrap(), mine);
        assert_eq!(own(other).unwrap(), mine);
        let kept = store.received(&old_in).unwrap().unwrap();
        assert_eq!(kept.receipt, OwnReceipt::Statement(mine));
        let raw = store
            .db()
            .read()
            .unwrap()
            .open_table(QUARANTINE)
            .unwrap()
            .get(old_in.as_bytes().as_slice())
            .unwrap()
            .unwrap()
            .value()
            .to_vec();
        assert_eq!(raw, tagged);
    }

    fn signed(s: &Statement) -> SignedStatement {
        SignedStatement::sign(s, &key(), b"c").unwrap()
    }

    fn full() -> statements::Check {
        Box::new(|s, st, d| s.check(st, d))
    }

    #[test]
    fn relayed_answers_set_the_status_and_are_stored_once_with_their_events() {
        use crate::agent::receive_tests::{notice_stmt, receipt_stmt};
        use poros_protocol::{DelayReason, NoticeKind, Outcome};
        let f = Fixture::new();
        let store = f.open();
        let id = DocumentId::new_v7(4, [4; 10]);
        // Sent to R1 (delivered, poros/1 receipt) and R2 (pending).
        super::statements::tests::sent(&f, &store, id);
        let put = |s: &SignedStatement, who: &str, st: Option<RecipientStatus>| {
            f.rt.block_on(store.put_delivery_answer(s.clone(), a(who), st, 10, full()))
                .unwrap()
        };
        let events = || store.all_events(0, 100).unwrap().len();
        let before = events();
        let delay = |r| NoticeKind::Delayed { reason: r };
        let d1 = signed(&notice_stmt(
            id,
            R2,
            delay(DelayReason::RecipientStorageFull),
        ));
        assert_eq!(put(&d1, R2, None), Ok(AnswerStored::New));
        // The same delay said again later: kept once; another reason is stored.
        let mut again = notice_stmt(id, R2, delay(DelayReason::RecipientStorageFull));
        again.time_ms += 1000;
        assert_eq!(
            put(&signed(&again), R2, None),
            Ok(AnswerStored::AnsweredBefore)
        );
        let d2 = signed(&notice_stmt(
            id,
            R2,
            delay(DelayReason::RecipientUnavailable),
        ));
        assert_eq!(put(&d2, R2, None), Ok(AnswerStored::New));
        assert!(store.statuses(&id).unwrap()[1].1.is_pending());
        assert_eq!(events(), before + 2);
        // R2's receipt: its status (holding the statement), its track and its event; the
        // same again changes nothing.
        let rc = signed(&receipt_stmt(id, R2, Outcome::Delivered));
        let st = Some(RecipientStatus::DeliveredStatement(rc.clone()));
        assert_eq!(put(&rc, R2, st.clone()), Ok(AnswerStored::New));
        assert_eq!(put(&rc, R2, st), Ok(AnswerStored::AnsweredBefore));
        assert_eq!(events(), before + 3);
        let statuses = store.statuses(&id).unwrap();
        assert!(
            matches!(&statuses[1], (r, RecipientStatus::DeliveredStatement(s)) if r == &a(R2) && s == &rc)
        );
        assert!(
            store
                .doc_state(&id)
                .unwrap()
                .unwrap()
                .track(&a(R2))
                .unwrap()
                .delivered
        );
        let labels: Vec<String> = store
            .statements_of(&id)
            .unwrap()
            .iter()
            .map(|s| s.statement().unwrap().kind.label().to_string())
            .collect();
        assert_eq!(labels, ["delayed", "delayed"]);
        // Answered before: an expiry after the receipt stores nothing.
        let ex = signed(&notice_stmt(id, R2, NoticeKind::Expired));
        let st = Some(RecipientStatus::ExpiredStatement(ex.clone()));
        assert_eq!(put(&ex, R2, st), Ok(AnswerStored::AnsweredBefore));
        assert_eq!(store.statements_of(&id).unwrap().len(), 2);
        assert!(matches!(
            &store.statuses(&id).unwrap()[1].1,
            RecipientStatus::DeliveredStatement(s) if s == &rc
        ));
        // Not a recipient: refused.
        let other = signed(&receipt_stmt(id, "000.00.00.H09", Outcome::Delivered));
        let r = put(&other, "000.00.00.H09", None).unwrap_err();
        assert_eq!(r.code, ReasonCode::NotAddressed);
    }

    #[test]
    fn the_hubs_accepted_statement_ends_the_submission_and_is_kept_with_the_record() {
        use crate::agent::outbox_tests::accepted as acc;
        let f = Fixture::new();
        let store = f.open();
        let id = DocumentId::new_v7(5, [5; 10]);
        let rec = super::statements::tests::out_record(id);
        f.rt.block_on(store.put_outgoing(id, rec, Some(b"x".to_vec())))
            .unwrap();
        let none = std::collections::HashSet::new();
        assert_eq!(store.submission_queue(10, &none).unwrap(), vec![id]);
        let s = signed(&acc(id, &[R1, R2]));
        f.rt.block_on(store.accept_submission(id, s.clone()))
            .unwrap()
            .unwrap();
        assert!(store.submission_queue(10, &none).unwrap().is_empty());
        let out = store.outgoing(&id).unwrap().unwrap();
        assert_eq!(out.accepted.as_ref(), Some(&s));
        assert_eq!(out.accepted_ms(), Some(9));
        // A second acceptance (a resubmission answered again) keeps the first.
        let mut later = acc(id, &[R1, R2]);
        later.time_ms = 99;
        f.rt.block_on(store.accept_submission(id, signed(&later)))
            .unwrap()
            .unwrap();
        assert_eq!(store.outgoing(&id).unwrap().unwrap().accepted, Some(s));
        // Kept once, in the record (timelines read it there).
        assert!(store.statements_of(&id).unwrap().is_empty());
    }

    #[test]
    fn a_hub_restore_queues_again_what_it_accepted_since_once_per_restore() {
        use crate::agent::outbox_tests::accepted as acc;
        let f = Fixture::new();
        let store = f.open();
        let none = std::collections::HashSet::new();
        // Accepted at hub time 9 (the helper's time) and at 99.
        let (early, late) = (
            DocumentId::new_v7(5, [5; 10]),
            DocumentId::new_v7(6, [6; 10]),
        );
        for (id, at) in [(early, 9), (late, 99)] {
            let rec = super::statements::tests::out_record(id);
            f.rt.block_on(store.put_outgoing(id, rec, Some(b"x".to_vec())))
                .unwrap();
            let mut s = acc(id, &[R1]);
            s.time_ms = at;
            f.rt.block_on(store.accept_submission(id, signed(&s)))
                .unwrap()
                .unwrap();
        }
        assert!(store.submission_queue(10, &none).unwrap().is_empty());
        assert_eq!(
            f.rt.block_on(store.requeue_for_resync(7, 50))
                .unwrap()
                .documents,
            1
        );
        assert_eq!(store.submission_queue(10, &none).unwrap(), vec![late]);
        // The same restore asked again (a reconnect) queues nothing more.
        f.rt.block_on(store.accept_submission(late, signed(&acc(late, &[R1]))))
            .unwrap()
            .unwrap();
        assert!(f
            .rt
            .block_on(store.requeue_for_resync(7, 50))
            .unwrap()
            .is_empty());
        assert!(store.submission_queue(10, &none).unwrap().is_empty());
        // Another restore does.
        assert_eq!(
            f.rt.block_on(store.requeue_for_resync(8, 0))
                .unwrap()
                .documents,
            2
        );
    }
}
