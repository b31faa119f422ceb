//! Coordination of hub instances through PostgreSQL (`state/pg/coord.rs`), with two stores on
//! one database standing for two hub instances: an agency's lease is held by one instance at
//! a time, renewed by its holder, taken over only once it has run out (by the database's
//! clock) or been released; an event one instance publishes reaches the other and not itself;
//! a node change made from a stale view (last seen, identity conflict) keeps what another
//! instance changed meanwhile (a revocation), and so do a suspension and a revocation made at
//! the same instant through two instances; and an instance's event listener (its LISTEN
//! connection) ends with its store.

use poros_hub::state::pg::{PgOptions, PgStore};
use poros_hub::state::{
    AuditRecord, CoordinationBackend, HubEvent, NodeRecord, NodeState, RegistryBackend,
};
use poros_protocol::AgencyId;
use std::time::{Duration, Instant};

async fn database() -> String {
    tokio::task::spawn_blocking(|| poros_harness::fresh_database("t_pgcoord"))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("a PostgreSQL database for the test: {e}"))
}

/// One hub instance's store on `url`.
async fn instance(url: &str, name: &str) -> PgStore {
    let mut o = PgOptions::new(url);
    o.pool_size = 4;
    o.instance = name.into();
    PgStore::connect(o)
        .await
        .expect("connect to the test database")
}

fn agency(s: &str) -> AgencyId {
    AgencyId::parse(s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_has_one_holder_until_released_or_run_out() {
    let url = database().await;
    let (a, b) = (instance(&url, "a").await, instance(&url, "b").await);
    let (ha, hb) = (a.holder(), b.holder());
    assert_ne!(ha, hb, "two instances, two holders");
    let g = agency("000.00.00.G01");
    let long = Duration::from_secs(30);

    assert!(
        a.claim_agency(&g, &ha, long).await.unwrap(),
        "a free lease is claimed"
    );
    assert!(
        !b.claim_agency(&g, &hb, long).await.unwrap(),
        "a held lease is refused"
    );
    assert!(
        a.claim_agency(&g, &ha, long).await.unwrap(),
        "its holder renews it"
    );
    assert!(
        !b.claim_agency(&g, &hb, long).await.unwrap(),
        "still refused after renewal"
    );
    // Another agency's lease is independent.
    let h = agency("000.00.00.H01");
    assert!(b.claim_agency(&h, &hb, long).await.unwrap());
    // Released: the other takes it at once; the first is refused now.
    a.release_agency(&g, &ha).await.unwrap();
    assert!(
        b.claim_agency(&g, &hb, long).await.unwrap(),
        "a released lease is claimed"
    );
    assert!(!a.claim_agency(&g, &ha, long).await.unwrap());
    // Releasing someone else's lease changes nothing.
    a.release_agency(&g, &ha).await.unwrap();
    assert!(!a.claim_agency(&g, &ha, long).await.unwrap());

    // A lease that is not renewed runs out, and only then is taken over.
    let c = agency("000.00.00.H02");
    let short = Duration::from_millis(1500);
    let t = Instant::now();
    assert!(a.claim_agency(&c, &ha, short).await.unwrap());
    let mut refused_while_valid = 0;
    loop {
        let got = b.claim_agency(&c, &hb, long).await.unwrap();
        if got {
            break;
        }
        refused_while_valid += 1;
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the lease never ran out"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1400),
        "taken over after {took:?}, before the lease ran out"
    );
    assert!(refused_while_valid > 0);
    // The old holder, waking up, cannot renew what it lost.
    assert!(!a.claim_agency(&c, &ha, short).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_reaches_the_other_instance_and_not_its_publisher() {
    let url = database().await;
    let (a, b) = (instance(&url, "a").await, instance(&url, "b").await);
    let mut at_a = a.events().expect("a shared store has events");
    let mut at_b = b.events().expect("a shared store has events");
    let g = agency("000.00.00.G01");
    // The listening connections start in the background: publish until one arrives.
    let t = Instant::now();
    let got = loop {
        a.publish(HubEvent::Work(g.clone())).await.unwrap();
        match tokio::time::timeout(Duration::from_millis(200), at_b.recv()).await {
            Ok(ev) => break ev.unwrap(),
            Err(_) => assert!(t.elapsed() < Duration::from_secs(10), "no event reached b"),
        }
    };
    assert!(matches!(&got, HubEvent::Work(x) if *x == g), "{got:?}");
    b.publish(HubEvent::Registry(g.clone())).await.unwrap();
    let at = tokio::time::timeout(Duration::from_secs(10), at_a.recv())
        .await
        .expect("b's event reaches a")
        .unwrap();
    assert!(matches!(&at, HubEvent::Registry(x) if *x == g), "{at:?}");
    // Neither heard its own: a has nothing else queued (only b's event), b only a's.
    assert!(at_a.try_recv().is_err(), "a heard its own event");
    while let Ok(ev) = at_b.try_recv() {
        assert!(
            matches!(ev, HubEvent::Work(_)),
            "b heard its own event: {ev:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_change_from_a_stale_view_keeps_a_revocation_made_elsewhere() {
    let url = database().await;
    let (a, b) = (instance(&url, "a").await, instance(&url, "b").await);
    let g = agency("000.00.00.G01");
    let mut rec = NodeRecord::pending(&g, "Agency G01", 10);
    rec.state = NodeState::Active;
    let audit = |what: &str| AuditRecord {
        time_ms: 1,
        actor: "admin@test".into(),
        action: what.into(),
        agency: Some(g.clone()),
        detail: what.into(),
    };
    a.put_node(rec.clone()).await.unwrap();
    // Instance a caches the record; b revokes it.
    let stale = a.node(&g).await.unwrap().expect("stored");
    assert_eq!(stale.state, NodeState::Active);
    let mut revoked = stale.clone();
    revoked.state = NodeState::Revoked;
    b.put_node_audited(revoked, stale.clone(), audit("revoke"))
        .await
        .unwrap()
        .expect("nothing changed since the read");
    // a now notes the agency as seen: the change applies to the stored record.
    let after = a
        .modify_node(
            g.clone(),
            Box::new(|r: &mut NodeRecord| r.last_seen_ms = Some(42)),
        )
        .await
        .unwrap()
        .expect("still stored");
    assert_eq!(after.state, NodeState::Revoked, "the revocation was undone");
    assert_eq!(after.last_seen_ms, Some(42));
    let stored = b.node(&g).await.unwrap().unwrap();
    assert_eq!(stored.state, NodeState::Revoked);
    assert_eq!(stored.last_seen_ms, Some(42));
    // An unknown agency is not created by a change.
    let nobody = agency("999.99.99.Z99");
    let none = a
        .modify_node(
            nobody.clone(),
            Box::new(|r: &mut NodeRecord| r.last_seen_ms = Some(1)),
        )
        .await
        .unwrap();
    assert!(none.is_none());
    assert!(a.node(&nobody).await.unwrap().is_none());
}

/// Listening connections of instance `name` on the test's database, as the server sees them.
async fn listeners(c: &tokio_postgres::Client, name: &str) -> i64 {
    c.query_one(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = $1 \
           AND query ILIKE 'LISTEN %'",
        &[&format!("poros-hub/{name}")],
    )
    .await
    .expect("reading pg_stat_activity")
    .get(0)
}

/// Poll every 50 ms until instance `name` has `want` listening connections; panic naming
/// `what` after `within`.
async fn wait_listeners(c: &tokio_postgres::Client, name: &str, want: i64, what: &str) {
    let within = Duration::from_secs(30);
    let start = Instant::now();
    loop {
        let got = listeners(c, name).await;
        if got == want {
            return;
        }
        assert!(
            start.elapsed() < within,
            "{what}: still {got} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_listener_ends_with_its_store() {
    let url = database().await;
    let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("a plain connection");
    tokio::spawn(conn);
    let store = instance(&url, "short-lived").await;
    let other = instance(&url, "long-lived").await;
    wait_listeners(&c, "short-lived", 1, "the listener to connect").await;
    wait_listeners(&c, "long-lived", 1, "the other listener to connect").await;
    drop(store);
    wait_listeners(
        &c,
        "short-lived",
        0,
        "the dropped store's LISTEN connection to go",
    )
    .await;
    assert_eq!(
        listeners(&c, "long-lived").await,
        1,
        "the other store's listener is untouched"
    );
    drop(other);
}

/// Admins suspending and revoking one agency at the same instant through two hub instances:
/// whichever commits first, the agency ends revoked, its serials on the revocation list; a
/// suspension that lost is refused as about a revoked node, never written over the
/// revocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suspend_and_revoke_at_once_through_two_hubs_end_revoked() {
    use poros_hub::lifecycle::{change_node_state, StateChange};
    use std::sync::Arc;
    let url = database().await;
    let (a, b) = (
        Arc::new(instance(&url, "a").await),
        Arc::new(instance(&url, "b").await),
    );
    let mut suspended_first = 0;
    for i in 0..20 {
        let g = agency(&format!("000.00.00.G{:02}", i + 10));
        let mut rec = NodeRecord::pending(&g, "Agency", 10);
        rec.state = NodeState::Active;
        rec.tls_serial = format!("{:04x}", 2 * i + 1);
        rec.sign_serial = format!("{:04x}", 2 * i + 2);
        a.put_node(rec).await.unwrap();
        let start = Arc::new(tokio::sync::Barrier::new(2));
        let suspend = {
            let (a, g, start) = (a.clone(), g.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                change_node_state(&*a, &g, StateChange::Suspend, "admin-a").await
            })
        };
        let revoke = {
            let (b, g, start) = (b.clone(), g.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                change_node_state(&*b, &g, StateChange::Revoke, "admin-b").await
            })
        };
        let (suspend, revoke) = (suspend.await.unwrap(), revoke.await.unwrap());
        let revoked = revoke.unwrap_or_else(|e| panic!("{g}: the revocation failed: {e:#}"));
        assert_eq!(revoked.state, NodeState::Revoked);
        let stored = a.node(&g).await.unwrap().expect("stored");
        assert_eq!(
            stored.state,
            NodeState::Revoked,
            "{g}: not revoked in the end"
        );
        let actions: Vec<String> = a
            .audit_log(Some(&g))
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.action)
            .collect();
        match suspend {
            Ok(_) => {
                suspended_first += 1;
                assert_eq!(actions, ["suspend", "revoke"], "{g}");
            }
            Err(e) => {
                let e = format!("{e:#}");
                assert!(
                    e.contains("is revoked"),
                    "{g}: refused for another reason: {e}"
                );
                assert_eq!(actions, ["revoke"], "{g}");
            }
        }
        let listed: Vec<String> = b
            .revoked()
            .await
            .unwrap()
            .into_iter()
            .filter(|(_, r)| r.agency == g)
            .map(|(s, _)| s)
            .collect();
        assert_eq!(listed.len(), 2, "{g}: both serials revoked: {listed:?}");
    }
    eprintln!("suspension committed first in {suspended_first} of 20 rounds");
}
