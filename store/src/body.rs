//! A document body as hub and agent keep it: where a stored record's body lives ([`BodyAt`]),
//! and a body being received into memory or a committed file ([`BodySink`], [`ReceivedBody`]).
//!
//! One threshold decides where a new body goes ([`INLINE_MAX`]); the file side keeps the
//! durability order of [`Blobs`]: the file is committed and fsync'd first, and the orphan
//! sweep's reference guard is taken before that commit and handed to the caller, who drops it
//! once the record referencing the file is durable.

use ring::digest::{Context, SHA256};
use serde::{Deserialize, Serialize};

use crate::{BlobWriter, Blobs, Digest, ReferenceGuard, StoreError};

/// Bodies up to this many bytes are kept inside the database; larger ones as body files.
pub const INLINE_MAX: u64 = 64 * 1024;

/// Where a stored record's body lives.
///
/// Stored inside the hub's and the agent's records (postcard, by variant index): the order of
/// the variants is the encoding (0, 1, 2) and must not change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BodyAt {
    /// In the store's `inline_bodies` table, under its digest.
    Inline,
    /// A content-addressed body file ([`Blobs`]).
    File,
    /// Not held. Hub: removed by retention once every recipient answered. Agent: never kept
    /// (a quarantined delivery whose body was too large to read).
    Gone,
}

impl BodyAt {
    /// Where a new body of `len` bytes goes.
    pub fn for_len(len: u64) -> BodyAt {
        if len <= INLINE_MAX {
            BodyAt::Inline
        } else {
            BodyAt::File
        }
    }
}

/// How [`BodySink::finish`] commits what it received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Commit {
    /// Keep the bytes as they arrived, under their own digest (a delivery that does not match
    /// its envelope is still kept, in quarantine).
    AsReceived,
    /// Refuse with [`StoreError::DigestMismatch`] unless the bytes hash to this digest.
    Expecting(Digest),
    /// Like `Expecting`, and a file replaces the damaged one stored under the digest. Its
    /// record exists already, so no reference guard is taken.
    Repairing(Digest),
}

impl Commit {
    fn expected(self) -> Option<Digest> {
        match self {
            Commit::AsReceived => None,
            Commit::Expecting(d) | Commit::Repairing(d) => Some(d),
        }
    }
}

/// A body received in full, not yet referenced by a durable record.
#[derive(Debug)]
pub enum ReceivedBody {
    /// Small body in memory, to be stored with its record.
    Inline {
        /// The bytes.
        bytes: Vec<u8>,
        /// Their SHA-256.
        digest: Digest,
    },
    /// A committed, fsync'd body file.
    File {
        /// Its SHA-256 (and name).
        digest: Digest,
        /// Its length.
        len: u64,
        /// Taken before the file was committed; hold it until the record referencing the
        /// file is durable, so the orphan sweep cannot remove the file in between. `None`
        /// for a repair, whose record already references the file.
        guard: Option<ReferenceGuard>,
    },
}

impl ReceivedBody {
    /// A body already in memory.
    pub fn inline(bytes: Vec<u8>) -> ReceivedBody {
        let digest = sha256(&bytes);
        ReceivedBody::Inline { bytes, digest }
    }

    /// SHA-256 of the bytes received.
    pub fn digest(&self) -> Digest {
        match self {
            ReceivedBody::Inline { digest, .. } | ReceivedBody::File { digest, .. } => *digest,
        }
    }

    /// Number of bytes received.
    pub fn len(&self) -> u64 {
        match self {
            ReceivedBody::Inline { bytes, .. } => bytes.len() as u64,
            ReceivedBody::File { len, .. } => *len,
        }
    }

    /// Whether no byte was received.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where the record referencing this body says it lives.
    pub fn at(&self) -> BodyAt {
        match self {
            ReceivedBody::Inline { .. } => BodyAt::Inline,
            ReceivedBody::File { .. } => BodyAt::File,
        }
    }

    /// The inline bytes to store with the record, and the reference guard to drop once that
    /// record is durable.
    pub fn into_parts(self) -> (Option<Vec<u8>>, Option<ReferenceGuard>) {
        match self {
            ReceivedBody::Inline { bytes, .. } => (Some(bytes), None),
            ReceivedBody::File { guard, .. } => (None, guard),
        }
    }
}

fn sha256(data: &[u8]) -> Digest {
    let mut hash = Context::new(&SHA256);
    hash.update(data);
    let mut d = [0u8; 32];
    d.copy_from_slice(hash.finish().as_ref());
    d
}

/// A body being received, chunk by chunk, into memory or a body file.
pub struct BodySink {
    blobs: Blobs,
    buf: Vec<u8>,
    file: Option<BlobWriter>,
    /// Whether bytes in memory move to a file once they pass [`INLINE_MAX`].
    spill: bool,
}

impl std::fmt::Debug for BodySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodySink")
            .field("in_memory", &self.buf.len())
            .field("file", &self.file)
            .finish()
    }
}

impl BodySink {
    /// For a body of announced length: placed by [`BodyAt::for_len`]. A file is started now,
    /// so a failure to create one is known before a byte of the body is read.
    pub async fn for_len(blobs: &Blobs, len: u64) -> Result<BodySink, StoreError> {
        match BodyAt::for_len(len) {
            BodyAt::Inline => Ok(BodySink::in_memory(blobs, len)),
            _ => BodySink::to_file(blobs).await,
        }
    }

    /// For a body of `len` bytes that stays in memory.
    pub fn in_memory(blobs: &Blobs, len: u64) -> BodySink {
        BodySink {
            blobs: blobs.clone(),
            buf: Vec::with_capacity(len.min(INLINE_MAX) as usize),
            file: None,
            spill: false,
        }
    }

    /// For a body that goes to a file whatever its length.
    pub async fn to_file(blobs: &Blobs) -> Result<BodySink, StoreError> {
        Ok(BodySink {
            blobs: blobs.clone(),
            buf: Vec::new(),
            file: Some(blobs.writer().await?),
            spill: false,
        })
    }

    /// For a body of unknown length: in memory until it passes [`INLINE_MAX`], then a file.
    pub fn spilling(blobs: &Blobs) -> BodySink {
        BodySink {
            blobs: blobs.clone(),
            buf: Vec::new(),
            file: None,
            spill: true,
        }
    }

    /// Appends a chunk.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        if let Some(w) = &mut self.file {
            return w.write(chunk).await;
        }
        self.buf.extend_from_slice(chunk);
        if self.spill && self.buf.len() as u64 > INLINE_MAX {
            let mut w = self.blobs.writer().await?;
            w.write(&self.buf).await?;
            self.buf = Vec::new();
            self.file = Some(w);
        }
        Ok(())
    }

    /// The body received, checked and (for a file) durably committed as `commit` says.
    pub async fn finish(self, commit: Commit) -> Result<ReceivedBody, StoreError> {
        let Some(w) = self.file else {
            let body = ReceivedBody::inline(self.buf);
            return match commit.expected() {
                Some(expected) if expected != body.digest() => Err(StoreError::DigestMismatch {
                    expected,
                    actual: body.digest(),
                }),
                _ => Ok(body),
            };
        };
        let guard = match commit {
            Commit::Repairing(_) => None,
            _ => Some(self.blobs.reference_guard().await),
        };
        let (digest, len) = match commit {
            Commit::AsReceived => w.commit().await?,
            Commit::Expecting(d) => w.commit_expecting(&d).await?,
            Commit::Repairing(d) => w.commit_replacing(&d).await?,
        };
        Ok(ReceivedBody::File { digest, len, guard })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 13 + i / 977) as u8).collect()
    }

    async fn receive(mut sink: BodySink, data: &[u8], commit: Commit) -> ReceivedBody {
        for c in data.chunks(7_001) {
            sink.write(c).await.expect("write");
        }
        sink.finish(commit).await.expect("finish")
    }

    #[test]
    fn body_at_is_encoded_by_variant_index_and_old_records_decode() {
        // The enums hub and agent stored before this one existed, inside a record.
        #[derive(Serialize)]
        enum HubBodyAt {
            Inline,
            File,
            Removed,
        }
        #[derive(Serialize)]
        enum AgentBodyAt {
            Inline,
            File,
            None,
        }
        #[derive(Serialize)]
        struct Old<A> {
            len: u64,
            at: A,
            note: String,
        }
        #[derive(Deserialize, Debug, PartialEq)]
        struct New {
            len: u64,
            at: BodyAt,
            note: String,
        }
        let enc = |v: &BodyAt| postcard::to_allocvec(v).expect("encode");
        assert_eq!(enc(&BodyAt::Inline), [0]);
        assert_eq!(enc(&BodyAt::File), [1]);
        assert_eq!(enc(&BodyAt::Gone), [2]);
        let cases = [
            (HubBodyAt::Inline, AgentBodyAt::Inline, BodyAt::Inline),
            (HubBodyAt::File, AgentBodyAt::File, BodyAt::File),
            (HubBodyAt::Removed, AgentBodyAt::None, BodyAt::Gone),
        ];
        for (hub, agent, at) in cases {
            let want = New {
                len: 70_000,
                at,
                note: "kept".into(),
            };
            let old = |bytes: Vec<u8>| postcard::from_bytes::<New>(&bytes).expect("decode");
            let hub = postcard::to_allocvec(&Old {
                len: 70_000,
                at: hub,
                note: "kept".into(),
            });
            let agent = postcard::to_allocvec(&Old {
                len: 70_000,
                at: agent,
                note: "kept".into(),
            });
            assert_eq!(old(hub.expect("encode")), want);
            assert_eq!(old(agent.expect("encode")), want);
        }
    }

    #[tokio::test]
    async fn announced_length_picks_memory_or_file_at_the_threshold() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = Blobs::open(dir.path()).expect("open");
        let small = body(INLINE_MAX as usize);
        let sink = BodySink::for_len(&blobs, small.len() as u64)
            .await
            .expect("sink");
        let got = receive(sink, &small, Commit::Expecting(sha256(&small))).await;
        assert_eq!(
            (got.at(), got.len(), got.digest()),
            (BodyAt::Inline, small.len() as u64, sha256(&small))
        );
        assert_eq!(got.into_parts().0.as_deref(), Some(small.as_slice()));

        let large = body(INLINE_MAX as usize + 1);
        let sink = BodySink::for_len(&blobs, large.len() as u64)
            .await
            .expect("sink");
        let got = receive(sink, &large, Commit::Expecting(sha256(&large))).await;
        assert_eq!(got.at(), BodyAt::File);
        assert!(blobs.contains(&got.digest()));
        let (inline, guard) = got.into_parts();
        assert!(inline.is_none() && guard.is_some());
    }

    #[tokio::test]
    async fn unknown_length_spills_to_a_file_past_the_threshold() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = Blobs::open(dir.path()).expect("open");
        let small = body(INLINE_MAX as usize);
        let got = receive(BodySink::spilling(&blobs), &small, Commit::AsReceived).await;
        assert_eq!(got.at(), BodyAt::Inline);
        let large = body(3 * INLINE_MAX as usize);
        let got = receive(BodySink::spilling(&blobs), &large, Commit::AsReceived).await;
        assert_eq!((got.at(), got.len()), (BodyAt::File, large.len() as u64));
        assert_eq!(got.digest(), sha256(&large));
    }

    #[tokio::test]
    async fn a_wrong_digest_is_refused_inline_and_as_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = Blobs::open(dir.path()).expect("open");
        for len in [10, INLINE_MAX as usize + 10] {
            let data = body(len);
            let mut sink = BodySink::for_len(&blobs, len as u64).await.expect("sink");
            sink.write(&data).await.expect("write");
            match sink.finish(Commit::Expecting([7; 32])).await {
                Err(StoreError::DigestMismatch { expected, actual }) => {
                    assert_eq!((expected, actual), ([7; 32], sha256(&data)));
                }
                other => panic!("expected a mismatch, got {other:?}"),
            }
            assert!(!blobs.contains(&sha256(&data)));
        }
        // Kept as received, whatever the envelope said.
        let data = body(10);
        let got = receive(BodySink::in_memory(&blobs, 10), &data, Commit::AsReceived).await;
        assert_eq!(got.digest(), sha256(&data));
    }

    #[tokio::test]
    async fn a_repair_replaces_the_damaged_file_without_a_guard() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = Blobs::open(dir.path()).expect("open");
        let data = body(INLINE_MAX as usize * 2);
        let d = sha256(&data);
        let first = receive(
            BodySink::to_file(&blobs).await.expect("sink"),
            &data,
            Commit::AsReceived,
        )
        .await;
        drop(first);
        std::fs::write(blobs.path(&d), b"damaged").expect("damage");
        let sink = BodySink::to_file(&blobs).await.expect("sink");
        let got = receive(sink, &data, Commit::Repairing(d)).await;
        assert!(got.into_parts().1.is_none());
        assert_eq!(
            blobs.verify(&d).expect("verify").0,
            crate::BlobCheck::Intact
        );
    }
}
