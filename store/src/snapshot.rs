//! A consistent copy of a live redb store: every table read from one read transaction (one
//! snapshot; writers carry on meanwhile) and written into a new database file, which is what a
//! backup ships. redb has no raw page copy that is safe while the file is written, so each
//! table is copied through its typed definition; the owner of the store lists its tables, and
//! a table in the file that the list does not name is refused rather than silently left out.

use std::path::{Path, PathBuf};

use redb::{
    Database, Durability, Key, MultimapTableHandle, ReadTransaction, ReadableTable,
    ReadableTableMetadata, TableDefinition, TableHandle, Value,
};

use crate::StoreError;

/// Rows written per transaction of the copy: bounds the memory a large table takes.
const BATCH_ROWS: usize = 20_000;

/// Why a snapshot could not be copied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The store holds a table its owner did not list: copying the others would make a backup
    /// that silently lacks it.
    #[error("the store holds a table \"{name}\" that this version does not know how to copy")]
    UnknownTable {
        /// The table's name in the file.
        name: String,
    },
    /// The store holds multimap tables, which no Poros store uses.
    #[error("the store holds a multimap table \"{name}\", which no Poros store has")]
    UnexpectedMultimap {
        /// The table's name in the file.
        name: String,
    },
    /// The destination file exists already.
    #[error("{} exists already; a snapshot is written into a new file", .path.display())]
    Exists {
        /// The destination.
        path: PathBuf,
    },
    /// The copy of a table does not hold as many rows as the snapshot.
    #[error("table \"{table}\": the snapshot holds {expected} rows, the copy {copied}")]
    CountMismatch {
        /// The table.
        table: String,
        /// Rows in the snapshot.
        expected: u64,
        /// Rows written.
        copied: u64,
    },
    /// Reading the snapshot or writing the copy failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for SnapshotError {
            fn from(e: $t) -> Self {
                SnapshotError::Store(StoreError::from(redb::Error::from(e)))
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::TableError,
    redb::StorageError,
    redb::TransactionError,
    redb::CommitError,
    redb::DatabaseError
);

/// One table of a store, as its owner defines it: what a snapshot copies.
pub trait SnapshotTable {
    /// The table's name in the file.
    fn name(&self) -> &str;
    /// Copy every row of the table in `from` into `to` (in several transactions); returns the
    /// number of rows (0 if `from` has no such table).
    fn copy(&self, from: &ReadTransaction, to: &Database) -> Result<u64, SnapshotError>;
    /// Rows of the table in `r` (0 if it has no such table): how a restore checks a copy.
    fn rows(&self, r: &ReadTransaction) -> Result<u64, SnapshotError>;
}

/// A table by its typed definition.
pub struct Typed<K: Key + 'static, V: Value + 'static>(pub TableDefinition<'static, K, V>);

impl<K: Key + 'static, V: Value + 'static> SnapshotTable for Typed<K, V> {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn rows(&self, r: &ReadTransaction) -> Result<u64, SnapshotError> {
        match r.open_table(self.0) {
            Ok(t) => Ok(t.len()?),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    fn copy(&self, from: &ReadTransaction, to: &Database) -> Result<u64, SnapshotError> {
        let source = match from.open_table(self.0) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let expected = source.len()?;
        let mut rows = source.iter()?;
        let mut copied = 0u64;
        loop {
            let mut txn = to.begin_write()?;
            txn.set_durability(Durability::None);
            let mut batch = 0;
            {
                // Created even when empty, so the copy has every table the snapshot has.
                let mut table = txn.open_table(self.0)?;
                for row in rows.by_ref() {
                    let (k, v) = row?;
                    table.insert(k.value(), v.value())?;
                    batch += 1;
                    if batch == BATCH_ROWS {
                        break;
                    }
                }
            }
            txn.commit()?;
            copied += batch as u64;
            if batch < BATCH_ROWS {
                break;
            }
        }
        if copied != expected {
            return Err(SnapshotError::CountMismatch {
                table: self.name().to_owned(),
                expected,
                copied,
            });
        }
        Ok(copied)
    }
}

/// The tables this crate itself keeps in an owner's store (the format record, the health
/// probe's table, which stays once a write was probed): every owner lists them with its own.
pub fn own_tables() -> Vec<Box<dyn SnapshotTable>> {
    vec![
        Box::new(Typed(crate::format::FORMAT_TABLE)),
        Box::new(Typed(crate::health::PROBE)),
    ]
}

/// What a snapshot copy wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotCopy {
    /// Rows per table, in the order copied.
    pub tables: Vec<(String, u64)>,
}

impl SnapshotCopy {
    /// Rows in all tables.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }

    /// Rows of one table (0 if it was not copied).
    pub fn rows_of(&self, table: &str) -> u64 {
        self.tables
            .iter()
            .find(|(t, _)| t == table)
            .map_or(0, |(_, n)| *n)
    }
}

/// Copy every table of the snapshot `from` into a new database file `dest`, made durable
/// (fsync) before this returns. `tables` must name every table the snapshot holds.
pub fn copy_snapshot(
    from: &ReadTransaction,
    tables: &[&dyn SnapshotTable],
    dest: &Path,
) -> Result<SnapshotCopy, SnapshotError> {
    for handle in from.list_tables()? {
        let name = handle.name();
        if !tables.iter().any(|t| t.name() == name) {
            return Err(SnapshotError::UnknownTable {
                name: name.to_owned(),
            });
        }
    }
    if let Some(handle) = from.list_multimap_tables()?.next() {
        return Err(SnapshotError::UnexpectedMultimap {
            name: handle.name().to_owned(),
        });
    }
    if dest.exists() {
        return Err(SnapshotError::Exists {
            path: dest.to_owned(),
        });
    }
    let to = redb::Builder::new()
        .set_cache_size(crate::db::CACHE_BYTES)
        .create(dest)?;
    let mut out = SnapshotCopy::default();
    for t in tables {
        out.tables.push((t.name().to_owned(), t.copy(from, &to)?));
    }
    // The batches were written without fsync; one durable commit makes them all durable.
    let mut last = to.begin_write()?;
    last.set_durability(Durability::Immediate);
    last.commit()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: TableDefinition<&str, u64> = TableDefinition::new("a");
    const B: TableDefinition<(u64, &[u8]), &[u8]> = TableDefinition::new("b");
    const EMPTY: TableDefinition<u64, ()> = TableDefinition::new("empty");

    fn source(dir: &Path, rows: u64) -> Database {
        let db = Database::create(dir.join("src.redb")).expect("create");
        let w = db.begin_write().expect("write");
        {
            let mut a = w.open_table(A).expect("a");
            let mut b = w.open_table(B).expect("b");
            w.open_table(EMPTY).expect("empty");
            for i in 0..rows {
                a.insert(format!("k{i}").as_str(), i).expect("insert");
                b.insert((i, &i.to_be_bytes()[..]), &[i as u8; 3][..])
                    .expect("insert");
            }
        }
        w.commit().expect("commit");
        db
    }

    #[test]
    fn copies_every_row_of_the_snapshot_and_nothing_written_after_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        // More rows than one batch, so the copy spans several transactions.
        let rows = BATCH_ROWS as u64 + 7;
        let db = source(dir.path(), rows);
        let snap = db.begin_read().expect("read");
        // Written after the snapshot began: not in the copy.
        let w = db.begin_write().expect("write");
        w.open_table(A)
            .expect("a")
            .insert("later", 1)
            .expect("insert");
        w.commit().expect("commit");
        let dest = dir.path().join("copy.redb");
        let copy =
            copy_snapshot(&snap, &[&Typed(A), &Typed(B), &Typed(EMPTY)], &dest).expect("copy");
        assert_eq!(copy.rows_of("a"), rows);
        assert_eq!(copy.rows_of("b"), rows);
        assert_eq!(copy.rows(), 2 * rows);
        drop(snap);
        drop(db);
        let copied = Database::open(&dest).expect("open copy");
        let r = copied.begin_read().expect("read");
        let a = r.open_table(A).expect("a");
        assert_eq!(a.len().expect("len"), rows);
        assert!(a.get("later").expect("get").is_none());
        assert_eq!(a.get("k20001").expect("get").expect("row").value(), 20001);
        let b = r.open_table(B).expect("b");
        let row = b
            .get((5, &5u64.to_be_bytes()[..]))
            .expect("get")
            .expect("row");
        assert_eq!(row.value(), &[5u8; 3][..]);
        assert_eq!(r.open_table(EMPTY).expect("empty").len().expect("len"), 0);
    }

    #[test]
    fn a_table_the_owner_did_not_list_is_refused_and_no_file_is_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = source(dir.path(), 3);
        let snap = db.begin_read().expect("read");
        let dest = dir.path().join("copy.redb");
        let err = copy_snapshot(&snap, &[&Typed(A), &Typed(EMPTY)], &dest).expect_err("refused");
        assert!(
            matches!(&err, SnapshotError::UnknownTable { name } if name == "b"),
            "{err}"
        );
        assert!(!dest.exists());
    }

    #[test]
    fn the_tables_this_crate_keeps_are_copied_with_the_owners() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = source(dir.path(), 2);
        // What the health probe leaves after a full disk: an empty table of its own.
        let w = db.begin_write().expect("write");
        w.open_table(crate::health::PROBE).expect("probe");
        w.commit().expect("commit");
        let snap = db.begin_read().expect("read");
        let mut list: Vec<&dyn SnapshotTable> = vec![&Typed(A), &Typed(B), &Typed(EMPTY)];
        let own = own_tables();
        list.extend(own.iter().map(|t| t.as_ref()));
        let copy = copy_snapshot(&snap, &list, &dir.path().join("copy.redb")).expect("copy");
        assert_eq!(copy.rows_of("a"), 2);
    }

    #[test]
    fn an_existing_destination_is_not_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = source(dir.path(), 1);
        let snap = db.begin_read().expect("read");
        let dest = dir.path().join("copy.redb");
        std::fs::write(&dest, b"precious").expect("write");
        let err = copy_snapshot(&snap, &[&Typed(A), &Typed(B), &Typed(EMPTY)], &dest)
            .expect_err("refused");
        assert!(matches!(err, SnapshotError::Exists { .. }), "{err}");
        assert_eq!(std::fs::read(&dest).expect("read"), b"precious");
    }
}
