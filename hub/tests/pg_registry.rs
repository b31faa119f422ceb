//! The PostgreSQL registry (`state/pg/registry.rs`) against its specification, the redb
//! registry: one script of calls run on both gives the same answers, call by call. Then what
//! only several hubs on one database can show: a token redeemed by two hubs at once is
//! redeemed once, two parent changes at once make no cycle, and a reader paging the audit
//! log by cursor while hubs append never passes over a record.
//!
//! Runs on a real PostgreSQL server the test binary starts (Debian's postgresql package;
//! `scripts/test.sh` installs it), with a database of its own per test.

use poros_hub::state::pg::{PgOptions, PgStore};
use poros_hub::state::{
    AuditRecord, HubStore, MonitorRecord, NodeEdit, NodeRecord, NodeState, RegistryBackend,
    RegistryRefusal, Superseded,
};
use poros_protocol::directory::ParentError;
use poros_protocol::{AgencyId, EnrollToken};
use poros_store::Db;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A database of this test's own on the test binary's PostgreSQL server (started on first
/// use, stopped when the binary exits: `poros_harness::fresh_database`).
struct TestDb {
    url: String,
}

impl TestDb {
    async fn create() -> TestDb {
        let url = tokio::task::spawn_blocking(|| poros_harness::fresh_database("t_pgreg"))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("a PostgreSQL database for the test: {e}"));
        TestDb { url }
    }

    fn url(&self) -> String {
        self.url.clone()
    }

    /// A hub's store on this database (a pool of its own, as another hub instance has).
    async fn hub(&self, instance: &str) -> PgStore {
        let mut o = PgOptions::new(&self.url());
        o.pool_size = 4;
        o.instance = instance.into();
        PgStore::connect(o)
            .await
            .expect("connect to the test database")
    }
}

/// A redb store in a temporary directory (opened off the runtime: opening blocks).
async fn redb() -> (tempfile::TempDir, HubStore) {
    tokio::task::spawn_blocking(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = HubStore::open(Db::open(&dir.path().join("hub.redb")).unwrap()).unwrap();
        (dir, store)
    })
    .await
    .unwrap()
}

fn a(s: &str) -> AgencyId {
    AgencyId::parse(s).unwrap()
}

fn audit(action: &str, agency: Option<&AgencyId>, time_ms: u64) -> AuditRecord {
    AuditRecord {
        time_ms,
        actor: "admin@test".into(),
        action: action.into(),
        agency: agency.cloned(),
        detail: format!("{action} at {time_ms}"),
    }
}

fn token(agency: &AgencyId, secret: &str) -> EnrollToken {
    EnrollToken {
        agency: agency.clone(),
        hub: "hub.example:7000".into(),
        server_name: "hub.example".into(),
        ca_pin: [7; 32],
        secret: secret.into(),
        expires_ms: 1_000_000,
    }
}

fn node(agency: &AgencyId, parent: Option<&AgencyId>) -> NodeRecord {
    let mut n = NodeRecord::pending(agency, &format!("Agency {agency}"), 10);
    n.parent = parent.cloned();
    n
}

/// Every registry call once or more, with the answers as text, labelled.
async fn script(b: &dyn RegistryBackend) -> Vec<(String, String)> {
    let mut log = Vec::new();
    fn note<T: Debug>(log: &mut Vec<(String, String)>, what: &str, v: T) {
        log.push((what.to_string(), format!("{v:?}")));
    }
    let root = a("000.00.00.G01");
    let child = a("000.00.01.G02");
    let other = a("000.00.00.H05");
    let nobody = a("999.99.99.Z99");
    let mut t = 100;
    let mut next = || {
        t += 1;
        t
    };

    // Registration, with the parent checked.
    let r = b
        .add_node(
            node(&other, None),
            Some(token(&other, "s-other")),
            audit("node add", Some(&other), next()),
        )
        .await;
    note(&mut log, "add other", r.unwrap());
    let r = b
        .add_node(
            node(&root, None),
            Some(token(&root, "s-root")),
            audit("node add", Some(&root), next()),
        )
        .await;
    note(&mut log, "add root", r.unwrap());
    let r = b
        .add_node(
            node(&child, Some(&root)),
            None,
            audit("node add", Some(&child), next()),
        )
        .await;
    note(&mut log, "add child under root", r.unwrap());
    let r = b
        .add_node(
            node(&nobody, Some(&a("888.88.88.Y88"))),
            None,
            audit("node add", Some(&nobody), next()),
        )
        .await;
    assert!(
        matches!(
            r,
            Ok(Err(RegistryRefusal::Parent(ParentError::Unknown { .. })))
        ),
        "{r:?}"
    );
    note(&mut log, "add under an unknown parent", r.unwrap());
    let r = b
        .add_node(
            node(&nobody, Some(&nobody)),
            None,
            audit("node add", Some(&nobody), next()),
        )
        .await;
    note(&mut log, "add under itself", r.unwrap());

    // Edits: refused ones store nothing; the audit detail lists the changes.
    let cycle = NodeEdit {
        parent: Some(Some(child.clone())),
        ..NodeEdit::default()
    };
    let r = b
        .edit_node(root.clone(), cycle, audit("node edit", Some(&root), next()))
        .await;
    assert!(
        matches!(
            r,
            Ok(Err(RegistryRefusal::Parent(ParentError::Cycle { .. })))
        ),
        "{r:?}"
    );
    note(&mut log, "edit root under its child", r.unwrap());
    let itself = NodeEdit {
        parent: Some(Some(root.clone())),
        ..NodeEdit::default()
    };
    let r = b
        .edit_node(
            root.clone(),
            itself,
            audit("node edit", Some(&root), next()),
        )
        .await;
    note(&mut log, "edit root under itself", r.unwrap());
    let r = b
        .edit_node(
            nobody.clone(),
            NodeEdit::default(),
            audit("node edit", Some(&nobody), next()),
        )
        .await;
    note(&mut log, "edit an unknown agency", r.unwrap());
    let fields = NodeEdit {
        name: Some("Sở Tài chính".into()),
        parent: Some(None),
        email: Some(Some("so@example.vn".into())),
        address: Some(Some("1 Phố Huế".into())),
        phone: Some(Some("+84 24 0000".into())),
    };
    let r = b
        .edit_node(
            child.clone(),
            fields,
            audit("node edit", Some(&child), next()),
        )
        .await;
    note(&mut log, "edit child's fields", r.unwrap());
    let r = b
        .edit_node(
            child.clone(),
            NodeEdit::default(),
            audit("node edit", Some(&child), next()),
        )
        .await;
    note(&mut log, "edit child, no change", r.unwrap());
    let under_other = NodeEdit {
        parent: Some(Some(other.clone())),
        email: Some(None),
        ..NodeEdit::default()
    };
    let r = b
        .edit_node(
            child.clone(),
            under_other,
            audit("node edit", Some(&child), next()),
        )
        .await;
    note(&mut log, "edit child under other", r.unwrap());

    // Tokens: redeemed once.
    note(&mut log, "token s-root", b.token("s-root").await.unwrap());
    note(&mut log, "token unknown", b.token("nope").await.unwrap());
    let mut active = node(&root, None);
    active.state = NodeState::Active;
    active.tls_serial = "0a01".into();
    active.sign_serial = "0b01".into();
    let r = b
        .redeem_token(
            "s-root".into(),
            active.clone(),
            500,
            audit("enrolled", Some(&root), next()),
        )
        .await;
    assert_eq!(r.as_ref().ok(), Some(&true));
    note(&mut log, "redeem s-root", r.unwrap());
    let r = b
        .redeem_token(
            "s-root".into(),
            active.clone(),
            501,
            audit("enrolled", Some(&root), next()),
        )
        .await;
    assert_eq!(r.as_ref().ok(), Some(&false));
    note(&mut log, "redeem s-root again", r.unwrap());
    let r = b
        .redeem_token(
            "nope".into(),
            node(&nobody, None),
            502,
            audit("enrolled", Some(&nobody), next()),
        )
        .await;
    note(&mut log, "redeem unknown", r.unwrap());
    note(
        &mut log,
        "token s-root used",
        b.token("s-root").await.unwrap(),
    );
    note(
        &mut log,
        "token s-other unused",
        b.token("s-other").await.unwrap(),
    );

    // Plain puts.
    let mut seen = node(&other, None);
    seen.last_seen_ms = Some(600);
    note(&mut log, "put other", b.put_node(seen.clone()).await);
    let read = seen.clone();
    seen.state = NodeState::Suspended;
    let r = b
        .put_node_audited(
            seen.clone(),
            read.clone(),
            audit("suspend", Some(&other), next()),
        )
        .await;
    note(&mut log, "put other audited", r);
    // Written over a record that changed since it was read: refused, nothing stored.
    let r = b
        .put_node_audited(seen, read, audit("suspend", Some(&other), next()))
        .await;
    note(&mut log, "put other audited from a stale read", r);
    note(&mut log, "nodes", b.nodes().await.unwrap());

    // Renewal's superseded serials retired; revocation of current and superseded serials.
    let mut renewed = b
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.agency == child)
        .unwrap();
    renewed.state = NodeState::Active;
    renewed.tls_serial = "AB03".into();
    renewed.sign_serial = "ab04".into();
    renewed.superseded = Some(Superseded {
        tls_serial: "Ab01".into(),
        sign_serial: "aB02".into(),
        at_ms: 700,
    });
    b.put_node(renewed.clone()).await.unwrap();
    let r = b
        .retire_superseded(child.clone(), 800, audit("retire", Some(&child), next()))
        .await;
    note(&mut log, "retire child's superseded", r.unwrap());
    let r = b
        .retire_superseded(child.clone(), 801, audit("retire", Some(&child), next()))
        .await;
    note(&mut log, "retire child's superseded again", r.unwrap());
    let r = b
        .retire_superseded(nobody.clone(), 802, audit("retire", Some(&nobody), next()))
        .await;
    note(&mut log, "retire unknown", r.unwrap());
    let mut only_tls = node(&other, None);
    only_tls.superseded = Some(Superseded {
        tls_serial: "c0".into(),
        sign_serial: String::new(),
        at_ms: 1,
    });
    b.put_node(only_tls).await.unwrap();
    let r = b
        .retire_superseded(other.clone(), 803, audit("retire", Some(&other), next()))
        .await;
    note(&mut log, "retire other's superseded TLS only", r.unwrap());
    note(&mut log, "superseded", b.superseded().await.unwrap());

    let mut revoked = active.clone();
    revoked.state = NodeState::Revoked;
    revoked.superseded = Some(Superseded {
        tls_serial: "FF00".into(),
        sign_serial: String::new(),
        at_ms: 900,
    });
    let r = b
        .revoke(revoked, active, 950, audit("revoke", Some(&root), next()))
        .await;
    note(&mut log, "revoke root", r);
    let mut read = renewed.clone();
    read.superseded = None;
    let mut again = read.clone();
    again.state = NodeState::Revoked;
    let r = b
        .revoke(
            again.clone(),
            read.clone(),
            960,
            audit("revoke", Some(&child), next()),
        )
        .await;
    note(&mut log, "revoke child", r);
    let r = b
        .revoke(
            again.clone(),
            read,
            965,
            audit("revoke", Some(&child), next()),
        )
        .await;
    note(&mut log, "revoke child from a stale read", r);
    let r = b
        .revoke(
            again.clone(),
            again,
            970,
            audit("revoke", Some(&child), next()),
        )
        .await;
    note(&mut log, "revoke child again (later date)", r);
    note(&mut log, "revoked", b.revoked().await.unwrap());
    note(
        &mut log,
        "nodes after revocations",
        b.nodes().await.unwrap(),
    );

    // Monitors, replaced by name.
    for (name, created) in [("zabbix", 1), ("Prometheus", 2), ("zabbix", 3)] {
        let m = MonitorRecord {
            name: name.into(),
            token_sha256: [created as u8; 32],
            created_ms: created,
            revoked_ms: (created == 3).then_some(4),
        };
        let r = b.put_monitor(m, audit("monitor", None, next())).await;
        note(&mut log, &format!("put monitor {name}"), r);
    }
    note(&mut log, "monitors", b.monitors().await.unwrap());

    // The audit log, whole, by agency, and by page.
    note(
        &mut log,
        "audit alone",
        b.audit(audit("note", None, next())).await,
    );
    let all = b.audit_log(None).await.unwrap();
    note(&mut log, "audit log", &all);
    for who in [&root, &child, &other, &nobody] {
        note(
            &mut log,
            &format!("audit log of {who}"),
            b.audit_log(Some(who)).await.unwrap(),
        );
    }
    let n = all.len() as u64;
    for (after, limit) in [
        (0, 0),
        (0, 1),
        (0, 3),
        (0, 1000),
        (2, 2),
        (n - 1, 1),
        (n - 1, 2),
        (n, 5),
        (n, 0),
        (n + 100, 5),
        (u64::MAX, 3),
    ] {
        let r = b.audit_page(after, limit).await.unwrap();
        note(
            &mut log,
            &format!("audit page after {after} limit {limit}"),
            r,
        );
    }
    let mut cursor = 0;
    let mut walked = Vec::new();
    loop {
        let (page, more) = b.audit_page(cursor, 4).await.unwrap();
        walked.extend(page);
        note(&mut log, &format!("walk from {cursor}"), more);
        match more {
            Some(c) => cursor = c,
            None => break,
        }
    }
    assert_eq!(walked, all, "the pages make up the log");
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_answers_as_the_redb_registry_does() {
    let db = TestDb::create().await;
    let pg = db.hub("hub-1").await;
    let (_dir, rd) = redb().await;
    let want = script(&rd).await;
    let got = script(&pg).await;
    assert_eq!(want.len(), got.len());
    for ((what, w), (_, g)) in want.iter().zip(&got) {
        assert_eq!(g, w, "{what}: PostgreSQL (left) differs from redb (right)");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_redeemed_by_two_hubs_at_once_is_redeemed_once() {
    let db = TestDb::create().await;
    let hubs = [db.hub("hub-1").await, db.hub("hub-2").await];
    for round in 0..8 {
        let agency = a(&format!("000.00.{round:02}.G01"));
        let secret = format!("secret-{round}");
        let r = hubs[0]
            .add_node(
                node(&agency, None),
                Some(token(&agency, &secret)),
                audit("node add", Some(&agency), 1),
            )
            .await;
        r.unwrap().unwrap();
        let mut tasks = Vec::new();
        for i in 0..4 {
            let hub = hubs[i % 2].clone();
            let (agency, secret) = (agency.clone(), secret.clone());
            tasks.push(tokio::spawn(async move {
                let mut rec = node(&agency, None);
                rec.state = NodeState::Active;
                rec.tls_serial = format!("{i:02x}");
                hub.redeem_token(secret, rec, 2, audit("enrolled", Some(&agency), 2))
                    .await
            }));
        }
        let mut won = Vec::new();
        for (i, t) in tasks.into_iter().enumerate() {
            if t.await.unwrap().unwrap() {
                won.push(i);
            }
        }
        assert_eq!(won.len(), 1, "round {round}: redeemed by tasks {won:?}");
        let tr = hubs[1].token(&secret).await.unwrap().unwrap();
        assert_eq!(tr.used_ms, Some(2));
        let stored = hubs[1]
            .nodes()
            .await
            .unwrap()
            .into_iter()
            .find(|n| n.agency == agency)
            .unwrap();
        assert_eq!(
            stored.tls_serial,
            format!("{:02x}", won[0]),
            "the winner's record is stored"
        );
        let enrolled = hubs[0].audit_log(Some(&agency)).await.unwrap();
        assert_eq!(
            enrolled.iter().filter(|a| a.action == "enrolled").count(),
            1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_parent_changes_at_once_make_no_cycle() {
    let db = TestDb::create().await;
    let hubs = [db.hub("hub-1").await, db.hub("hub-2").await];
    for round in 0..8 {
        let x = a(&format!("001.00.{round:02}.H01"));
        let y = a(&format!("002.00.{round:02}.H02"));
        for n in [&x, &y] {
            hubs[0]
                .add_node(node(n, None), None, audit("node add", Some(n), 1))
                .await
                .unwrap()
                .unwrap();
        }
        let edit = |hub: &PgStore, who: &AgencyId, under: &AgencyId| {
            let (hub, who) = (hub.clone(), who.clone());
            let e = NodeEdit {
                parent: Some(Some(under.clone())),
                ..NodeEdit::default()
            };
            tokio::spawn(async move {
                hub.edit_node(who.clone(), e, audit("node edit", Some(&who), 2))
                    .await
            })
        };
        let t1 = edit(&hubs[0], &x, &y);
        let t2 = edit(&hubs[1], &y, &x);
        let (r1, r2) = (t1.await.unwrap().unwrap(), t2.await.unwrap().unwrap());
        assert!(
            r1.is_ok() != r2.is_ok(),
            "round {round}: exactly one applies: {r1:?} / {r2:?}"
        );
        let refused = r1.err().or(r2.err()).unwrap();
        assert!(
            matches!(refused, RegistryRefusal::Parent(ParentError::Cycle { .. })),
            "{refused:?}"
        );
        let nodes = hubs[1].nodes().await.unwrap();
        let parent = |n: &AgencyId| {
            nodes
                .iter()
                .find(|r| &r.agency == n)
                .unwrap()
                .parent
                .clone()
        };
        assert!(
            parent(&x).is_none() || parent(&y).is_none(),
            "round {round}: a cycle was stored"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_paging_the_audit_log_during_appends_misses_nothing() {
    const WRITERS: usize = 6;
    const EACH: usize = 25;
    let db = TestDb::create().await;
    let hubs = [db.hub("hub-1").await, db.hub("hub-2").await];
    let hub = Arc::new(hubs[0].clone());
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let hub = hubs[w % 2].clone();
        writers.push(tokio::spawn(async move {
            for i in 0..EACH {
                let mut r = audit("note", None, (w * EACH + i) as u64);
                r.actor = format!("writer {w}");
                hub.audit(r).await.unwrap();
            }
        }));
    }
    // The reader: from its cursor, the records it already saw must come first, unchanged
    // (none committed later may appear among them); new ones follow.
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut cursor, mut behind_cursor, mut read) = (0u64, Vec::new(), Vec::new());
    while read.len() < WRITERS * EACH {
        assert!(
            Instant::now() < deadline,
            "read {} of {} records",
            read.len(),
            WRITERS * EACH
        );
        let (page, next) = hub.audit_page(cursor, 16).await.unwrap();
        assert!(
            page.len() >= behind_cursor.len() && page[..behind_cursor.len()] == behind_cursor[..],
            "a record appeared before ones already read"
        );
        read.extend(page[behind_cursor.len()..].iter().cloned());
        match next {
            Some(c) => (cursor, behind_cursor) = (c, Vec::new()),
            None => behind_cursor = page,
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(
        read,
        hub.audit_log(None).await.unwrap(),
        "read in log order, each once"
    );
}
