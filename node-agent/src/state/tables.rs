//! The tables a document's own writes share within a commit ([`AgentSet`]): storing an
//! outgoing document, the hub's answer to its submission, a recipient's answer, a received
//! document. Writes made with `Db::write_with::<AgentSet, ..>` reach these tables only
//! through [`AgentTables`] (redb refuses a table opened twice in one transaction); a helper
//! that takes the transaction and may open one of them is called with
//! [`AgentTables::release`]'s transaction, which closes the set first.

use super::statements::{DOC_STATE, STATEMENT_EVENTS};
use super::*;
use poros_store::{LazyTable, TableSet};
use redb::WriteTransaction;

/// The agent's document table set (see the module notes).
pub(super) struct AgentSet;

/// [`AgentSet`] in one write transaction: each table opened when first used.
pub(super) struct AgentTables<'t> {
    /// The transaction, for tables outside the set only (see [`AgentTables::release`]).
    pub txn: &'t WriteTransaction,
    pub outbox: LazyTable<'t, &'static [u8], &'static [u8]>,
    pub out_queue: LazyTable<'t, &'static [u8], ()>,
    pub out_status: LazyTable<'t, (&'static [u8], &'static str), &'static [u8]>,
    pub inbox: LazyTable<'t, &'static [u8], &'static [u8]>,
    pub quarantine: LazyTable<'t, &'static [u8], &'static [u8]>,
    pub inline: LazyTable<'t, &'static [u8], &'static [u8]>,
    pub body_files: LazyTable<'t, &'static [u8], ()>,
    pub events: LazyTable<'t, u64, &'static [u8]>,
    pub statement_events: LazyTable<'t, u64, &'static [u8]>,
    pub doc_state: LazyTable<'t, &'static [u8], &'static [u8]>,
}

impl TableSet for AgentSet {
    type Open<'t> = AgentTables<'t>;

    fn begin(txn: &WriteTransaction) -> AgentTables<'_> {
        AgentTables {
            txn,
            outbox: LazyTable::new(OUTBOX),
            out_queue: LazyTable::new(OUT_QUEUE),
            out_status: LazyTable::new(OUT_STATUS),
            inbox: LazyTable::new(INBOX),
            quarantine: LazyTable::new(QUARANTINE),
            inline: LazyTable::new(INLINE),
            body_files: LazyTable::new(BODY_FILES),
            events: LazyTable::new(EVENTS),
            statement_events: LazyTable::new(STATEMENT_EVENTS),
            doc_state: LazyTable::new(DOC_STATE),
        }
    }
}

impl<'t> AgentTables<'t> {
    /// Closes every table of the set and gives the transaction, for a helper that opens
    /// tables itself (the set's among them, possibly). The set's tables open again when next
    /// asked for.
    pub fn release(&mut self) -> &'t WriteTransaction {
        self.outbox.close();
        self.out_queue.close();
        self.out_status.close();
        self.inbox.close();
        self.quarantine.close();
        self.inline.close();
        self.body_files.close();
        self.events.close();
        self.statement_events.close();
        self.doc_state.close();
        self.txn
    }
}
