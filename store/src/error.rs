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
}
