//! Durable primitives shared by the Poros hub and node agent.
//! Owns the group-committed redb store ([`Db`]) and content-addressed body files ([`Blobs`]).
#![forbid(unsafe_code)]

mod blobs;
mod db;
mod error;
mod sweep;

pub use blobs::{fsync_dir, BlobWriter, Blobs, Digest, ReferenceGuard};
pub use db::{BatchHook, CommitStats, Db, MAX_BATCH};
pub use error::StoreError;
pub use sweep::SweepReport;
