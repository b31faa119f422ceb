//! What the agency's document-management software (DMS) has still to take, for the SDK facade
//! ([`crate::vdxp`]): the mailbox of documents and statements received, and the index from
//! the DMS's own document identifiers (edXML `DocumentId`) to Poros documents.
//!
//! The mailbox is filled in the same transaction that stores what was received, so nothing
//! the hub delivered can be missing from it, and it is only filled once the facade was turned
//! on (`dms_mailbox` in `meta`): an agency without a DMS on the SDK protocol does not keep an
//! ever-growing list. An item leaves when the DMS confirms it took it (`done`).
//!
//! Tables: `dms_box` seq → [`BoxItem`]; `dms_box_ids` message id → seq; `dms_ids`
//! organ code ‖ 0 ‖ DMS document id → Poros document.

use super::{dec, enc, AgentStore, InRecord, META};
use poros_protocol::{AgencyId, Change, Digest, DocumentId, Party, Statement, StatementKind};
use poros_store::StoreError;
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

const BOX: TableDefinition<u64, &[u8]> = TableDefinition::new("dms_box");
const BOX_IDS: TableDefinition<&str, u64> = TableDefinition::new("dms_box_ids");
const DMS_IDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("dms_ids");
/// Set (to 1) once the facade was turned on: from then on the mailbox is filled.
const MAILBOX_ON: &str = "dms_mailbox";
/// Last mailbox sequence number given out.
const BOX_SEQ: &str = "dms_box_seq";

/// What a mailbox item is, in the SDK's words (`messagetype`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BoxKind {
    /// A document, or a change request about one (take-back, update): given as an edXML
    /// package.
    Edoc,
    /// A business status or an answer to a change request: given as an edXML status message.
    Status,
}

impl BoxKind {
    /// The SDK's word.
    pub fn word(self) -> &'static str {
        match self {
            BoxKind::Edoc => "edoc",
            BoxKind::Status => "status",
        }
    }
}

/// Where the DMS is with an item, as it said with `updateStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Taking {
    /// Not yet touched.
    New,
    /// The DMS said it is processing it.
    Processing,
    /// The DMS said it failed to take it (it stays listed).
    Failed,
}

impl Taking {
    /// The SDK's word for the list's `status`.
    pub fn word(self) -> &'static str {
        match self {
            Taking::New => "initial",
            Taking::Processing => "processing",
            Taking::Failed => "fail",
        }
    }
}

/// One message the DMS has still to take.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoxItem {
    /// Its message id: the document's ID for a document, the statement's payload digest in
    /// hex for a statement.
    pub id: String,
    /// Document or status.
    pub kind: BoxKind,
    /// The document it is or is about.
    pub doc: DocumentId,
    /// The statement it is, if it is one.
    pub statement: Option<Digest>,
    /// Who sent it.
    pub from: AgencyId,
    /// When it was stored, Unix ms.
    pub created_ms: u64,
    /// When the DMS last said something about it, Unix ms.
    pub updated_ms: u64,
    /// Where the DMS is with it.
    pub taking: Taking,
}

/// What `updateStatus` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Took {
    /// Recorded.
    Recorded,
    /// No such message in the mailbox (never received, or already taken).
    Unknown,
}

pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(BOX)?;
    txn.open_table(BOX_IDS)?;
    txn.open_table(DMS_IDS)?;
    Ok(())
}

/// This module's tables, for a backup's snapshot.
pub(super) fn snapshot_tables() -> Vec<Box<dyn poros_store::SnapshotTable>> {
    use poros_store::Typed;
    vec![
        Box::new(Typed(BOX)),
        Box::new(Typed(BOX_IDS)),
        Box::new(Typed(DMS_IDS)),
    ]
}

fn mailbox_on(txn: &WriteTransaction) -> Result<bool, StoreError> {
    Ok(txn.open_table(META)?.get(MAILBOX_ON)?.is_some())
}

fn put_item(txn: &WriteTransaction, item: BoxItem) -> Result<(), StoreError> {
    let mut ids = txn.open_table(BOX_IDS)?;
    if ids.get(item.id.as_str())?.is_some() {
        return Ok(());
    }
    let mut meta = txn.open_table(META)?;
    let seq = meta.get(BOX_SEQ)?.map(|g| g.value()).unwrap_or(0) + 1;
    meta.insert(BOX_SEQ, seq)?;
    ids.insert(item.id.as_str(), seq)?;
    txn.open_table(BOX)?.insert(seq, enc(&item)?.as_slice())?;
    Ok(())
}

fn dms_key(organ: &str, dms_id: &str) -> Vec<u8> {
    let mut k = organ.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(dms_id.as_bytes());
    k
}

/// Index a document under its sender's DMS id, if it has one.
pub(super) fn index_dms_id(
    txn: &WriteTransaction,
    id: DocumentId,
    env: &poros_protocol::Envelope,
) -> Result<(), StoreError> {
    if let Some(d) = &env.ext.dms_id {
        txn.open_table(DMS_IDS)?.insert(
            dms_key(env.sender.as_str(), d).as_slice(),
            id.as_bytes().as_slice(),
        )?;
    }
    Ok(())
}

/// A document received into the inbox: the DMS has it to take.
pub(super) fn on_received_doc(
    txn: &WriteTransaction,
    id: DocumentId,
    rec: &InRecord,
    env: &poros_protocol::Envelope,
) -> Result<(), StoreError> {
    index_dms_id(txn, id, env)?;
    if rec.reason.is_some() || !mailbox_on(txn)? {
        return Ok(());
    }
    put_item(
        txn,
        BoxItem {
            id: id.to_string(),
            kind: BoxKind::Edoc,
            doc: id,
            statement: None,
            from: env.sender.clone(),
            created_ms: rec.received_ms,
            updated_ms: rec.received_ms,
            taking: Taking::New,
        },
    )
}

/// A statement received from another agency: the DMS has it to take when it is something a
/// DMS acts on — a business status or an answer to a change request (as a status message),
/// or a take-back or update of a document it holds (as a package).
pub(super) fn on_received_statement(
    txn: &WriteTransaction,
    stmt: &Statement,
    digest: &Digest,
    now_ms: u64,
) -> Result<(), StoreError> {
    let Party::Agency(from) = &stmt.from else {
        return Ok(());
    };
    let kind = match &stmt.kind {
        StatementKind::Status { .. } | StatementKind::Answer { .. } => BoxKind::Status,
        StatementKind::Change {
            change: Change::TakeBack | Change::Update { .. },
            ..
        } => BoxKind::Edoc,
        _ => return Ok(()),
    };
    if !mailbox_on(txn)? {
        return Ok(());
    }
    put_item(
        txn,
        BoxItem {
            id: hex::encode(digest),
            kind,
            doc: stmt.doc_id,
            statement: Some(*digest),
            from: from.clone(),
            created_ms: now_ms,
            updated_ms: now_ms,
            taking: Taking::New,
        },
    )
}

impl AgentStore {
    /// Start filling the DMS mailbox (idempotent).
    pub async fn enable_dms_mailbox(&self) -> Result<(), StoreError> {
        self.db
            .write(|txn| {
                txn.open_table(META)?.insert(MAILBOX_ON, 1)?;
                Ok(())
            })
            .await
    }

    /// Mailbox items of `kind` not yet taken, oldest first, at most `limit`.
    pub fn dms_box(&self, kind: BoxKind, limit: usize) -> Result<Vec<BoxItem>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(BOX)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (_, v) = e?;
            let item: BoxItem = dec(v.value())?;
            if item.kind == kind {
                out.push(item);
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// How many items of `kind` the DMS has still to take.
    pub fn dms_box_count(&self, kind: BoxKind) -> Result<u64, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(BOX)?;
        let mut n = 0;
        for e in t.iter()? {
            let (_, v) = e?;
            if dec::<BoxItem>(v.value())?.kind == kind {
                n += 1;
            }
        }
        Ok(n)
    }

    /// The mailbox item with this message id, if not yet taken.
    pub fn dms_item(&self, id: &str) -> Result<Option<BoxItem>, StoreError> {
        let r = self.db.read()?;
        let Some(seq) = r.open_table(BOX_IDS)?.get(id)?.map(|g| g.value()) else {
            return Ok(None);
        };
        let v = r.open_table(BOX)?.get(seq)?.map(|g| g.value().to_vec());
        v.map(|v| dec(&v)).transpose()
    }

    /// The DMS says where it is with message `id`: `None` = taken (it leaves the mailbox).
    pub async fn dms_took(
        &self,
        id: String,
        taking: Option<Taking>,
        now_ms: u64,
    ) -> Result<Took, StoreError> {
        self.db
            .write(move |txn| {
                let mut ids = txn.open_table(BOX_IDS)?;
                let Some(seq) = ids.get(id.as_str())?.map(|g| g.value()) else {
                    return Ok(Took::Unknown);
                };
                let mut t = txn.open_table(BOX)?;
                match taking {
                    None => {
                        t.remove(seq)?;
                        ids.remove(id.as_str())?;
                    }
                    Some(taking) => {
                        let v = t.get(seq)?.map(|g| g.value().to_vec());
                        let Some(v) = v else { return Ok(Took::Unknown) };
                        let mut item: BoxItem = dec(&v)?;
                        item.taking = taking;
                        item.updated_ms = now_ms;
                        t.insert(seq, enc(&item)?.as_slice())?;
                    }
                }
                Ok(Took::Recorded)
            })
            .await
    }

    /// The Poros document `organ`'s DMS calls `dms_id`, if known here.
    pub fn by_dms_id(&self, organ: &str, dms_id: &str) -> Result<Option<DocumentId>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(DMS_IDS)?;
        let v = t.get(dms_key(organ, dms_id).as_slice())?;
        v.map(|g| super::id_of(g.value())).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::super::statements::tests::{a, received, Fixture, R1, S};
    use super::*;

    #[test]
    fn the_mailbox_fills_only_once_on_and_empties_as_the_dms_takes() {
        let f = Fixture::new();
        let store = f.open();
        let doc = |n: u64| DocumentId::new_v7(n, [n as u8; 10]);
        f.rt.block_on(async {
            store
                .put_received(doc(1), received(doc(1), R1), None)
                .await
                .unwrap();
            assert!(store.dms_box(BoxKind::Edoc, 10).unwrap().is_empty());
            store.enable_dms_mailbox().await.unwrap();
            for n in [2, 3, 3] {
                // The second 3 is a redelivery: it adds nothing.
                store
                    .put_received(doc(n), received(doc(n), R1), None)
                    .await
                    .unwrap();
            }
            let items = store.dms_box(BoxKind::Edoc, 10).unwrap();
            assert_eq!(
                items.iter().map(|i| i.doc).collect::<Vec<_>>(),
                [doc(2), doc(3)]
            );
            assert_eq!(items[0].from, a(S));
            assert_eq!(store.dms_box_count(BoxKind::Edoc).unwrap(), 2);
            assert_eq!(store.dms_box_count(BoxKind::Status).unwrap(), 0);
            let id2 = doc(2).to_string();
            let took = store.dms_took(id2.clone(), Some(Taking::Processing), 9);
            assert_eq!(took.await.unwrap(), Took::Recorded);
            let item = store.dms_item(&id2).unwrap().unwrap();
            assert_eq!((item.taking, item.updated_ms), (Taking::Processing, 9));
            let took = store.dms_took(id2.clone(), None, 10);
            assert_eq!(took.await.unwrap(), Took::Recorded);
            let again = store.dms_took(id2.clone(), None, 11);
            assert_eq!(again.await.unwrap(), Took::Unknown);
            assert_eq!(store.dms_box_count(BoxKind::Edoc).unwrap(), 1);
        });
    }
}
