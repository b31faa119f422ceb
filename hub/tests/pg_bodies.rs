//! Large bodies in PostgreSQL (`PgBodies`), driven directly through the hub's body seam
//! (`BodyStore`): upload from the staging file and read back byte for byte, an interrupted
//! upload never read as whole, re-uploads that change nothing, removal after retention, the
//! orphan sweep (old unreferenced bodies only, never a referenced one, nor one claimed for a
//! document whose accept is still running) and damage found by the cheap check and by the
//! scrub's full one, then repaired.
//!
//! Each test runs on a fresh database of the development server (see `pgdev`).

mod pgdev;

use pgdev::{body, open, sha, sql, stage, TestDb};
use poros_hub::bodies::{BodyStore, Settle};
use poros_hub::state::pg::PgBodies;
use poros_store::{BlobCheck, Commit, ReceivedBody, StoreError, INLINE_MAX};
use std::time::Duration;
use tokio::io::AsyncReadExt;

const CHUNK: usize = 256 * 1024;
const HOUR: Duration = Duration::from_secs(3600);

async fn read_all(bodies: &PgBodies, digest: &[u8; 32]) -> Vec<u8> {
    let mut r = bodies.open_read(digest).await.expect("open_read");
    let mut out = Vec::new();
    r.read_to_end(&mut out).await.expect("read");
    out
}

/// (rows in stored_bodies, chunks, complete) for a digest.
async fn rows(url: &str, digest: &[u8; 32]) -> (i64, i64, Option<bool>) {
    let c = sql(url).await;
    let d = digest.as_slice();
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM stored_bodies WHERE digest = $1",
            &[&d],
        )
        .await
        .expect("count")
        .get(0);
    let k: i64 = c
        .query_one("SELECT count(*) FROM body_chunks WHERE digest = $1", &[&d])
        .await
        .expect("count")
        .get(0);
    let complete = c
        .query_opt(
            "SELECT complete FROM stored_bodies WHERE digest = $1",
            &[&d],
        )
        .await
        .expect("complete")
        .map(|r| r.get(0));
    (n, k, complete)
}

async fn age(url: &str, digest: &[u8; 32], by: Duration) {
    sql(url)
        .await
        .execute(
            "UPDATE stored_bodies SET claimed_at = claimed_at - $2 WHERE digest = $1",
            &[&digest.as_slice(), &(by.as_millis() as i64)],
        )
        .await
        .expect("age");
}

async fn set_refs(url: &str, digest: &[u8; 32], refs: i64) {
    sql(url)
        .await
        .execute(
            "INSERT INTO body_refs (digest, refs) VALUES ($1, $2) \
             ON CONFLICT (digest) DO UPDATE SET refs = excluded.refs",
            &[&digest.as_slice(), &refs],
        )
        .await
        .expect("refs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upload_from_staging_and_read_back_byte_identical() {
    let db = TestDb::create("roundtrip").await;
    let (_store, bodies, staging, _dir) = open(&db, HOUR).await;
    // Just over the inline limit, an exact number of chunks (one transaction's worth), and
    // several transactions with a short last chunk.
    for (seed, len) in [
        (1, INLINE_MAX as usize + 1),
        (2, 4 * CHUNK),
        (3, 9 * CHUNK + 7),
    ] {
        let data = body(seed, len);
        let d = sha(&data);
        let received = stage(&staging, &data, Commit::Expecting(d)).await;
        assert!(staging.contains(&d), "received into staging first");
        let settled = bodies.settle(received, Settle::New).await.expect("settle");
        assert!(matches!(
            &settled,
            ReceivedBody::File { digest, len: l, guard: Some(_) } if *digest == d && *l == len as u64
        ));
        assert!(
            !staging.contains(&d),
            "staging file removed after the upload"
        );
        assert_eq!(
            rows(&db.url, &d).await,
            (1, len.div_ceil(CHUNK) as i64, Some(true))
        );
        assert_eq!(
            bodies.check_len(&d, len as u64).await.expect("check"),
            BlobCheck::Intact
        );
        assert!(read_all(&bodies, &d).await == data, "{len} bytes read back");
        assert_eq!(
            bodies.verify(&d).await.expect("verify"),
            (BlobCheck::Intact, len as u64)
        );
    }
    // Chunks are stored as they are (no compression); the body is not in the table's row.
    let storage: String = sql(&db.url)
        .await
        .query_one(
            "SELECT attstorage::text FROM pg_attribute \
             WHERE attrelid = 'body_chunks'::regclass AND attname = 'data'",
            &[],
        )
        .await
        .expect("attstorage")
        .get(0);
    assert_eq!(storage, "e", "body_chunks.data has storage EXTERNAL");

    // A small body is the document's (inline_bodies): nothing to upload.
    let small = body(4, 1000);
    let received = stage(&staging, &small, Commit::Expecting(sha(&small))).await;
    let settled = bodies.settle(received, Settle::New).await.expect("settle");
    assert!(matches!(settled, ReceivedBody::Inline { ref bytes, .. } if *bytes == small));
    assert_eq!(rows(&db.url, &sha(&small)).await, (0, 0, None));
    assert!(matches!(
        bodies.open_read(&sha(&small)).await,
        Err(StoreError::BlobNotFound { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_interrupted_upload_is_never_read_as_whole() {
    let db = TestDb::create("interrupted").await;
    let (_store, bodies, staging, _dir) = open(&db, HOUR).await;
    let data = body(10, 10 * CHUNK + 99);
    let d = sha(&data);
    let len = data.len() as u64;
    let received = stage(&staging, &data, Commit::Expecting(d)).await;
    // The staging file loses its tail after it was received and checked: the upload commits
    // its first transactions, then finds the bytes are not the body and stops.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(staging.path(&d))
        .expect("open staged");
    f.set_len(6 * CHUNK as u64).expect("truncate");
    drop(f);
    let err = bodies
        .settle(received, Settle::New)
        .await
        .expect_err("a damaged staging file is not settled");
    assert!(matches!(err, StoreError::Other(_)), "{err:?}");
    assert!(
        !staging.contains(&d),
        "a staging file that is not the body is not kept"
    );
    let (n, chunks, complete) = rows(&db.url, &d).await;
    assert_eq!((n, complete), (1, Some(false)));
    assert!(chunks > 0, "some chunks were committed before the end");
    // Not complete: missing to every reader.
    assert_eq!(
        bodies.check_len(&d, len).await.expect("check"),
        BlobCheck::Missing
    );
    assert!(matches!(
        bodies.open_read(&d).await,
        Err(StoreError::BlobNotFound { digest }) if digest == d
    ));
    assert_eq!(
        bodies.verify(&d).await.expect("verify"),
        (BlobCheck::Missing, 0)
    );
    assert!(
        !bodies.remove_released(&d).await.expect("remove"),
        "claimed within the grace"
    );

    // The agent submits again: the upload resumes over what is there and completes.
    let received = stage(&staging, &data, Commit::Expecting(d)).await;
    bodies.settle(received, Settle::New).await.expect("settle");
    assert_eq!(rows(&db.url, &d).await, (1, 11, Some(true)));
    assert!(read_all(&bodies, &d).await == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploading_the_same_body_again_changes_nothing() {
    let db = TestDb::create("idempotent").await;
    let (_store, bodies, staging, _dir) = open(&db, HOUR).await;
    let data = body(20, 5 * CHUNK + 3);
    let d = sha(&data);
    let received = stage(&staging, &data, Commit::Expecting(d)).await;
    bodies.settle(received, Settle::New).await.expect("settle");
    age(&db.url, &d, 2 * HOUR).await;
    let claimed = |url: String| async move {
        sql(&url)
            .await
            .query_one(
                "SELECT claimed_at, created_at FROM stored_bodies WHERE digest = $1",
                &[&d.as_slice()],
            )
            .await
            .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1)))
            .expect("claimed_at")
    };
    let (before, created) = claimed(db.url.clone()).await;

    // Same content, another document: claimed, not uploaded again.
    let received = stage(&staging, &data, Commit::Expecting(d)).await;
    bodies
        .settle(received, Settle::New)
        .await
        .expect("settle again");
    assert_eq!(rows(&db.url, &d).await, (1, 6, Some(true)));
    let (after, created_after) = claimed(db.url.clone()).await;
    assert!(after >= before + 2 * 3_600_000 - 1000, "claimed again now");
    assert_eq!(created_after, created);
    assert!(!staging.contains(&d));

    // Two hubs (two staging areas) uploading the same new body at once.
    let data = body(21, 7 * CHUNK + 1);
    let d = sha(&data);
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other_staging = poros_store::Blobs::open(other_dir.path()).expect("staging");
    let other = PgBodies::new(_store.clone(), other_staging.clone(), HOUR);
    let a = stage(&staging, &data, Commit::Expecting(d)).await;
    let b = stage(&other_staging, &data, Commit::Expecting(d)).await;
    let (ra, rb) = tokio::join!(bodies.settle(a, Settle::New), other.settle(b, Settle::New));
    ra.expect("first hub");
    rb.expect("second hub");
    assert_eq!(rows(&db.url, &d).await, (1, 8, Some(true)));
    assert!(read_all(&other, &d).await == data);
    assert!(read_all(&bodies, &d).await == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn removal_after_retention_spares_referenced_and_freshly_claimed_bodies() {
    let db = TestDb::create("removal").await;
    let (_store, bodies, staging, _dir) = open(&db, HOUR).await;
    let data = body(30, 3 * CHUNK);
    let d = sha(&data);
    let received = stage(&staging, &data, Commit::Expecting(d)).await;
    bodies.settle(received, Settle::New).await.expect("settle");

    // Just claimed by an upload whose document may not be committed yet: kept.
    assert!(!bodies.remove_released(&d).await.expect("remove"));
    age(&db.url, &d, 2 * HOUR).await;
    // A document references it.
    set_refs(&db.url, &d, 1).await;
    assert!(!bodies.remove_released(&d).await.expect("remove"));
    assert_eq!(rows(&db.url, &d).await, (1, 3, Some(true)));
    // Its last reference released.
    set_refs(&db.url, &d, 0).await;
    assert!(bodies.remove_released(&d).await.expect("remove"));
    assert_eq!(rows(&db.url, &d).await, (0, 0, None));
    assert!(!bodies.remove_released(&d).await.expect("remove again"));
    assert_eq!(
        bodies
            .check_len(&d, data.len() as u64)
            .await
            .expect("check"),
        BlobCheck::Missing
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sweep_removes_old_unreferenced_bodies_and_never_a_referenced_one() {
    let db = TestDb::create("sweep").await;
    let (_store, bodies, staging, _dir) = open(&db, HOUR).await;
    let mut put = Vec::new();
    for seed in 40..44 {
        let data = body(seed, 2 * CHUNK + seed as usize);
        let d = sha(&data);
        let received = stage(&staging, &data, Commit::Expecting(d)).await;
        bodies.settle(received, Settle::New).await.expect("settle");
        put.push((d, data.len() as u64));
    }
    let [(orphan, orphan_len), (referenced, _), (young, _), (released, _)] = put[..] else {
        unreachable!()
    };
    // An upload a crash interrupted long ago: a row never completed, some chunks.
    let partial = [9u8; 32];
    let c = sql(&db.url).await;
    c.execute(
        "INSERT INTO stored_bodies (digest, len, complete, created_at, claimed_at) \
         VALUES ($1, $2, false, 0, 0)",
        &[&partial.as_slice(), &(3 * CHUNK as i64)],
    )
    .await
    .expect("partial row");
    c.execute(
        "INSERT INTO body_chunks (digest, seq, data) VALUES ($1, 0, $2)",
        &[&partial.as_slice(), &vec![1u8; CHUNK]],
    )
    .await
    .expect("partial chunk");
    for d in [&orphan, &referenced, &released] {
        age(&db.url, d, 2 * HOUR).await;
    }
    set_refs(&db.url, &referenced, 2).await;
    set_refs(&db.url, &released, 0).await;
    // A staged body a crash left on this hub's disk, never uploaded, old.
    let leftover = body(45, 100_000);
    let ReceivedBody::File { digest: left, .. } =
        stage(&staging, &leftover, Commit::AsReceived).await
    else {
        panic!("a large body is a file")
    };
    std::fs::OpenOptions::new()
        .write(true)
        .open(staging.path(&left))
        .expect("open")
        .set_modified(std::time::SystemTime::now() - 2 * HOUR)
        .expect("mtime");

    let report = bodies.sweep_unreferenced(HOUR).await.expect("sweep");
    assert_eq!(report.removed, 4, "{report:?}");
    assert_eq!(
        report.removed_bytes,
        orphan_len + (2 * CHUNK + 43) as u64 + CHUNK as u64 + leftover.len() as u64,
        "{report:?}"
    );
    for gone in [&orphan, &released, &partial] {
        assert_eq!(rows(&db.url, gone).await, (0, 0, None));
    }
    assert!(!staging.contains(&left));
    for kept in [&referenced, &young] {
        assert_eq!(rows(&db.url, kept).await.2, Some(true));
        assert_eq!(
            bodies.verify(kept).await.expect("verify").0,
            BlobCheck::Intact
        );
    }
    // Nothing left to do.
    let again = bodies.sweep_unreferenced(HOUR).await.expect("sweep");
    assert_eq!(again.removed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_damaged_chunk_is_found_and_a_repair_replaces_it() {
    let db = TestDb::create("damage").await;
    let (_store, bodies, staging, _dir) = open(&db, HOUR).await;
    let data = body(50, 6 * CHUNK + 500);
    let d = sha(&data);
    let len = data.len() as u64;
    let received = stage(&staging, &data, Commit::Expecting(d)).await;
    bodies.settle(received, Settle::New).await.expect("settle");
    let c = sql(&db.url).await;
    let dd = d.as_slice();

    // One byte changed, length kept: the cheap check cannot see it, the full one does, and a
    // reader gets other bytes (the delivery's streaming hash refuses them).
    c.execute(
        "UPDATE body_chunks SET data = set_byte(data, 77, (get_byte(data, 77) + 1) % 256) \
         WHERE digest = $1 AND seq = 3",
        &[&dd],
    )
    .await
    .expect("flip");
    assert_eq!(
        bodies.check_len(&d, len).await.expect("check"),
        BlobCheck::Intact
    );
    assert_eq!(
        bodies.verify(&d).await.expect("verify"),
        (BlobCheck::WrongHash, len)
    );
    let back = read_all(&bodies, &d).await;
    assert_eq!(back.len(), data.len());
    assert!(back != data);

    // A truncated chunk: the cheap check sees the length.
    c.execute(
        "UPDATE body_chunks SET data = substring(data FROM 1 FOR 1000) \
         WHERE digest = $1 AND seq = 1",
        &[&dd],
    )
    .await
    .expect("truncate");
    assert_eq!(
        bodies.check_len(&d, len).await.expect("check"),
        BlobCheck::WrongLength {
            found: len - (CHUNK as u64 - 1000)
        }
    );
    assert_eq!(
        bodies.verify(&d).await.expect("verify").0,
        BlobCheck::WrongHash
    );

    // A chunk gone: reading stops before it (short, so damaged to the delivery).
    c.execute(
        "DELETE FROM body_chunks WHERE digest = $1 AND seq = 4",
        &[&dd],
    )
    .await
    .expect("delete");
    assert_eq!(
        bodies.check_len(&d, len).await.expect("check"),
        BlobCheck::WrongLength {
            found: len - (CHUNK as u64 - 1000) - CHUNK as u64
        }
    );
    assert_eq!(
        read_all(&bodies, &d).await.len(),
        4 * CHUNK - (CHUNK - 1000)
    );
    assert_eq!(
        bodies.verify(&d).await.expect("verify").0,
        BlobCheck::WrongHash
    );

    // Identical content for a new document keeps what is stored (as a body file committed
    // again keeps the file already there): damage is for the scrub and the repair.
    let received = stage(&staging, &data, Commit::Expecting(d)).await;
    bodies.settle(received, Settle::New).await.expect("settle");
    assert_eq!(
        bodies.verify(&d).await.expect("verify").0,
        BlobCheck::WrongHash
    );

    // The sender's re-upload replaces it.
    let received = stage(&staging, &data, Commit::Repairing(d)).await;
    assert!(matches!(received, ReceivedBody::File { guard: None, .. }));
    bodies
        .settle(received, Settle::Repair)
        .await
        .expect("repair");
    assert_eq!(
        bodies.check_len(&d, len).await.expect("check"),
        BlobCheck::Intact
    );
    assert_eq!(
        bodies.verify(&d).await.expect("verify"),
        (BlobCheck::Intact, len)
    );
    assert!(read_all(&bodies, &d).await == data);
    assert!(!staging.contains(&d));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_claimed_for_a_document_in_flight_is_not_removed() {
    let db = TestDb::create("inflight").await;
    let (_store, bodies, staging, _dir) = open(&db, HOUR).await;
    let data = body(60, 2 * CHUNK + 60);
    let d = sha(&data);
    let received = stage(&staging, &data, Commit::Expecting(d)).await;
    bodies.settle(received, Settle::New).await.expect("settle");
    // Long unreferenced (its documents released), then the same content arrives again: the
    // upload claims it, and its document's accept is still running (its reference not
    // committed) while the sweep and a retention removal look at the body.
    age(&db.url, &d, 2 * HOUR).await;
    let received = stage(&staging, &data, Commit::Expecting(d)).await;
    let settled = bodies.settle(received, Settle::New).await.expect("claim");
    let mut accept = sql(&db.url).await;
    let tx = accept.transaction().await.expect("begin");
    tx.execute(
        "INSERT INTO body_refs (digest, refs) VALUES ($1, 1)",
        &[&d.as_slice()],
    )
    .await
    .expect("reference");
    assert_eq!(
        bodies
            .sweep_unreferenced(HOUR)
            .await
            .expect("sweep")
            .removed,
        0
    );
    assert!(!bodies.remove_released(&d).await.expect("remove"));
    tx.commit().await.expect("accept commits");
    drop(settled);
    // Referenced now: kept however old its claim.
    age(&db.url, &d, 2 * HOUR).await;
    assert_eq!(
        bodies
            .sweep_unreferenced(HOUR)
            .await
            .expect("sweep")
            .removed,
        0
    );
    assert!(!bodies.remove_released(&d).await.expect("remove"));
    assert!(read_all(&bodies, &d).await == data);
}
