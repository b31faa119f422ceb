//! What keeps a hub's PostgreSQL state tidy without anyone asking: the sweep folds the
//! counters' delta rows into their totals (the figures unchanged), and the server ends a hub
//! session left idle inside a transaction (a hub stopped mid-transaction must not hold its
//! row locks against the other instances).
//!
//! Runs on a real PostgreSQL server the test binary starts (Debian's postgresql package;
//! `scripts/test.sh` installs it), with a database of its own per test.

mod pgx;

use pgx::*;
use poros_hub::deployment::{HubPaths, InitOptions};
use poros_hub::hub::Hub;
use poros_hub::state::pg::{PgOptions, PgStore};
use poros_hub::state::BodyAt;
use poros_protocol::SigningKey;
use poros_store::ReceivedBody;
use std::time::{Duration, Instant};

/// Rows in a table of the test's database.
async fn rows(c: &tokio_postgres::Client, table: &str) -> i64 {
    c.query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap_or_else(|e| panic!("counting {table}: {e}"))
        .get(0)
}

/// A deployment in `dir` whose hub keeps its state in the database at `url`.
fn deployment_on(dir: &std::path::Path, url: &str) -> (HubPaths, poros_config::HubConfig) {
    let any = "127.0.0.1:0".parse().unwrap();
    poros_hub::deployment::init(
        dir,
        &InitOptions {
            listen: any,
            ops_listen: any,
            dns_names: vec!["localhost".into()],
            ips: vec!["127.0.0.1".parse().unwrap()],
            enroll_listen: any,
        },
    )
    .expect("a new deployment");
    let paths = HubPaths::new(dir);
    let mut cfg = poros_config::HubConfig::load(&paths.config()).expect("its hub.toml");
    cfg.store.backend = poros_config::StoreBackend::Postgres;
    cfg.store.url = url.to_string();
    cfg.store.pool_size = 4;
    cfg.store.instance = "upkeep".into();
    (paths, cfg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_folds_the_counter_deltas_into_the_totals() {
    let db = FreshDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let (paths, mut cfg) = deployment_on(dir.path(), &db.url);
    // The documents below were accepted in 1970 (as `pgx::doc` builds them): with the default
    // expiry the same pass would expire them and count that in new delta rows.
    cfg.delivery.expiry_secs = 200 * 365 * 24 * 3600;
    let hub = Hub::open(&paths, cfg).await.expect("the hub on PostgreSQL");
    let k = SigningKey::generate().unwrap();
    for n in 1..=3u8 {
        let body = [b'x', n];
        let rec = doc(&k, n, &body, &[H1, H2], BodyAt::Inline);
        hub.store
            .accept(rec, ReceivedBody::inline(body.to_vec()))
            .await
            .expect("accepted");
    }
    let c = db.client().await;
    let before = hub.store.counters().await.unwrap();
    assert!(
        before.iter().any(|(_, v)| *v > 0),
        "accepting counted something: {before:?}"
    );
    let deltas = rows(&c, "counter_deltas").await;
    let stat_deltas = rows(&c, "stat_deltas").await;
    assert!(deltas > 0, "each accept inserts its counter deltas");

    poros_hub::server::sweep::sweep_once(&hub)
        .await
        .expect("a sweep pass");

    assert_eq!(
        (
            rows(&c, "counter_deltas").await,
            rows(&c, "stat_deltas").await
        ),
        (0, 0),
        "the sweep folded the {deltas} counter and {stat_deltas} statistics delta rows"
    );
    assert!(rows(&c, "counter_totals").await > 0, "folded into totals");
    assert_eq!(
        hub.store.counters().await.unwrap(),
        before,
        "the figures are the same after folding"
    );
}

/// The server's view of backend `pid`: its state, or `None` once the session is gone.
async fn session_state(c: &tokio_postgres::Client, pid: i32) -> Option<String> {
    c.query_opt(
        "SELECT coalesce(state, '') FROM pg_stat_activity WHERE pid = $1",
        &[&pid],
    )
    .await
    .expect("reading pg_stat_activity")
    .map(|r| r.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_ends_a_hub_session_left_idle_in_a_transaction() {
    let db = FreshDb::create().await;
    let c = db.client().await;

    // The store's own sessions carry the 10 s limit.
    let mut o = PgOptions::new(&db.url);
    o.pool_size = 2;
    o.instance = "idle-default".into();
    let store = PgStore::connect(o).await.expect("connect");
    let s = store.pooled_session().await.expect("a pooled session");
    let limit: String = s
        .query_one("SHOW idle_in_transaction_session_timeout", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(limit, "10s");
    drop(s);
    drop(store);

    // An operator's value in the URL wins (here a shorter one, so the test waits 2 s, not 10).
    let sep = if db.url.contains('?') { '&' } else { '?' };
    let url = format!(
        "{}{sep}options=-c%20idle_in_transaction_session_timeout%3D2000",
        db.url
    );
    let mut o = PgOptions::new(&url);
    o.pool_size = 2;
    o.instance = "idle-short".into();
    let store = PgStore::connect(o).await.expect("connect");
    let s = store.pooled_session().await.expect("a pooled session");
    let limit: String = s
        .query_one("SHOW idle_in_transaction_session_timeout", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(limit, "2s");
    let pid: i32 = s
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    // A hub stopped here, inside its transaction, holding a row lock.
    s.batch_execute("BEGIN; SELECT * FROM nodes FOR UPDATE")
        .await
        .expect("a transaction opened");
    let began = Instant::now();
    assert_eq!(
        session_state(&c, pid).await.as_deref(),
        Some("idle in transaction")
    );
    let deadline = Duration::from_secs(30);
    while session_state(&c, pid).await.is_some() {
        assert!(
            began.elapsed() < deadline,
            "session {pid} still there after {deadline:?}: {:?}",
            session_state(&c, pid).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = began.elapsed();
    assert!(
        after >= Duration::from_millis(1500),
        "ended after {after:?}: before its idle limit, so not by it"
    );
    // The transaction is gone with its session: nothing it held is held.
    assert!(
        s.query_one("SELECT 1", &[]).await.is_err(),
        "the session still answers"
    );
}
