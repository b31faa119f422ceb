//! Test-only fixtures shared by the store's unit tests: one u64 → u64 table, a write closure
//! that puts one pair, and a read of one key.

use crate::{Db, StoreError};
use redb::{TableDefinition, WriteTransaction};

pub(crate) const T: TableDefinition<u64, u64> = TableDefinition::new("t");

pub(crate) fn put(k: u64, v: u64) -> impl FnMut(&WriteTransaction) -> Result<(), StoreError> {
    move |txn| {
        txn.open_table(T)?.insert(k, v)?;
        Ok(())
    }
}

pub(crate) fn get(db: &Db, k: u64) -> Option<u64> {
    let txn = db.read().expect("read");
    let table = match txn.open_table(T) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return None,
        Err(e) => panic!("open table: {e}"),
    };
    table.get(k).expect("get").map(|v| v.value())
}
