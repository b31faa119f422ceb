//! A consistent snapshot of the hub's redb store for a backup, and the mark a restore leaves
//! in the restored store (its [`RecoveryPoint`]), from which the hub asks agents to submit
//! again what the backup may lack.

use super::statistics::STORE_META;
use super::*;
use poros_store::{copy_snapshot, SnapshotError, SnapshotTable, Typed};
use std::path::Path;

/// In `store_meta`: the restore this store came from, and the backup's snapshot time.
const RESTORE_EPOCH: &str = "restored_epoch";
const RESTORE_SNAPSHOT_MS: &str = "restored_snapshot_ms";

/// Documents accepted this long before a snapshot began may still have been committed after
/// it (their acceptance time is taken before their commit): agents submit them again too.
pub const RECOVERY_MARGIN_MS: u64 = 5 * 60 * 1000;

/// What a backup's snapshot holds (the snapshot time is taken just before its read
/// transaction begins).
pub type HubSnapshot = poros_store::backup_file::StorePart;

/// The mark of a restore: which restore, and from when agents submit again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryPoint {
    /// Names the restore (random, never 0).
    pub epoch: u64,
    /// The backup's snapshot time, Unix ms.
    pub snapshot_ms: u64,
}

impl RecoveryPoint {
    /// A new restore of a state as it stood at `snapshot_ms`, named by a random epoch.
    pub fn new(snapshot_ms: u64) -> Result<RecoveryPoint, StoreError> {
        let rng = ring::rand::SystemRandom::new();
        loop {
            let mut b = [0u8; 8];
            ring::rand::SecureRandom::fill(&rng, &mut b)
                .map_err(|_| StoreError::Other("no randomness for the restore's epoch".into()))?;
            let epoch = u64::from_le_bytes(b);
            if epoch != 0 {
                return Ok(RecoveryPoint { epoch, snapshot_ms });
            }
        }
    }

    /// Documents the hub accepted from this time on are asked for again.
    pub fn since_ms(&self) -> u64 {
        self.snapshot_ms.saturating_sub(RECOVERY_MARGIN_MS)
    }
}

/// Record `point` as the restore this store came from (replacing an earlier one).
pub(super) fn put_recovery_point(
    txn: &redb::WriteTransaction,
    point: RecoveryPoint,
) -> Result<(), StoreError> {
    let mut meta = txn.open_table(STORE_META)?;
    meta.insert(RESTORE_EPOCH, point.epoch)?;
    meta.insert(RESTORE_SNAPSHOT_MS, point.snapshot_ms)?;
    Ok(())
}

/// Bodies kept as files (not inline) that some document of `r` references.
fn body_files_in(r: &redb::ReadTransaction) -> Result<Vec<Digest>, StoreError> {
    let inline = r.open_table(INLINE)?;
    let mut out = Vec::new();
    for row in r.open_table(BODY_REFS)?.iter()? {
        let (k, refs) = row?;
        let digest: Digest = k
            .value()
            .try_into()
            .map_err(|_| StoreError::Corrupt("body_refs key is not a digest".into()))?;
        if refs.value() > 0 && inline.get(digest.as_slice())?.is_none() {
            out.push(digest);
        }
    }
    Ok(out)
}

/// Every table of the hub's store.
fn tables() -> Vec<Box<dyn SnapshotTable>> {
    let mut t: Vec<Box<dyn SnapshotTable>> = vec![
        Box::new(Typed(NODES)),
        Box::new(Typed(DOCS)),
        Box::new(Typed(INLINE)),
        Box::new(Typed(BODY_REFS)),
        Box::new(Typed(DELIVERIES)),
        Box::new(Typed(QUEUE)),
        Box::new(Typed(EXPIRY)),
        Box::new(Typed(RELAYS)),
        Box::new(Typed(RETENTION)),
        Box::new(Typed(COUNTERS)),
        Box::new(Typed(ANSWERED)),
        Box::new(Typed(TOKENS)),
        Box::new(Typed(AUDIT)),
        Box::new(Typed(REVOKED)),
        Box::new(Typed(SUPERSEDED)),
        Box::new(Typed(MONITORS)),
        Box::new(Typed(crate::stats::STATS)),
        Box::new(Typed(crate::stats::SEEN)),
        Box::new(Typed(crate::stats::PAPER)),
        Box::new(Typed(STORE_META)),
    ];
    // The format record (a restored store opens at the version it was backed up at) and the
    // store's health probe.
    t.extend(poros_store::own_tables());
    t.extend(statements::snapshot_tables());
    t.extend(bodies::snapshot_tables());
    t
}

impl HubStore {
    /// Copy a consistent snapshot of the store into the new file `dest` (writers go on
    /// meanwhile) and list the body files it references. Blocking. The caller holds body
    /// removals ([`poros_store::Blobs::hold_removals`]) from before this call until the files
    /// are copied, so every file listed is still there.
    pub fn snapshot_into(&self, dest: &Path) -> Result<HubSnapshot, SnapshotError> {
        let snapshot_ms = poros_transport::now_ms();
        let r = self.db.read()?;
        let owned = tables();
        let list: Vec<&dyn SnapshotTable> = owned.iter().map(|t| t.as_ref()).collect();
        let copy = copy_snapshot(&r, &list, dest)?;
        let body_files = body_files_in(&r)?;
        Ok(HubSnapshot {
            snapshot_ms,
            copy,
            body_files,
        })
    }

    /// Mark a store just restored from a backup (outside a runtime: the restore command).
    pub fn mark_restored(&self, point: RecoveryPoint) -> Result<(), StoreError> {
        self.db
            .write_blocking(move |txn| put_recovery_point(txn, point))
    }

    /// The restore this store came from, if it was restored from a backup.
    pub fn recovery_point(&self) -> Result<Option<RecoveryPoint>, StoreError> {
        let r = self.db.read()?;
        let meta = match r.open_table(STORE_META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let epoch = meta.get(RESTORE_EPOCH)?.map(|g| g.value());
        let at = meta.get(RESTORE_SNAPSHOT_MS)?.map(|g| g.value());
        Ok(match (epoch, at) {
            (Some(epoch), Some(snapshot_ms)) if epoch != 0 => {
                Some(RecoveryPoint { epoch, snapshot_ms })
            }
            _ => None,
        })
    }

    /// Rows per table, as a snapshot of this store would copy them.
    pub fn rows_per_table(&self) -> Result<Vec<(String, u64)>, SnapshotError> {
        let r = self.db.read()?;
        tables()
            .iter()
            .map(|t| Ok((t.name().to_owned(), t.rows(&r)?)))
            .collect()
    }

    /// Bodies kept as files that the store's documents reference.
    pub fn body_files(&self) -> Result<Vec<Digest>, StoreError> {
        body_files_in(&self.db.read()?)
    }

    /// Documents in the store (for a backup's description).
    pub fn document_count(&self) -> Result<u64, StoreError> {
        Ok(self.db.read()?.open_table(DOCS)?.len()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snapshot_lists_every_table_the_store_creates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            HubStore::open(Db::open(&dir.path().join("hub.redb")).expect("db")).expect("open");
        let snap = store
            .snapshot_into(&dir.path().join("copy.redb"))
            .expect("a snapshot of a fresh store knows all its tables");
        assert_eq!(snap.copy.tables.len(), tables().len());
        assert!(snap.body_files.is_empty());
        assert_eq!(store.recovery_point().expect("read"), None);
        store
            .mark_restored(RecoveryPoint {
                epoch: 42,
                snapshot_ms: 1_000_000,
            })
            .expect("mark");
        let p = store.recovery_point().expect("read").expect("marked");
        assert_eq!(p.epoch, 42);
        assert_eq!(p.since_ms(), 1_000_000 - RECOVERY_MARGIN_MS);
    }
}
