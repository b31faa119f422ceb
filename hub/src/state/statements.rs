//! Durable state of the statement path: what the rules know about each document, every
//! accepted statement in acceptance order, and the per-addressee relay queues.
//!
//! The hub routes on (document, from, to) only; it never looks inside a statement's kind except
//! through [`DocState::check`]'s [`Effects`]. Tables:
//! - `doc_states`: doc → [`DocState`], stored once a statement changes what the document's
//!   envelope and delivery records give ([`fold_state`]): not at acceptance, not for a receipt
//!   while none is stored (one table fewer on the two busiest writes); once stored, every
//!   receipt and statement updates it. The PostgreSQL store stores it at acceptance (see
//!   `pg::exchange`), and both read either;
//! - `statements`: seq → [`StoredStatement`], a global monotonic sequence (acceptance order);
//! - `doc_statements`: (doc, seq) → () — a document's history;
//! - `statement_relays`: (addressee, seq) → [`RelayRef`] — statements not yet acked by their
//!   addressee;
//! - `statement_digests`: payload digest → seq — a resubmitted statement is stored once;
//! - `added_recipients`: (doc, recipient) → [`Added`] — deliveries an update created (the
//!   delivery records themselves keep their encoding);
//! - `statement_kinds`: label → count accepted, in the same commit (the kinds agencies make on
//!   their own; acceptances, receipts and notices are counted with the deliveries).
//!
//! The hub's acceptance, each receipt and rejection, and the hub's expiry and body-lost notices
//! are statements here like any other (`record_in`, called by `accept`, `answer_in` and
//! `accept_in`); the acceptance is answered on the submitting stream and relayed to no one.

use super::tables::{HubSet, HubTables};
use super::{
    dec, enc, DeliveryRecord, DeliveryState, DocRecord, HubStore, NodeRecord, NodeState, NODES,
    RELAYS,
};
use poros_protocol::{
    AgencyId, Digest, DocState, DocumentId, Party, Reason, ReasonCode, Refusal, RefusalCode,
    SignedStatement, Statement, Track,
};
use poros_store::StoreError;
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

pub(super) const DOC_STATES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("doc_states");
pub(super) const STATEMENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("statements");
pub(super) const DOC_STATEMENTS: TableDefinition<(&[u8], u64), ()> =
    TableDefinition::new("doc_statements");
pub(super) const STATEMENT_RELAYS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("statement_relays");
pub(super) const STATEMENT_DIGESTS: TableDefinition<&[u8], u64> =
    TableDefinition::new("statement_digests");
pub(super) const ADDED: TableDefinition<(&[u8], &str), &[u8]> =
    TableDefinition::new("added_recipients");
pub(super) const KINDS: TableDefinition<&str, u64> = TableDefinition::new("statement_kinds");

/// Most queued relays one scan looks at (gated or blocked ones are skipped over).
const SCAN_MAX: usize = 10_000;

/// An accepted statement as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredStatement {
    /// The signed statement, exactly as received.
    pub signed: SignedStatement,
    /// When the hub accepted it, Unix ms.
    pub accepted_ms: u64,
}

/// One statement of a document's history, decoded for display.
#[derive(Clone, Debug)]
pub struct HistoryEntry {
    /// Acceptance sequence number (global, monotonic).
    pub seq: u64,
    /// The statement as signed.
    pub statement: Statement,
    /// Its payload digest.
    pub digest: Digest,
    /// When accepted, Unix ms.
    pub accepted_ms: u64,
}

impl HistoryEntry {
    /// Statement `seq` as stored, decoded for display.
    pub(super) fn of(seq: u64, s: StoredStatement) -> Result<HistoryEntry, StoreError> {
        let statement = s
            .signed
            .statement()
            .map_err(|e| StoreError::Corrupt(format!("statement {seq}: {e}")))?;
        Ok(HistoryEntry {
            seq,
            digest: s.signed.payload_digest(),
            statement,
            accepted_ms: s.accepted_ms,
        })
    }
}

/// What a relay-queue entry points at, so a scan can gate it without decoding the statement.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct RelayRef {
    doc: DocumentId,
    from: Party,
}

/// A delivery an update created: which statement, and when the delivery fell due.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Added {
    seq: u64,
    added_ms: u64,
}

/// Why a statement was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatementRefusal {
    /// Under the exchange rules.
    Rule(Reason),
    /// An update adds an agency that is not an active registered one.
    UnknownRecipient(String),
    /// The maker is a recipient whose receipt the hub has not recorded yet (its agent stores a
    /// document before the hub stores the receipt): retry, the answer is coming.
    ReceiptNotYetRecorded(String),
}

impl StatementRefusal {
    /// The label counted under `refusals{reason=...}`.
    pub fn label(&self) -> &'static str {
        match self {
            StatementRefusal::Rule(r) => r.code.label(),
            StatementRefusal::UnknownRecipient(_) => "unknown_recipient",
            StatementRefusal::ReceiptNotYetRecorded(_) => "receipt_not_yet_recorded",
        }
    }

    /// The refusal sent on the wire.
    pub fn refusal(&self) -> Refusal {
        match self {
            StatementRefusal::Rule(r) => Refusal::rule(r.clone()),
            StatementRefusal::UnknownRecipient(m) => Refusal {
                code: RefusalCode::UnknownRecipient,
                message: m.clone(),
            },
            StatementRefusal::ReceiptNotYetRecorded(m) => Refusal {
                code: RefusalCode::Unavailable,
                message: m.clone(),
            },
        }
    }
}

impl std::fmt::Display for StatementRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatementRefusal::Rule(r) => r.fmt(f),
            StatementRefusal::UnknownRecipient(m) => write!(f, "unknown_recipient: {m}"),
            StatementRefusal::ReceiptNotYetRecorded(m) => write!(f, "retry: {m}"),
        }
    }
}

/// Result of [`HubStore::accept_statement`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatementOutcome {
    /// Stored now, under `seq`; `wake` are the agencies with something new queued (the
    /// addressees and any added recipients).
    Accepted {
        /// Acceptance sequence number.
        seq: u64,
        /// Agencies to wake.
        wake: Vec<AgencyId>,
    },
    /// The same signed payload was accepted before (nothing stored twice).
    Duplicate,
    /// Refused; nothing stored.
    Refused(StatementRefusal),
}

/// A statement relay ready to send.
#[derive(Clone, Debug)]
pub struct StatementRelay {
    /// Queue key.
    pub seq: u64,
    /// Document concerned.
    pub doc: DocumentId,
    /// The statement.
    pub signed: SignedStatement,
}

/// This area's tables, for a snapshot of the store (see `state::snapshot`).
pub(super) fn snapshot_tables() -> Vec<Box<dyn poros_store::SnapshotTable>> {
    vec![
        Box::new(poros_store::Typed(DOC_STATES)),
        Box::new(poros_store::Typed(STATEMENTS)),
        Box::new(poros_store::Typed(DOC_STATEMENTS)),
        Box::new(poros_store::Typed(STATEMENT_RELAYS)),
        Box::new(poros_store::Typed(STATEMENT_DIGESTS)),
        Box::new(poros_store::Typed(ADDED)),
        Box::new(poros_store::Typed(KINDS)),
    ]
}

pub(super) fn create_tables(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(DOC_STATES)?;
    txn.open_table(STATEMENTS)?;
    txn.open_table(DOC_STATEMENTS)?;
    txn.open_table(STATEMENT_RELAYS)?;
    txn.open_table(STATEMENT_DIGESTS)?;
    txn.open_table(ADDED)?;
    txn.open_table(KINDS)?;
    Ok(())
}

/// `recipient` signed a delivery receipt (called inside `answer_in`'s transaction).
pub(super) fn on_delivered(
    t: &mut HubTables<'_>,
    doc: &[u8],
    recipient: &AgencyId,
) -> Result<(), StoreError> {
    let t = t.doc_states.open(t.txn)?;
    let cur = t.get(doc)?.map(|g| g.value().to_vec());
    // Without a stored state the delivery record this answer writes is the fold's input.
    if let Some(bytes) = cur {
        let mut st: DocState = dec(&bytes)?;
        st.delivered(recipient);
        t.insert(doc, enc(&st)?.as_slice())?;
    }
    Ok(())
}

/// When a delivery an update created fell due (its clock for expiry and statistics), if
/// `recipient` was added to `doc` by an update.
pub(super) fn added_at(
    t: &mut HubTables<'_>,
    doc: &[u8],
    recipient: &AgencyId,
) -> Result<Option<u64>, StoreError> {
    let v = t.added.open(t.txn)?.get((doc, recipient.as_str()))?;
    v.map(|g| dec::<Added>(g.value()).map(|a| a.added_ms))
        .transpose()
}

/// Recipients updates added to `doc`, with the time each fell due.
fn added_of<T: ReadableTable<(&'static [u8], &'static str), &'static [u8]>>(
    t: &T,
    doc: &[u8],
) -> Result<Vec<(AgencyId, Added)>, StoreError> {
    let mut out = Vec::new();
    for e in t.range((doc, "")..=(doc, "~"))? {
        let (k, v) = e?;
        out.push((agency(k.value().1)?, dec(v.value())?));
    }
    Ok(out)
}

/// Recipients updates added: (document, agency) → the update.
pub(super) type AddedTable = redb::ReadOnlyTable<(&'static [u8], &'static str), &'static [u8]>;

/// The table of recipients updates added, for a read.
pub(super) fn added_table(r: &redb::ReadTransaction) -> Result<AddedTable, StoreError> {
    Ok(r.open_table(ADDED)?)
}

/// Every recipient a document has: the envelope's, then those updates added.
fn recipients_in<T: ReadableTable<(&'static [u8], &'static str), &'static [u8]>>(
    added: &T,
    doc: &[u8],
    rec: &DocRecord,
) -> Result<Vec<AgencyId>, StoreError> {
    let mut all = rec.recipients.clone();
    all.extend(added_of(added, doc)?.into_iter().map(|(a, _)| a));
    Ok(all)
}

/// [`recipients_in`] within a write.
pub(super) fn recipients_of(
    txn: &redb::WriteTransaction,
    doc: &[u8],
    rec: &DocRecord,
) -> Result<Vec<AgencyId>, StoreError> {
    recipients_in(&txn.open_table(ADDED)?, doc, rec)
}

/// [`recipients_in`] within a read.
pub(super) fn recipients_read(
    r: &redb::ReadTransaction,
    doc: &[u8],
    rec: &DocRecord,
) -> Result<Vec<AgencyId>, StoreError> {
    recipients_in(&r.open_table(ADDED)?, doc, rec)
}

/// Every delivery a document has: the envelope's recipients, then those updates added.
pub(super) fn delivery_count(
    t: &mut HubTables<'_>,
    doc: &[u8],
    rec: &DocRecord,
) -> Result<usize, StoreError> {
    Ok(rec.recipients.len() + added_of(t.added.open(t.txn)?, doc)?.len())
}

/// Added recipients of every document, for the statistics recount: (recipient, due time).
pub(super) fn added_for_recount(
    r: &redb::ReadTransaction,
    doc: &[u8],
) -> Result<Vec<(AgencyId, u64)>, StoreError> {
    let t = r.open_table(ADDED)?;
    Ok(added_of(&t, doc)?
        .into_iter()
        .map(|(a, x)| (a, x.added_ms))
        .collect())
}

fn agency(s: &str) -> Result<AgencyId, StoreError> {
    AgencyId::parse(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The rule state stored for `doc`, if a statement has changed it (see the module notes).
pub(super) fn stored_state(
    t: &mut HubTables<'_>,
    doc: &DocumentId,
) -> Result<Option<DocState>, StoreError> {
    let key = doc.as_bytes().as_slice();
    t.doc_states
        .open(t.txn)?
        .get(key)?
        .map(|g| dec(g.value()))
        .transpose()
}

/// The rule state of `doc` folded from its envelope and delivery records.
pub(super) fn folded_in(
    t: &mut HubTables<'_>,
    doc: &DocumentId,
    rec: &DocRecord,
) -> Result<DocState, StoreError> {
    let key = doc.as_bytes().as_slice();
    let del = t.deliveries.open(t.txn)?;
    let mut all = Vec::new();
    for e in del.range((key, "")..=(key, "~"))? {
        let (k, v) = e?;
        all.push((agency(k.value().1)?, dec(v.value())?));
    }
    Ok(fold_state(rec, &all))
}

/// The rule state of `doc`: stored in `doc_states`, or folded from its delivery records.
pub(super) fn state_in(
    t: &mut HubTables<'_>,
    doc: &DocumentId,
    rec: &DocRecord,
) -> Result<DocState, StoreError> {
    match stored_state(t, doc)? {
        Some(st) => Ok(st),
        None => folded_in(t, doc, rec),
    }
}

/// What a delivery's end by a statement leaves to store of the document's rule state: the new
/// state `after`, unless none was stored and the fold of the delivery records, this one now
/// `ended`, gives the same state (a receipt, as a rule) — then nothing.
pub(super) fn answered_state(
    stored: bool,
    before: &DocState,
    after: DocState,
    recipient: &AgencyId,
    ended: &DeliveryState,
) -> Option<DocState> {
    if stored {
        return Some(after);
    }
    let mut folded = before.clone();
    fold_delivery(&mut folded, recipient, ended);
    (folded != after).then_some(after)
}

/// A document's rule state folded from its envelope and delivery records: what it is until a
/// statement other than a receipt changes it.
pub(super) fn fold_state(rec: &DocRecord, deliveries: &[(AgencyId, DeliveryRecord)]) -> DocState {
    let mut st = DocState::new(rec.sender.clone(), &rec.recipients);
    for (r, d) in deliveries {
        fold_delivery(&mut st, r, &d.state);
    }
    st
}

/// The fold's one step: a delivery that ended with the recipient holding the document.
fn fold_delivery(st: &mut DocState, recipient: &AgencyId, d: &DeliveryState) {
    if d.is_delivered() {
        st.delivered(recipient);
    }
}

fn rule(code: ReasonCode, text: String) -> StatementOutcome {
    StatementOutcome::Refused(StatementRefusal::Rule(Reason::new(code, text)))
}

/// The refusal of a statement about a document the hub does not hold.
pub(super) fn unknown_document(doc: DocumentId) -> StatementOutcome {
    rule(
        ReasonCode::UnknownDocument,
        format!("the hub holds no document {doc}"),
    )
}

/// Whether the statement's maker is a recipient whose receipt the rules have not seen: if its
/// delivery is still pending at the hub, a refusal is only a retry (see [`refused`]).
pub(super) fn awaits_receipt(st: &DocState, stmt: &Statement) -> bool {
    stmt.from
        .agency()
        .and_then(|a| st.track(a))
        .is_some_and(|t| !t.delivered)
}

/// The outcome of a statement the rules refused. A recipient's agent may speak of a document
/// it stored before the hub recorded its receipt: while that delivery is still pending here
/// (`receipt_in_flight`), it is asked to retry.
pub(super) fn refused(r: Reason, receipt_in_flight: bool, stmt: &Statement) -> StatementOutcome {
    let refusal = if receipt_in_flight {
        StatementRefusal::ReceiptNotYetRecorded(format!(
            "the hub has not recorded {}'s receipt for {} yet; retrying",
            stmt.from, stmt.doc_id
        ))
    } else {
        StatementRefusal::Rule(r)
    };
    StatementOutcome::Refused(refusal)
}

/// Check a legal statement's effects against the store: the document it names (read by
/// `doc`) must come from the same `sender`, and every recipient it adds (read by `node`) must
/// be an active registered agency. The first failing check refuses.
pub(super) fn effects_refused(
    fx: &poros_protocol::Effects,
    sender: &AgencyId,
    doc: impl FnOnce(DocumentId) -> Result<Option<DocRecord>, StoreError>,
    mut node: impl FnMut(&AgencyId) -> Result<Option<NodeRecord>, StoreError>,
) -> Result<Option<StatementOutcome>, StoreError> {
    if let Some(named) = fx.names_document {
        if doc(named)?.is_none_or(|o| &o.sender != sender) {
            return Ok(Some(rule(
                ReasonCode::UnknownDocument,
                format!("{named} is not a document the hub accepted from {sender}"),
            )));
        }
    }
    for a in &fx.add_recipients {
        if node(a)?.is_none_or(|n| n.state != NodeState::Active) {
            return Ok(Some(StatementOutcome::Refused(
                StatementRefusal::UnknownRecipient(format!(
                    "{a} is not an active agency registered at this hub"
                )),
            )));
        }
    }
    Ok(None)
}

/// The recipients whose track a statement changed: (recipient, before, after).
pub(super) fn changed_tracks<'a>(
    before: &'a DocState,
    after: &'a DocState,
) -> Vec<(&'a AgencyId, &'a Track, &'a Track)> {
    after
        .tracks
        .iter()
        .filter_map(|(r, now)| {
            let was = before.tracks.get(r).filter(|was| *was != now)?;
            Some((r, was, now))
        })
        .collect()
}

/// Count what a changed track means for the business figures, if the recipient holds the
/// document (its delivery `d` ended with a receipt).
pub(super) fn count_business(
    stats: &crate::stats::StatsHook,
    business: &(crate::business::Calendar, u32),
    now_ms: u64,
    recipient: &AgencyId,
    d: &DeliveryRecord,
    was: &Track,
    after: &Track,
) {
    if let (true, Some(delivered_ms)) = (d.state.is_delivered(), d.answered_ms) {
        crate::stats::on_business(
            stats,
            recipient,
            delivered_ms,
            now_ms,
            was,
            after,
            (&business.0, business.1),
        );
    }
}

/// Check, apply and store one statement; refusals write nothing.
fn accept_in(
    t: &mut HubTables<'_>,
    stats: &crate::stats::StatsHook,
    business: &(crate::business::Calendar, u32),
    signed: &SignedStatement,
    stmt: &Statement,
    now_ms: u64,
) -> Result<StatementOutcome, StoreError> {
    let digest = signed.payload_digest();
    if t.statement_digests
        .open(t.txn)?
        .get(digest.as_slice())?
        .is_some()
    {
        return Ok(StatementOutcome::Duplicate);
    }
    let doc = stmt.doc_id;
    let key = doc.as_bytes().as_slice();
    let Some(rec) = t.doc(key)? else {
        return Ok(unknown_document(doc));
    };
    let mut st = state_in(t, &doc, &rec)?;
    let fx = match st.check(stmt, &digest) {
        Ok(fx) => fx,
        Err(r) => {
            let receipt_in_flight = awaits_receipt(&st, stmt)
                && t.deliveries
                    .open(t.txn)?
                    .get((key, stmt.from.as_str()))?
                    .map(|g| dec::<DeliveryRecord>(g.value()))
                    .transpose()?
                    .is_some_and(|d| matches!(d.state, DeliveryState::Pending));
            return Ok(refused(r, receipt_in_flight, stmt));
        }
    };
    let refusal = {
        let docs = t.docs.open(t.txn)?;
        let nodes = t.txn.open_table(NODES)?;
        effects_refused(
            &fx,
            &rec.sender,
            |named| {
                docs.get(named.as_bytes().as_slice())?
                    .map(|g| dec(g.value()))
                    .transpose()
            },
            |a| {
                nodes
                    .get(a.as_str())?
                    .map(|g| super::dec_node(g.value()))
                    .transpose()
            },
        )?
    };
    if let Some(refusal) = refusal {
        return Ok(refusal);
    }
    // Checked; from here on everything is written.
    let before = st.clone();
    st.apply(stmt, &digest);
    {
        let del = t.deliveries.open(t.txn)?;
        for (r, was, after) in changed_tracks(&before, &st) {
            let Some(g) = del.get((key, r.as_str()))? else {
                continue;
            };
            let d: DeliveryRecord = dec(g.value())?;
            count_business(stats, business, now_ms, r, &d, was, after);
        }
    }
    t.doc_states
        .open(t.txn)?
        .insert(key, enc(&st)?.as_slice())?;
    let seq = record_in(t, signed, stmt, now_ms, &stmt.to, Some(&digest))?;
    let mut wake = stmt.to.clone();
    if !fx.add_recipients.is_empty() {
        let added = enc(&Added {
            seq,
            added_ms: now_ms,
        })?;
        let pending = enc(&DeliveryRecord {
            state: DeliveryState::Pending,
            answered_ms: None,
        })?;
        let ad = t.added.open(t.txn)?;
        let del = t.deliveries.open(t.txn)?;
        let q = t.queue.open(t.txn)?;
        let ex = t.expiry.open(t.txn)?;
        for r in &fx.add_recipients {
            ad.insert((key, r.as_str()), added.as_slice())?;
            del.insert((key, r.as_str()), pending.as_slice())?;
            q.insert((r.as_str(), key), now_ms)?;
            ex.insert((now_ms, key, r.as_str()), ())?;
        }
        // Due from now on, in the period of the update (not of the document).
        crate::stats::on_added(stats, &rec.sender, &fx.add_recipients, now_ms);
        t.bump(&[("deliveries_queued", fx.add_recipients.len() as u64)])?;
        wake.extend(fx.add_recipients.iter().cloned());
    }
    t.bump(&[("statements_accepted", 1)])?;
    Ok(StatementOutcome::Accepted { seq, wake })
}

/// The one way a statement is stored, whatever its kind: appended to the global sequence and
/// the document's history, one relay queued per agency in `relay_to` (routed on document,
/// maker and addressee only), counted by kind (those agencies make on their own). `digest`, when given, makes a resubmission of
/// the same signed payload a duplicate (statements agencies send on their own; receipts and
/// hub statements are made once by construction). The caller has checked it.
pub(super) fn record_in(
    t: &mut HubTables<'_>,
    signed: &SignedStatement,
    stmt: &Statement,
    now_ms: u64,
    relay_to: &[AgencyId],
    digest: Option<&Digest>,
) -> Result<u64, StoreError> {
    let key = stmt.doc_id.as_bytes().as_slice();
    let seq = {
        let all = t.statements.open(t.txn)?;
        let seq = all.last()?.map(|(k, _)| k.value() + 1).unwrap_or(1);
        let stored = StoredStatement {
            signed: signed.clone(),
            accepted_ms: now_ms,
        };
        all.insert(seq, enc(&stored)?.as_slice())?;
        seq
    };
    t.doc_statements.open(t.txn)?.insert((key, seq), ())?;
    if let Some(d) = digest {
        t.statement_digests.open(t.txn)?.insert(d.as_slice(), seq)?;
    }
    if !relay_to.is_empty() {
        let relay = enc(&RelayRef {
            doc: stmt.doc_id,
            from: stmt.from.clone(),
        })?;
        let q = t.statement_relays.open(t.txn)?;
        for a in relay_to {
            q.insert((a.as_str(), seq), relay.as_slice())?;
        }
    }
    // Acceptances, receipts and notices are counted with the deliveries they end
    // (`documents_accepted`, `deliveries_*`); by kind here are what agencies say on their own.
    if !stmt.kind.is_automatic() {
        let k = t.kinds.open(t.txn)?;
        let label = stmt.kind.label();
        let n = k.get(label)?.map(|g| g.value()).unwrap_or(0);
        k.insert(label, n + 1)?;
    }
    Ok(seq)
}

/// Store the rule state of `doc` after applying a statement.
pub(super) fn put_doc_state(
    t: &mut HubTables<'_>,
    doc: &DocumentId,
    st: &DocState,
) -> Result<(), StoreError> {
    t.doc_states
        .open(t.txn)?
        .insert(doc.as_bytes().as_slice(), enc(st)?.as_slice())?;
    Ok(())
}

impl HubStore {
    /// Accept a verified statement: load the document's rule state, check the statement
    /// against it and its effects against the registry, apply it, append it to the history,
    /// queue one relay per addressee and create the deliveries an update adds, all in one
    /// write transaction (durable when this returns). `stmt` is `signed` decoded.
    pub async fn accept_statement(
        &self,
        signed: SignedStatement,
        stmt: Statement,
        now_ms: u64,
    ) -> Result<StatementOutcome, StoreError> {
        let stats = self.stats.clone();
        let business = self.business.clone();
        self.db
            .write_with::<HubSet, _, _>(move |t| {
                accept_in(t, &stats, &business, &signed, &stmt, now_ms)
            })
            .await
    }

    /// Up to `limit` statements to relay to `addressee`, in acceptance order, at most one per
    /// document: a document with a statement in `in_flight`, or with an earlier statement
    /// skipped in this scan, is skipped; a statement from R about D is held back while the
    /// delivery receipt relay (addressee, D, R) is still queued.
    pub fn statement_relays_for(
        &self,
        addressee: &AgencyId,
        limit: usize,
        in_flight: &HashSet<DocumentId>,
    ) -> Result<Vec<StatementRelay>, StoreError> {
        self.statement_relay_scan(addressee, limit, in_flight, false)
    }

    /// [`HubStore::statement_relays_for`] for a `poros/1` connection: only the hub's own
    /// statements (its notices, which the hub can sign again in that version's form); an
    /// agency's statement about a document holds back the later ones of that document.
    pub fn hub_statement_relays_for(
        &self,
        addressee: &AgencyId,
        limit: usize,
        in_flight: &HashSet<DocumentId>,
    ) -> Result<Vec<StatementRelay>, StoreError> {
        self.statement_relay_scan(addressee, limit, in_flight, true)
    }

    fn statement_relay_scan(
        &self,
        addressee: &AgencyId,
        limit: usize,
        in_flight: &HashSet<DocumentId>,
        only_hub: bool,
    ) -> Result<Vec<StatementRelay>, StoreError> {
        let r = self.db.read()?;
        let q = r.open_table(STATEMENT_RELAYS)?;
        // Opened for the first statement queued: most scans find none, and opening a table
        // costs more than looking into an empty range.
        let mut tables = None;
        // Documents with an earlier statement in this scan (besides those in flight).
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (n, e) in q
            .range((addressee.as_str(), 0)..=(addressee.as_str(), u64::MAX))?
            .enumerate()
        {
            if out.len() >= limit || n >= SCAN_MAX {
                break;
            }
            let (k, v) = e?;
            let seq = k.value().1;
            let rr: RelayRef = dec(v.value())?;
            // Whatever happens to this one, later statements of the document wait for it.
            if in_flight.contains(&rr.doc) || !seen.insert(rr.doc) {
                continue;
            }
            let (receipts, all) = match &tables {
                Some(t) => t,
                None => tables.insert((r.open_table(RELAYS)?, r.open_table(STATEMENTS)?)),
            };
            let gate = (
                addressee.as_str(),
                rr.doc.as_bytes().as_slice(),
                rr.from.as_str(),
            );
            if receipts.get(gate)?.is_some() || (only_hub && rr.from != Party::Hub) {
                continue;
            }
            let Some(g) = all.get(seq)? else {
                return Err(StoreError::Corrupt(format!(
                    "queued statement {seq} missing"
                )));
            };
            let s: StoredStatement = dec(g.value())?;
            out.push(StatementRelay {
                seq,
                doc: rr.doc,
                signed: s.signed,
            });
        }
        Ok(out)
    }

    /// `addressee` acknowledged (stored) statement `seq`, or refused it for good. Unhurried
    /// (it joins the next commit): until it is durable the relay stays in flight, and one
    /// lost to a crash is relayed again, which the addressee answers as held already.
    pub async fn statement_relay_done(
        &self,
        addressee: AgencyId,
        seq: u64,
        refused: bool,
    ) -> Result<(), StoreError> {
        self.db
            .write_unhurried_with::<HubSet, _, _>(move |t| {
                let gone = t
                    .statement_relays
                    .open(t.txn)?
                    .remove((addressee.as_str(), seq))?
                    .is_some();
                if gone {
                    let counter = if refused {
                        "statements_relay_refused"
                    } else {
                        "statements_relayed"
                    };
                    t.bump(&[(counter, 1)])?;
                }
                Ok(())
            })
            .await
    }

    /// Statements queued for relay, all addressees.
    pub fn statement_relay_depth(&self) -> Result<u64, StoreError> {
        use redb::ReadableTableMetadata;
        let r = self.db.read()?;
        Ok(r.open_table(STATEMENT_RELAYS)?.len()?)
    }

    /// Every statement accepted about `doc`, in acceptance order.
    pub fn statement_history(&self, doc: &DocumentId) -> Result<Vec<HistoryEntry>, StoreError> {
        let r = self.db.read()?;
        let idx = r.open_table(DOC_STATEMENTS)?;
        let all = r.open_table(STATEMENTS)?;
        let key = doc.as_bytes().as_slice();
        let mut out = Vec::new();
        for e in idx.range((key, 0)..=(key, u64::MAX))? {
            let (k, _) = e?;
            let seq = k.value().1;
            let Some(g) = all.get(seq)? else {
                return Err(StoreError::Corrupt(format!("statement {seq} missing")));
            };
            out.push(HistoryEntry::of(seq, dec(g.value())?)?);
        }
        Ok(out)
    }

    /// Pending deliveries for a `poros/1` connection: like [`HubStore::pending_for`], without
    /// those an update added (that version cannot be sent them), skipped inside the scan so
    /// any number of them never hides the deliveries it can take.
    pub fn pending_without_added(
        &self,
        recipient: &AgencyId,
        limit: usize,
        skip: &HashSet<DocumentId>,
    ) -> Result<Vec<super::Pending>, StoreError> {
        self.pending_scan(recipient, limit, skip, true)
    }

    /// The signed update that added `recipient` to `doc`, if an update did.
    pub fn added_by(
        &self,
        doc: &DocumentId,
        recipient: &AgencyId,
    ) -> Result<Option<SignedStatement>, StoreError> {
        let r = self.db.read()?;
        let ad = r.open_table(ADDED)?;
        let Some(g) = ad.get((doc.as_bytes().as_slice(), recipient.as_str()))? else {
            return Ok(None);
        };
        let a: Added = dec(g.value())?;
        let all = r.open_table(STATEMENTS)?;
        let Some(s) = all.get(a.seq)? else {
            return Err(StoreError::Corrupt(format!("update {} missing", a.seq)));
        };
        Ok(Some(dec::<StoredStatement>(s.value())?.signed))
    }

    /// Accepted statements by kind label.
    pub fn statement_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(KINDS)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (k, v) = e?;
            out.push((k.value().to_string(), v.value()));
        }
        Ok(out)
    }

    /// The documents with statements queued for `addressee` (for operators and tests).
    pub fn statement_relay_docs(
        &self,
        addressee: &AgencyId,
    ) -> Result<Vec<DocumentId>, StoreError> {
        let r = self.db.read()?;
        let q = r.open_table(STATEMENT_RELAYS)?;
        let mut out = Vec::new();
        for e in q.range((addressee.as_str(), 0)..=(addressee.as_str(), u64::MAX))? {
            let (_, v) = e?;
            out.push(dec::<RelayRef>(v.value())?.doc);
        }
        Ok(out)
    }
}

/// When the delivery of `doc` to `recipient` an update added fell due, if an update added it.
pub(super) fn added_due(
    t: &AddedTable,
    doc: &[u8],
    recipient: &str,
) -> Result<Option<u64>, StoreError> {
    t.get((doc, recipient))?
        .map(|g| dec::<Added>(g.value()).map(|a| a.added_ms))
        .transpose()
}

/// Row counts of the statement tables (see [`super::transfer`]).
pub(super) fn sizes(
    r: &redb::ReadTransaction,
    m: &mut std::collections::BTreeMap<super::transfer::Table, u64>,
) -> Result<(), StoreError> {
    use super::transfer::Table;
    use redb::ReadableTableMetadata;
    m.insert(Table::Statements, r.open_table(STATEMENTS)?.len()?);
    m.insert(
        Table::StatementRelays,
        r.open_table(STATEMENT_RELAYS)?.len()?,
    );
    m.insert(
        Table::StatementDigests,
        r.open_table(STATEMENT_DIGESTS)?.len()?,
    );
    m.insert(Table::DocStates, r.open_table(DOC_STATES)?.len()?);
    m.insert(Table::AddedRecipients, r.open_table(ADDED)?.len()?);
    m.insert(Table::StatementKinds, r.open_table(KINDS)?.len()?);
    Ok(())
}

/// The statement path's tables as neutral rows (see [`super::transfer`]), in key order.
pub(super) fn export(
    r: &redb::ReadTransaction,
    out: &mut super::transfer::RowSink<'_>,
) -> Result<(), StoreError> {
    use super::transfer::{doc_key, Row, Table};
    for e in r.open_table(STATEMENTS)?.iter()? {
        let (k, v) = e?;
        let s: StoredStatement = dec(v.value())?;
        let stmt = s
            .signed
            .statement()
            .map_err(|e| StoreError::Corrupt(format!("statement {}: {e}", k.value())))?;
        out.row(
            Table::Statements,
            Row::Statement {
                seq: k.value(),
                doc: stmt.doc_id.0,
                accepted_ms: s.accepted_ms,
                record: v.value().to_vec(),
            },
        )?;
    }
    for e in r.open_table(STATEMENT_RELAYS)?.iter()? {
        let (k, v) = e?;
        let (addressee, seq) = k.value();
        let rr: RelayRef = dec(v.value())?;
        out.row(
            Table::StatementRelays,
            Row::StatementRelay {
                addressee: addressee.to_string(),
                seq,
                doc: rr.doc.0,
                from: rr.from.as_str().to_string(),
            },
        )?;
    }
    for e in r.open_table(STATEMENT_DIGESTS)?.iter()? {
        let (k, v) = e?;
        out.row(
            Table::StatementDigests,
            Row::StatementDigest {
                digest: k.value().to_vec(),
                seq: v.value(),
            },
        )?;
    }
    for e in r.open_table(DOC_STATES)?.iter()? {
        let (k, v) = e?;
        out.row(
            Table::DocStates,
            Row::DocState {
                doc: doc_key(k.value())?,
                state: v.value().to_vec(),
            },
        )?;
    }
    for e in r.open_table(ADDED)?.iter()? {
        let (k, v) = e?;
        let (doc, rcpt) = k.value();
        let a: Added = dec(v.value())?;
        out.row(
            Table::AddedRecipients,
            Row::Added {
                doc: doc_key(doc)?,
                recipient: rcpt.to_string(),
                seq: a.seq,
                added_ms: a.added_ms,
            },
        )?;
    }
    for e in r.open_table(KINDS)?.iter()? {
        let (k, v) = e?;
        out.row(
            Table::StatementKinds,
            Row::Count {
                name: k.value().to_string(),
                value: v.value(),
            },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::key;
    use super::super::{AcceptOutcome, Answer, AnswerOutcome, BodyAt};
    use super::*;
    use poros_protocol::{
        Acceptance, BusinessStatus, Change, Envelope, Metadata, Outcome, Receipt, SignedEnvelope,
        SignedReceipt, SigningKey, Staff, StatementKind,
    };
    use poros_store::Db;
    use poros_store::ReceivedBody;

    const G: &str = "000.00.00.G01";
    const H1: &str = "000.00.00.H01";
    const H2: &str = "000.00.00.H02";
    const H3: &str = "000.00.00.H03";
    const P: &str = "000.00.00.H09";

    fn a(s: &str) -> AgencyId {
        AgencyId::parse(s).unwrap()
    }

    struct T {
        _dir: tempfile::TempDir,
        store: HubStore,
        rt: tokio::runtime::Runtime,
        k: SigningKey,
    }

    fn setup() -> T {
        let dir = tempfile::tempdir().unwrap();
        let store = HubStore::open(Db::open(&dir.path().join("h.redb")).unwrap()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for (code, state) in [
            (G, NodeState::Active),
            (H1, NodeState::Active),
            (H2, NodeState::Active),
            (H3, NodeState::Active),
            (P, NodeState::Pending),
        ] {
            let mut n = NodeRecord::pending(&a(code), code, 1);
            n.state = state;
            rt.block_on(store.put_node(n)).unwrap();
        }
        T {
            _dir: dir,
            store,
            rt,
            k: key(),
        }
    }

    impl T {
        /// A document from G to H1 and H2, accepted at 5 000 ms; H1 has signed its receipt.
        fn doc(&self, n: u8) -> DocumentId {
            let body = [n; 8];
            let env = Envelope {
                id: DocumentId::new_v7(1000 + n as u64, [n; 10]),
                sender: a(G),
                recipients: vec![a(H1), a(H2)],
                meta: Metadata {
                    subject: "s".into(),
                    ..Default::default()
                },
                created_ms: 1,
                body_len: 8,
                body_sha256: poros_protocol::sha256(&body),
                ext: Default::default(),
            };
            let acc = Acceptance {
                doc_id: env.id,
                sender: env.sender.clone(),
                recipients: env.recipients.clone(),
                body_sha256: env.body_sha256,
                body_len: 8,
                accepted_ms: 5_000,
            };
            let rec = DocRecord {
                envelope: SignedEnvelope::sign(&env, &self.k, b"c").unwrap(),
                acceptance: SignedStatement::sign(&acc.as_statement(), &self.k, b"c")
                    .unwrap()
                    .0,
                sender: a(G),
                recipients: env.recipients.clone(),
                body_sha256: env.body_sha256,
                body_len: 8,
                body_at: BodyAt::Inline,
                accepted_ms: 5_000,
            };
            let out = self
                .rt
                .block_on(
                    self.store
                        .accept(rec.clone(), ReceivedBody::inline(body.to_vec())),
                )
                .unwrap();
            assert!(matches!(out, AcceptOutcome::Stored));
            self.deliver(env.id, H1, 6_000);
            env.id
        }

        fn deliver(&self, doc: DocumentId, who: &str, at: u64) {
            let r = Receipt {
                doc_id: doc,
                sender: a(G),
                recipient: a(who),
                body_sha256: [0; 32],
                outcome: Outcome::Delivered,
                time_ms: at,
            };
            // The `poros/1` form, whose relay gates the recipient's statements (the current
            // form is ordered by the statement path itself; see the store's tests).
            let st = DeliveryState::Delivered(SignedReceipt::sign(&r, &self.k, b"c").unwrap());
            let outcome = self
                .rt
                .block_on(
                    self.store
                        .record_answer(doc, a(who), Answer::Legacy(st), at),
                )
                .unwrap();
            assert_eq!(outcome, AnswerOutcome::Recorded { sender: a(G) });
        }

        fn sign(
            &self,
            doc: DocumentId,
            from: &str,
            to: &[&str],
            kind: StatementKind,
        ) -> SignedStatement {
            let s = Statement {
                doc_id: doc,
                from: a(from).into(),
                to: to.iter().map(|t| a(t)).collect(),
                kind,
                staff: Staff {
                    department: "Văn thư".into(),
                    name: "A".into(),
                    email: None,
                    phone: None,
                },
                note: None,
                time_ms: 7_000,
            };
            SignedStatement::sign(&s, &self.k, b"c").unwrap()
        }

        fn submit(&self, s: &SignedStatement) -> StatementOutcome {
            let stmt = s.statement().unwrap();
            self.rt
                .block_on(self.store.accept_statement(s.clone(), stmt, 8_000))
                .unwrap()
        }

        fn refused_code(&self, s: &SignedStatement) -> ReasonCode {
            match self.submit(s) {
                StatementOutcome::Refused(StatementRefusal::Rule(r)) => r.code,
                o => panic!("expected a refusal, got {o:?}"),
            }
        }

        fn relays(&self, to: &str, in_flight: &[DocumentId]) -> Vec<(u64, DocumentId)> {
            let f = in_flight.iter().copied().collect();
            self.store
                .statement_relays_for(&a(to), 10, &f)
                .unwrap()
                .into_iter()
                .map(|r| (r.seq, r.doc))
                .collect()
        }
    }

    fn status(s: BusinessStatus) -> StatementKind {
        StatementKind::Status {
            status: s,
            reason: None,
        }
    }

    /// How many documents have a stored rule state.
    fn stored_states(t: &T) -> u64 {
        t.store.export_sizes().unwrap()[&super::super::transfer::Table::DocStates]
    }

    /// `who`'s receipt for `doc` as a signed statement (the current form).
    fn receipt(t: &T, doc: DocumentId, who: &str, n: u8) -> AnswerOutcome {
        let r = Receipt {
            doc_id: doc,
            sender: a(G),
            recipient: a(who),
            body_sha256: poros_protocol::sha256(&[n; 8]),
            outcome: Outcome::Delivered,
            time_ms: 7_000,
        };
        let answer = super::super::tests::said(&t.k, r.as_statement());
        t.rt.block_on(t.store.record_answer(doc, a(who), answer, 7_000))
            .unwrap()
    }

    #[test]
    fn a_rule_state_is_stored_only_once_a_statement_changes_it() {
        let t = setup();
        let accepted = |s: &SignedStatement| {
            let out = t.submit(s);
            assert!(matches!(out, StatementOutcome::Accepted { .. }), "{out:?}");
        };
        // Acceptance and receipts (either form) store none: it is the fold of the records.
        let d = t.doc(1);
        assert_eq!(stored_states(&t), 0);
        let recorded = AnswerOutcome::Recorded { sender: a(G) };
        assert_eq!(receipt(&t, d, H2, 1), recorded);
        assert_eq!(stored_states(&t), 0);
        // The fold knows H2 holds it: its status is accepted, and now the state is stored.
        accepted(&t.sign(d, H2, &[G], status(BusinessStatus::Registered)));
        assert_eq!(stored_states(&t), 1);
        // Once stored, a receipt updates it: H2's status after its receipt is accepted only if
        // the receipt reached the stored state.
        let e = t.doc(2);
        accepted(&t.sign(e, H1, &[G], status(BusinessStatus::Registered)));
        assert_eq!(stored_states(&t), 2);
        assert_eq!(receipt(&t, e, H2, 2), recorded);
        accepted(&t.sign(e, H2, &[G], status(BusinessStatus::Registered)));
        // And the stored state is the rules' whole state: 01 cannot follow 03 for H1.
        let back = t.sign(e, H1, &[G], status(BusinessStatus::Arrived));
        assert_eq!(t.refused_code(&back), ReasonCode::IllegalTransition);
    }

    #[test]
    fn checked_and_stored_once_and_refusals_store_nothing() {
        let t = setup();
        let d = t.doc(1);
        // H2's receipt is not recorded yet: retried (its agent may have stored the document
        // before the hub stored the receipt), not refused for good; nothing stored.
        let early = t.sign(d, H2, &[G], status(BusinessStatus::Registered));
        match t.submit(&early) {
            StatementOutcome::Refused(r @ StatementRefusal::ReceiptNotYetRecorded(_)) => {
                assert_eq!(r.refusal().code, RefusalCode::Unavailable);
                assert!(r.refusal().code.is_retryable());
            }
            o => panic!("expected a retry, got {o:?}"),
        }
        // Unknown document; a recipient's change.
        let unknown = DocumentId::new_v7(99, [9; 10]);
        let c = t.refused_code(&t.sign(unknown, H1, &[G], status(BusinessStatus::Arrived)));
        assert_eq!(c, ReasonCode::UnknownDocument);
        let takeback = StatementKind::Change {
            change: Change::TakeBack,
            reason: "error".into(),
        };
        let c = t.refused_code(&t.sign(d, H1, &[H2], takeback));
        assert_eq!(c, ReasonCode::IllegalTransition);
        // Nothing but the hub's acceptance, the first statement of every history.
        let h = t.store.statement_history(&d).unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].statement.kind.label(), "hub_accepted");

        let reg = t.sign(d, H1, &[G], status(BusinessStatus::Registered));
        assert!(matches!(t.submit(&reg), StatementOutcome::Accepted { .. }));
        // Same payload again (a retry after a lost Ack): acknowledged, not stored twice.
        assert_eq!(t.submit(&reg), StatementOutcome::Duplicate);
        // Applied in the same transaction: 01 cannot follow 03 now.
        let c = t.refused_code(&t.sign(d, H1, &[G], status(BusinessStatus::Arrived)));
        assert_eq!(c, ReasonCode::IllegalTransition);
        let h = t.store.statement_history(&d).unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[1].digest, reg.payload_digest());
        let counts = t.store.statement_counts().unwrap();
        assert_eq!(counts, vec![("registered".to_string(), 1)]);
    }

    #[test]
    fn statements_wait_for_the_receipt_and_go_one_per_document_in_order() {
        let t = setup();
        let (d1, d2) = (t.doc(1), t.doc(2));
        for d in [d1, d2] {
            for s in [BusinessStatus::Registered, BusinessStatus::Assigned] {
                let st = t.sign(d, H1, &[G], status(s));
                assert!(matches!(t.submit(&st), StatementOutcome::Accepted { .. }));
            }
        }
        // The receipt relays (G, d, H1) are still queued: the sender learns "delivered" first.
        assert!(t.relays(G, &[]).is_empty());
        t.rt.block_on(t.store.relay_done(a(G), d1, a(H1))).unwrap();
        // One per document, the first accepted first.
        let r = t.relays(G, &[]);
        assert_eq!(r.len(), 1);
        let (first, doc) = r[0];
        assert_eq!(doc, d1);
        assert!(
            t.relays(G, &[d1]).is_empty(),
            "in flight: nothing else of d1"
        );
        t.rt.block_on(t.store.relay_done(a(G), d2, a(H1))).unwrap();
        assert_eq!(
            t.relays(G, &[]).iter().map(|r| r.1).collect::<Vec<_>>(),
            [d1, d2]
        );
        t.rt.block_on(t.store.statement_relay_done(a(G), first, false))
            .unwrap();
        let r = t.relays(G, &[]);
        assert_eq!(r.len(), 2);
        assert!(
            r[0].0 > first && r[0].1 == d1,
            "the next statement of d1: {r:?}"
        );
        let h: Vec<_> = t.store.statement_history(&d1).unwrap();
        // After the hub's acceptance and the first statement.
        assert_eq!(h.iter().map(|e| e.seq).collect::<Vec<_>>()[2], r[0].0);
    }

    #[test]
    fn added_recipients_get_a_delivery_counted_like_any_other() {
        let t = setup();
        let d = t.doc(1);
        let update = |add: &str| StatementKind::Change {
            change: Change::Update {
                add: vec![a(add)],
                remove: vec![],
                meta: None,
            },
            reason: "also for H03".into(),
        };
        match t.submit(&t.sign(d, G, &[H1], update(P))) {
            StatementOutcome::Refused(r) => assert_eq!(r.label(), "unknown_recipient"),
            o => panic!("{o:?}"),
        }
        let up = t.sign(d, G, &[H1], update(H3));
        let StatementOutcome::Accepted { wake, .. } = t.submit(&up) else {
            panic!("update refused")
        };
        assert_eq!(wake, vec![a(H1), a(H3)]);
        let none = HashSet::new();
        assert_eq!(t.store.pending_for(&a(H3), 10, &none).unwrap()[0].doc, d);
        // A poros/1 connection is never offered it; the envelope's recipients still are.
        assert!(t
            .store
            .pending_without_added(&a(H3), 10, &none)
            .unwrap()
            .is_empty());
        assert_eq!(
            t.store.pending_without_added(&a(H2), 10, &none).unwrap()[0].doc,
            d
        );
        assert_eq!(t.store.added_by(&d, &a(H3)).unwrap(), Some(up));
        assert_eq!(t.store.added_by(&d, &a(H2)).unwrap(), None);
        // A body found damaged holds the added delivery too, and the repair requeues it.
        let digest = t.store.doc(&d).unwrap().unwrap().body_sha256;
        t.rt.block_on(t.store.hold_damaged(d, "test".into(), 8_200))
            .unwrap();
        assert!(t.store.pending_for(&a(H3), 10, &none).unwrap().is_empty());
        let held: Vec<_> = t
            .store
            .held_for(&digest)
            .unwrap()
            .into_iter()
            .map(|h| h.recipient)
            .collect();
        assert!(held.contains(&a(H3)), "held: {held:?}");
        let body = t.store.inline_body(&digest).unwrap();
        let woken = t.rt.block_on(t.store.body_repaired(digest, body)).unwrap();
        assert!(woken.contains(&a(H3)), "requeued: {woken:?}");
        assert_eq!(t.store.pending_for(&a(H3), 10, &none).unwrap()[0].doc, d);
        // The envelope's recipients have both answered, the added one not yet: the body stays.
        t.deliver(d, H2, 8_500);
        t.rt.block_on(t.store.release_bodies(u64::MAX, 10)).unwrap();
        assert_eq!(t.store.doc(&d).unwrap().unwrap().body_at, BodyAt::Inline);
        t.deliver(d, H3, 9_000);
        t.rt.block_on(t.store.release_bodies(u64::MAX, 10)).unwrap();
        assert_eq!(t.store.doc(&d).unwrap().unwrap().body_at, BodyAt::Gone);

        // Live counters (every period of 1970) equal the recount, with H03's delivery due.
        let recount = t.store.recount(3_600_000).unwrap();
        let live = {
            let r = t.store.db().read().unwrap();
            crate::stats::sums(&r, &["Y1970".to_string()], None).unwrap()
        };
        for (scope, metrics) in &recount {
            for (m, v) in metrics {
                assert_eq!(live[scope].get(m), Some(v), "{scope} {m}");
            }
        }
        assert_eq!(recount[G]["out_due"], 3);
        assert_eq!(recount[H3]["in_due"], 1);
        assert_eq!(recount[H3]["in_ontime"], 1);
    }
}
