//! Tables shared by the writes of one commit ([`TableSet`], [`LazyTable`]).
//!
//! redb opens a table by looking its name up in the database's table of tables and checking
//! the key and value types it was created with, building their type names to compare: a few
//! microseconds each time, and a hub's document is about twenty openings across its three
//! writes. A store that declares a [`TableSet`] and writes with [`crate::Db::write_with`] opens
//! each table of the set once per run of such writes in a batch: consecutive writes of the
//! same set in one commit share one [`TableSet::Open`], its tables opened on first use.

use redb::{Key, Table, TableDefinition, Value, WriteTransaction};

use crate::StoreError;

/// The tables one kind of write uses, shared by consecutive writes of that kind in a commit.
///
/// A write given the set must reach the set's tables only through it: redb refuses to open a
/// table twice in one transaction, and a table the set holds open stays open until the run of
/// writes sharing it ends.
pub trait TableSet: 'static {
    /// The set in one write transaction, its tables opened as they are first asked for.
    type Open<'t>;
    /// The set in `txn`, nothing opened yet.
    fn begin(txn: &WriteTransaction) -> Self::Open<'_>;
}

/// One table of a [`TableSet`], opened when first asked for and then kept open.
pub struct LazyTable<'t, K: Key + 'static, V: Value + 'static> {
    def: TableDefinition<'static, K, V>,
    table: Option<Table<'t, K, V>>,
}

impl<'t, K: Key + 'static, V: Value + 'static> LazyTable<'t, K, V> {
    /// `def`, not opened yet.
    pub const fn new(def: TableDefinition<'static, K, V>) -> Self {
        LazyTable { def, table: None }
    }

    /// The table, opened in `txn` the first time.
    pub fn open(&mut self, txn: &'t WriteTransaction) -> Result<&mut Table<'t, K, V>, StoreError> {
        let table = match self.table.take() {
            Some(t) => t,
            None => txn.open_table(self.def)?,
        };
        Ok(self.table.insert(table))
    }

    /// Closes the table if it is open (it opens again when next asked for).
    pub fn close(&mut self) {
        self.table = None;
    }
}
