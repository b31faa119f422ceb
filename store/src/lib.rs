//! Durable primitives shared by the Poros hub and node agent.
//! Owns the group-committed redb store ([`Db`]) and content-addressed body files ([`Blobs`]).
#![forbid(unsafe_code)]

mod blobs;
mod db;
mod error;

pub use blobs::{fsync_dir, BlobCheck, BlobWriter, Blobs, Digest};
pub use db::{BatchHook, CommitStats, Db, MAX_BATCH};
pub use error::StoreError;
