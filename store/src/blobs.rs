//! Content-addressed body files: `<dir>/<2 hex>/<64 hex>`, named by SHA-256.
//! Owns streaming writes through `<dir>/tmp`, durable publication by rename, reads and removal.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use ring::digest::{Context, SHA256};

use crate::direct::{FileSink, FileSource};
use crate::StoreError;

/// SHA-256 of a blob's contents; also its name on disk.
pub type Digest = [u8; 32];

/// A directory of immutable, content-addressed files.
///
/// One process per directory: `open` deletes whatever it finds in `<dir>/tmp`.
#[derive(Debug, Clone)]
pub struct Blobs {
    inner: Arc<Dirs>,
}

#[derive(Debug)]
struct Dirs {
    root: PathBuf,
    tmp: PathBuf,
    next_tmp: AtomicU64,
    /// Orders publication against the orphan sweep: see [`Blobs::reference_guard`].
    refs: Arc<tokio::sync::RwLock<()>>,
    /// Backups in progress: while any is, no file is removed (see [`Blobs::hold_removals`]).
    holds: AtomicUsize,
}

/// While held, [`Blobs::remove`] removes nothing: a backup copying the files a snapshot of the
/// store references holds one. Files released meanwhile are left to the orphan sweep.
#[derive(Debug)]
pub struct RemovalHold {
    blobs: Blobs,
}

impl Drop for RemovalHold {
    fn drop(&mut self) {
        self.blobs.inner.holds.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Held by a writer from just before it commits a blob until the record that references the
/// blob is durable; the orphan sweep cannot remove a file while any such guard is held.
pub type ReferenceGuard = tokio::sync::OwnedRwLockReadGuard<()>;

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Makes a directory's entries (creations, renames, unlinks) durable.
pub fn fsync_dir(path: &Path) -> Result<(), StoreError> {
    std::fs::File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", path))
}

impl Blobs {
    /// Opens (creating if needed) the blob directory and discards temp files left by a crash.
    pub fn open(dir: &Path) -> Result<Blobs, StoreError> {
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(io_err("create blob directory", &tmp))?;
        for entry in std::fs::read_dir(&tmp).map_err(io_err("list blob temp directory", &tmp))? {
            let path = entry
                .map_err(io_err("list blob temp directory", &tmp))?
                .path();
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::debug!(path = %path.display(), "removed leftover blob temp file")
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove leftover blob temp file", &path)(e)),
            }
        }
        Ok(Blobs {
            inner: Arc::new(Dirs {
                root: dir.to_owned(),
                tmp,
                next_tmp: AtomicU64::new(0),
                refs: Arc::default(),
                holds: AtomicUsize::new(0),
            }),
        })
    }

    /// The directory this store lives in.
    pub fn dir(&self) -> &Path {
        &self.inner.root
    }

    /// Starts a new blob; nothing is visible under its digest until [`BlobWriter::commit`].
    pub async fn writer(&self) -> Result<BlobWriter, StoreError> {
        let n = self.inner.next_tmp.fetch_add(1, Ordering::Relaxed);
        let tmp_path = self
            .inner
            .tmp
            .join(format!("{}-{n}.part", std::process::id()));
        let create = || {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp_path)
        };
        let file = match create() {
            Ok(f) => f,
            // The working directory vanished while running (operator clean-up, restore):
            // recreate it rather than fail every large body until a restart.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::warn!(dir = %self.inner.tmp.display(), "blob temp directory was missing; recreating it");
                std::fs::create_dir_all(&self.inner.tmp)
                    .map_err(io_err("create blob directory", &self.inner.tmp))?;
                fsync_dir(&self.inner.root)?;
                create().map_err(io_err("create blob temp file", &tmp_path))?
            }
            Err(e) => return Err(io_err("create blob temp file", &tmp_path)(e)),
        };
        BlobWriter::start(self.clone(), file, tmp_path)
    }

    /// Cheap check of a committed blob against its recorded length (file metadata only).
    pub fn check_len(&self, digest: &Digest, len: u64) -> Result<BlobCheck, StoreError> {
        let path = self.path(digest);
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() && m.len() == len => Ok(BlobCheck::Intact),
            Ok(m) => Ok(BlobCheck::WrongLength { found: m.len() }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BlobCheck::Missing),
            Err(e) => Err(io_err("inspect blob", &path)(e)),
        }
    }

    /// Full check of a committed blob: present and hashing to its name. Reads the whole file
    /// (blocking; call off the async workers). Returns the check and the bytes read.
    pub fn verify(&self, digest: &Digest) -> Result<(BlobCheck, u64), StoreError> {
        use std::io::Read;
        let path = self.path(digest);
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((BlobCheck::Missing, 0)),
            Err(e) => return Err(io_err("open blob", &path)(e)),
        };
        let mut hash = Context::new(&SHA256);
        let mut buf = vec![0u8; PIECE];
        let mut total = 0u64;
        loop {
            let n = f.read(&mut buf).map_err(io_err("read blob", &path))?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            total += n as u64;
        }
        if hash.finish().as_ref() == digest.as_slice() {
            Ok((BlobCheck::Intact, total))
        } else {
            Ok((BlobCheck::WrongHash, total))
        }
    }

    /// Take before committing a blob that a record is about to reference, and hold until that
    /// record is durable. A commit of content that already exists only re-uses the old file,
    /// whose age says nothing about the new reference; this guard is what keeps the sweep
    /// ([`Blobs::sweep_unreferenced`]) from deleting it in between.
    pub async fn reference_guard(&self) -> ReferenceGuard {
        self.inner.refs.clone().read_owned().await
    }

    /// The exclusive side of [`Blobs::reference_guard`]: hold it while checking that nothing
    /// references a blob and removing it.
    pub async fn removal_guard(&self) -> tokio::sync::OwnedRwLockWriteGuard<()> {
        self.inner.refs.clone().write_owned().await
    }

    /// Keep every file until the hold is dropped. Taken under the removal lock, so a removal
    /// either finished before the hold (and a snapshot of the store taken after it does not
    /// reference the file) or sees the hold and keeps the file.
    pub async fn hold_removals(&self) -> RemovalHold {
        let _exclusive = self.removal_guard().await;
        self.inner.holds.fetch_add(1, Ordering::SeqCst);
        RemovalHold {
            blobs: self.clone(),
        }
    }

    pub(crate) fn sweep_lock(&self) -> &tokio::sync::RwLock<()> {
        &self.inner.refs
    }

    /// Where the blob with this digest lives (whether or not it exists).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        let hex = hex::encode(digest);
        self.inner.root.join(&hex[..2]).join(hex)
    }

    /// Whether a committed blob with this digest exists.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Opens a committed blob for reading: blocks are read past the page cache on a blocking
    /// thread, a few ahead of the reader (see `direct`).
    pub async fn open_read(&self, digest: &Digest) -> Result<BlobReader, StoreError> {
        let path = self.path(digest);
        match std::fs::File::open(&path) {
            Ok(f) => Ok(BlobReader::start(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::BlobNotFound { digest: *digest })
            }
            Err(e) => Err(io_err("open blob", &path)(e)),
        }
    }

    /// Deletes a blob durably; returns false if it was not there, or if a backup in progress
    /// holds removals ([`Blobs::hold_removals`]: the orphan sweep removes it later).
    pub fn remove(&self, digest: &Digest) -> Result<bool, StoreError> {
        if self.inner.holds.load(Ordering::SeqCst) > 0 {
            tracing::debug!(digest = %hex::encode(digest), "body file kept: a backup is in progress");
            return Ok(false);
        }
        let path = self.path(digest);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err("remove blob", &path)(e)),
        }
        if let Some(parent) = path.parent() {
            fsync_dir(parent)?;
        }
        Ok(true)
    }
}

/// A committed blob being read: [`tokio::io::AsyncRead`] over blocks read one ahead of the
/// reader. Each block is read on the blocking pool, which holds no thread between blocks, so a
/// slow reader (a download to a slow client) ties up nothing while it waits.
pub struct BlobReader {
    /// The read of the next block, under way (`None` once the end or an error was seen).
    next: Option<tokio::task::JoinHandle<NextBlock>>,
    block: Vec<u8>,
    at: usize,
}

type NextBlock = (FileSource, io::Result<Option<Vec<u8>>>);

fn read_ahead(mut src: FileSource) -> tokio::task::JoinHandle<NextBlock> {
    tokio::task::spawn_blocking(move || {
        let block = src.next_block();
        (src, block)
    })
}

impl BlobReader {
    fn start(file: std::fs::File) -> BlobReader {
        BlobReader {
            next: Some(read_ahead(FileSource::new(file))),
            block: Vec::new(),
            at: 0,
        }
    }

    /// Ready once the current block has bytes left (`true`) or the blob has ended (`false`).
    /// The read under way stays in `next` until it finishes, so a caller that stops waiting
    /// (a dropped future) loses nothing: the next call picks the same read up.
    fn poll_fill(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<bool>> {
        use std::future::Future;
        use std::task::Poll;
        if self.at < self.block.len() {
            return Poll::Ready(Ok(true));
        }
        let Some(pending) = self.next.as_mut() else {
            return Poll::Ready(Ok(false));
        };
        let done = std::task::ready!(std::pin::Pin::new(pending).poll(cx));
        self.next = None;
        Poll::Ready(match done {
            Ok((src, Ok(Some(b)))) => {
                // The block after this one is read while this one is used.
                self.next = Some(read_ahead(src));
                self.block = b;
                self.at = 0;
                Ok(true)
            }
            Ok((_, Ok(None))) => Ok(false),
            Ok((_, Err(e))) => Err(e),
            Err(e) => Err(io::Error::other(format!("body file read task failed: {e}"))),
        })
    }

    /// The next block as read (up to 1 MiB), handed over without a copy, or `None` at the
    /// end; what a read through [`tokio::io::AsyncRead`] left of the current block comes first.
    pub async fn next_block(&mut self) -> Option<io::Result<bytes::Bytes>> {
        match std::future::poll_fn(|cx| self.poll_fill(cx)).await {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => return Some(Err(e)),
        }
        let rest = if self.at == 0 {
            std::mem::take(&mut self.block)
        } else {
            let rest = self.block.split_off(self.at);
            self.block.clear();
            rest
        };
        self.at = 0;
        Some(Ok(rest.into()))
    }
}

impl std::fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader")
            .field("ended", &self.next.is_none())
            .finish()
    }
}

impl tokio::io::AsyncRead for BlobReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        if std::task::ready!(self.poll_fill(cx))? {
            let n = (self.block.len() - self.at).min(buf.remaining());
            let at = self.at;
            buf.put_slice(&self.block[at..at + n]);
            self.at += n;
        }
        std::task::Poll::Ready(Ok(()))
    }
}

/// What a check of a stored blob found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobCheck {
    /// Present and as recorded.
    Intact,
    /// No file under its digest.
    Missing,
    /// Present with another length than recorded (e.g. truncated).
    WrongLength {
        /// Length on disk.
        found: u64,
    },
    /// Present, but its contents do not hash to its name.
    WrongHash,
}

/// A blob being streamed to disk; hashes and counts bytes as they are written.
///
/// The file IO and the hashing run on a dedicated thread fed through a bounded channel, so
/// receiving the next chunk overlaps writing the last one, async workers never block, and at
/// most about ten pieces of [`PIECE`] bytes are buffered. The thread writes past the page
/// cache where the filesystem allows it, or else flushes written data to disk every
/// [`SYNC_EVERY`](crate::direct::SYNC_EVERY) bytes (see `direct`): either way the final fsync has little left to do,
/// instead of writing a whole large body at the end.
///
/// Dropping it without committing deletes the temp file.
pub struct BlobWriter {
    blobs: Blobs,
    /// None once committed (or after a failed commit consumed it).
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    worker: Option<std::thread::JoinHandle<Result<Digest, StoreError>>>,
    tmp_path: PathBuf,
    len: u64,
    /// Small writes are gathered here so the channel carries large pieces.
    pending: Vec<u8>,
}

/// Bytes gathered before a piece is handed to the writer thread.
pub const PIECE: usize = 1024 * 1024;
/// Pieces the channel holds at most (bounds memory per writer).
const PIPELINE_PIECES: usize = 8;

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("tmp_path", &self.tmp_path)
            .field("len", &self.len)
            .finish()
    }
}

/// Pieces hashed but not yet written, between the hashing and the writing thread.
const HASHED_PIECES: usize = 1;

/// Hashes the pieces and hands each, once hashed, to a thread of its own that writes it:
/// a direct write keeps its thread waiting for the device (about 0.8 ms per 1 MiB piece
/// here), and hashing the next piece meanwhile takes the hash (about 0.5 ms) off the
/// body's path. The digest is reported only once the file is written and fsync'd.
fn write_thread(
    file: std::fs::File,
    path: PathBuf,
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
) -> Result<Digest, StoreError> {
    let (to_disk, hashed) = std::sync::mpsc::sync_channel::<Vec<u8>>(HASHED_PIECES);
    let disk_path = path.clone();
    let disk = std::thread::Builder::new()
        .name("poros-blob-disk".into())
        .spawn(move || disk_thread(file, &disk_path, &hashed))
        .map_err(io_err("start blob disk thread", &path))?;
    let mut hash = Context::new(&SHA256);
    for piece in rx {
        hash.update(&piece);
        if to_disk.send(piece).is_err() {
            // The disk thread stopped on an error, which its join reports.
            break;
        }
    }
    drop(to_disk);
    disk.join()
        .map_err(|_| StoreError::Other("blob disk thread panicked".into()))??;
    let mut digest = [0u8; 32];
    digest.copy_from_slice(hash.finish().as_ref());
    Ok(digest)
}

/// Writes the hashed pieces to `file` and makes it durable once they stop coming.
fn disk_thread(
    file: std::fs::File,
    path: &Path,
    hashed: &std::sync::mpsc::Receiver<Vec<u8>>,
) -> Result<(), StoreError> {
    let mut out = FileSink::new(file);
    for piece in hashed {
        out.write(&piece)
            .map_err(io_err("write blob temp file", path))?;
    }
    out.finish().map_err(io_err("fsync blob temp file", path))
}

impl BlobWriter {
    fn start(blobs: Blobs, file: std::fs::File, tmp_path: PathBuf) -> Result<Self, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(PIPELINE_PIECES);
        let path = tmp_path.clone();
        let worker = std::thread::Builder::new()
            .name("poros-blob-writer".into())
            .spawn(move || write_thread(file, path, rx))
            .map_err(io_err("start blob writer thread", &tmp_path))?;
        Ok(BlobWriter {
            blobs,
            tx: Some(tx),
            worker: Some(worker),
            tmp_path,
            len: 0,
            pending: Vec::with_capacity(PIECE),
        })
    }

    async fn hand_over(&mut self, piece: Vec<u8>) -> Result<(), StoreError> {
        let tx = self.tx.clone().ok_or(StoreError::Closed)?;
        // A full channel means the disk is behind: wait off the async workers.
        let sent = tokio::task::spawn_blocking(move || tx.send(piece))
            .await
            .map_err(|_| StoreError::Other("blob writer hand-over panicked".into()))?;
        if sent.is_err() {
            // The thread stopped on an IO error; commit() reports it.
            return self.join_error().await;
        }
        Ok(())
    }

    async fn join_error(&mut self) -> Result<(), StoreError> {
        self.tx = None;
        let worker = self.worker.take().ok_or(StoreError::Closed)?;
        let res = tokio::task::spawn_blocking(move || worker.join())
            .await
            .map_err(|_| StoreError::Other("blob writer join panicked".into()))?;
        match res {
            Ok(Err(e)) => Err(e),
            _ => Err(StoreError::Other("blob writer stopped".into())),
        }
    }

    /// Appends a chunk.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        if self.tx.is_none() {
            return Err(StoreError::Closed);
        }
        self.len += chunk.len() as u64;
        // Pieces are filled to exactly their capacity: a chunk that overshot one made the
        // vector grow, which copied the whole piece again.
        let mut chunk = chunk;
        while !chunk.is_empty() {
            let n = (PIECE - self.pending.len()).min(chunk.len());
            self.pending.extend_from_slice(&chunk[..n]);
            chunk = &chunk[n..];
            if self.pending.len() == PIECE {
                let piece = std::mem::replace(&mut self.pending, Vec::with_capacity(PIECE));
                self.hand_over(piece).await?;
            }
        }
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Makes the blob durable under its SHA-256; returns the digest and length.
    pub async fn commit(self) -> Result<(Digest, u64), StoreError> {
        self.finish(None).await
    }

    /// Like [`BlobWriter::commit`], but discards the blob unless its digest is `expected`.
    pub async fn commit_expecting(self, expected: &Digest) -> Result<(Digest, u64), StoreError> {
        self.finish(Some(*expected)).await
    }

    /// Like [`BlobWriter::commit_expecting`], but replaces whatever file is stored under the
    /// digest (a damaged copy being repaired) instead of keeping it as a duplicate.
    pub async fn commit_replacing(self, expected: &Digest) -> Result<(Digest, u64), StoreError> {
        self.finish_with(Some(*expected), true).await
    }

    async fn finish(self, expected: Option<Digest>) -> Result<(Digest, u64), StoreError> {
        self.finish_with(expected, false).await
    }

    async fn finish_with(
        mut self,
        expected: Option<Digest>,
        replace: bool,
    ) -> Result<(Digest, u64), StoreError> {
        if !self.pending.is_empty() {
            let piece = std::mem::take(&mut self.pending);
            self.hand_over(piece).await?;
        }
        // Closing the channel lets the thread fsync and report the digest.
        self.tx = None;
        let worker = self.worker.take().ok_or(StoreError::Closed)?;
        // From here on any early return leaves `tmp_path` set, and Drop removes the temp file.
        let digest = tokio::task::spawn_blocking(move || worker.join())
            .await
            .map_err(|_| StoreError::Other("blob writer join panicked".into()))?
            .map_err(|_| StoreError::Other("blob writer thread panicked".into()))??;
        if let Some(expected) = expected {
            if expected != digest {
                return Err(StoreError::DigestMismatch {
                    expected,
                    actual: digest,
                });
            }
        }
        let path = self.tmp_path.clone();
        let dest = self.blobs.path(&digest);
        let root = self.blobs.inner.root.clone();
        let published = tokio::task::spawn_blocking(move || publish(&path, &dest, &root, replace))
            .await
            .map_err(|_| StoreError::Other("blob publish task panicked".into()))?;
        // Whether renamed away or left as a duplicate, the temp file is no longer ours to remove
        // unless publishing failed.
        if published.is_ok() {
            self.tmp_path = PathBuf::new();
        }
        published.map(|()| (digest, self.len))
    }
}

/// Moves a fsynced temp file to its content address and makes the rename durable.
fn publish(tmp: &Path, dest: &Path, root: &Path, replace: bool) -> Result<(), StoreError> {
    let fanout = dest.parent().unwrap_or(root);
    if !replace && dest.exists() {
        // Identical content is already durable; the copy is redundant.
        return std::fs::remove_file(tmp).map_err(io_err("remove duplicate blob temp file", tmp));
    }
    match std::fs::create_dir(fanout) {
        Ok(()) => fsync_dir(root)?,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err("create blob fan-out directory", fanout)(e)),
    }
    std::fs::rename(tmp, dest).map_err(io_err("publish blob", dest))?;
    fsync_dir(fanout)
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.tmp_path.as_os_str().is_empty() {
            return;
        }
        // Best effort: a leftover is also swept by the next `Blobs::open`.
        if let Err(e) = std::fs::remove_file(&self.tmp_path) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %self.tmp_path.display(), error = %e, "could not remove blob temp file");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn sha(data: &[u8]) -> Digest {
        let mut d = [0u8; 32];
        d.copy_from_slice(ring::digest::digest(&SHA256, data).as_ref());
        d
    }

    fn tmp_entries(blobs: &Blobs) -> usize {
        std::fs::read_dir(blobs.dir().join("tmp"))
            .expect("read tmp")
            .count()
    }

    fn body(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 4096) as u8).collect()
    }

    /// A piece the disk thread cannot write fails the whole body with the write's own error
    /// (named, with its path) rather than a digest of bytes that were never stored; the
    /// hashing side stops taking pieces and does not hang.
    #[test]
    fn a_write_the_disk_refuses_fails_the_body_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("read-only");
        std::fs::write(&path, b"").unwrap();
        // Opened for reading only: every write to it fails with EBADF.
        let file = std::fs::File::open(&path).unwrap();
        let (tx, rx) = std::sync::mpsc::sync_channel(PIPELINE_PIECES);
        let hashing = std::thread::spawn({
            let path = path.clone();
            move || write_thread(file, path, rx)
        });
        let mut refused_after = None;
        for i in 0..64 {
            if tx.send(vec![7u8; PIECE]).is_err() {
                refused_after = Some(i);
                break;
            }
        }
        drop(tx);
        let res = hashing.join().expect("hashing thread");
        match res {
            Err(StoreError::Io { op, path: p, .. }) => {
                assert_eq!(op, "write blob temp file");
                assert_eq!(p, path);
            }
            other => panic!("expected the write's error, got {other:?}"),
        }
        assert!(
            refused_after.is_some(),
            "the writer kept taking 64 MiB after its disk thread had failed"
        );
    }

    /// `data` stored as a blob under `dir`, opened for reading back.
    async fn stored_and_opened(dir: &Path, data: &[u8]) -> BlobReader {
        let blobs = Blobs::open(dir).unwrap();
        let mut w = blobs.writer().await.unwrap();
        w.write(data).await.unwrap();
        let (digest, _) = w.commit().await.unwrap();
        blobs.open_read(&digest).await.unwrap()
    }

    /// A body read back block by block, after a few bytes read through `AsyncRead`, is the
    /// body: nothing skipped, nothing twice, and the end is the end.
    #[tokio::test]
    async fn blocks_read_back_follow_what_was_read_before() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..3 * 1024 * 1024 + 5).map(|i| (i % 253) as u8).collect();
        let mut r = stored_and_opened(dir.path(), &data).await;
        let mut got = vec![0u8; 10];
        r.read_exact(&mut got).await.unwrap();
        while let Some(b) = r.next_block().await {
            got.extend_from_slice(&b.unwrap());
        }
        assert!(
            got == data,
            "{} bytes read back of {}",
            got.len(),
            data.len()
        );
        assert!(r.next_block().await.is_none());
    }

    /// A wait for the next block given up part-way (a dropped future, as in a `select!`)
    /// loses nothing: the read it was waiting for is handed to the next call.
    #[tokio::test]
    async fn a_block_waited_for_and_given_up_is_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..6 * 1024 * 1024 + 77).map(|i| (i % 251) as u8).collect();
        let mut r = stored_and_opened(dir.path(), &data).await;
        let mut given_up = 0;
        // Whether a read is done when it is polled is up to the disk; a few passes over the
        // blob make sure some wait was given up, and every pass must read back the whole.
        for pass in 0..5 {
            let (mut got, mut held): (Vec<u8>, Option<bytes::Bytes>) = (Vec::new(), None);
            loop {
                // Polled once right after the read of this block started (before the last
                // block is even copied), then dropped if the block is not there yet.
                let next =
                    match tokio::time::timeout(std::time::Duration::ZERO, r.next_block()).await {
                        Ok(next) => next,
                        Err(_) => {
                            given_up += 1;
                            r.next_block().await
                        }
                    };
                if let Some(b) = held.take() {
                    got.extend_from_slice(&b);
                }
                let Some(b) = next else { break };
                held = Some(b.unwrap());
            }
            assert!(
                got == data,
                "pass {pass}: {} bytes read back of {} after {given_up} waits given up",
                got.len(),
                data.len()
            );
            if given_up > 0 {
                return;
            }
            r = stored_and_opened(dir.path(), &data).await;
        }
        panic!("every block was ready at once in five passes: nothing was given up");
    }

    #[tokio::test]
    async fn multi_mib_round_trip_and_dedup() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = Blobs::open(dir.path()).expect("open");
        let data = body(5 * 1024 * 1024 + 123);
        let mut w = blobs.writer().await.expect("writer");
        for chunk in data.chunks(64 * 1024 + 1) {
            w.write(chunk).await.expect("write");
        }
        assert_eq!(w.len(), data.len() as u64);
        let (digest, len) = w.commit().await.expect("commit");
        assert_eq!(digest, sha(&data));
        assert_eq!(len, data.len() as u64);
        assert!(blobs.contains(&digest));
        assert_eq!(tmp_entries(&blobs), 0);

        let mut back = Vec::new();
        blobs
            .open_read(&digest)
            .await
            .expect("open_read")
            .read_to_end(&mut back)
            .await
            .expect("read");
        assert!(back == data);

        // Same content again: same address, temp file discarded.
        let mut w = blobs.writer().await.expect("writer");
        w.write(&data).await.expect("write");
        assert_eq!(w.commit_expecting(&digest).await.expect("commit").0, digest);
        assert_eq!(tmp_entries(&blobs), 0);

        assert!(blobs.remove(&digest).expect("remove"));
        assert!(!blobs.remove(&digest).expect("remove again"));
        assert!(matches!(
            blobs.open_read(&digest).await,
            Err(StoreError::BlobNotFound { digest: d }) if d == digest
        ));
    }

    #[tokio::test]
    async fn digest_mismatch_rejects_and_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = Blobs::open(dir.path()).expect("open");
        let mut w = blobs.writer().await.expect("writer");
        w.write(b"actual body").await.expect("write");
        let wrong = sha(b"announced body");
        match w.commit_expecting(&wrong).await {
            Err(StoreError::DigestMismatch { expected, actual }) => {
                assert_eq!(expected, wrong);
                assert_eq!(actual, sha(b"actual body"));
                assert!(!blobs.contains(&actual));
            }
            other => panic!("expected mismatch, got {other:?}"),
        }
        assert_eq!(tmp_entries(&blobs), 0);
    }

    #[tokio::test]
    async fn dropped_writer_and_crash_leftovers_are_cleaned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = Blobs::open(dir.path()).expect("open");
        let mut w = blobs.writer().await.expect("writer");
        w.write(b"abandoned").await.expect("write");
        assert_eq!(tmp_entries(&blobs), 1);
        drop(w);
        assert_eq!(tmp_entries(&blobs), 0);

        std::fs::write(dir.path().join("tmp").join("999-0.part"), b"crash").expect("leftover");
        let blobs = Blobs::open(dir.path()).expect("reopen");
        assert_eq!(tmp_entries(&blobs), 0);
    }

    #[tokio::test]
    async fn empty_blob() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = Blobs::open(dir.path()).expect("open");
        let w = blobs.writer().await.expect("writer");
        assert!(w.is_empty());
        let (digest, len) = w.commit().await.expect("commit");
        assert_eq!((digest, len), (sha(b""), 0));
        assert!(blobs
            .path(&digest)
            .starts_with(dir.path().join(&hex::encode(digest)[..2])));
    }

    #[tokio::test]
    async fn missing_tmp_dir_is_recreated_by_the_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = Blobs::open(dir.path()).expect("open");
        std::fs::remove_dir(dir.path().join("tmp")).expect("remove tmp");
        let mut w = blobs.writer().await.expect("writer after tmp/ vanished");
        w.write(b"still works").await.expect("write");
        let (d, _) = w.commit().await.expect("commit");
        assert!(blobs.contains(&d));
    }

    #[tokio::test]
    async fn damage_is_detected_and_replacing_commit_repairs_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = Blobs::open(dir.path()).expect("open");
        let data = body(300_000);
        let mut w = blobs.writer().await.expect("writer");
        w.write(&data).await.expect("write");
        let (d, len) = w.commit().await.expect("commit");
        assert_eq!(blobs.check_len(&d, len).expect("check"), BlobCheck::Intact);
        assert_eq!(blobs.verify(&d).expect("verify"), (BlobCheck::Intact, len));

        std::fs::write(blobs.path(&d), &data[..1000]).expect("truncate");
        assert_eq!(
            blobs.check_len(&d, len).expect("check"),
            BlobCheck::WrongLength { found: 1000 }
        );
        assert_eq!(blobs.verify(&d).expect("verify").0, BlobCheck::WrongHash);
        // An ordinary commit keeps the (damaged) file already stored under the digest.
        let mut w = blobs.writer().await.expect("writer");
        w.write(&data).await.expect("write");
        w.commit_expecting(&d).await.expect("commit");
        assert_eq!(blobs.verify(&d).expect("verify").0, BlobCheck::WrongHash);
        // A repairing commit replaces it.
        let mut w = blobs.writer().await.expect("writer");
        w.write(&data).await.expect("write");
        w.commit_replacing(&d).await.expect("repair");
        assert_eq!(blobs.verify(&d).expect("verify"), (BlobCheck::Intact, len));

        std::fs::remove_file(blobs.path(&d)).expect("delete");
        assert_eq!(blobs.check_len(&d, len).expect("check"), BlobCheck::Missing);
        assert_eq!(blobs.verify(&d).expect("verify").0, BlobCheck::Missing);
        assert_eq!(tmp_entries(&blobs), 0);
    }
}

#[cfg(test)]
mod hold_tests {
    use super::*;

    #[tokio::test]
    async fn nothing_is_removed_while_a_backup_holds_removals() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = Blobs::open(dir.path()).expect("open");
        let mut w = blobs.writer().await.expect("writer");
        w.write(b"a body a backup is copying").await.expect("write");
        let (digest, _) = w.commit().await.expect("commit");
        let hold = blobs.hold_removals().await;
        let second = blobs.hold_removals().await;
        assert!(!blobs.remove(&digest).expect("remove"));
        drop(hold);
        assert!(!blobs.remove(&digest).expect("remove"), "one hold is left");
        assert!(blobs.contains(&digest));
        drop(second);
        assert!(blobs.remove(&digest).expect("remove"));
        assert!(!blobs.contains(&digest));
    }
}
