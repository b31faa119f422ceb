//! The single error type of the store crate.
//! Owns `StoreError` and its conversions from redb and IO failures.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The embedded database reported an error.
    #[error("database: {0}")]
    Db(#[source] Box<redb::Error>),
    /// A filesystem operation failed.
    #[error("{op} {}: {source}", .path.display())]
    Io {
        /// What was being done, e.g. "fsync blob".
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying OS error.
        #[source]
        source: io::Error,
    },
    /// The database file is locked by another process (or another `Db` in this one).
    #[error("store {} is in use by another process", .path.display())]
    Locked {
        /// The database file.
        path: PathBuf,
    },
    /// Stored data failed to decode or violates an invariant.
    #[error("corrupt store data: {0}")]
    Corrupt(String),
    /// A finished blob's SHA-256 differs from the one the caller expected.
    #[error("blob digest mismatch: expected {}, got {}", hex::encode(.expected), hex::encode(.actual))]
    DigestMismatch {
        /// The digest the caller announced.
        expected: [u8; 32],
        /// The digest of the bytes actually received.
        actual: [u8; 32],
    },
    /// No blob with this digest is stored.
    #[error("blob {} not found", hex::encode(.digest))]
    BlobNotFound {
        /// The digest that was looked up.
        digest: [u8; 32],
    },
    /// A write closure panicked; its transaction was rolled back.
    #[error("write closure panicked")]
    Panicked,
    /// The committer thread is gone, so the write was not performed.
    #[error("store committer has stopped")]
    Closed,
    /// A caller's own failure, raised from inside a write closure.
    #[error("{0}")]
    Other(String),
    /// A database statement failed (a shared database backend's error, with its SQLSTATE).
    #[error("database: {0}")]
    Sql(String),
    /// A concurrent transaction conflicted with this one (serialization failure, deadlock):
    /// nothing was written, and the operation is run again from the start.
    #[error("transaction conflict: {0}")]
    Conflict(String),
    /// The storage cannot take writes now (full, over quota, failing); nothing was written.
    /// Retryable: the store recovers by itself once writing is possible again. The text names
    /// the cause only, never a path, so it may be shown to remote parties.
    #[error("store cannot write: {0}; retry later")]
    Unavailable(StorageFault),
    /// The store is of a format this binary cannot use (newer, or another kind's); the file
    /// was left untouched.
    #[error(transparent)]
    Format(Box<crate::FormatError>),
}

/// Why the storage cannot take writes: one vocabulary for the store's health, its errors and
/// the answers built from them (HTTP status, refusal code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StorageFault {
    /// The filesystem has no space left (ENOSPC).
    #[error("storage is full")]
    NoSpace,
    /// A disk quota was exceeded (EDQUOT).
    #[error("storage quota exceeded")]
    Quota,
    /// The device reported an I/O error, or the database refused further use after one.
    #[error("storage I/O error")]
    Io,
    /// The database server cannot be reached, or is not the primary (a failover under way).
    #[error("database unreachable")]
    Unreachable,
    /// The commit was not confirmed by a synchronous standby in time: it is not yet on two
    /// machines, so it is not acknowledged.
    #[error("no synchronous standby confirmed the commit")]
    NotReplicated,
    /// A row this operation needs stayed locked past the commit timeout (by a commit still
    /// waiting for its standby, or a stalled instance): nothing was written; retry later.
    #[error("the database kept a needed row locked too long")]
    Busy,
}

impl StorageFault {
    /// Whether freeing space is what it takes to recover (HTTP 507 rather than 503).
    pub fn is_full(self) -> bool {
        matches!(self, StorageFault::NoSpace | StorageFault::Quota)
    }

    /// The storage fault behind an OS error, if it is one (other errors are the caller's).
    pub fn of_io(e: &io::Error) -> Option<StorageFault> {
        // EIO has no `ErrorKind`; its number is 5 on every Unix.
        const EIO: i32 = 5;
        match e.kind() {
            io::ErrorKind::StorageFull => Some(StorageFault::NoSpace),
            io::ErrorKind::QuotaExceeded => Some(StorageFault::Quota),
            _ if e.raw_os_error() == Some(EIO) => Some(StorageFault::Io),
            _ => None,
        }
    }
}

impl StoreError {
    /// The storage fault behind this error, if any: such errors are retryable, the others
    /// are about the data or the caller.
    pub fn fault(&self) -> Option<StorageFault> {
        match self {
            StoreError::Unavailable(f) => Some(*f),
            StoreError::Io { source, .. } => StorageFault::of_io(source),
            StoreError::Db(e) => match e.as_ref() {
                redb::Error::Io(source) => StorageFault::of_io(source).or(Some(StorageFault::Io)),
                // redb's answer to every use after a failed write, until re-opened.
                redb::Error::PreviousIo => Some(StorageFault::Io),
                _ => None,
            },
            _ => None,
        }
    }
}

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> Self {
        // Boxed: redb::Error is large and would bloat every Result in the crate.
        StoreError::Db(Box::new(e))
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::from(redb::Error::from(e))
            }
        }
    )*};
}

from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn error_is_send_sync_and_readable() {
        assert_send_sync::<StoreError>();
        let e = StoreError::Locked {
            path: "/x/hub.redb".into(),
        };
        assert_eq!(
            e.to_string(),
            "store /x/hub.redb is in use by another process"
        );
        let e = StoreError::DigestMismatch {
            expected: [0; 32],
            actual: [0xff; 32],
        };
        assert!(e.to_string().contains(&"ff".repeat(32)));
    }

    #[test]
    fn storage_faults_are_classified_and_named_without_paths() {
        let full = StoreError::Io {
            op: "write blob",
            path: "/secret/dir/tmp/x".into(),
            source: io::Error::from(io::ErrorKind::StorageFull),
        };
        assert_eq!(full.fault(), Some(StorageFault::NoSpace));
        let e = StoreError::Unavailable(StorageFault::NoSpace);
        assert_eq!(
            e.to_string(),
            "store cannot write: storage is full; retry later"
        );
        assert!(StorageFault::NoSpace.is_full() && !StorageFault::Io.is_full());
        assert_eq!(
            StoreError::from(redb::StorageError::PreviousIo).fault(),
            Some(StorageFault::Io)
        );
        assert_eq!(StoreError::Corrupt("x".into()).fault(), None);
        let other = StoreError::Io {
            op: "open",
            path: "/x".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        assert_eq!(other.fault(), None);
    }
}
