//! Where the hub keeps large bodies (over [`poros_store::INLINE_MAX`]), behind one seam
//! ([`BodyStore`]) with two implementations:
//!
//! - [`FileBodies`] (with the redb store): content-addressed body files on the hub's disk
//!   ([`Blobs`]), exactly as before the seam existed;
//! - `PgBodies` (`state::pg::PgBodies`, with the PostgreSQL store): the body in the cluster,
//!   chunked, so that every hub instance reads every body and the cluster is the one durable
//!   truth.
//!
//! Either way a body is first received into the hub's local staging area (the same [`Blobs`]
//! directory, through [`poros_store::BodySink`]), where its SHA-256 is checked, and then
//! settled ([`BodyStore::settle`]) before the record that references it is committed. For
//! files, settling is nothing more: the committed file is the stored body. For the database,
//! it is the upload; the staging file is removed once the body is committed there.
//!
//! Small bodies never go through this seam: they are stored with their document by the
//! state backend (`inline_bodies`).

use crate::state::HubBackend;
use async_trait::async_trait;
use poros_protocol::Digest;
use poros_store::{BlobCheck, Blobs, ReceivedBody, StoreError, SweepReport};
use std::sync::Arc;
use std::time::Duration;

/// A stored body being read, in order, never whole in memory. Its length and SHA-256 are the
/// reader's to check (see `poros_transport::send_body_verified`): a body that ends early or
/// reads differently is damaged.
pub type BodyReader = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

/// What a settled body is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settle {
    /// The body of a new document. Identical content already stored is kept and re-used
    /// (as a body file committed twice is).
    New,
    /// A re-upload of a body found damaged or missing: it replaces whatever is stored under
    /// its digest.
    Repair,
}

/// The hub's large bodies: made durable, checked, read for delivery, verified by the scrub,
/// removed after retention and swept when nothing references them.
///
/// Durability order, whatever the implementation: [`BodyStore::settle`] returns only once the
/// body is durable, before the document that references it is accepted; a crash in between
/// leaves an unreferenced body, which [`BodyStore::sweep_unreferenced`] removes once its grace
/// period is over. A body is never removed while a committed document references it.
#[async_trait]
pub trait BodyStore: Send + Sync {
    /// `files` or `postgres`, for logs.
    fn kind(&self) -> &'static str;

    /// Make durable a body received into the local staging area (an inline body is returned
    /// as it is: it is stored with its document). The body returned is what the document's
    /// accept takes; its reference guard, if any, is still held.
    async fn settle(&self, body: ReceivedBody, how: Settle) -> Result<ReceivedBody, StoreError>;

    /// Cheap check of a stored body against its recorded length (no body byte is read).
    async fn check_len(&self, digest: &Digest, len: u64) -> Result<BlobCheck, StoreError>;

    /// A stored body, for reading in order. [`StoreError::BlobNotFound`] if it is not stored
    /// (or its upload never completed).
    async fn open_read(&self, digest: &Digest) -> Result<BodyReader, StoreError>;

    /// Full check: the body is stored and hashes to its digest. Reads all of it. Returns the
    /// check and the bytes read.
    async fn verify(&self, digest: &Digest) -> Result<(BlobCheck, u64), StoreError>;

    /// Remove a body whose last reference retention released, unless a document took a new
    /// reference to the same content meanwhile (checked atomically with the removal). Returns
    /// whether it was removed; a body left in place (its removal failed, or an upload claimed
    /// it again) is the orphan sweep's. An error is the reference check's (the store).
    async fn remove_released(&self, digest: &Digest) -> Result<bool, StoreError>;

    /// Remove the bodies older than `grace` that no document references (a crash between
    /// settling a body and accepting its document, a removal that did not complete).
    async fn sweep_unreferenced(&self, grace: Duration) -> Result<SweepReport, StoreError>;
}

/// Large bodies as content-addressed files on the hub's disk: the staging file committed by
/// [`poros_store::BodySink`] is the stored body. The redb deployment's body store.
pub struct FileBodies {
    blobs: Blobs,
    /// Who references a body (`body_refs`).
    refs: Arc<dyn HubBackend>,
}

impl FileBodies {
    /// The body files in `blobs`, referenced by the documents of `refs`.
    pub fn new(blobs: Blobs, refs: Arc<dyn HubBackend>) -> FileBodies {
        FileBodies { blobs, refs }
    }
}

#[async_trait]
impl BodyStore for FileBodies {
    fn kind(&self) -> &'static str {
        "files"
    }

    async fn settle(&self, body: ReceivedBody, _how: Settle) -> Result<ReceivedBody, StoreError> {
        // `BodySink::finish` committed and fsync'd the file (replacing a damaged one for a
        // repair), and took the reference guard the accept holds until it is durable.
        Ok(body)
    }

    async fn check_len(&self, digest: &Digest, len: u64) -> Result<BlobCheck, StoreError> {
        self.blobs.check_len(digest, len)
    }

    async fn open_read(&self, digest: &Digest) -> Result<BodyReader, StoreError> {
        Ok(Box::new(self.blobs.open_read(digest).await?))
    }

    async fn verify(&self, digest: &Digest) -> Result<(BlobCheck, u64), StoreError> {
        let (blobs, digest) = (self.blobs.clone(), *digest);
        tokio::task::spawn_blocking(move || blobs.verify(&digest))
            .await
            .map_err(|e| StoreError::Other(format!("body check task failed: {e}")))?
    }

    async fn remove_released(&self, digest: &Digest) -> Result<bool, StoreError> {
        // A document accepted meanwhile may have taken a new reference to the same content:
        // its writer holds the reference guard until its record is durable.
        let _gc = self.blobs.removal_guard().await;
        if self.refs.body_refs(digest).await? > 0 {
            return Ok(false);
        }
        // A file that cannot be removed now is left to the orphan sweep.
        match self.blobs.remove(digest) {
            Ok(removed) => Ok(removed),
            Err(e) => {
                tracing::warn!(error = %e, "removing body file failed");
                Ok(false)
            }
        }
    }

    async fn sweep_unreferenced(&self, grace: Duration) -> Result<SweepReport, StoreError> {
        let (blobs, refs) = (self.blobs.clone(), self.refs.clone());
        tokio::task::spawn_blocking(move || {
            blobs.sweep_unreferenced(grace, |d| {
                // On the blocking pool: each answer is awaited here, file by file.
                Ok(tokio::runtime::Handle::current().block_on(refs.body_refs(d))? > 0)
            })
        })
        .await
        .map_err(|e| StoreError::Other(format!("orphan sweep task failed: {e}")))?
    }
}
