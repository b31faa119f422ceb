//! Content-addressed body files: `<dir>/<2 hex>/<64 hex>`, named by SHA-256.
//! Owns streaming writes through `<dir>/tmp`, durable publication by rename, reads and removal.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ring::digest::{Context, SHA256};
use tokio::fs::File;
use tokio::io::{AsyncWriteExt, BufWriter};

use crate::StoreError;

/// SHA-256 of a blob's contents; also its name on disk.
pub type Digest = [u8; 32];

/// Write buffer per blob writer: large enough that fsync-free appends stay cheap.
const WRITE_BUFFER: usize = 256 * 1024;

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
}

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
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp_path)
            .await
            .map_err(io_err("create blob temp file", &tmp_path))?;
        Ok(BlobWriter {
            blobs: self.clone(),
            file: Some(BufWriter::with_capacity(WRITE_BUFFER, file)),
            tmp_path,
            hash: Context::new(&SHA256),
            len: 0,
        })
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

    /// Opens a committed blob for reading.
    pub async fn open_read(&self, digest: &Digest) -> Result<File, StoreError> {
        let path = self.path(digest);
        match File::open(&path).await {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::BlobNotFound { digest: *digest })
            }
            Err(e) => Err(io_err("open blob", &path)(e)),
        }
    }

    /// Deletes a blob durably; returns false if it was not there.
    pub fn remove(&self, digest: &Digest) -> Result<bool, StoreError> {
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

/// A blob being streamed to disk; hashes and counts bytes as they are written.
///
/// Dropping it without committing deletes the temp file.
pub struct BlobWriter {
    blobs: Blobs,
    /// None once committed (or after a failed commit consumed it).
    file: Option<BufWriter<File>>,
    tmp_path: PathBuf,
    hash: Context,
    len: u64,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("tmp_path", &self.tmp_path)
            .field("len", &self.len)
            .finish()
    }
}

impl BlobWriter {
    /// Appends a chunk.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        let file = self.file.as_mut().ok_or(StoreError::Closed)?;
        file.write_all(chunk)
            .await
            .map_err(io_err("write blob temp file", &self.tmp_path))?;
        self.hash.update(chunk);
        self.len += chunk.len() as u64;
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

    async fn finish(mut self, expected: Option<Digest>) -> Result<(Digest, u64), StoreError> {
        let mut file = self.file.take().ok_or(StoreError::Closed)?;
        // From here on any early return leaves `file` None, and Drop removes the temp file.
        let path = self.tmp_path.clone();
        file.flush()
            .await
            .map_err(io_err("flush blob temp file", &path))?;
        let file = file.into_inner();
        file.sync_all()
            .await
            .map_err(io_err("fsync blob temp file", &path))?;
        drop(file);

        let mut digest = [0u8; 32];
        digest.copy_from_slice(self.hash.clone().finish().as_ref());
        if let Some(expected) = expected {
            if expected != digest {
                return Err(StoreError::DigestMismatch {
                    expected,
                    actual: digest,
                });
            }
        }

        let dest = self.blobs.path(&digest);
        let root = self.blobs.inner.root.clone();
        let published = tokio::task::spawn_blocking(move || publish(&path, &dest, &root))
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
fn publish(tmp: &Path, dest: &Path, root: &Path) -> Result<(), StoreError> {
    let fanout = dest.parent().unwrap_or(root);
    if dest.exists() {
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
}
