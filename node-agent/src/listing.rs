//! Cursor pagination over the agent's listings (outbox, inbox, quarantine, receipts).
//! Owns the page-size rule, the cursor format and the page reads: range scans from the cursor
//! in one read snapshot, never the whole table.

use crate::state::statements::listing_extras;
use crate::state::{dec, id_of, AgentStore, InRecord, OutRecord, RecipientStatus};
use crate::state::{INBOX, OUTBOX, OUT_STATUS, QUARANTINE};
use poros_protocol::{AgencyId, DocState, DocumentId};
use poros_store::StoreError;
use redb::ReadTransaction;

pub use poros_protocol::page::{page_size, PageError, DEFAULT_PAGE, MAX_PAGE};

/// A receipts page looks at most this many (document, recipient) rows per item asked for, so
/// a page over documents still waiting for answers is bounded work too; it may then hold
/// fewer items than asked, and `next` says where to go on.
const RECEIPT_SCAN_FACTOR: usize = 8;

/// Where a listing continues: after this document (and, in the receipts listing, after this
/// recipient of it). Clients treat its text form as opaque.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    doc: DocumentId,
    recipient: Option<AgencyId>,
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.recipient {
            None => write!(f, "{}", self.doc),
            Some(r) => write!(f, "{}~{r}", self.doc),
        }
    }
}

impl std::str::FromStr for Cursor {
    type Err = PageError;
    fn from_str(s: &str) -> Result<Self, PageError> {
        let bad = || PageError::Cursor(s.chars().take(80).collect());
        let (doc, recipient) = match s.split_once('~') {
            Some((d, r)) => (d, Some(AgencyId::parse(r).map_err(|_| bad())?)),
            None => (s, None),
        };
        Ok(Cursor {
            doc: doc.parse().map_err(|_| bad())?,
            recipient,
        })
    }
}

/// One page: its keys, read from a snapshot that the items are then read from too, so a
/// page is consistent however the store changes meanwhile.
pub struct Page<K> {
    txn: ReadTransaction,
    keys: Vec<K>,
    /// Where the next page starts; `None` when this is the last.
    pub next: Option<Cursor>,
}

/// A page of receipts: (document, recipient).
pub type ReceiptsPage = Page<(DocumentId, AgencyId)>;

/// Document IDs after `after` in a document-keyed table, at most `limit`.
fn doc_keys(
    txn: ReadTransaction,
    def: redb::TableDefinition<&[u8], &[u8]>,
    after: Option<&Cursor>,
    limit: usize,
) -> Result<Page<DocumentId>, StoreError> {
    let mut keys = Vec::new();
    let mut more = false;
    {
        let t = txn.open_table(def)?;
        let start = after.map(|c| *c.doc.as_bytes());
        let range = match &start {
            Some(k) => t.range::<&[u8]>((
                std::ops::Bound::Excluded(k.as_slice()),
                std::ops::Bound::Unbounded,
            ))?,
            None => t.range::<&[u8]>(..)?,
        };
        for e in range {
            let (k, _) = e?;
            if keys.len() == limit {
                more = true;
                break;
            }
            keys.push(id_of(k.value())?);
        }
    }
    let next = match (more, keys.last()) {
        (true, Some(d)) => Some(Cursor {
            doc: *d,
            recipient: None,
        }),
        _ => None,
    };
    Ok(Page { txn, keys, next })
}

impl AgentStore {
    /// Sent documents after `after`, oldest first.
    pub fn outbox_page(
        &self,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<DocumentId>, StoreError> {
        doc_keys(self.snapshot()?, OUTBOX, after, limit)
    }

    /// Received (or quarantined) documents after `after`, oldest first.
    pub fn received_page(
        &self,
        quarantine: bool,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<DocumentId>, StoreError> {
        let def = if quarantine { QUARANTINE } else { INBOX };
        doc_keys(self.snapshot()?, def, after, limit)
    }

    /// Receipts and rejections stored for sent documents, after `after`, by document then
    /// recipient.
    pub fn receipts_page(
        &self,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<ReceiptsPage, StoreError> {
        let txn = self.snapshot()?;
        let mut keys = Vec::new();
        let mut last: Option<(DocumentId, AgencyId)> = None;
        let mut more = false;
        {
            let t = txn.open_table(OUT_STATUS)?;
            let doc_key = after.map(|c| *c.doc.as_bytes());
            let rcpt = after
                .and_then(|c| c.recipient.as_ref())
                .map(|r| r.to_string());
            let range = match (&doc_key, &rcpt) {
                (Some(d), Some(r)) => t.range::<(&[u8], &str)>((
                    std::ops::Bound::Excluded((d.as_slice(), r.as_str())),
                    std::ops::Bound::Unbounded,
                ))?,
                // A document cursor: continue after every recipient of that document.
                (Some(d), None) => t.range::<(&[u8], &str)>((
                    std::ops::Bound::Excluded((d.as_slice(), "~")),
                    std::ops::Bound::Unbounded,
                ))?,
                _ => t.range::<(&[u8], &str)>(..)?,
            };
            for (scanned, e) in range.enumerate() {
                let (k, v) = e?;
                if keys.len() == limit || scanned == limit * RECEIPT_SCAN_FACTOR {
                    more = true;
                    break;
                }
                let (d, r) = k.value();
                let key = (
                    id_of(d)?,
                    AgencyId::parse(r).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                );
                if matches!(
                    dec::<RecipientStatus>(v.value())?.state(),
                    "delivered" | "rejected"
                ) {
                    keys.push(key.clone());
                }
                last = Some(key);
            }
        }
        let next = match (more, last) {
            (true, Some((doc, r))) => Some(Cursor {
                doc,
                recipient: Some(r),
            }),
            _ => None,
        };
        Ok(Page { txn, keys, next })
    }
}

impl Page<DocumentId> {
    /// Each sent document of the page with its per-recipient status, until `f` says stop.
    pub fn each_outgoing(
        &self,
        mut f: impl FnMut(&DocumentId, &OutRecord, Vec<(AgencyId, RecipientStatus)>) -> bool,
    ) -> Result<(), StoreError> {
        let ob = self.txn.open_table(OUTBOX)?;
        let st = self.txn.open_table(OUT_STATUS)?;
        for id in &self.keys {
            let Some(v) = ob.get(id.as_bytes().as_slice())? else {
                continue;
            };
            let rec = OutRecord::decode(v.value())?;
            let key = id.as_bytes().as_slice();
            let mut statuses = Vec::new();
            for e in st.range((key, "")..=(key, "~"))? {
                let (k, v) = e?;
                let a =
                    AgencyId::parse(k.value().1).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                statuses.push((a, dec(v.value())?));
            }
            if !f(id, &rec, statuses) {
                break;
            }
        }
        Ok(())
    }

    /// Each received (or quarantined) document of the page with its rule state and the
    /// document it replaces, until `f` says stop.
    pub fn each_received(
        &self,
        quarantine: bool,
        mut f: impl FnMut(&DocumentId, &InRecord, Option<DocState>, Option<DocumentId>) -> bool,
    ) -> Result<(), StoreError> {
        let t = self
            .txn
            .open_table(if quarantine { QUARANTINE } else { INBOX })?;
        for id in &self.keys {
            let Some(v) = t.get(id.as_bytes().as_slice())? else {
                continue;
            };
            let rec = InRecord::decode(v.value())?;
            let (state, replaces) = listing_extras(&self.txn, id, &rec)?;
            if !f(id, &rec, state, replaces) {
                break;
            }
        }
        Ok(())
    }
}

impl ReceiptsPage {
    /// Each receipt or rejection of the page (in either form), until `f` says stop.
    pub fn each_receipt(
        &self,
        mut f: impl FnMut(&DocumentId, &AgencyId, &RecipientStatus) -> bool,
    ) -> Result<(), StoreError> {
        let t = self.txn.open_table(OUT_STATUS)?;
        for (id, r) in &self.keys {
            let Some(v) = t.get((id.as_bytes().as_slice(), r.as_str()))? else {
                continue;
            };
            let st = dec::<RecipientStatus>(v.value())?;
            if matches!(st.state(), "delivered" | "rejected") && !f(id, r, &st) {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        let doc = DocumentId::from_bytes([7; 16]);
        let r = AgencyId::parse("000.00.00.G01").expect("agency");
        for c in [
            Cursor {
                doc,
                recipient: None,
            },
            Cursor {
                doc,
                recipient: Some(r),
            },
        ] {
            assert_eq!(c.to_string().parse::<Cursor>().expect("parse"), c);
        }
        assert!("nonsense".parse::<Cursor>().is_err());
        assert!(format!("{doc}~x").parse::<Cursor>().is_err());
    }
}
