//! A fresh database per test on a PostgreSQL server the tests are given, and what the body
//! tests share (staging a body, a raw SQL client).
//!
//! Until the harness's own server (`poros_harness::pg::PgServer`) is on main, the server is
//! the development one of issue 10: `POROS_DEV_PG` (default
//! `postgres://poros:poros@127.0.0.1:5432/`, a role that may `CREATE DATABASE`). A server that
//! cannot be reached fails the test with a message saying so; nothing is skipped.

#![allow(dead_code)] // each test binary uses its own part

use poros_hub::state::pg::{PgBodies, PgOptions, PgStore};
use poros_store::{Blobs, BodySink, Commit, ReceivedBody};
use std::time::Duration;

/// The development server's URL, ending in `/` (a database name is appended).
fn server() -> String {
    let mut base = std::env::var("POROS_DEV_PG")
        .unwrap_or_else(|_| "postgres://poros:poros@127.0.0.1:5432/".into());
    if !base.ends_with('/') {
        base.push('/');
    }
    base
}

/// A raw connection for the test's own SQL.
pub async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {url} is unavailable ({e}): these tests need the development \
                 server of issue 10 (or POROS_DEV_PG naming one whose role may create databases)"
            )
        });
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// A database created for one test and dropped after it (also when it fails).
pub struct TestDb {
    /// Its connection string.
    pub url: String,
    name: String,
    admin: String,
}

impl TestDb {
    /// Create `pgbody_<tag>_<unique>`.
    pub async fn create(tag: &str) -> TestDb {
        let base = server();
        let admin = format!("{base}postgres");
        let name = format!("pgbody_{tag}_{}", uuid::Uuid::now_v7().simple());
        sql(&admin)
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("cannot create database {name} on {base}: {e}"));
        TestDb {
            url: format!("{base}{name}"),
            name,
            admin,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Its own runtime: the test's may be gone (or be the one panicking).
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(&admin, tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// The exchange's reference table, as helper pgx's migration 3 creates it; until that is
/// merged, created here (a no-op once it exists).
pub const BODY_REFS: &str =
    "CREATE TABLE IF NOT EXISTS body_refs (digest bytea PRIMARY KEY, refs bigint NOT NULL)";

/// A store on `db` (schema migrated), a staging directory, and the bodies over both with
/// `lease` as the orphan grace period.
pub async fn open(db: &TestDb, lease: Duration) -> (PgStore, PgBodies, Blobs, tempfile::TempDir) {
    let store = PgStore::connect(PgOptions::new(&db.url))
        .await
        .unwrap_or_else(|e| panic!("PgStore::connect({}): {e}", db.url));
    sql(&db.url)
        .await
        .batch_execute(BODY_REFS)
        .await
        .expect("body_refs");
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
