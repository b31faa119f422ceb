//! Durable primitives shared by the Poros hub and node agent: the group-committed redb store
//! ([`Db`], which recovers by itself from a full disk), content-addressed body files ([`Blobs`]),
//! a body received into memory or a file ([`BodySink`], [`ReceivedBody`], [`BodyAt`]), and the
//! store format versions ([`format`]: the record, upgrade with a backup, refusal of newer stores),
//! and backups ([`archive`]: the file format; [`backup_file`]: writing and restoring one).
#![forbid(unsafe_code)]

pub mod archive;
pub mod backup_file;
mod blobs;
mod body;
mod commit_times;
mod db;
mod direct;
mod error;
pub mod format;
mod health;
mod ownership;
mod snapshot;
mod sweep;
mod tables;
#[cfg(test)]
mod testutil;

pub use blobs::{
    fsync_dir, BlobCheck, BlobReader, BlobWriter, Blobs, Digest, ReferenceGuard, RemovalHold,
};
pub use body::{BodyAt, BodySink, Commit, ReceivedBody, INLINE_MAX};
pub use commit_times::{CommitHistogram, CommitTimes, COMMIT_BUCKETS_MICROS};
pub use db::{BatchHook, CommitStats, Db, MAX_BATCH, UNHURRIED_WAIT};
pub use error::{StorageFault, StoreError};
pub use format::{Format, FormatError, Opened, Upgrade};
pub use health::{health_metrics, PROBE_BYTES, WRITABLE_METRIC, WRITE_FAILURES_METRIC};
pub use ownership::chown_tree;
pub use snapshot::{copy_snapshot, own_tables, SnapshotCopy, SnapshotError, SnapshotTable, Typed};
pub use sweep::SweepReport;
pub use tables::{LazyTable, TableSet};

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
