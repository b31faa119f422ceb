//! Memory stays flat whatever the body's size with bodies in PostgreSQL: a 256 MiB body is
//! uploaded from its staging file and read back (and verified) while a counting global
//! allocator records the peak of live heap bytes. Holding the body, or any large part of it,
//! anywhere in the hub or in the PostgreSQL client would show in the peak.
//!
//! One test function only: the allocator counts the whole process, so nothing may run beside
//! it. The database is the development server's (see `pgdev`). `POROS_PG_BODY_MIB` sets
//! another size (e.g. 1024 for the 1 GiB figure); the limit stays the same.

mod pgdev;

use pgdev::{bytes_at, open, stage_generated, TestDb};
use poros_hub::bodies::{BodyStore, Settle};
use poros_store::{BlobCheck, ReceivedBody};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// The system allocator, counting live bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let now = LIVE.fetch_add(bytes, Ordering::SeqCst) + bytes;
    PEAK.fetch_max(now, Ordering::SeqCst);
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds the `GlobalAlloc`
// contract; the counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
            grew(new_size);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Starts a measurement: the peak from now on, above what is live now.
fn start() -> usize {
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    base
}

fn peak_since(base: usize) -> usize {
    PEAK.load(Ordering::SeqCst).saturating_sub(base)
}

/// The body's size: 256 MiB unless `POROS_PG_BODY_MIB` says otherwise.
fn body_len() -> u64 {
    std::env::var("POROS_PG_BODY_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(256)
        << 20
}
const MIB: f64 = (1 << 20) as f64;
/// Most heap a large body may add while it is uploaded or read.
const LIMIT: usize = 32 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_256_mib_body_is_uploaded_and_read_back_with_flat_memory() {
    let len_total = body_len();
    let db = TestDb::create("memory").await;
    let (_store, bodies, staging, _dir) = open(&db, Duration::from_secs(3600)).await;
    let received = stage_generated(&staging, 7, len_total).await;
    let ReceivedBody::File { digest, len, .. } = &received else {
        panic!("a large body is a file")
    };
    let (digest, len) = (*digest, *len);
    assert_eq!(len, len_total);

    let base = start();
    let t = Instant::now();
    let settled = bodies.settle(received, Settle::New).await.expect("settle");
    let upload = (peak_since(base), t.elapsed());
    drop(settled);
    assert!(!staging.contains(&digest));

    // Read back as a delivery does, comparing with the generator piece by piece.
    let base = start();
    let t = Instant::now();
    let mut r = bodies.open_read(&digest).await.expect("open_read");
    let mut buf = vec![0u8; 64 << 10];
    let mut want = vec![0u8; 64 << 10];
    let mut at = 0u64;
    loop {
        let n = r.read(&mut buf).await.expect("read");
        if n == 0 {
            break;
        }
        bytes_at(7, at, &mut want[..n]);
        assert!(
            buf[..n] == want[..n],
            "byte {at}..{} differs",
            at + n as u64
        );
        at += n as u64;
    }
    drop(r);
    assert_eq!(at, len_total, "every byte read back");
    let read = (peak_since(base), t.elapsed());

    let base = start();
    let t = Instant::now();
    assert_eq!(
        bodies.verify(&digest).await.expect("verify"),
        (BlobCheck::Intact, len_total)
    );
    let verify = (peak_since(base), t.elapsed());

    for (what, (peak, took)) in [("upload", upload), ("read", read), ("verify", verify)] {
        eprintln!(
            "{what:6} {} MiB: peak heap growth {:.1} MiB, {:.1} s ({:.0} MiB/s)",
            len_total >> 20,
            peak as f64 / MIB,
            took.as_secs_f64(),
            len_total as f64 / MIB / took.as_secs_f64()
        );
        assert!(
            peak < LIMIT,
            "{what} of a {} MiB body grew the heap by {:.1} MiB (limit {} MiB)",
            len_total >> 20,
            peak as f64 / MIB,
            LIMIT >> 20
        );
    }
}
