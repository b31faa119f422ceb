//! A fresh database per test on the PostgreSQL server this test binary starts and shares
//! (`poros_harness::fresh_database`), and what the body tests share (staging a body, a raw
//! SQL client).

#![allow(dead_code)] // each test binary uses its own part

use poros_hub::state::pg::{PgBodies, PgOptions, PgStore};
use poros_store::{Blobs, BodySink, Commit, ReceivedBody};
use std::time::Duration;

/// A raw connection for the test's own SQL.
pub async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// A database for one test (it goes with the shared server when the binary ends).
pub struct TestDb {
    /// Its connection string.
    pub url: String,
}

impl TestDb {
    /// Create `pgbody_<tag>_<unique>`.
    pub async fn create(tag: &str) -> TestDb {
        let prefix = format!("pgbody_{tag}");
        let url = tokio::task::spawn_blocking(move || poros_harness::fresh_database(&prefix))
            .await
            .expect("the database maker ran")
            .unwrap_or_else(|e| panic!("a fresh database on the shared PostgreSQL: {e}"));
        TestDb { url }
    }
}

/// A store on `db` (schema migrated), a staging directory, and the bodies over both with
/// `lease` as the orphan grace period.
pub async fn open(db: &TestDb, lease: Duration) -> (PgStore, PgBodies, Blobs, tempfile::TempDir) {
    let store = PgStore::connect(PgOptions::new(&db.url))
        .await
        .unwrap_or_else(|e| panic!("PgStore::connect({}): {e}", db.url));
    let dir = tempfile::tempdir().expect("tempdir");
    let staging = Blobs::open(dir.path()).expect("staging");
    let bodies = PgBodies::new(store.clone(), staging.clone(), lease);
    (store, bodies, staging, dir)
}

/// `len` deterministic bytes, different per `seed`, generated piece by piece.
pub fn bytes_at(seed: u64, from: u64, out: &mut [u8]) {
    for (i, b) in out.iter_mut().enumerate() {
        let x = (from + i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed;
        *b = (x >> 29) as u8 ^ (x >> 7) as u8;
    }
}

/// A whole body in memory (small test bodies only).
pub fn body(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    bytes_at(seed, 0, &mut v);
    v
}

/// Receive a body into staging as the hub does (a committed, checked file for a large body).
pub async fn stage(staging: &Blobs, data: &[u8], commit: Commit) -> ReceivedBody {
    let mut sink = BodySink::for_len(staging, data.len() as u64)
        .await
        .expect("sink");
    for c in data.chunks(64 * 1024) {
        sink.write(c).await.expect("write");
    }
    sink.finish(commit).await.expect("finish")
}

/// Receive a generated body of `len` bytes into staging, 1 MiB at a time (never whole).
pub async fn stage_generated(staging: &Blobs, seed: u64, len: u64) -> ReceivedBody {
    let mut sink = BodySink::to_file(staging).await.expect("sink");
    let mut piece = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < len {
        let n = (len - at).min(piece.len() as u64) as usize;
        bytes_at(seed, at, &mut piece[..n]);
        sink.write(&piece[..n]).await.expect("write");
        at += n as u64;
    }
    sink.finish(Commit::AsReceived).await.expect("finish")
}

/// SHA-256.
pub fn sha(data: &[u8]) -> [u8; 32] {
    let mut d = [0u8; 32];
    d.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, data).as_ref());
    d
}
