//! The tables the hub's exchange writes share within a commit ([`HubSet`]): a document's
//! acceptance, each delivery's answer, the relays' removals and what those call. Writes made
//! with `Db::write_with::<HubSet, ..>` reach these tables only through [`HubTables`] (redb
//! refuses a table opened twice in one transaction); other tables they open through
//! [`HubTables::txn`].

use super::statements::{
    ADDED, DOC_STATEMENTS, DOC_STATES, KINDS, STATEMENTS, STATEMENT_DIGESTS, STATEMENT_RELAYS,
};
use super::*;
use poros_store::{LazyTable, TableSet};
use redb::WriteTransaction;

/// The exchange's table set (see the module notes).
pub(super) struct HubSet;

/// [`HubSet`] in one write transaction: each table opened when first used.
pub(super) struct HubTables<'t> {
    pub txn: &'t WriteTransaction,
    pub docs: LazyTable<'t, &'static [u8], &'static [u8]>,
    pub inline: LazyTable<'t, &'static [u8], &'static [u8]>,
    pub body_refs: LazyTable<'t, &'static [u8], u64>,
    pub deliveries: LazyTable<'t, (&'static [u8], &'static str), &'static [u8]>,
    pub queue: LazyTable<'t, (&'static str, &'static [u8]), u64>,
    pub expiry: LazyTable<'t, (u64, &'static [u8], &'static str), ()>,
    pub relays: LazyTable<'t, (&'static str, &'static [u8], &'static str), &'static [u8]>,
    pub retention: LazyTable<'t, (u64, &'static [u8]), ()>,
    pub counters: LazyTable<'t, &'static str, u64>,
    pub answered: LazyTable<'t, &'static [u8], u32>,
    pub held: LazyTable<'t, (&'static str, &'static [u8]), u64>,
    pub doc_states: LazyTable<'t, &'static [u8], &'static [u8]>,
    pub statements: LazyTable<'t, u64, &'static [u8]>,
    pub doc_statements: LazyTable<'t, (&'static [u8], u64), ()>,
    pub statement_relays: LazyTable<'t, (&'static str, u64), &'static [u8]>,
    pub statement_digests: LazyTable<'t, &'static [u8], u64>,
    pub added: LazyTable<'t, (&'static [u8], &'static str), &'static [u8]>,
    pub kinds: LazyTable<'t, &'static str, u64>,
}

impl TableSet for HubSet {
    type Open<'t> = HubTables<'t>;

    fn begin(txn: &WriteTransaction) -> HubTables<'_> {
        HubTables {
            txn,
            docs: LazyTable::new(DOCS),
            inline: LazyTable::new(INLINE),
            body_refs: LazyTable::new(BODY_REFS),
            deliveries: LazyTable::new(DELIVERIES),
            queue: LazyTable::new(QUEUE),
            expiry: LazyTable::new(EXPIRY),
            relays: LazyTable::new(RELAYS),
            retention: LazyTable::new(RETENTION),
            counters: LazyTable::new(COUNTERS),
            answered: LazyTable::new(ANSWERED),
            held: LazyTable::new(super::bodies::HELD),
            doc_states: LazyTable::new(DOC_STATES),
            statements: LazyTable::new(STATEMENTS),
            doc_statements: LazyTable::new(DOC_STATEMENTS),
            statement_relays: LazyTable::new(STATEMENT_RELAYS),
            statement_digests: LazyTable::new(STATEMENT_DIGESTS),
            added: LazyTable::new(ADDED),
            kinds: LazyTable::new(KINDS),
        }
    }
}

impl HubTables<'_> {
    /// Add to named counters (`counters`), in the commit of the event counted.
    pub fn bump(&mut self, counts: &[(&str, u64)]) -> Result<(), StoreError> {
        super::bump_in(self.counters.open(self.txn)?, counts)
    }

    /// A stored document.
    pub fn doc(&mut self, doc: &[u8]) -> Result<Option<DocRecord>, StoreError> {
        let v = self.docs.open(self.txn)?.get(doc)?;
        v.map(|g| dec(g.value())).transpose()
    }
}
