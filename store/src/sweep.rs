//! The orphan sweep: removes committed body files that no record references.
//! Owns the walk over the fan-out directories and the removal rule; the caller (hub or agent)
//! says what counts as a reference.
//!
//! A file is removed only when all of these hold: it is older (by mtime) than the grace
//! period, and, checked under the exclusive side of the reference lock, the caller finds no
//! record referencing it. A writer holds the shared side from just before it commits a blob
//! until its record is durable ([`Blobs::reference_guard`]), so a file that a send or a
//! delivery in progress is about to reference (including an old file it re-uses because the
//! content is identical) is never taken from under it.

use std::time::{Duration, SystemTime};

use crate::{Blobs, Digest, StoreError};

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Committed body files looked at.
    pub examined: u64,
    /// Files removed because nothing referenced them.
    pub removed: u64,
    /// Bytes freed.
    pub removed_bytes: u64,
}

/// A body file's name (64 hex digits) inside its fan-out directory (the first two of them).
fn digest_of(fan: &str, name: &str) -> Option<Digest> {
    if name.len() != 64 || !name.starts_with(fan) {
        return None;
    }
    let mut d = [0u8; 32];
    hex::decode_to_slice(name, &mut d).ok()?;
    Some(d)
}

impl Blobs {
    /// Removes committed blobs older than `grace` that `referenced` says nothing uses.
    ///
    /// Blocking (directory walk, unlinks and fsyncs): run it on a blocking thread. It holds
    /// the reference lock exclusively only around each single check-and-remove.
    pub fn sweep_unreferenced(
        &self,
        grace: Duration,
        mut referenced: impl FnMut(&Digest) -> Result<bool, StoreError>,
    ) -> Result<SweepReport, StoreError> {
        let io = |op: &'static str, path: &std::path::Path| {
            let path = path.to_owned();
            move |source| StoreError::Io { op, path, source }
        };
        let root = self.dir();
        let now = SystemTime::now();
        let mut report = SweepReport::default();
        for fan in std::fs::read_dir(root).map_err(io("list body directory", root))? {
            let fan = fan.map_err(io("list body directory", root))?;
            let fan_name = fan.file_name();
            let Some(fan_name) = fan_name.to_str() else {
                continue;
            };
            // `tmp/` and anything else that is not a fan-out directory is not ours to judge.
            if fan_name.len() != 2 || !fan.path().is_dir() {
                continue;
            }
            let fan_path = fan.path();
            for entry in
                std::fs::read_dir(&fan_path).map_err(io("list body directory", &fan_path))?
            {
                let entry = entry.map_err(io("list body directory", &fan_path))?;
                let name = entry.file_name();
                let Some(digest) = name.to_str().and_then(|n| digest_of(fan_name, n)) else {
                    continue;
                };
                report.examined += 1;
                let meta = match entry.metadata() {
                    Ok(m) => m,
                    // Removed meanwhile (e.g. by retention): nothing to do.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io("read body file metadata", &entry.path())(e)),
                };
                let old_enough = meta
                    .modified()
                    .ok()
                    .and_then(|m| now.duration_since(m).ok())
                    .is_some_and(|age| age >= grace);
                if !old_enough {
                    continue;
                }
                let _exclusive = self.sweep_lock().blocking_write();
                if referenced(&digest)? {
                    continue;
                }
                if self.remove(&digest)? {
                    report.removed += 1;
                    report.removed_bytes += meta.len();
                    tracing::info!(digest = %hex::encode(digest), bytes = meta.len(), "removed a body file that no record references");
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    async fn put(blobs: &Blobs, data: &[u8]) -> Digest {
        let mut w = blobs.writer().await.expect("writer");
        w.write(data).await.expect("write");
        w.commit().await.expect("commit").0
    }

    fn age(blobs: &Blobs, d: &Digest, by: Duration) {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(blobs.path(d))
            .expect("open");
        f.set_modified(SystemTime::now() - by).expect("mtime");
    }

    #[tokio::test]
    async fn removes_only_old_unreferenced_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = Blobs::open(dir.path()).expect("open");
        let hour = Duration::from_secs(3600);
        let (kept, orphan, young) = (
            put(&blobs, b"referenced").await,
            put(&blobs, b"orphan").await,
            put(&blobs, b"young orphan").await,
        );
        age(&blobs, &kept, 2 * hour);
        age(&blobs, &orphan, 2 * hour);
        std::fs::write(dir.path().join("tmp").join("1-1.part"), b"staging").expect("tmp");
        let b = blobs.clone();
        let report =
            tokio::task::spawn_blocking(move || b.sweep_unreferenced(hour, |d| Ok(*d == kept)))
                .await
                .expect("join")
                .expect("sweep");
        assert_eq!((report.examined, report.removed), (3, 1));
        assert_eq!(report.removed_bytes, b"orphan".len() as u64);
        assert!(blobs.contains(&kept) && blobs.contains(&young) && !blobs.contains(&orphan));
        assert!(dir.path().join("tmp").join("1-1.part").exists());
    }

    #[tokio::test]
    async fn a_held_reference_guard_defers_the_check_until_the_record_is_durable() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = Blobs::open(dir.path()).expect("open");
        // Old content that a send in progress re-uses (its commit found the file present).
        let d = put(&blobs, b"content shared with a send in progress").await;
        age(&blobs, &d, Duration::from_secs(7200));
        let guard = blobs.reference_guard().await;
        let committed = Arc::new(AtomicBool::new(false));
        let asked_early = Arc::new(AtomicBool::new(false));
        let (b, c, early) = (blobs.clone(), committed.clone(), asked_early.clone());
        let sweep = tokio::task::spawn_blocking(move || {
            b.sweep_unreferenced(Duration::from_secs(60), |_| {
                let done = c.load(Ordering::SeqCst);
                early.store(!done, Ordering::SeqCst);
                Ok(done)
            })
        });
        // The sweep queues for the exclusive side, which drains the lock's free permits.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while blobs.sweep_lock().try_read().is_ok() {
            assert!(
                std::time::Instant::now() < deadline,
                "the sweep never waited"
            );
            tokio::task::yield_now().await;
        }
        // The send's record becomes durable, then it lets go.
        committed.store(true, Ordering::SeqCst);
        drop(guard);
        let report = sweep.await.expect("join").expect("sweep");
        assert!(
            !asked_early.load(Ordering::SeqCst),
            "checked while a send held the guard"
        );
        assert_eq!(report.removed, 0);
        assert!(blobs.contains(&d));
    }
}
