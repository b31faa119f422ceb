//! Large bodies in PostgreSQL ([`PgBodies`]): every body over 64 KiB in the cluster, chunked,
//! streamed both ways, so that any hub instance delivers any body and losing a hub's disk
//! loses nothing.
//!
//! Tables (`sql/0007_bodies.sql`): `stored_bodies` (digest → length, complete, created and
//! claimed times) and `body_chunks` ((digest, seq) → 256 KiB of the body, stored out of line
//! uncompressed). References are the exchange's `body_refs` (digest → documents using it).
//!
//! - Upload ([`BodyStore::settle`]): from the hub's local staging file, [`CHUNKS_PER_TXN`]
//!   chunks per transaction (each through [`PgStore::write`], so its commit is confirmed or
//!   resolved like every write), idempotent by (digest, seq); the bytes are hashed again on
//!   the way and the body is marked complete only if they match its digest and every chunk
//!   is there. Then the staging file is removed. A body whose row is not complete (an upload
//!   interrupted by a crash) is never read: checks find it missing.
//! - Durability order: the chunks and the complete mark are committed before the document's
//!   accept is; a crash in between leaves an unreferenced body, removed by the sweep after
//!   the grace period.
//! - Claims: identical content already stored is not uploaded again; the upload claims it
//!   (`claimed_at` = now, by the database's clock). Removal — after retention or by the
//!   orphan sweep — checks in its own transaction that no document references the body *and*
//!   that no upload claimed it within the grace period, so a document about to reference a
//!   body (on this hub or another) commits before the body could go.
//! - Reading streams chunk by chunk, a few fetched ahead on a pooled connection; a body is
//!   never whole in memory, on either side.

use super::{PgStore, Tx};
use crate::bodies::{BodyReader, BodyStore, Settle};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use poros_protocol::Digest;
use poros_store::{BlobCheck, Blobs, ReceivedBody, StoreError, SweepReport};
use ring::digest::{Context, SHA256};
use std::io;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// Bytes per chunk (the last chunk of a body is shorter).
pub const CHUNK: usize = 256 * 1024;
/// Chunks uploaded per transaction.
pub const CHUNKS_PER_TXN: usize = 4;
/// Chunks fetched per query when reading.
const CHUNKS_PER_FETCH: i64 = 4;
/// Chunks a reader holds fetched ahead of the one being read.
const READ_AHEAD: usize = 4;
/// Bodies listed per page by the orphan sweep.
const SWEEP_PAGE: i64 = 256;

/// Now, in Unix ms, by the database's clock (one clock for every hub).
const NOW_MS: &str = "(extract(epoch FROM now()) * 1000)::bigint";

/// The hub's large bodies in the PostgreSQL cluster; see the module docs.
#[derive(Clone)]
pub struct PgBodies {
    store: PgStore,
    /// Where bodies are received before they are uploaded (the hub's body directory).
    staging: Blobs,
    /// How long a claimed body without a reference is kept: the orphan grace period.
    lease: Duration,
}

impl PgBodies {
    /// Bodies in `store`'s database, received into `staging`; a body claimed by an upload is
    /// not removed for want of a reference until `lease` (the orphan grace period) has passed.
    pub fn new(store: PgStore, staging: Blobs, lease: Duration) -> PgBodies {
        PgBodies {
            store,
            staging,
            lease,
        }
    }

    /// Claim a complete body of `len` bytes already stored; false if there is none.
    async fn claim(&self, digest: Digest, len: u64) -> Result<bool, StoreError> {
        let store = self.store.clone();
        self.store
            .write("body claim", move |tx| {
                let store = store.clone();
                Box::pin(async move {
                    let n = tx
                        .execute(
                            &format!(
                                "UPDATE stored_bodies SET claimed_at = {NOW_MS} \
                                 WHERE digest = $1 AND complete AND len = $2"
                            ),
                            &[&digest.as_slice(), &(len as i64)],
                        )
                        .await
                        .map_err(|e| store.sql_error("body claim", e))?;
                    Ok(n == 1)
                })
            })
            .await
    }

    /// Upload the staging file of `digest` and mark the body complete.
    async fn upload(&self, digest: Digest, len: u64) -> Result<(), StoreError> {
        let path = self.staging.path(&digest);
        let io_err = |op: &'static str| {
            let path = path.clone();
            move |source| StoreError::Io { op, path, source }
        };
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::BlobNotFound { digest })
            }
            Err(e) => return Err(io_err("open staged body")(e)),
        };
        let mut hash = Context::new(&SHA256);
        let (mut seq, mut total) = (0i32, 0u64);
        let mut at_end = false;
        while !at_end {
            let mut batch = Vec::with_capacity(CHUNKS_PER_TXN);
            while batch.len() < CHUNKS_PER_TXN {
                let mut chunk = BytesMut::with_capacity(CHUNK);
                while chunk.len() < CHUNK {
                    if file
                        .read_buf(&mut chunk)
                        .await
                        .map_err(io_err("read staged body"))?
                        == 0
                    {
                        at_end = true;
                        break;
                    }
                }
                if !chunk.is_empty() {
                    hash.update(&chunk);
                    total += chunk.len() as u64;
                    batch.push(chunk.freeze());
                }
                if at_end {
                    break;
                }
            }
            if batch.is_empty() {
                break;
            }
            let n = batch.len() as i32;
            self.put_chunks(digest, len, seq, batch).await?;
            seq += n;
        }
        let mut actual = [0u8; 32];
        actual.copy_from_slice(hash.finish().as_ref());
        if actual != digest || total != len {
            // The staging file changed since it was received and checked (a disk fault).
            // Removed, or the next receipt of the same body would re-use it as it is.
            self.remove_staging(&digest);
            return Err(StoreError::Other(format!(
                "staged body {} reads as {total} bytes hashing to {}, not {len} bytes as received",
                hex::encode(digest),
                hex::encode(actual)
            )));
        }
        self.complete(digest, len, seq).await
    }

    /// One transaction of the upload: the body's row (claimed now) and chunks `first..`.
    async fn put_chunks(
        &self,
        digest: Digest,
        len: u64,
        first: i32,
        batch: Vec<Bytes>,
    ) -> Result<(), StoreError> {
        let store = self.store.clone();
        self.store
            .write("body upload", move |tx| {
                let (store, batch) = (store.clone(), batch.clone());
                Box::pin(async move {
                    let d = digest.as_slice();
                    let sql = |e| store.sql_error("body upload", e);
                    tx.execute(
                        &format!(
                            "INSERT INTO stored_bodies (digest, len, complete, created_at, claimed_at) \
                             VALUES ($1, $2, false, {NOW_MS}, {NOW_MS}) \
                             ON CONFLICT (digest) DO UPDATE SET claimed_at = excluded.claimed_at"
                        ),
                        &[&d, &(len as i64)],
                    )
                    .await
                    .map_err(sql)?;
                    let seqs: Vec<i32> = (first..first + batch.len() as i32).collect();
                    let data: Vec<&[u8]> = batch.iter().map(|b| &b[..]).collect();
                    // Overwritten, not skipped: a repair replaces damaged chunks, and a
                    // resumed upload never keeps what an unchecked earlier one wrote.
                    tx.execute(
                        "INSERT INTO body_chunks (digest, seq, data) \
                         SELECT $1, s, c FROM unnest($2::int4[], $3::bytea[]) AS t(s, c) \
                         ON CONFLICT (digest, seq) DO UPDATE SET data = excluded.data",
                        &[&d, &seqs, &data],
                    )
                    .await
                    .map_err(sql)?;
                    Ok(())
                })
            })
            .await
    }

    /// The last transaction of the upload: every chunk is there, nothing beyond; complete.
    async fn complete(&self, digest: Digest, len: u64, chunks: i32) -> Result<(), StoreError> {
        let store = self.store.clone();
        self.store
            .write("body complete", move |tx| {
                let store = store.clone();
                Box::pin(async move {
                    let d = digest.as_slice();
                    let sql = |e| store.sql_error("body complete", e);
                    let row = tx
                        .query_one(
                            "SELECT count(*), coalesce(sum(octet_length(data)), 0)::bigint \
                             FROM body_chunks WHERE digest = $1 AND seq < $2",
                            &[&d, &chunks],
                        )
                        .await
                        .map_err(sql)?;
                    let (count, bytes): (i64, i64) = (row.get(0), row.get(1));
                    if count != i64::from(chunks) || bytes != len as i64 {
                        // Removed meanwhile (an upload stalled past the grace period).
                        return Err(StoreError::Other(format!(
                            "upload of body {}: {count} of {chunks} chunks, {bytes} of {len} \
                             bytes found at its end",
                            hex::encode(digest)
                        )));
                    }
                    tx.execute(
                        "DELETE FROM body_chunks WHERE digest = $1 AND seq >= $2",
                        &[&d, &chunks],
                    )
                    .await
                    .map_err(sql)?;
                    tx.execute(
                        &format!(
                            "UPDATE stored_bodies SET complete = true, len = $2, \
                             claimed_at = {NOW_MS} WHERE digest = $1"
                        ),
                        &[&d, &(len as i64)],
                    )
                    .await
                    .map_err(sql)?;
                    Ok(())
                })
            })
            .await
    }

    /// The length of a complete body, if one is stored.
    async fn complete_len(&self, digest: Digest) -> Result<Option<u64>, StoreError> {
        let store = self.store.clone();
        self.store
            .read("body open", move |tx| {
                Box::pin(async move {
                    let row = tx
                        .query_opt(
                            "SELECT len FROM stored_bodies WHERE digest = $1 AND complete",
                            &[&digest.as_slice()],
                        )
                        .await
                        .map_err(|e| store.sql_error("body open", e))?;
                    Ok(row.map(|r| r.get::<_, i64>(0).max(0) as u64))
                })
            })
            .await
    }

    fn remove_staging(&self, digest: &Digest) {
        if let Err(e) = self.staging.remove(digest) {
            // The local orphan sweep removes it later.
            warn!(digest = %hex::encode(digest), error = %e, "could not remove a staged body after its upload");
        }
    }

    /// The chunks of a complete body of `len` bytes, fetched ahead on pooled connections.
    fn chunks(&self, digest: Digest, len: u64) -> Chunks {
        let (tx, rx) = mpsc::channel(READ_AHEAD);
        let store = self.store.clone();
        let n = len.div_ceil(CHUNK as u64) as i64;
        let task = tokio::spawn(async move {
            let mut next: i64 = 0;
            while next < n {
                let rows = match fetch(&store, &digest, next, CHUNKS_PER_FETCH.min(n - next)).await
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send(Err(io::Error::other(e))).await;
                        return;
                    }
                };
                if rows.is_empty() {
                    return;
                }
                for (seq, data) in rows {
                    if seq != next {
                        // A chunk is missing: the body ends here, short (damaged).
                        return;
                    }
                    if tx.send(Ok(data)).await.is_err() {
                        return; // the reader is gone
                    }
                    next += 1;
                }
            }
        });
        Chunks {
            rx,
            _fetcher: AbortOnDrop(task),
        }
    }
}

/// Chunks `from..from + limit` of a body, in order, on a pooled connection.
async fn fetch(
    store: &PgStore,
    digest: &Digest,
    from: i64,
    limit: i64,
) -> Result<Vec<(i64, Bytes)>, StoreError> {
    let client = store.client().await?;
    let rows = client
        .query(
            "SELECT seq, data FROM body_chunks WHERE digest = $1 AND seq >= $2 \
             ORDER BY seq LIMIT $3",
            &[&digest.as_slice(), &(from as i32), &limit],
        )
        .await
        .map_err(|e| store.sql_error("body read", e))?;
    rows.into_iter()
        .map(|r| {
            let seq: i32 = r.get(0);
            let data: &[u8] = r
                .try_get(1)
                .map_err(|e| StoreError::Sql(format!("body read: {e}")))?;
            Ok((i64::from(seq), Bytes::copy_from_slice(data)))
        })
        .collect()
}

/// Aborts the fetching task when the reader is dropped (a delivery given up).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A body's chunks as they arrive; ends early if a chunk is missing.
struct Chunks {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    _fetcher: AbortOnDrop,
}

/// A stored body as a byte stream.
struct ChunkReader {
    chunks: Chunks,
    current: Bytes,
}

impl AsyncRead for ChunkReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.current.is_empty() {
                let n = self.current.len().min(buf.remaining());
                buf.put_slice(&self.current.split_to(n));
                return Poll::Ready(Ok(()));
            }
            match self.chunks.rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(b))) => self.current = b,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                // The end (or a missing chunk): what was read is all there is.
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Remove a body if nothing references it and no upload claimed it within `grace_ms`;
/// returns the bytes freed, or `None` if it stays. In the caller's transaction, so the
/// reference check and the removal are one.
async fn remove_in(
    tx: &Tx<'_>,
    store: &PgStore,
    digest: &Digest,
    grace_ms: i64,
) -> Result<Option<u64>, StoreError> {
    let d = digest.as_slice();
    let sql = |e| store.sql_error("body remove", e);
    let gone = tx
        .execute(
            &format!(
                "DELETE FROM stored_bodies b WHERE b.digest = $1 AND b.claimed_at <= {NOW_MS} - $2 \
                 AND NOT EXISTS (SELECT 1 FROM body_refs r WHERE r.digest = b.digest AND r.refs > 0)"
            ),
            &[&d, &grace_ms],
        )
        .await
        .map_err(sql)?;
    if gone == 0 {
        return Ok(None);
    }
    let bytes: i64 = tx
        .query_one(
            "WITH gone AS (DELETE FROM body_chunks WHERE digest = $1 \
             RETURNING octet_length(data) AS n) SELECT coalesce(sum(n), 0)::bigint FROM gone",
            &[&d],
        )
        .await
        .map_err(sql)?
        .get(0);
    Ok(Some(bytes.max(0) as u64))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait]
impl BodyStore for PgBodies {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn settle(&self, body: ReceivedBody, how: Settle) -> Result<ReceivedBody, StoreError> {
        let ReceivedBody::File { digest, len, .. } = &body else {
            return Ok(body);
        };
        let (digest, len) = (*digest, *len);
        // Identical content already stored (and not the damaged copy being repaired).
        if how == Settle::New && self.claim(digest, len).await? {
            debug!(digest = %hex::encode(digest), "body already stored; claimed");
        } else {
            match self.upload(digest, len).await {
                Ok(()) => {
                    debug!(digest = %hex::encode(digest), bytes = len, "body uploaded to the database")
                }
                // Another submission of the same content on this hub may have uploaded it
                // and removed the staging file both had.
                Err(e @ StoreError::BlobNotFound { .. }) => {
                    if how == Settle::Repair || !self.claim(digest, len).await? {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        self.remove_staging(&digest);
        Ok(body)
    }

    async fn check_len(&self, digest: &Digest, len: u64) -> Result<BlobCheck, StoreError> {
        let store = self.store.clone();
        let digest = *digest;
        self.store
            .read("body check", move |tx| {
                Box::pin(async move {
                    let row = tx
                        .query_opt(
                            "SELECT b.complete, (SELECT coalesce(sum(octet_length(c.data)), 0)::bigint \
                             FROM body_chunks c WHERE c.digest = b.digest) \
                             FROM stored_bodies b WHERE b.digest = $1",
                            &[&digest.as_slice()],
                        )
                        .await
                        .map_err(|e| store.sql_error("body check", e))?;
                    Ok(match row {
                        Some(r) if r.get::<_, bool>(0) => {
                            let found = r.get::<_, i64>(1).max(0) as u64;
                            if found == len {
                                BlobCheck::Intact
                            } else {
                                BlobCheck::WrongLength { found }
                            }
                        }
                        _ => BlobCheck::Missing,
                    })
                })
            })
            .await
    }

    async fn open_read(&self, digest: &Digest) -> Result<BodyReader, StoreError> {
        let Some(len) = self.complete_len(*digest).await? else {
            return Err(StoreError::BlobNotFound { digest: *digest });
        };
        Ok(Box::new(ChunkReader {
            chunks: self.chunks(*digest, len),
            current: Bytes::new(),
        }))
    }

    async fn verify(&self, digest: &Digest) -> Result<(BlobCheck, u64), StoreError> {
        let Some(len) = self.complete_len(*digest).await? else {
            return Ok((BlobCheck::Missing, 0));
        };
        let mut chunks = self.chunks(*digest, len);
        let mut hash = Context::new(&SHA256);
        let mut total = 0u64;
        while let Some(c) = chunks.rx.recv().await {
            let c = c.map_err(|e| StoreError::Other(format!("body read: {e}")))?;
            hash.update(&c);
            total += c.len() as u64;
        }
        let check = if total == len && hash.finish().as_ref() == digest.as_slice() {
            BlobCheck::Intact
        } else {
            BlobCheck::WrongHash
        };
        Ok((check, total))
    }

    async fn remove_released(&self, digest: &Digest) -> Result<bool, StoreError> {
        let store = self.store.clone();
        let (digest, grace_ms) = (*digest, millis(self.lease));
        let freed = self
            .store
            .write("body remove", move |tx| {
                let store = store.clone();
                Box::pin(async move { remove_in(tx, &store, &digest, grace_ms).await })
            })
            .await?;
        Ok(freed.is_some())
    }

    async fn sweep_unreferenced(&self, grace: Duration) -> Result<SweepReport, StoreError> {
        let grace_ms = millis(grace);
        let mut report = SweepReport::default();
        let mut after: (i64, Vec<u8>) = (i64::MIN, Vec::new());
        loop {
            let store = self.store.clone();
            let cursor = after.clone();
            let page: Vec<(i64, Vec<u8>)> = self
                .store
                .read("body sweep", move |tx| {
                    Box::pin(async move {
                        let rows = tx
                            .query(
                                &format!(
                                    "SELECT b.claimed_at, b.digest FROM stored_bodies b \
                                     WHERE b.claimed_at <= {NOW_MS} - $1 \
                                     AND (b.claimed_at, b.digest) > ($2, $3) \
                                     AND NOT EXISTS (SELECT 1 FROM body_refs r \
                                         WHERE r.digest = b.digest AND r.refs > 0) \
                                     ORDER BY b.claimed_at, b.digest LIMIT $4"
                                ),
                                &[&grace_ms, &cursor.0, &cursor.1, &SWEEP_PAGE],
                            )
                            .await
                            .map_err(|e| store.sql_error("body sweep", e))?;
                        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
                    })
                })
                .await?;
            let Some(last) = page.last() else { break };
            after = last.clone();
            for (_, d) in page {
                let Ok(digest) = Digest::try_from(d.as_slice()) else {
                    continue;
                };
                report.examined += 1;
                let store = self.store.clone();
                let freed = self
                    .store
                    .write("body sweep", move |tx| {
                        let store = store.clone();
                        Box::pin(async move { remove_in(tx, &store, &digest, grace_ms).await })
                    })
                    .await?;
                if let Some(bytes) = freed {
                    report.removed += 1;
                    report.removed_bytes += bytes;
                    info!(digest = %hex::encode(digest), bytes, "removed a body that no document references");
                }
            }
        }
        // Staged bodies a crash left on this hub's disk, never uploaded: nothing references
        // a staging file (an upload in progress holds the reference guard, or is younger).
        let staging = self.staging.clone();
        let local =
            tokio::task::spawn_blocking(move || staging.sweep_unreferenced(grace, |_| Ok(false)))
                .await
                .map_err(|e| StoreError::Other(format!("staging sweep task failed: {e}")))??;
        report.examined += local.examined;
        report.removed += local.removed;
        report.removed_bytes += local.removed_bytes;
        Ok(report)
    }
}
