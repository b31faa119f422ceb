//! Statements about documents as this agent holds them: each document's rule state
//! ([`DocState`]), the statements made and received in store order, the queue of statements
//! still to submit to the hub, and one event per statement. Time is always an argument.
//!
//! Tables: `doc_state` doc → [`DocState`]; `statements` (doc, seq) → [`StoredStatement`]
//! (`seq` is global and increasing, so a document's range is its store order);
//! `statement_digests` payload digest → doc ‖ seq (a statement is held at most once);
//! `statement_queue` seq → doc (made here, not yet answered by the hub); `replaces`
//! successor → replaced document; `statement_events` seq → [`StatementEvent`], numbered in
//! one sequence with the receipt events of `events` (a separate table, so the receipt events
//! already stored keep decoding as they are).

use super::{dec, enc, id_of, AgentStore, Event, InRecord, OutRecord, RecipientStatus};
use super::{EVENTS, INBOX, META, OUTBOX, OUT_STATUS, QUARANTINE};
use poros_protocol::{
    AgencyId, Change, Digest, DocState, DocumentId, Effects, Envelope, NoticeKind, Party, Reason,
    ReasonCode, SignedStatement, Statement, StatementKind,
};
use poros_store::StoreError;
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

pub(crate) const DOC_STATE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("doc_state");
const STATEMENTS: TableDefinition<(&[u8], u64), &[u8]> = TableDefinition::new("statements");
const DIGESTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("statement_digests");
const QUEUE: TableDefinition<u64, &[u8]> = TableDefinition::new("statement_queue");
const REPLACES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("replaces");
pub(super) const STATEMENT_EVENTS: TableDefinition<u64, &[u8]> =
    TableDefinition::new("statement_events");
/// Last statement sequence number given out.
const STATEMENT_SEQ: &str = "statement_seq";

/// Whether this agency made a statement or received it from another party.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// Signed here.
    Made,
    /// Relayed by the hub (or carried by a delivery).
    Received,
}

impl Direction {
    /// `made` or `received`.
    pub fn label(self) -> &'static str {
        match self {
            Direction::Made => "made",
            Direction::Received => "received",
        }
    }
}

/// Where a statement stands with the hub.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HubState {
    /// Made here, not yet answered by the hub.
    Queued,
    /// Accepted by the hub (every received statement was).
    Accepted,
    /// Refused by the hub for good; its effects are undone here.
    Refused(Reason),
}

impl HubState {
    /// `queued`, `accepted` or `refused`.
    pub fn label(&self) -> &'static str {
        match self {
            HubState::Queued => "queued",
            HubState::Accepted => "accepted",
            HubState::Refused(_) => "refused",
        }
    }
}

/// A statement as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredStatement {
    /// Position in store order.
    pub seq: u64,
    /// The signed bytes (re-signed after a renewal while still queued).
    pub signed: SignedStatement,
    /// Made or received.
    pub direction: Direction,
    /// Hub state.
    pub hub: HubState,
    /// When the agent stored it, Unix ms.
    pub stored_ms: u64,
}

impl StoredStatement {
    /// The statement (its signature was checked before it was stored).
    pub fn statement(&self) -> Result<Statement, StoreError> {
        self.signed
            .statement()
            .map_err(|e| StoreError::Corrupt(format!("stored statement: {e}")))
    }
}

/// The event logged for every statement stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StatementEvent {
    /// Document.
    pub doc: DocumentId,
    /// Made or received.
    pub direction: Direction,
    /// Maker.
    pub from: Party,
    /// Addressees.
    pub to: Vec<AgencyId>,
    /// Kind label (`registered`, `takeback`, `accepted`, ...).
    pub label: String,
    /// National code, if any.
    pub code: Option<String>,
    /// Payload digest of the statement.
    pub statement: Digest,
    /// When stored, Unix ms.
    pub stored_ms: u64,
}

/// One entry of the events log.
#[derive(Clone, Debug)]
pub enum AnyEvent {
    /// An answer for a sent document (receipt, rejection, notice).
    Receipt(Event),
    /// A statement made or received.
    Statement(StatementEvent),
}

/// What storing a statement did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// Stored now, at this sequence number.
    New(u64),
    /// The same statement (same payload digest) was already held; nothing changed.
    AlreadyHeld,
}

/// Which rule check a statement goes through before it is stored: the caller's, given the
/// document's state, the statement and its digest.
pub type Check = Box<dyn FnMut(&DocState, &Statement, &Digest) -> Result<Effects, Reason> + Send>;

pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(DOC_STATE)?;
    txn.open_table(STATEMENTS)?;
    txn.open_table(DIGESTS)?;
    txn.open_table(QUEUE)?;
    txn.open_table(REPLACES)?;
    txn.open_table(STATEMENT_EVENTS)?;
    Ok(())
}

/// This module's tables, for a backup's snapshot.
pub(super) fn snapshot_tables() -> Vec<Box<dyn poros_store::SnapshotTable>> {
    use poros_store::Typed;
    vec![
        Box::new(Typed(DOC_STATE)),
        Box::new(Typed(STATEMENTS)),
        Box::new(Typed(DIGESTS)),
        Box::new(Typed(QUEUE)),
        Box::new(Typed(REPLACES)),
        Box::new(Typed(STATEMENT_EVENTS)),
    ]
}

fn save_state(txn: &WriteTransaction, id: DocumentId, s: &DocState) -> Result<(), StoreError> {
    txn.open_table(DOC_STATE)?
        .insert(id.as_bytes().as_slice(), enc(s)?.as_slice())?;
    Ok(())
}

/// `recipient` signed a receipt for a sent document. Only a stored rule state is changed: a
/// document without one (no statement changed it yet) has its state folded from its records,
/// which hold this answer already (`load_state`).
pub(super) fn mark_delivered_in(
    t: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
    id: DocumentId,
    recipient: &AgencyId,
) -> Result<(), StoreError> {
    let key = id.as_bytes().as_slice();
    let cur = t.get(key)?.map(|g| g.value().to_vec());
    if let Some(v) = cur {
        let mut s: DocState = dec(&v)?;
        s.delivered(recipient);
        t.insert(key, enc(&s)?.as_slice())?;
    }
    Ok(())
}

/// A received document's rule state: the envelope's sender and recipients, this agency
/// delivered when the document went into the inbox (not quarantine). That is what `load_state`
/// folds from the record, so it is stored only for a document an update added this agency
/// to, which starts with that update applied (it is stored as a received statement).
pub(super) fn init_received(
    txn: &WriteTransaction,
    id: DocumentId,
    rec: &InRecord,
    env: &Envelope,
    added_by: Option<(SignedStatement, u64)>,
) -> Result<(), StoreError> {
    let Some((update, now_ms)) = added_by else {
        return Ok(());
    };
    let mut state = DocState::new(env.sender.clone(), &env.recipients);
    let stmt = update
        .statement()
        .map_err(|e| StoreError::Corrupt(format!("update statement: {e}")))?;
    if stmt.doc_id == id {
        let digest = update.payload_digest();
        if txn.open_table(DIGESTS)?.get(digest.as_slice())?.is_none() {
            state.apply(&stmt, &digest);
            insert_statement(txn, &stmt, update, Direction::Received, now_ms)?;
        }
    }
    if rec.reason.is_none() {
        state.delivered(&me_of(rec)?);
    }
    save_state(txn, id, &state)
}

fn me_of(rec: &InRecord) -> Result<AgencyId, StoreError> {
    rec.receipt.agency()
}

fn received_base(rec: &InRecord) -> Result<DocState, StoreError> {
    let env = super::stored_envelope(rec)?;
    Ok(DocState::new(env.sender, &env.recipients))
}

fn sent_base(rec: &OutRecord) -> Result<DocState, StoreError> {
    let env = rec
        .envelope
        .envelope()
        .map_err(|e| StoreError::Corrupt(format!("stored envelope: {e}")))?;
    Ok(DocState::new(env.sender, &env.recipients))
}

/// The rule state of a document known here, folded from its records alone (envelope and
/// receipts, no statements): what a document stored before statements existed starts from.
fn fold_base(
    out: Option<(&OutRecord, &[(AgencyId, RecipientStatus)])>,
    received: Option<&InRecord>,
) -> Result<Option<DocState>, StoreError> {
    if let Some((rec, statuses)) = out {
        let mut s = sent_base(rec)?;
        for (a, st) in statuses {
            if st.is_delivered() {
                // An added recipient has no track until its update is folded in.
                s.tracks.entry(a.clone()).or_default();
                s.delivered(a);
            }
        }
        return Ok(Some(s));
    }
    if let Some(rec) = received {
        let mut s = received_base(rec)?;
        if rec.reason.is_none() {
            let me = me_of(rec)?;
            s.tracks.entry(me.clone()).or_default();
            s.delivered(&me);
        }
        return Ok(Some(s));
    }
    Ok(None)
}

fn base_state(txn: &WriteTransaction, id: DocumentId) -> Result<Option<DocState>, StoreError> {
    let key = id.as_bytes().as_slice();
    let out = txn
        .open_table(OUTBOX)?
        .get(key)?
        .map(|g| g.value().to_vec());
    if let Some(v) = out {
        let rec = OutRecord::decode(&v)?;
        let mut statuses = Vec::new();
        let st = txn.open_table(OUT_STATUS)?;
        for e in st.range((key, "")..=(key, "~"))? {
            let (k, v) = e?;
            let a = AgencyId::parse(k.value().1).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            statuses.push((a, dec(v.value())?));
        }
        return fold_base(Some((&rec, &statuses)), None);
    }
    for def in [INBOX, QUARANTINE] {
        let v = txn.open_table(def)?.get(key)?.map(|g| g.value().to_vec());
        if let Some(v) = v {
            return fold_base(None, Some(&InRecord::decode(&v)?));
        }
    }
    Ok(None)
}

pub(super) fn load_state(
    txn: &WriteTransaction,
    id: DocumentId,
) -> Result<Option<DocState>, StoreError> {
    let v = txn
        .open_table(DOC_STATE)?
        .get(id.as_bytes().as_slice())?
        .map(|g| g.value().to_vec());
    match v {
        Some(v) => Ok(Some(dec(&v)?)),
        None => base_state(txn, id),
    }
}

/// The next number in the one events sequence shared by receipt and statement events.
pub(super) fn next_event_seq(txn: &WriteTransaction) -> Result<u64, StoreError> {
    next_event_seq_in(&txn.open_table(EVENTS)?, &txn.open_table(STATEMENT_EVENTS)?)
}

/// [`next_event_seq`] with both event tables open.
pub(super) fn next_event_seq_in(
    events: &impl ReadableTable<u64, &'static [u8]>,
    statement_events: &impl ReadableTable<u64, &'static [u8]>,
) -> Result<u64, StoreError> {
    let a = events.last()?.map(|(k, _)| k.value());
    let b = statement_events.last()?.map(|(k, _)| k.value());
    Ok(a.max(b).unwrap_or(0) + 1)
}

fn seq_key(doc: DocumentId, seq: u64) -> Vec<u8> {
    let mut k = doc.as_bytes().to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn parse_seq_key(b: &[u8]) -> Result<(DocumentId, u64), StoreError> {
    if b.len() != 24 {
        return Err(StoreError::Corrupt("statement digest index entry".into()));
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&b[16..]);
    Ok((id_of(&b[..16])?, u64::from_be_bytes(seq)))
}

/// Stores a statement whose rules were already applied to the state; returns its seq.
fn insert_statement(
    txn: &WriteTransaction,
    stmt: &Statement,
    signed: SignedStatement,
    direction: Direction,
    now_ms: u64,
) -> Result<u64, StoreError> {
    let doc = stmt.doc_id;
    let digest = signed.payload_digest();
    let seq = {
        let mut meta = txn.open_table(META)?;
        let seq = meta.get(STATEMENT_SEQ)?.map(|g| g.value()).unwrap_or(0) + 1;
        meta.insert(STATEMENT_SEQ, seq)?;
        seq
    };
    let rec = StoredStatement {
        seq,
        signed,
        direction,
        hub: match direction {
            Direction::Made => HubState::Queued,
            Direction::Received => HubState::Accepted,
        },
        stored_ms: now_ms,
    };
    let key = doc.as_bytes().as_slice();
    txn.open_table(STATEMENTS)?
        .insert((key, seq), enc(&rec)?.as_slice())?;
    txn.open_table(DIGESTS)?
        .insert(digest.as_slice(), seq_key(doc, seq).as_slice())?;
    if direction == Direction::Made {
        txn.open_table(QUEUE)?.insert(seq, key)?;
    } else {
        super::dms::on_received_statement(txn, stmt, &digest, now_ms)?;
    }
    if let StatementKind::Change {
        change: Change::Replace { successor },
        ..
    } = &stmt.kind
    {
        txn.open_table(REPLACES)?
            .insert(successor.as_bytes().as_slice(), key)?;
    }
    if let (
        Direction::Made,
        StatementKind::Change {
            change: Change::Update { add, .. },
            ..
        },
    ) = (direction, &stmt.kind)
    {
        // The receipts of the agencies an update adds come back like any other.
        let pending = enc(&RecipientStatus::Pending)?;
        let mut st = txn.open_table(OUT_STATUS)?;
        for a in add {
            if st.get((key, a.as_str()))?.is_none() {
                st.insert((key, a.as_str()), pending.as_slice())?;
            }
        }
    }
    let ev = StatementEvent {
        doc,
        direction,
        from: stmt.from.clone(),
        to: stmt.to.clone(),
        label: stmt.kind.label().to_string(),
        code: stmt.kind.code().map(str::to_string),
        statement: digest,
        stored_ms: now_ms,
    };
    let ev_seq = next_event_seq(txn)?;
    txn.open_table(STATEMENT_EVENTS)?
        .insert(ev_seq, enc(&ev)?.as_slice())?;
    Ok(seq)
}

/// Folds a document's state again from its records and every statement the hub did not
/// refuse, in store order (after a refusal undid one).
fn rebuild(txn: &WriteTransaction, doc: DocumentId) -> Result<(), StoreError> {
    let Some(mut state) = base_state(txn, doc)? else {
        return Ok(());
    };
    let delivered: Vec<AgencyId> = state
        .tracks
        .iter()
        .filter(|(_, t)| t.delivered)
        .map(|(a, _)| a.clone())
        .collect();
    let key = doc.as_bytes().as_slice();
    let t = txn.open_table(STATEMENTS)?;
    for e in t.range((key, 0)..=(key, u64::MAX))? {
        let (_, v) = e?;
        let s: StoredStatement = dec(v.value())?;
        if matches!(s.hub, HubState::Refused(_)) {
            continue;
        }
        let stmt = s.statement()?;
        state.apply(&stmt, &s.signed.payload_digest());
    }
    for a in &delivered {
        state.delivered(a);
    }
    save_state(txn, doc, &state)
}

/// A received document's rule state (folded from `rec` when none is stored) and the document
/// it replaces, read in a listing's snapshot.
pub(crate) fn listing_extras(
    txn: &redb::ReadTransaction,
    id: &DocumentId,
    rec: &InRecord,
) -> Result<(Option<DocState>, Option<DocumentId>), StoreError> {
    let key = id.as_bytes().as_slice();
    let stored = txn
        .open_table(DOC_STATE)?
        .get(key)?
        .map(|g| dec(g.value()))
        .transpose()?;
    let state = match stored {
        Some(s) => Some(s),
        None => fold_base(None, Some(rec))?,
    };
    let replaces = txn
        .open_table(REPLACES)?
        .get(key)?
        .map(|g| id_of(g.value()))
        .transpose()?;
    Ok((state, replaces))
}

/// Whether the statement with this payload digest is held.
pub(super) fn is_held(txn: &WriteTransaction, digest: &Digest) -> Result<bool, StoreError> {
    Ok(txn.open_table(DIGESTS)?.get(digest.as_slice())?.is_some())
}

/// Whether `stmt` is a delay notice and the last notice stored about its recipient is a
/// delay for the same reason (the hub says so at every failed attempt; it is kept once).
pub(super) fn same_delay_last(
    txn: &WriteTransaction,
    stmt: &Statement,
) -> Result<bool, StoreError> {
    let StatementKind::Notice {
        recipient,
        notice: notice @ NoticeKind::Delayed { .. },
    } = &stmt.kind
    else {
        return Ok(false);
    };
    let key = stmt.doc_id.as_bytes().as_slice();
    let t = txn.open_table(STATEMENTS)?;
    for e in t.range((key, 0)..=(key, u64::MAX))?.rev() {
        let (_, v) = e?;
        let s: StoredStatement = dec(v.value())?;
        if let StatementKind::Notice {
            recipient: r,
            notice: n,
        } = s.statement()?.kind
        {
            if &r == recipient {
                return Ok(&n == notice);
            }
        }
    }
    Ok(false)
}

/// [`AgentStore::put_statement`] inside a write transaction (with the other records the
/// statement changes, in the same commit). Writes nothing unless it returns `Ok(Ok(New))`.
pub(super) fn put_in(
    txn: &WriteTransaction,
    signed: &SignedStatement,
    stmt: &Statement,
    direction: Direction,
    now_ms: u64,
    check: &mut Check,
) -> Result<Result<Stored, Reason>, StoreError> {
    let digest = signed.payload_digest();
    if txn.open_table(DIGESTS)?.get(digest.as_slice())?.is_some() {
        return Ok(Ok(Stored::AlreadyHeld));
    }
    let Some(mut state) = load_state(txn, stmt.doc_id)? else {
        return Ok(Err(Reason::new(
            ReasonCode::UnknownDocument,
            format!("document {} is not known here", stmt.doc_id),
        )));
    };
    let fx = match check(&state, stmt, &digest) {
        Ok(fx) => fx,
        Err(r) => return Ok(Err(r)),
    };
    if let (Direction::Made, Some(named)) = (direction, fx.names_document) {
        let ok = match txn
            .open_table(OUTBOX)?
            .get(named.as_bytes().as_slice())?
            .map(|g| g.value().to_vec())
        {
            Some(v) => sent_base(&OutRecord::decode(&v)?)?.sender == stmt.from,
            None => false,
        };
        if !ok {
            return Ok(Err(Reason::new(
                ReasonCode::UnknownDocument,
                format!("{named} is not a document sent by {}", stmt.from),
            )));
        }
    }
    state.apply(stmt, &digest);
    save_state(txn, stmt.doc_id, &state)?;
    let seq = insert_statement(txn, stmt, signed.clone(), direction, now_ms)?;
    Ok(Ok(Stored::New(seq)))
}

/// A hub restore: queue again every statement made here, stored from `since_ms` on, that the
/// hub had accepted (the restored hub may lack it). It keeps its state here; the submitter
/// offers it again as it is (see `statements::submit_one`). Returns how many were queued.
pub(super) fn requeue_made_since(
    txn: &WriteTransaction,
    since_ms: u64,
) -> Result<usize, StoreError> {
    let all = txn.open_table(STATEMENTS)?;
    let mut queue = txn.open_table(QUEUE)?;
    let mut queued = 0;
    for row in all.iter()? {
        let (k, v) = row?;
        let rec: StoredStatement = dec(v.value())?;
        if rec.direction == Direction::Made
            && rec.hub == HubState::Accepted
            && rec.stored_ms >= since_ms
        {
            let (doc, seq) = k.value();
            queue.insert(seq, doc)?;
            queued += 1;
        }
    }
    Ok(queued)
}

impl AgentStore {
    /// Stores a statement about a document known here, unless the same one is already held
    /// (then nothing changes): `check` decides under the document's current state, inside the
    /// write transaction, so two statements can never both pass against the same state. A
    /// refusal (`Ok(Err(reason))`) stores nothing; an unknown document is refused with
    /// `unknown_document`. A statement made here is queued for the hub; one that names
    /// another document (a replacement) must name a sent document of this agency.
    pub async fn put_statement(
        &self,
        signed: SignedStatement,
        direction: Direction,
        now_ms: u64,
        mut check: Check,
    ) -> Result<Result<Stored, Reason>, StoreError> {
        let stmt = signed
            .statement()
            .map_err(|e| StoreError::Other(format!("statement does not decode: {e}")))?;
        self.db
            .write(move |txn| put_in(txn, &signed, &stmt, direction, now_ms, &mut check))
            .await
    }

    /// The rule state of a document known here (sent or received).
    pub fn doc_state(&self, doc: &DocumentId) -> Result<Option<DocState>, StoreError> {
        let r = self.db.read()?;
        if let Some(v) = r.open_table(DOC_STATE)?.get(doc.as_bytes().as_slice())? {
            return Ok(Some(dec(v.value())?));
        }
        drop(r);
        // None stored (no statement changed it, or stored before statements existed): folded
        // from the records; the first statement about the document stores it.
        match self.outgoing(doc)? {
            Some(rec) => fold_base(Some((&rec, &self.statuses(doc)?)), None),
            None => fold_base(None, self.received(doc)?.as_ref()),
        }
    }

    /// Every statement about a document, in store order.
    pub fn statements_of(&self, doc: &DocumentId) -> Result<Vec<StoredStatement>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(STATEMENTS)?;
        let key = doc.as_bytes().as_slice();
        let mut out = Vec::new();
        for e in t.range((key, 0)..=(key, u64::MAX))? {
            let (_, v) = e?;
            out.push(dec(v.value())?);
        }
        Ok(out)
    }

    /// The statement held with this payload digest.
    pub fn statement_by_digest(
        &self,
        digest: &Digest,
    ) -> Result<Option<StoredStatement>, StoreError> {
        let r = self.db.read()?;
        let Some(v) = r.open_table(DIGESTS)?.get(digest.as_slice())? else {
            return Ok(None);
        };
        let (doc, seq) = parse_seq_key(v.value())?;
        let t = r.open_table(STATEMENTS)?;
        let v = t.get((doc.as_bytes().as_slice(), seq))?;
        v.map(|g| dec(g.value())).transpose()
    }

    /// The document `successor` replaces, if a replace request named it.
    pub fn replaces(&self, successor: &DocumentId) -> Result<Option<DocumentId>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(REPLACES)?;
        let v = t.get(successor.as_bytes().as_slice())?;
        v.map(|g| id_of(g.value())).transpose()
    }

    /// Statements made here and not yet answered by the hub, in store order.
    pub fn statement_queue(&self, limit: usize) -> Result<Vec<(u64, DocumentId)>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(QUEUE)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (k, v) = e?;
            out.push((k.value(), id_of(v.value())?));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// One stored statement.
    pub fn statement(
        &self,
        doc: &DocumentId,
        seq: u64,
    ) -> Result<Option<StoredStatement>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(STATEMENTS)?;
        let v = t.get((doc.as_bytes().as_slice(), seq))?;
        v.map(|g| dec(g.value())).transpose()
    }

    /// Replaces the signature of a statement still queued (the same payload, signed again
    /// after a key renewal); returns the statement as stored.
    pub async fn resign_statement(
        &self,
        doc: DocumentId,
        seq: u64,
        signed: SignedStatement,
    ) -> Result<Option<StoredStatement>, StoreError> {
        self.db
            .write(move |txn| {
                let mut t = txn.open_table(STATEMENTS)?;
                let key = doc.as_bytes().as_slice();
                let cur = t.get((key, seq))?.map(|g| g.value().to_vec());
                let Some(cur) = cur else { return Ok(None) };
                let mut rec: StoredStatement = dec(&cur)?;
                if rec.hub == HubState::Queued && rec.signed.0.payload == signed.0.payload {
                    rec.signed = signed.clone();
                    t.insert((key, seq), enc(&rec)?.as_slice())?;
                }
                Ok(Some(rec))
            })
            .await
    }

    /// Records the hub's answer to a statement made here; it leaves the queue. A refusal
    /// undoes the statement's effects (the state is folded again without it).
    pub async fn statement_done(
        &self,
        doc: DocumentId,
        seq: u64,
        hub: HubState,
    ) -> Result<(), StoreError> {
        self.db
            .write(move |txn| {
                let key = doc.as_bytes().as_slice();
                txn.open_table(QUEUE)?.remove(seq)?;
                let cur = txn
                    .open_table(STATEMENTS)?
                    .get((key, seq))?
                    .map(|g| g.value().to_vec());
                let Some(cur) = cur else { return Ok(()) };
                let mut rec: StoredStatement = dec(&cur)?;
                if rec.hub != HubState::Queued {
                    return Ok(());
                }
                rec.hub = hub.clone();
                txn.open_table(STATEMENTS)?
                    .insert((key, seq), enc(&rec)?.as_slice())?;
                if let HubState::Refused(_) = hub {
                    if let StatementKind::Change {
                        change: Change::Update { add, .. },
                        ..
                    } = rec.statement()?.kind
                    {
                        let mut st = txn.open_table(OUT_STATUS)?;
                        for a in add {
                            let pending = st
                                .get((key, a.as_str()))?
                                .map(|g| dec::<RecipientStatus>(g.value()))
                                .transpose()?;
                            if pending.as_ref().is_some_and(RecipientStatus::is_pending) {
                                st.remove((key, a.as_str()))?;
                            }
                        }
                    }
                    rebuild(txn, doc)?;
                }
                Ok(())
            })
            .await
    }

    /// Receipt and statement events after sequence number `after`, at most `limit`, in
    /// store order.
    pub fn all_events(&self, after: u64, limit: usize) -> Result<Vec<(u64, AnyEvent)>, StoreError> {
        let r = self.db.read()?;
        let mut receipts = Vec::new();
        for e in r
            .open_table(EVENTS)?
            .range(after.saturating_add(1)..)?
            .take(limit)
        {
            let (k, v) = e?;
            receipts.push((k.value(), AnyEvent::Receipt(dec(v.value())?)));
        }
        let mut statements = Vec::new();
        let t = r.open_table(STATEMENT_EVENTS)?;
        for e in t.range(after.saturating_add(1)..)?.take(limit) {
            let (k, v) = e?;
            statements.push((k.value(), AnyEvent::Statement(dec(v.value())?)));
        }
        let mut out: Vec<(u64, AnyEvent)> = receipts.into_iter().chain(statements).collect();
        out.sort_by_key(|(k, _)| *k);
        out.truncate(limit);
        Ok(out)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::{BodyAt, OwnReceipt};
    use super::*;
    use poros_protocol::{
        BusinessStatus, Envelope, Metadata, Outcome, Receipt, SignedEnvelope, SignedReceipt,
        SigningKey, Staff,
    };

    pub(crate) const S: &str = "000.00.00.G01";
    pub(crate) const R1: &str = "000.00.00.G02";
    pub(crate) const R2: &str = "000.00.00.H01";

    pub(crate) fn a(s: &str) -> AgencyId {
        AgencyId::parse(s).unwrap()
    }

    pub(crate) fn key() -> SigningKey {
        SigningKey::generate().unwrap()
    }

    pub(crate) fn envelope(id: DocumentId, recipients: &[&str]) -> SignedEnvelope {
        let env = Envelope {
            id,
            sender: a(S),
            recipients: recipients.iter().map(|r| a(r)).collect(),
            meta: Metadata {
                subject: "Công văn".into(),
                number: None,
                doc_type: None,
                priority: Default::default(),
                due_date: None,
                filename: None,
            },
            created_ms: 1,
            body_len: 1,
            body_sha256: poros_protocol::sha256(b"x"),
            ext: Default::default(),
        };
        SignedEnvelope::sign(&env, &key(), b"cert").unwrap()
    }

    pub(crate) fn receipt(id: DocumentId, by: &str) -> SignedReceipt {
        let r = Receipt {
            doc_id: id,
            sender: a(S),
            recipient: a(by),
            body_sha256: poros_protocol::sha256(b"x"),
            outcome: Outcome::Delivered,
            time_ms: 2,
        };
        SignedReceipt::sign(&r, &key(), b"cert").unwrap()
    }

    /// `by`'s answer to a delivery of `id`, as a receipt is stored now: a statement.
    pub(crate) fn own_receipt(id: DocumentId, by: &str) -> OwnReceipt {
        let r = receipt(id, by).receipt().unwrap();
        let s = SignedStatement::sign(&r.as_statement(), &key(), b"cert").unwrap();
        OwnReceipt::Statement(s)
    }

    pub(crate) fn stmt(id: DocumentId, from: &str, to: &[&str], kind: StatementKind) -> Statement {
        Statement {
            doc_id: id,
            from: a(from).into(),
            to: to.iter().map(|t| a(t)).collect(),
            kind,
            staff: Staff {
                department: "Văn thư".into(),
                name: "Lê Văn C".into(),
                email: None,
                phone: None,
            },
            note: None,
            time_ms: 3,
        }
    }

    fn status(id: DocumentId, from: &str, s: BusinessStatus) -> SignedStatement {
        status_at(id, from, s, 3)
    }

    fn status_at(id: DocumentId, from: &str, s: BusinessStatus, time_ms: u64) -> SignedStatement {
        let mut st = stmt(
            id,
            from,
            &[S],
            StatementKind::Status {
                status: s,
                reason: None,
            },
        );
        st.time_ms = time_ms;
        SignedStatement::sign(&st, &key(), b"cert").unwrap()
    }

    fn full() -> Check {
        Box::new(|s, st, d| s.check(st, d))
    }

    pub(crate) struct Fixture {
        _dir: tempfile::TempDir,
        pub(crate) path: std::path::PathBuf,
        pub(crate) rt: tokio::runtime::Runtime,
    }

    impl Fixture {
        pub(crate) fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("agent.redb");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            Fixture {
                _dir: dir,
                path,
                rt,
            }
        }
        pub(crate) fn open(&self) -> AgentStore {
            AgentStore::open(poros_store::Db::open(&self.path).unwrap()).unwrap()
        }
    }

    /// An outbox record of a document to R1 and R2 with body `x`, not yet accepted.
    pub(crate) fn out_record(id: DocumentId) -> OutRecord {
        OutRecord {
            envelope: envelope(id, &[R1, R2]),
            body_at: BodyAt::Inline,
            body_sha256: poros_protocol::sha256(b"x"),
            body_len: 1,
            acceptance: None,
            refused: None,
            accepted: None,
        }
    }

    /// A sent document delivered to R1 (not yet to R2).
    pub(crate) fn sent(f: &Fixture, store: &AgentStore, id: DocumentId) {
        let rec = out_record(id);
        f.rt.block_on(async {
            store
                .put_outgoing(id, rec, Some(b"x".to_vec()))
                .await
                .unwrap();
            let d = RecipientStatus::Delivered(receipt(id, R1));
            assert!(store.set_status(id, a(R1), d, 1).await.unwrap());
        });
    }

    /// A document of S to R1 and R2 as `me` stored it on arrival.
    pub(crate) fn received(id: DocumentId, me: &str) -> InRecord {
        InRecord {
            envelope: envelope(id, &[R1, R2]),
            receipt: own_receipt(id, me),
            received_ms: 2,
            body_at: BodyAt::Inline,
            body_sha256: poros_protocol::sha256(b"x"),
            body_len: 1,
            reason: None,
        }
    }

    pub(crate) fn statement_events(store: &AgentStore) -> Vec<StatementEvent> {
        store
            .all_events(0, 1000)
            .unwrap()
            .into_iter()
            .filter_map(|(_, e)| match e {
                AnyEvent::Statement(s) => Some(s),
                AnyEvent::Receipt(_) => None,
            })
            .collect()
    }

    #[test]
    fn a_statement_held_already_is_acknowledged_and_not_stored_twice() {
        let f = Fixture::new();
        let store = f.open();
        let id = DocumentId::new_v7(10, [1; 10]);
        let rec = InRecord {
            envelope: envelope(id, &[R1, R2]),
            receipt: own_receipt(id, R1),
            received_ms: 2,
            body_at: BodyAt::Inline,
            body_sha256: poros_protocol::sha256(b"x"),
            body_len: 1,
            reason: None,
        };
        f.rt.block_on(store.put_received(id, rec, Some(b"x".to_vec())))
            .unwrap();
        let tb = stmt(
            id,
            S,
            &[R1],
            StatementKind::Change {
                change: Change::TakeBack,
                reason: "sent in error".into(),
            },
        );
        let signed = SignedStatement::sign(&tb, &key(), b"cert").unwrap();
        let put = |s: SignedStatement| {
            f.rt.block_on(store.put_statement(s, Direction::Received, 5, full()))
                .unwrap()
        };
        assert!(matches!(put(signed.clone()), Ok(Stored::New(_))));
        // Re-signed copy of the same payload: the same statement.
        let again = signed.resign(&key(), b"cert2").unwrap();
        assert_eq!(put(again), Ok(Stored::AlreadyHeld));
        assert_eq!(store.statements_of(&id).unwrap().len(), 1);
        assert_eq!(statement_events(&store).len(), 1);
        let state = store.doc_state(&id).unwrap().unwrap();
        assert!(state.track(&a(R1)).unwrap().pending.is_some());
        assert_eq!(
            store
                .statement_by_digest(&signed.payload_digest())
                .unwrap()
                .unwrap()
                .hub,
            HubState::Accepted
        );
    }

    #[test]
    fn statements_keep_store_order_refusals_store_nothing_and_state_survives_reopen() {
        use BusinessStatus::*;
        let f = Fixture::new();
        let id = DocumentId::new_v7(11, [2; 10]);
        {
            let store = f.open();
            sent(&f, &store, id);
            for s in [Arrived, Registered, Assigned, Completed] {
                let r = f.rt.block_on(store.put_statement(
                    status(id, R1, s),
                    Direction::Received,
                    6,
                    full(),
                ));
                assert!(matches!(r, Ok(Ok(Stored::New(_)))), "{s:?}: {r:?}");
            }
            // 06 then 04: refused, and nothing is stored.
            let r = f.rt.block_on(store.put_statement(
                status_at(id, R1, Assigned, 9),
                Direction::Received,
                7,
                full(),
            ));
            assert_eq!(r.unwrap().unwrap_err().code, ReasonCode::IllegalTransition);
            // R2 has no receipt yet: it cannot report.
            let r = f.rt.block_on(store.put_statement(
                status(id, R2, Registered),
                Direction::Received,
                7,
                full(),
            ));
            assert_eq!(r.unwrap().unwrap_err().code, ReasonCode::IllegalTransition);
        }
        let store = f.open();
        let labels: Vec<String> = store
            .statements_of(&id)
            .unwrap()
            .iter()
            .map(|s| s.statement().unwrap().kind.label().to_string())
            .collect();
        assert_eq!(labels, ["arrived", "registered", "assigned", "completed"]);
        let ev: Vec<String> = statement_events(&store)
            .into_iter()
            .map(|e| e.label)
            .collect();
        assert_eq!(ev, labels);
        let state = store.doc_state(&id).unwrap().unwrap();
        let t = state.track(&a(R1)).unwrap();
        assert!(t.delivered);
        assert_eq!(t.status, Some(Completed));
        assert!(!state.track(&a(R2)).unwrap().delivered);
        // Receipt events and statement events share one increasing sequence.
        let seqs: Vec<u64> = store
            .all_events(0, 100)
            .unwrap()
            .iter()
            .map(|(s, _)| *s)
            .collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
        assert_eq!(seqs.len(), 5);
        assert_eq!(store.all_events(2, 2).unwrap()[0].0, 3);
    }

    #[test]
    fn unknown_documents_are_refused_and_a_hub_refusal_undoes_a_statement() {
        let f = Fixture::new();
        let store = f.open();
        let unknown = DocumentId::new_v7(12, [3; 10]);
        let r = f.rt.block_on(store.put_statement(
            status(unknown, R1, BusinessStatus::Registered),
            Direction::Received,
            1,
            full(),
        ));
        assert_eq!(r.unwrap().unwrap_err().code, ReasonCode::UnknownDocument);
        assert!(statement_events(&store).is_empty());

        let id = DocumentId::new_v7(13, [4; 10]);
        sent(&f, &store, id);
        let tb = stmt(
            id,
            S,
            &[R1],
            StatementKind::Change {
                change: Change::TakeBack,
                reason: "sent in error".into(),
            },
        );
        let signed = SignedStatement::sign(&tb, &key(), b"cert").unwrap();
        let Ok(Stored::New(seq)) =
            f.rt.block_on(store.put_statement(signed, Direction::Made, 2, full()))
                .unwrap()
        else {
            panic!("take-back not stored")
        };
        assert_eq!(store.statement_queue(10).unwrap(), vec![(seq, id)]);
        assert!(store
            .doc_state(&id)
            .unwrap()
            .unwrap()
            .track(&a(R1))
            .unwrap()
            .pending
            .is_some());
        let why = Reason::new(ReasonCode::IllegalTransition, "no");
        f.rt.block_on(store.statement_done(id, seq, HubState::Refused(why.clone())))
            .unwrap();
        assert!(store.statement_queue(10).unwrap().is_empty());
        let state = store.doc_state(&id).unwrap().unwrap();
        assert!(state.track(&a(R1)).unwrap().pending.is_none());
        assert!(state.track(&a(R1)).unwrap().delivered);
        assert_eq!(
            store.statement(&id, seq).unwrap().unwrap().hub,
            HubState::Refused(why)
        );
    }

    #[test]
    fn a_rule_state_is_folded_from_the_records_until_a_statement_stores_it() {
        use BusinessStatus::*;
        let f = Fixture::new();
        let store = f.open();
        let stored = |id: &DocumentId| {
            let r = store.db().read().unwrap();
            let t = r.open_table(DOC_STATE).unwrap();
            let v = t.get(id.as_bytes().as_slice()).unwrap();
            v.map(|g| dec::<DocState>(g.value()).unwrap())
        };
        // Whether the state the store answers with (stored or folded) has `r` delivered.
        let delivered = |id: &DocumentId, r: &str| {
            let st = store.doc_state(id).unwrap().unwrap();
            st.track(&a(r)).unwrap().delivered
        };
        // Sent and answered by R1: nothing stored, the state folded from the records.
        let id = DocumentId::new_v7(14, [5; 10]);
        sent(&f, &store, id);
        assert!(stored(&id).is_none(), "sending stored a rule state");
        let st = store.doc_state(&id).unwrap().unwrap();
        assert_eq!(st.sender, a(S));
        assert_eq!(
            st.tracks.keys().cloned().collect::<Vec<_>>(),
            [a(R1), a(R2)]
        );
        assert!(delivered(&id, R1) && !delivered(&id, R2));
        // The first statement stores the state, with what the records said folded in.
        let r = f.rt.block_on(store.put_statement(
            status(id, R1, Registered),
            Direction::Received,
            6,
            full(),
        ));
        assert!(matches!(r, Ok(Ok(Stored::New(_)))), "{r:?}");
        let st = stored(&id).expect("a statement stores the rule state");
        assert!(st.track(&a(R1)).unwrap().delivered);
        assert_eq!(st.track(&a(R1)).unwrap().status, Some(Registered));
        // A later receipt changes the stored state.
        let d = RecipientStatus::Delivered(receipt(id, R2));
        assert!(f.rt.block_on(store.set_status(id, a(R2), d, 7)).unwrap());
        assert!(stored(&id).unwrap().track(&a(R2)).unwrap().delivered);
        assert!(delivered(&id, R2));

        // Received into the inbox, and into quarantine: nothing stored, each folded (this
        // agency delivered only from the inbox), in the inbox listing too.
        let (inbox, held) = (
            DocumentId::new_v7(15, [6; 10]),
            DocumentId::new_v7(16, [7; 10]),
        );
        let mut q = received(held, R1);
        q.reason = Some("signature does not verify".into());
        f.rt.block_on(async {
            store
                .put_received(inbox, received(inbox, R1), Some(b"x".to_vec()))
                .await
                .unwrap();
            store
                .put_received(held, q, Some(b"x".to_vec()))
                .await
                .unwrap();
        });
        assert!(stored(&inbox).is_none() && stored(&held).is_none());
        assert!(delivered(&inbox, R1) && !delivered(&held, R1));
        let page = store.received_page(false, None, 10).unwrap();
        let mut listed = Vec::new();
        page.each_received(false, |id, _, state, _| {
            listed.push((*id, state.map(|s| s.track(&a(R1)).unwrap().delivered)));
            true
        })
        .unwrap();
        assert_eq!(listed, [(inbox, Some(true))]);
    }
}
