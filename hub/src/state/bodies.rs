//! Durable state of damaged bodies: deliveries held while a body is repaired from its sender,
//! the damage records, and the re-upload requests waiting for each sender.
//!
//! Tables:
//! - `held`: (recipient, doc) → accepted time — deliveries taken out of `queue` because the
//!   body is damaged (they stay pending and still expire);
//! - `damaged_bodies`: body digest → [`DamageRecord`];
//! - `repairs`: (sender, doc) → body digest — one re-upload request per damaged body, read by
//!   the sender's pusher like the relays.
//!
//! Counters (durable, in `/metrics` as `poros_<name>_total`): `bodies_checked` (by scrubs),
//! `bodies_damaged`, `body_repairs_requested`, `bodies_repaired`, `bodies_lost` and, per
//! delivery, `deliveries_lost`.

use super::tables::{HubSet, HubTables};
use super::{answer_in, bump, dec, enc, DocRecord, HubStore, BODY_REFS, DOCS, INLINE, QUEUE};
use poros_protocol::{AgencyId, Digest, DocumentId};
use poros_store::StoreError;
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

pub(super) const HELD: TableDefinition<(&str, &[u8]), u64> = TableDefinition::new("held");
const DAMAGED: TableDefinition<&[u8], &[u8]> = TableDefinition::new("damaged_bodies");
const REPAIRS: TableDefinition<(&str, &[u8]), &[u8]> = TableDefinition::new("repairs");

/// A body found missing or damaged, waiting for its sender to upload it again.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DamageRecord {
    /// When first found, Unix ms.
    pub found_ms: u64,
    /// What was found (missing, wrong length, wrong hash), for operators.
    pub what: String,
    /// Documents using this body whose deliveries are held; the first one's sender is asked.
    pub docs: Vec<DocumentId>,
    /// Failed re-upload attempts so far.
    pub attempts: u32,
}

/// A delivery held for a damaged body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldDelivery {
    /// Document.
    pub doc: DocumentId,
    /// Its sender.
    pub sender: AgencyId,
    /// The recipient waiting.
    pub recipient: AgencyId,
}

/// This area's tables, for a snapshot of the store (see `state::snapshot`).
pub(super) fn snapshot_tables() -> Vec<Box<dyn poros_store::SnapshotTable>> {
    vec![
        Box::new(poros_store::Typed(HELD)),
        Box::new(poros_store::Typed(DAMAGED)),
        Box::new(poros_store::Typed(REPAIRS)),
    ]
}

pub(super) fn create_tables(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(HELD)?;
    txn.open_table(DAMAGED)?;
    txn.open_table(REPAIRS)?;
    Ok(())
}

/// Drop a delivery from the holding table (it ended by expiry or loss).
pub(super) fn unhold(
    t: &mut HubTables<'_>,
    recipient: &AgencyId,
    doc: &[u8],
) -> Result<(), StoreError> {
    t.held.open(t.txn)?.remove((recipient.as_str(), doc))?;
    Ok(())
}

fn doc_in(txn: &redb::WriteTransaction, doc: &DocumentId) -> Result<Option<DocRecord>, StoreError> {
    let docs = txn.open_table(DOCS)?;
    let v = docs.get(doc.as_bytes().as_slice())?;
    v.map(|g| dec(g.value())).transpose()
}

fn agency(s: &str) -> Result<AgencyId, StoreError> {
    AgencyId::parse(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn doc_id(b: &[u8]) -> Result<DocumentId, StoreError> {
    Ok(DocumentId::from_bytes(
        b.try_into()
            .map_err(|_| StoreError::Corrupt("document key".into()))?,
    ))
}

impl HubStore {
    /// Record that `doc`'s body is missing or damaged: its pending deliveries leave the queue
    /// (held, still pending), and, unless this body is already being repaired, a re-upload
    /// request is queued for the sender. Returns the sender when a new request was queued.
    pub async fn hold_damaged(
        &self,
        doc: DocumentId,
        what: String,
        now_ms: u64,
    ) -> Result<Option<AgencyId>, StoreError> {
        self.db
            .write(move |txn| {
                let Some(rec) = doc_in(txn, &doc)? else {
                    return Ok(None);
                };
                let key = doc.as_bytes().as_slice();
                // Deliveries an update added are held too.
                let recipients = super::statements::recipients_of(txn, key, &rec)?;
                {
                    let mut q = txn.open_table(QUEUE)?;
                    let mut held = txn.open_table(HELD)?;
                    for r in &recipients {
                        let at = q.remove((r.as_str(), key))?.map(|g| g.value());
                        if let Some(at) = at {
                            held.insert((r.as_str(), key), at)?;
                        }
                    }
                }
                let digest = rec.body_sha256.as_slice();
                let mut damaged = txn.open_table(DAMAGED)?;
                let cur = damaged.get(digest)?.map(|g| g.value().to_vec());
                match cur {
                    Some(bytes) => {
                        let mut d: DamageRecord = dec(&bytes)?;
                        if !d.docs.contains(&doc) {
                            d.docs.push(doc);
                            damaged.insert(digest, enc(&d)?.as_slice())?;
                        }
                        Ok(None)
                    }
                    None => {
                        let d = DamageRecord {
                            found_ms: now_ms,
                            what: what.clone(),
                            docs: vec![doc],
                            attempts: 0,
                        };
                        damaged.insert(digest, enc(&d)?.as_slice())?;
                        drop(damaged);
                        txn.open_table(REPAIRS)?
                            .insert((rec.sender.as_str(), key), digest)?;
                        bump(txn, &[("bodies_damaged", 1), ("body_repairs_requested", 1)])?;
                        Ok(Some(rec.sender.clone()))
                    }
                }
            })
            .await
    }

    /// Re-upload requests waiting for `sender`, up to `limit`, skipping those in flight.
    pub fn repairs_for(
        &self,
        sender: &AgencyId,
        limit: usize,
        skip: &HashSet<DocumentId>,
    ) -> Result<Vec<(DocumentId, Digest)>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(REPAIRS)?;
        let lo: &[u8] = &[];
        let hi: &[u8] = &[0xff; 17];
        let mut out = Vec::new();
        for e in t.range((sender.as_str(), lo)..(sender.as_str(), hi))? {
            let (k, v) = e?;
            let doc = doc_id(k.value().1)?;
            if skip.contains(&doc) {
                continue;
            }
            let digest: Digest = v
                .value()
                .try_into()
                .map_err(|_| StoreError::Corrupt("repair digest".into()))?;
            out.push((doc, digest));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// The damage record of a body, if it is damaged.
    pub fn damage(&self, digest: &Digest) -> Result<Option<DamageRecord>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(DAMAGED)?;
        let v = t.get(digest.as_slice())?;
        v.map(|g| dec(g.value())).transpose()
    }

    /// The body was stored again intact (for an inline body, `inline` holds it and is written
    /// in this commit; a file was already made durable): held deliveries go back to their
    /// queues. Returns the recipients to wake.
    pub async fn body_repaired(
        &self,
        digest: Digest,
        inline: Option<Vec<u8>>,
    ) -> Result<Vec<AgencyId>, StoreError> {
        self.db
            .write(move |txn| {
                if let Some(b) = &inline {
                    txn.open_table(INLINE)?
                        .insert(digest.as_slice(), b.as_slice())?;
                }
                let Some(d) = txn
                    .open_table(DAMAGED)?
                    .remove(digest.as_slice())?
                    .map(|g| dec::<DamageRecord>(g.value()))
                    .transpose()?
                else {
                    return Ok(Vec::new());
                };
                let mut wake = Vec::new();
                let mut q = txn.open_table(QUEUE)?;
                let mut held = txn.open_table(HELD)?;
                let mut repairs = txn.open_table(REPAIRS)?;
                for doc in &d.docs {
                    let Some(rec) = doc_in(txn, doc)? else {
                        continue;
                    };
                    let key = doc.as_bytes().as_slice();
                    repairs.remove((rec.sender.as_str(), key))?;
                    for r in &super::statements::recipients_of(txn, key, &rec)? {
                        let at = held.remove((r.as_str(), key))?.map(|g| g.value());
                        if let Some(at) = at {
                            q.insert((r.as_str(), key), at)?;
                            wake.push(r.clone());
                        }
                    }
                }
                drop((q, held, repairs));
                bump(txn, &[("bodies_repaired", 1)])?;
                Ok(wake)
            })
            .await
    }

    /// A re-upload attempt failed; returns the number of failed attempts so far.
    pub async fn repair_failed(&self, digest: Digest) -> Result<u32, StoreError> {
        self.db
            .write(move |txn| {
                let mut t = txn.open_table(DAMAGED)?;
                let cur = t.get(digest.as_slice())?.map(|g| g.value().to_vec());
                let Some(bytes) = cur else { return Ok(0) };
                let mut d: DamageRecord = dec(&bytes)?;
                d.attempts += 1;
                t.insert(digest.as_slice(), enc(&d)?.as_slice())?;
                Ok(d.attempts)
            })
            .await
    }

    /// Deliveries held for a damaged body.
    pub fn held_for(&self, digest: &Digest) -> Result<Vec<HeldDelivery>, StoreError> {
        let Some(d) = self.damage(digest)? else {
            return Ok(Vec::new());
        };
        let r = self.db.read()?;
        let held = r.open_table(HELD)?;
        let docs = r.open_table(DOCS)?;
        let mut out = Vec::new();
        for doc in &d.docs {
            let key = doc.as_bytes().as_slice();
            let Some(rec) = docs
                .get(key)?
                .map(|g| dec::<DocRecord>(g.value()))
                .transpose()?
            else {
                continue;
            };
            for rcpt in &super::statements::recipients_read(&r, key, &rec)? {
                if held.get((rcpt.as_str(), key))?.is_some() {
                    out.push(HeldDelivery {
                        doc: *doc,
                        sender: rec.sender.clone(),
                        recipient: rcpt.clone(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// The body cannot be repaired: each held delivery ends with its hub-signed notice
    /// statement (relayed to the sender like an expiry), and the damage record and requests
    /// go. Returns the senders to wake.
    pub async fn body_lost(
        &self,
        digest: Digest,
        notices: Vec<(HeldDelivery, super::Answer)>,
        now_ms: u64,
    ) -> Result<Vec<AgencyId>, StoreError> {
        let on_time = self.on_time_ms;
        let stats = self.stats.clone();
        // Through the exchange's tables, as the answers it records (`answer_in`) are.
        self.db
            .write_with::<HubSet, _, _>(move |t| {
                let mut wake = Vec::new();
                for (h, notice) in &notices {
                    let held = t
                        .held
                        .open(t.txn)?
                        .get((h.recipient.as_str(), h.doc.as_bytes().as_slice()))?
                        .is_some();
                    if !held {
                        continue;
                    }
                    let outcome =
                        answer_in(t, &stats, h.doc, &h.recipient, notice, now_ms, on_time)?;
                    if let super::AnswerOutcome::Recorded { sender } = outcome {
                        wake.push(sender);
                    }
                }
                let removed = t
                    .txn
                    .open_table(DAMAGED)?
                    .remove(digest.as_slice())?
                    .map(|g| dec::<DamageRecord>(g.value()))
                    .transpose()?;
                if let Some(d) = removed {
                    let mut repairs = t.txn.open_table(REPAIRS)?;
                    for doc in &d.docs {
                        if let Some(rec) = t.doc(doc.as_bytes())? {
                            repairs.remove((rec.sender.as_str(), doc.as_bytes().as_slice()))?;
                        }
                    }
                    drop(repairs);
                    t.bump(&[("bodies_lost", 1)])?;
                }
                Ok(wake)
            })
            .await
    }

    /// Deliveries held for `recipient` while a body is repaired.
    pub fn held_count(&self, recipient: Option<&AgencyId>) -> Result<u64, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(HELD)?;
        let Some(a) = recipient else {
            return Ok(t.len()?);
        };
        let lo: &[u8] = &[];
        let hi: &[u8] = &[0xff; 17];
        let mut n = 0;
        for e in t.range((a.as_str(), lo)..(a.as_str(), hi))? {
            e?;
            n += 1;
        }
        Ok(n)
    }

    /// Live bodies (those some document still references) after `after`, in digest order,
    /// with whether each is stored inline; at most `limit`.
    pub fn live_bodies(
        &self,
        after: Option<Digest>,
        limit: usize,
    ) -> Result<Vec<(Digest, bool)>, StoreError> {
        let r = self.db.read()?;
        let refs = r.open_table(BODY_REFS)?;
        let inline = r.open_table(INLINE)?;
        let mut out = Vec::new();
        let lo = after.unwrap_or([0; 32]);
        for e in refs.range(lo.as_slice()..)? {
            let (k, _) = e?;
            let digest: Digest = k
                .value()
                .try_into()
                .map_err(|_| StoreError::Corrupt("body digest".into()))?;
            if after == Some(digest) {
                continue;
            }
            out.push((digest, inline.get(digest.as_slice())?.is_some()));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// For each of `digests`, the documents whose body it is and not yet removed (scans every
    /// document; used by the scrub only when it found damage).
    pub fn docs_using(
        &self,
        digests: &HashSet<Digest>,
    ) -> Result<HashMap<Digest, Vec<DocumentId>>, StoreError> {
        let r = self.db.read()?;
        let docs = r.open_table(DOCS)?;
        let mut out: HashMap<Digest, Vec<DocumentId>> = HashMap::new();
        for e in docs.iter()? {
            let (k, v) = e?;
            let rec: DocRecord = dec(v.value())?;
            if rec.body_at != super::BodyAt::Gone && digests.contains(&rec.body_sha256) {
                out.entry(rec.body_sha256)
                    .or_default()
                    .push(doc_id(k.value())?);
            }
        }
        Ok(out)
    }

    /// Count bodies checked by a scrub.
    pub async fn count_checked(&self, n: u64) -> Result<(), StoreError> {
        self.db
            .write(move |txn| bump(txn, &[("bodies_checked", n)]))
            .await
    }

    /// Senders with re-upload requests waiting (to wake their pushers).
    pub fn repair_senders(&self) -> Result<Vec<AgencyId>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(REPAIRS)?;
        let mut out: Vec<AgencyId> = Vec::new();
        for e in t.iter()? {
            let (k, _) = e?;
            let a = agency(k.value().0)?;
            if out.last() != Some(&a) {
                out.push(a);
            }
        }
        Ok(out)
    }
}

/// The deliveries held for body repairs: (recipient, doc) → when each fell due.
pub(super) fn held_rows(
    r: &redb::ReadTransaction,
) -> Result<std::collections::BTreeMap<(String, Vec<u8>), u64>, StoreError> {
    let mut out = std::collections::BTreeMap::new();
    for e in r.open_table(HELD)?.iter()? {
        let (k, v) = e?;
        let (rcpt, doc) = k.value();
        out.insert((rcpt.to_string(), doc.to_vec()), v.value());
    }
    Ok(out)
}

/// Row counts of the repair tables (see [`super::transfer`]).
pub(super) fn sizes(
    r: &redb::ReadTransaction,
    m: &mut std::collections::BTreeMap<super::transfer::Table, u64>,
) -> Result<(), StoreError> {
    use super::transfer::Table;
    m.insert(Table::DamagedBodies, r.open_table(DAMAGED)?.len()?);
    m.insert(Table::Repairs, r.open_table(REPAIRS)?.len()?);
    Ok(())
}

/// The repair area's tables as neutral rows (see [`super::transfer`]), in key order; its
/// held deliveries are listed with the queues ([`held_rows`]).
pub(super) fn export(
    r: &redb::ReadTransaction,
    out: &mut super::transfer::RowSink<'_>,
) -> Result<(), StoreError> {
    use super::transfer::{doc_key, Row, Table};
    for e in r.open_table(DAMAGED)?.iter()? {
        let (k, v) = e?;
        let d: DamageRecord = dec(v.value())?;
        out.row(
            Table::DamagedBodies,
            Row::Damaged {
                digest: k.value().to_vec(),
                found_ms: d.found_ms,
                what: d.what,
                docs: d.docs.iter().map(|d| d.0).collect(),
                attempts: d.attempts,
            },
        )?;
    }
    for e in r.open_table(REPAIRS)?.iter()? {
        let (k, v) = e?;
        let (sender, doc) = k.value();
        out.row(
            Table::Repairs,
            Row::Repair {
                sender: sender.to_string(),
                doc: doc_key(doc)?,
                digest: v.value().to_vec(),
            },
        )?;
    }
    Ok(())
}
