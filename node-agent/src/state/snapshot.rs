//! A consistent snapshot of the agent's store for a backup (every table, read in one
//! transaction while the agent goes on), and what a restore checks the restored store with.

use super::{
    dms, statements, AgentStore, BODY_FILES, EVENTS, INBOX, INLINE, META, OUTBOX, OUT_QUEUE,
    OUT_STATUS, QUARANTINE,
};
use poros_protocol::Digest;
use poros_store::backup_file::StorePart;
use poros_store::{copy_snapshot, SnapshotError, SnapshotTable, StoreError, Typed};
use redb::{ReadableTable, ReadableTableMetadata};
use std::path::Path;

/// Every table of the agent's store: a table the store holds and this list lacks makes the
/// snapshot fail rather than a backup that silently misses it.
fn tables() -> Vec<Box<dyn SnapshotTable>> {
    let mut t: Vec<Box<dyn SnapshotTable>> = vec![
        Box::new(Typed(OUTBOX)),
        Box::new(Typed(OUT_QUEUE)),
        Box::new(Typed(OUT_STATUS)),
        Box::new(Typed(INBOX)),
        Box::new(Typed(QUARANTINE)),
        Box::new(Typed(INLINE)),
        Box::new(Typed(EVENTS)),
        Box::new(Typed(BODY_FILES)),
        Box::new(Typed(META)),
    ];
    t.extend(statements::snapshot_tables());
    t.extend(dms::snapshot_tables());
    t.extend(poros_store::own_tables());
    t
}

/// Body files a record of `r` references.
fn body_files_in(r: &redb::ReadTransaction) -> Result<Vec<Digest>, StoreError> {
    let mut out = Vec::new();
    for row in r.open_table(BODY_FILES)?.iter()? {
        let (k, _) = row?;
        let digest: Digest = k
            .value()
            .try_into()
            .map_err(|_| StoreError::Corrupt("body_files key is not a digest".into()))?;
        out.push(digest);
    }
    Ok(out)
}

/// Documents (sent, received, quarantined) in `r`.
fn documents_in(r: &redb::ReadTransaction) -> Result<u64, StoreError> {
    Ok(r.open_table(OUTBOX)?.len()?
        + r.open_table(INBOX)?.len()?
        + r.open_table(QUARANTINE)?.len()?)
}

impl AgentStore {
    /// Copy a consistent snapshot of the store into the new file `dest` (writers go on
    /// meanwhile) and list the body files it references; also returns its documents (sent,
    /// received, quarantined). Blocking. The caller holds body removals
    /// ([`poros_store::Blobs::hold_removals`]) from before this call until the files are
    /// copied.
    pub fn snapshot_into(&self, dest: &Path) -> Result<(StorePart, u64), SnapshotError> {
        let snapshot_ms = poros_transport::now_ms();
        let r = self.db.read()?;
        let owned = tables();
        let list: Vec<&dyn SnapshotTable> = owned.iter().map(|t| t.as_ref()).collect();
        let copy = copy_snapshot(&r, &list, dest)?;
        let part = StorePart {
            snapshot_ms,
            copy,
            body_files: body_files_in(&r)?,
        };
        Ok((part, documents_in(&r)?))
    }

    /// Rows per table, as a snapshot of this store would copy them.
    pub fn rows_per_table(&self) -> Result<Vec<(String, u64)>, SnapshotError> {
        let r = self.db.read()?;
        tables()
            .iter()
            .map(|t| Ok((t.name().to_owned(), t.rows(&r)?)))
            .collect()
    }

    /// Body files the store's records reference.
    pub fn body_files(&self) -> Result<Vec<Digest>, StoreError> {
        body_files_in(&self.db.read()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snapshot_lists_every_table_the_store_creates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = AgentStore::open_file(&dir.path().join("agent.redb")).expect("open");
        let (part, documents) = store
            .snapshot_into(&dir.path().join("copy.redb"))
            .expect("a snapshot of a fresh store knows all its tables");
        assert_eq!(part.copy.tables.len(), tables().len());
        assert!(part.body_files.is_empty());
        assert_eq!(documents, 0);
        let rows = store.rows_per_table().expect("rows");
        assert_eq!(rows.len(), tables().len());
    }
}
