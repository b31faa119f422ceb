//! The PostgreSQL exchange and statement areas against the redb store, their specification:
//! each scenario runs the same calls on both and compares everything they answer (outcomes,
//! queues, relays, histories, delivery records, counters and statistics); then what only a
//! shared database has: two hubs accepting or answering the same thing at once.
//!
//! The database: `POROS_DEV_PG` (a server URL ending in `/`, role with CREATEDB), by default
//! the development server `postgres://poros:poros@127.0.0.1:5432/`; each test makes a fresh
//! database and drops it. An unreachable server fails the test, saying so.

use poros_hub::state::pg::{PgOptions, PgStore};
use poros_hub::state::{
    AcceptOutcome, Answer, AnswerOutcome, BodyAt, DeliveryRecord, DeliveryState, DocRecord,
    ExchangeBackend, HubStore, NodeRecord, NodeState, RelayItem, StatementBackend,
    StatementOutcome, StatementRefusal,
};
use poros_protocol::{
    Acceptance, AgencyId, BusinessStatus, Change, DocumentId, Envelope, HubNotice, Metadata,
    NoticeKind, Outcome, Receipt, SignedEnvelope, SignedReceipt, SignedStatement, SigningKey,
    Staff, Statement, StatementKind,
};
use poros_store::{Db, ReceivedBody};
use std::collections::{BTreeMap, HashMap, HashSet};

const G: &str = "000.00.00.G01";
const H1: &str = "000.00.00.H01";
const H2: &str = "000.00.00.H02";
const H3: &str = "000.00.00.H03";
const P: &str = "000.00.00.H09";

fn a(s: &str) -> AgencyId {
    AgencyId::parse(s).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The database.

fn server_url() -> String {
    std::env::var("POROS_DEV_PG")
        .unwrap_or_else(|_| "postgres://poros:poros@127.0.0.1:5432/".into())
}

/// A fresh database, dropped (with its connections) when this goes.
struct FreshDb {
    name: String,
    url: String,
}

impl FreshDb {
    async fn create() -> FreshDb {
        let server = server_url();
        let name = format!("poros_pgx_{}", uuid::Uuid::now_v7().simple());
        let admin = admin(&server).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("creating database {name} on {server}: {e}"));
        FreshDb {
            url: format!("{server}{name}"),
            name,
        }
    }

    /// A plain connection to it, for what the test reads or sets up directly.
    async fn client(&self) -> tokio_postgres::Client {
        let (c, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.url));
        tokio::spawn(conn);
        c
    }
}

async fn admin(server: &str) -> tokio_postgres::Client {
    let url = format!("{server}postgres");
    let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the PostgreSQL test server is unreachable at {url} ({e}); start it or set \
                 POROS_DEV_PG to a server URL whose role may create databases"
            )
        });
    tokio::spawn(conn);
    c
}

impl Drop for FreshDb {
    fn drop(&mut self) {
        let (server, name) = (server_url(), self.name.clone());
        // Its own thread and runtime: Drop may run inside (or after) the test's runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok((c, conn)) =
                    tokio_postgres::connect(&format!("{server}postgres"), tokio_postgres::NoTls)
                        .await
                {
                    tokio::spawn(conn);
                    let _ = c
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            })
        })
        .join();
    }
}

// ---------------------------------------------------------------------------------------------
// The two backends, and what the tests do to them outside the two areas.

trait Areas: ExchangeBackend + StatementBackend {}
impl<T: ExchangeBackend + StatementBackend> Areas for T {}

enum Side {
    Redb {
        store: HubStore,
        _dir: tempfile::TempDir,
    },
    Pg {
        store: PgStore,
        sql: tokio_postgres::Client,
        _db: FreshDb,
    },
}

impl Side {
    fn redb() -> Side {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.redb");
        // Opening writes (blocking): off the runtime's worker.
        let store =
            tokio::task::block_in_place(|| HubStore::open(Db::open(&path).unwrap()).unwrap());
        Side::Redb { store, _dir: dir }
    }

    async fn pg() -> Side {
        let db = FreshDb::create().await;
        let store = PgStore::connect(PgOptions::new(&db.url))
            .await
            .unwrap_or_else(|e| panic!("PgStore on {}: {e}", db.url));
        let sql = db.client().await;
        // The registry's table, as its area (migration 2) makes it, until that area is here.
        sql.batch_execute(
            "CREATE TABLE IF NOT EXISTS nodes (agency text COLLATE \"C\" PRIMARY KEY, \
             state text NOT NULL, parent text COLLATE \"C\", record bytea NOT NULL)",
        )
        .await
        .unwrap();
        Side::Pg {
            store,
            sql,
            _db: db,
        }
    }

    fn b(&self) -> &dyn Areas {
        match self {
            Side::Redb { store, .. } => store,
            Side::Pg { store, .. } => store,
        }
    }

    async fn put_node(&self, code: &str, state: NodeState) {
        let mut n = NodeRecord::pending(&a(code), code, 1);
        n.state = state;
        match self {
            Side::Redb { store, .. } => store.put_node(n).await.unwrap(),
            Side::Pg { sql, .. } => {
                let rec = postcard::to_allocvec(&n).unwrap();
                sql.execute(
                    "INSERT INTO nodes (agency, state, record) VALUES ($1, $2, $3) \
                     ON CONFLICT (agency) DO UPDATE SET state = excluded.state, \
                     record = excluded.record",
                    &[&code, &format!("{state:?}"), &rec],
                )
                .await
                .unwrap();
            }
        }
    }

    /// Hold a document's pending deliveries for a body repair (the repair area's part; for
    /// PostgreSQL, its rows in `held`).
    async fn hold(&self, doc: DocumentId) {
        match self {
            Side::Redb { store, .. } => {
                store.hold_damaged(doc, "test".into(), 1).await.unwrap();
            }
            Side::Pg { sql, .. } => {
                // With what redb's hold counts (a newly damaged body, a repair asked).
                sql.batch_execute(&format!(
                    "INSERT INTO held (recipient, doc) SELECT recipient, doc FROM deliveries \
                     WHERE doc = '{}' AND pending; \
                     INSERT INTO counter_deltas (name, delta) \
                     VALUES ('bodies_damaged', 1), ('body_repairs_requested', 1)",
                    doc.0
                ))
                .await
                .unwrap();
            }
        }
    }

    /// Every counter.
    async fn counters(&self) -> BTreeMap<String, u64> {
        match self {
            Side::Redb { store, .. } => store.counters().unwrap().into_iter().collect(),
            Side::Pg { sql, .. } => sql
                .query(
                    "SELECT name, sum(delta)::bigint FROM counter_deltas GROUP BY name",
                    &[],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
                .collect(),
        }
    }

    /// Every statistic of the periods the tests' times fall in (1970).
    async fn stats(&self) -> BTreeMap<(String, String, String), u64> {
        let periods = ["D1970-01-01", "M1970-01", "Y1970"];
        let mut out = BTreeMap::new();
        match self {
            Side::Redb { store, .. } => {
                let r = store.db().read().unwrap();
                for p in periods {
                    let sums = poros_hub::stats::sums(&r, &[p.to_string()], None).unwrap();
                    for (scope, metrics) in sums {
                        for (m, v) in metrics {
                            out.insert((p.to_string(), scope.clone(), m), v);
                        }
                    }
                }
            }
            Side::Pg { sql, .. } => {
                for r in sql
                    .query(
                        "SELECT period, scope, metric, sum(delta)::bigint FROM stat_deltas \
                         GROUP BY 1, 2, 3",
                        &[],
                    )
                    .await
                    .unwrap()
                {
                    if periods.contains(&r.get::<_, &str>(0)) {
                        out.insert((r.get(0), r.get(1), r.get(2)), r.get::<_, i64>(3) as u64);
                    }
                }
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Building documents and statements (as `state/tests.rs` does).

fn doc(k: &SigningKey, n: u8, body: &[u8], recipients: &[&str], at: BodyAt) -> DocRecord {
    let env = Envelope {
        id: DocumentId::new_v7(1000 + n as u64, [n; 10]),
        sender: a(G),
        recipients: recipients.iter().map(|r| a(r)).collect(),
        meta: Metadata {
            subject: "s".into(),
            ..Default::default()
        },
        created_ms: 1,
        body_len: body.len() as u64,
        body_sha256: poros_protocol::sha256(body),
        ext: Default::default(),
    };
    let acc = Acceptance {
        doc_id: env.id,
        sender: env.sender.clone(),
        recipients: env.recipients.clone(),
        body_sha256: env.body_sha256,
        body_len: env.body_len,
        accepted_ms: 5_000,
    };
    DocRecord {
        envelope: SignedEnvelope::sign(&env, k, b"c").unwrap(),
        acceptance: SignedStatement::sign(&acc.as_statement(), k, b"c")
            .unwrap()
            .0,
        sender: env.sender.clone(),
        recipients: env.recipients.clone(),
        body_sha256: env.body_sha256,
        body_len: env.body_len,
        body_at: at,
        accepted_ms: 5_000,
    }
}

fn id_of(rec: &DocRecord) -> DocumentId {
    rec.envelope.envelope().unwrap().id
}

fn said(k: &SigningKey, stmt: Statement) -> Answer {
    Answer::Said(
        SignedStatement::sign(&stmt, k, b"c").unwrap(),
        Box::new(stmt),
    )
}

fn receipt(doc: DocumentId, who: &str, outcome: Outcome, at: u64) -> Receipt {
    Receipt {
        doc_id: doc,
        sender: a(G),
        recipient: a(who),
        body_sha256: [0; 32],
        outcome,
        time_ms: at,
    }
}

fn notice(doc: DocumentId, who: &str, kind: NoticeKind, at: u64) -> Statement {
    HubNotice {
        doc_id: doc,
        sender: a(G),
        recipient: a(who),
        kind,
        time_ms: at,
    }
    .as_statement()
}

fn legacy_delivered(k: &SigningKey, doc: DocumentId, who: &str, at: u64) -> Answer {
    let r = receipt(doc, who, Outcome::Delivered, at);
    Answer::Legacy(DeliveryState::Delivered(
        SignedReceipt::sign(&r, k, b"c").unwrap(),
    ))
}

fn statement(
    k: &SigningKey,
    doc: DocumentId,
    from: &str,
    to: &[&str],
    kind: StatementKind,
) -> SignedStatement {
    let s = Statement {
        doc_id: doc,
        from: a(from).into(),
        to: to.iter().map(|t| a(t)).collect(),
        kind,
        staff: Staff {
            department: "Văn thư".into(),
            name: "A".into(),
            email: None,
            phone: None,
        },
        note: None,
        time_ms: 7_000,
    };
    SignedStatement::sign(&s, k, b"c").unwrap()
}

fn status(s: BusinessStatus) -> StatementKind {
    StatementKind::Status {
        status: s,
        reason: None,
    }
}

fn update(add: &str) -> StatementKind {
    StatementKind::Change {
        change: Change::Update {
            add: vec![a(add)],
            remove: vec![],
            meta: None,
        },
        reason: "also for them".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// What a scenario saw, with statement numbers named by their first appearance (both backends
// number in acceptance order; PostgreSQL's sequence may skip numbers).

#[derive(Default)]
struct Trace {
    lines: Vec<String>,
    seqs: HashMap<u64, usize>,
}

impl Trace {
    fn seq(&mut self, seq: u64) -> String {
        let n = self.seqs.len();
        format!("s{}", self.seqs.entry(seq).or_insert(n))
    }

    fn push(&mut self, what: &str, v: impl std::fmt::Debug) {
        self.lines.push(format!("{what}: {v:?}"));
    }

    fn accepted(&mut self, what: &str, o: &StatementOutcome) {
        let line = match o {
            StatementOutcome::Accepted { seq, wake } => {
                format!("accepted {} wake {wake:?}", self.seq(*seq))
            }
            other => format!("{other:?}"),
        };
        self.push(what, line);
    }

    fn delivery(&mut self, r: &AgencyId, d: &DeliveryRecord) -> String {
        let state = match &d.state {
            DeliveryState::Ended { how, statement } => {
                format!("ended {how:?} by {}", self.seq(*statement))
            }
            DeliveryState::Pending => "pending".into(),
            other => format!("{:?} (poros/1)", other.end()),
        };
        format!("{r} {state} at {:?}", d.answered_ms)
    }

    async fn look(&mut self, b: &dyn Areas, docs: &[DocumentId], agencies: &[&str]) {
        let none = HashSet::new();
        for d in docs {
            let rec = b.doc(d).await.unwrap().map(|r| (r.body_at, r.accepted_ms));
            self.push(&format!("doc {d}"), rec);
            let dels = b.deliveries(d).await.unwrap();
            let dels: Vec<String> = dels.iter().map(|(r, x)| self.delivery(r, x)).collect();
            self.push(&format!("deliveries {d}"), dels);
            let h: Vec<String> = b
                .statement_history(d)
                .await
                .unwrap()
                .into_iter()
                .map(|e| {
                    let s = self.seq(e.seq);
                    format!("{s} {} at {}", e.statement.kind.label(), e.accepted_ms)
                })
                .collect();
            self.push(&format!("history {d}"), h);
        }
        for who in agencies {
            let w = a(who);
            let p: Vec<_> = b
                .pending_for(&w, 100, &none)
                .await
                .unwrap()
                .into_iter()
                .map(|p| (p.doc, p.accepted_ms))
                .collect();
            self.push(&format!("pending {who}"), p);
            let p: Vec<_> = b
                .pending_without_added(&w, 100, &none)
                .await
                .unwrap()
                .into_iter()
                .map(|p| p.doc)
                .collect();
            self.push(&format!("pending without added {who}"), p);
            self.push(
                &format!("pending count {who}"),
                b.pending_count(&w).await.unwrap(),
            );
            let r: Vec<_> = b
                .relays_for(&w, 100, &HashSet::new())
                .await
                .unwrap()
                .into_iter()
                .map(|(d, r, item)| {
                    let item = match item {
                        RelayItem::Receipt(s) => format!("{:?}", s.receipt().unwrap()),
                        RelayItem::Notice(n) => format!("{:?}", n.notice().unwrap()),
                    };
                    (d, r, item)
                })
                .collect();
            self.push(&format!("relays {who}"), r);
            let r: Vec<String> = b
                .statement_relays_for(&w, 100, &none)
                .await
                .unwrap()
                .into_iter()
                .map(|r| {
                    format!(
                        "{} {} {}",
                        self.seq(r.seq),
                        r.doc,
                        r.signed.statement().unwrap().kind.label()
                    )
                })
                .collect();
            self.push(&format!("statement relays {who}"), r);
            let r: Vec<String> = b
                .hub_statement_relays_for(&w, 100, &none)
                .await
                .unwrap()
                .into_iter()
                .map(|r| self.seq(r.seq))
                .collect();
            self.push(&format!("hub statement relays {who}"), r);
            self.push(
                &format!("statement relay docs {who}"),
                b.statement_relay_docs(&w).await.unwrap(),
            );
        }
        self.push("queue depth", b.queue_depth().await.unwrap());
        self.push(
            "statement relay depth",
            b.statement_relay_depth().await.unwrap(),
        );
        self.push("statement counts", b.statement_counts().await.unwrap());
        self.push(
            "expired before max",
            b.expired_before(u64::MAX, 100).await.unwrap(),
        );
    }

    async fn totals(&mut self, side: &Side) {
        self.push("counters", side.counters().await);
        self.push("statistics", side.stats().await);
    }
}

/// Run `scenario` on redb and PostgreSQL; they must see the same.
async fn same<F>(scenario: F)
where
    F: for<'a> Fn(&'a Side, &'a mut Trace) -> futures_util::future::BoxFuture<'a, ()>,
{
    let redb = Side::redb();
    let pg = Side::pg().await;
    let (mut tr, mut tp) = (Trace::default(), Trace::default());
    scenario(&redb, &mut tr).await;
    scenario(&pg, &mut tp).await;
    tr.totals(&redb).await;
    tp.totals(&pg).await;
    assert!(tr.lines.len() > 10, "the scenario looked at too little");
    if std::env::var_os("PGX_DUMP").is_some() {
        for l in &tp.lines {
            eprintln!("{}", l.chars().take(300).collect::<String>());
        }
    }
    for (i, (r, p)) in tr.lines.iter().zip(&tp.lines).enumerate() {
        assert_eq!(r, p, "line {i}: redb (left) and PostgreSQL (right) differ");
    }
    assert_eq!(tr.lines.len(), tp.lines.len());
}

// ---------------------------------------------------------------------------------------------
// Scenarios run on both.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_answers_expiry_and_retention_match_redb() {
    same(|side, t| {
        Box::pin(async move {
            let b = side.b();
            let k = SigningKey::generate().unwrap();
            let rec = doc(&k, 1, b"payload", &[H1, H2, H3], BodyAt::Inline);
            let id = id_of(&rec);
            let body = || ReceivedBody::inline(b"payload".to_vec());
            let o = b.accept(rec.clone(), body()).await.unwrap();
            assert!(matches!(o, AcceptOutcome::Stored), "{o:?}");
            let o = b.accept(rec.clone(), body()).await.unwrap();
            t.push("again", &o);
            assert!(matches!(o, AcceptOutcome::Duplicate { accepted_ms: 5_000 }));
            let mut other = doc(&k, 1, b"other", &[H1], BodyAt::Inline);
            other.acceptance = rec.acceptance.clone();
            let o = b
                .accept(other, ReceivedBody::inline(b"other".to_vec()))
                .await
                .unwrap();
            t.push("conflict", &o);
            assert!(matches!(o, AcceptOutcome::Conflict));
            // A second document with the same body, and a third whose body is a file.
            let rec2 = doc(&k, 2, b"payload", &[H1], BodyAt::Inline);
            let id2 = id_of(&rec2);
            b.accept(rec2, body()).await.unwrap();
            let rec3 = doc(&k, 3, b"big body", &[H2], BodyAt::File);
            let id3 = id_of(&rec3);
            let file = ReceivedBody::File {
                digest: rec3.body_sha256,
                len: 8,
                guard: None,
            };
            b.accept(rec3.clone(), file).await.unwrap();
            let digest = rec.body_sha256;
            t.push("refs", b.body_refs(&digest).await.unwrap());
            t.push("inline", b.inline_body(&digest).await.unwrap());
            t.push(
                "inline of a file",
                b.inline_body(&rec3.body_sha256).await.unwrap(),
            );
            let docs = [id, id2, id3];
            t.look(b, &docs, &[G, H1, H2, H3]).await;

            // H1 signs a receipt (a statement), twice; a rejection that is about someone else.
            let r = receipt(id, H1, Outcome::Delivered, 6_000).as_statement();
            let o = b
                .record_answer(id, a(H1), said(&k, r.clone()), 6_000)
                .await
                .unwrap();
            assert_eq!(o, AnswerOutcome::Recorded { sender: a(G) });
            let o = b
                .record_answer(id, a(H1), said(&k, r), 6_001)
                .await
                .unwrap();
            assert_eq!(o, AnswerOutcome::AlreadyAnswered);
            let wrong = receipt(id, H3, Outcome::Delivered, 6_000).as_statement();
            let o = b
                .record_answer(id, a(H2), said(&k, wrong), 6_000)
                .await
                .unwrap();
            t.push("receipt about another recipient", &o);
            // Unknown delivery.
            let o = b
                .record_answer(id2, a(H3), legacy_delivered(&k, id2, H3, 6_000), 6_000)
                .await
                .unwrap();
            assert_eq!(o, AnswerOutcome::AlreadyAnswered);
            // H1 of the second document answers in the poros/1 form, late.
            let o = b
                .record_answer(
                    id2,
                    a(H1),
                    legacy_delivered(&k, id2, H1, 9_000_000),
                    9_000_000,
                )
                .await
                .unwrap();
            t.push("legacy receipt", &o);
            // H2 of the third rejects it in the poros/1 form.
            let reason = "body of 102400 bytes exceeds this agency's limit of 65536 bytes";
            let rej = SignedReceipt::sign(
                &receipt(
                    id3,
                    H2,
                    Outcome::Rejected {
                        reason: reason.into(),
                    },
                    6_500,
                ),
                &k,
                b"c",
            )
            .unwrap();
            let o = b
                .record_answer(
                    id3,
                    a(H2),
                    Answer::Legacy(DeliveryState::Rejected(rej, reason.into())),
                    6_500,
                )
                .await
                .unwrap();
            t.push("legacy rejection", &o);
            t.look(b, &docs, &[G, H1, H2, H3]).await;
            // The sender stores the relays and the first statement.
            let none = HashSet::new();
            for (d, r, _) in b.relays_for(&a(G), 10, &none).await.unwrap() {
                b.relay_done(a(G), d, r).await.unwrap();
            }
            let q = b
                .statement_relays_for(&a(G), 10, &HashSet::new())
                .await
                .unwrap();
            t.push("statement relays", q.len());
            b.statement_relay_done(a(G), q[0].seq, false).await.unwrap();
            b.statement_relay_done(a(G), q[0].seq, false).await.unwrap();

            // Expiry: H2 and H3 of the first document are pending since 5 000.
            t.push(
                "expired before 5000",
                b.expired_before(5_000, 10).await.unwrap(),
            );
            t.push(
                "expired before 5001, 1",
                b.expired_before(5_001, 1).await.unwrap(),
            );
            t.push(
                "expired before 5001",
                b.expired_before(5_001, 10).await.unwrap(),
            );
            let mut forged = notice(id, H2, NoticeKind::Expired, 7_000);
            forged.from = a(H1).into();
            let o = b
                .record_answer(id, a(H2), said(&k, forged), 7_000)
                .await
                .unwrap();
            t.push("forged notice", &o);
            assert!(matches!(o, AnswerOutcome::Refused(_)));
            for who in [H2, H3] {
                let n = notice(id, who, NoticeKind::Expired, 7_000);
                let o = b
                    .record_answer(id, a(who), said(&k, n), 7_000)
                    .await
                    .unwrap();
                assert_eq!(o, AnswerOutcome::Recorded { sender: a(G) });
            }
            t.look(b, &docs, &[G, H1, H2, H3]).await;

            // Retention: documents 1 (at 7 000), 2 (at 9 000 000) and 3 (at 6 500) answered.
            t.push(
                "release before 6500",
                b.release_bodies(6_500, 10).await.unwrap(),
            );
            t.push(
                "release before 7001",
                b.release_bodies(7_001, 10).await.unwrap(),
            );
            t.push("refs after", b.body_refs(&digest).await.unwrap());
            t.push(
                "inline after",
                b.inline_body(&digest).await.unwrap().is_some(),
            );
            t.push(
                "release all, 1",
                b.release_bodies(u64::MAX, 1).await.unwrap(),
            );
            t.push("release all", b.release_bodies(u64::MAX, 10).await.unwrap());
            t.push("refs at last", b.body_refs(&digest).await.unwrap());
            t.push("inline at last", b.inline_body(&digest).await.unwrap());
            t.look(b, &docs, &[G, H1, H2, H3]).await;
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_deliveries_leave_the_queue_and_expire_match_redb() {
    same(|side, t| {
        Box::pin(async move {
            let b = side.b();
            let k = SigningKey::generate().unwrap();
            let rec = doc(&k, 4, b"held", &[H1, H2], BodyAt::Inline);
            let id = id_of(&rec);
            b.accept(rec.clone(), ReceivedBody::inline(b"held".to_vec()))
                .await
                .unwrap();
            let rec2 = doc(&k, 5, b"free", &[H1], BodyAt::Inline);
            b.accept(rec2.clone(), ReceivedBody::inline(b"free".to_vec()))
                .await
                .unwrap();
            side.hold(id).await;
            // Held: not offered, not counted in the queues, still expiring.
            t.look(b, &[id, id_of(&rec2)], &[H1, H2]).await;
            let n = notice(id, H1, NoticeKind::Expired, 8_000);
            let o = b
                .record_answer(id, a(H1), said(&k, n), 8_000)
                .await
                .unwrap();
            t.push("expired while held", &o);
            let lost = notice(
                id,
                H2,
                NoticeKind::BodyLost {
                    reason: poros_protocol::BodyLostReason::SenderHasNoCopy,
                },
                8_100,
            );
            let o = b
                .record_answer(id, a(H2), said(&k, lost), 8_100)
                .await
                .unwrap();
            t.push("lost while held", &o);
            t.look(b, &[id, id_of(&rec2)], &[G, H1, H2]).await;
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_are_checked_ordered_and_gated_as_redb() {
    same(|side, t| {
        Box::pin(async move {
            let b = side.b();
            for (code, state) in [
                (G, NodeState::Active),
                (H1, NodeState::Active),
                (H2, NodeState::Active),
                (H3, NodeState::Active),
                (P, NodeState::Pending),
            ] {
                side.put_node(code, state).await;
            }
            let k = SigningKey::generate().unwrap();
            let mut docs = Vec::new();
            for n in 1..=2u8 {
                let body = [n; 8];
                let rec = doc(&k, n, &body, &[H1, H2], BodyAt::Inline);
                b.accept(rec.clone(), ReceivedBody::inline(body.to_vec()))
                    .await
                    .unwrap();
                let id = id_of(&rec);
                // H1's receipt, in the poros/1 form whose relay gates H1's statements.
                let o = b
                    .record_answer(id, a(H1), legacy_delivered(&k, id, H1, 6_000), 6_000)
                    .await
                    .unwrap();
                assert_eq!(o, AnswerOutcome::Recorded { sender: a(G) });
                docs.push(id);
            }
            let (d1, d2) = (docs[0], docs[1]);
            let submit = |s: SignedStatement| async move {
                let stmt = s.statement().unwrap();
                b.accept_statement(s, stmt, 8_000).await.unwrap()
            };
            // H2's receipt is not recorded yet: a retry.
            let o = submit(statement(
                &k,
                d1,
                H2,
                &[G],
                status(BusinessStatus::Registered),
            ))
            .await;
            assert!(
                matches!(
                    o,
                    StatementOutcome::Refused(StatementRefusal::ReceiptNotYetRecorded(_))
                ),
                "{o:?}"
            );
            t.accepted("early", &o);
            let unknown = DocumentId::new_v7(99, [9; 10]);
            let o = submit(statement(
                &k,
                unknown,
                H1,
                &[G],
                status(BusinessStatus::Arrived),
            ))
            .await;
            t.accepted("unknown document", &o);
            let takeback = StatementKind::Change {
                change: Change::TakeBack,
                reason: "error".into(),
            };
            let o = submit(statement(&k, d1, H1, &[H2], takeback)).await;
            t.accepted("recipient's take-back", &o);
            // Statuses of H1 about both documents, one resubmitted.
            for d in [d1, d2] {
                for s in [BusinessStatus::Registered, BusinessStatus::Assigned] {
                    let st = statement(&k, d, H1, &[G], status(s));
                    let o = submit(st.clone()).await;
                    assert!(matches!(o, StatementOutcome::Accepted { .. }), "{o:?}");
                    t.accepted("status", &o);
                    t.accepted("again", &submit(st).await);
                }
            }
            let o = submit(statement(&k, d1, H1, &[G], status(BusinessStatus::Arrived))).await;
            t.accepted("out of order", &o);
            // Gated by the receipt relays, then one per document.
            t.look(b, &[d1, d2], &[G]).await;
            b.relay_done(a(G), d1, a(H1)).await.unwrap();
            t.look(b, &[], &[G]).await;
            let first = b
                .statement_relays_for(&a(G), 10, &HashSet::new())
                .await
                .unwrap()[0]
                .seq;
            let in_flight: HashSet<_> = [d1].into_iter().collect();
            let r = b.statement_relays_for(&a(G), 10, &in_flight).await.unwrap();
            t.push("in flight d1", r.len());
            b.relay_done(a(G), d2, a(H1)).await.unwrap();
            let r = b
                .statement_relays_for(&a(G), 1, &HashSet::new())
                .await
                .unwrap();
            t.push("limit 1", r.iter().map(|r| r.doc).collect::<Vec<_>>());
            b.statement_relay_done(a(G), first, false).await.unwrap();
            t.look(b, &[], &[G]).await;
            let next = b
                .statement_relays_for(&a(G), 10, &HashSet::new())
                .await
                .unwrap();
            b.statement_relay_done(a(G), next[0].seq, true)
                .await
                .unwrap();

            // Updates: an inactive agency refused, an active one added and queued.
            let o = submit(statement(&k, d1, G, &[H1], update(P))).await;
            t.accepted("update adding an inactive agency", &o);
            let up = statement(&k, d1, G, &[H1], update(H3));
            let o = submit(up.clone()).await;
            t.accepted("update", &o);
            assert!(matches!(o, StatementOutcome::Accepted { .. }), "{o:?}");
            t.push(
                "added by",
                b.added_by(&d1, &a(H3)).await.unwrap() == Some(up),
            );
            t.push("not added", b.added_by(&d1, &a(H2)).await.unwrap());
            t.look(b, &[d1, d2], &[G, H1, H2, H3]).await;
            // Everyone of d1 answers: the added delivery late (due from the update).
            b.record_answer(d1, a(H2), legacy_delivered(&k, d1, H2, 8_500), 8_500)
                .await
                .unwrap();
            t.push(
                "release before H3",
                b.release_bodies(u64::MAX, 10).await.unwrap(),
            );
            let r = receipt(d1, H3, Outcome::Delivered, 9_000).as_statement();
            let o = b
                .record_answer(d1, a(H3), said(&k, r), 9_000)
                .await
                .unwrap();
            t.push("added one's receipt", &o);
            // H3 registers and completes it: business figures from its delivery.
            for s in [BusinessStatus::Registered, BusinessStatus::Completed] {
                let o = submit(statement(&k, d1, H3, &[G], status(s))).await;
                t.accepted("H3 status", &o);
            }
            t.push(
                "release after",
                b.release_bodies(u64::MAX, 10).await.unwrap(),
            );
            t.look(b, &[d1, d2], &[G, H1, H2, H3]).await;
        })
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// What only a shared database has: several hubs at once.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_accepts_of_one_document_store_it_once() {
    let db = FreshDb::create().await;
    // Two "hubs": two stores (pools) on the same database.
    let hubs = [
        PgStore::connect(PgOptions::new(&db.url)).await.unwrap(),
        PgStore::connect(PgOptions::new(&db.url)).await.unwrap(),
    ];
    let k = SigningKey::generate().unwrap();
    for round in 0..5u8 {
        let (same, different) = (format!("same body {round}"), format!("other body {round}"));
        let rec = doc(&k, 10 + round, same.as_bytes(), &[H1, H2], BodyAt::Inline);
        let mut other = doc(&k, 10 + round, different.as_bytes(), &[H1], BodyAt::Inline);
        other.acceptance = rec.acceptance.clone();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let store = hubs[i % 2].clone();
            let (rec, body) = if i == 7 {
                (other.clone(), different.clone().into_bytes())
            } else {
                (rec.clone(), same.clone().into_bytes())
            };
            tasks.push(tokio::spawn(async move {
                store.accept(rec, ReceivedBody::inline(body)).await.unwrap()
            }));
        }
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap());
        }
        let stored = outcomes
            .iter()
            .filter(|o| matches!(o, AcceptOutcome::Stored))
            .count();
        assert_eq!(stored, 1, "round {round}: {outcomes:?}");
        for o in &outcomes {
            assert!(
                matches!(
                    o,
                    AcceptOutcome::Stored
                        | AcceptOutcome::Duplicate { accepted_ms: 5_000 }
                        | AcceptOutcome::Conflict
                ),
                "{o:?}"
            );
        }
        // The loser with the other payload: a conflict unless it was the one stored.
        let id = id_of(&rec);
        let stored_rec = hubs[0].doc(&id).await.unwrap().unwrap();
        let body_won = stored_rec.envelope.0.payload == other.envelope.0.payload;
        let conflicts = outcomes
            .iter()
            .filter(|o| matches!(o, AcceptOutcome::Conflict))
            .count();
        assert_eq!(
            conflicts,
            if body_won { 7 } else { 1 },
            "round {round}: {outcomes:?}"
        );
        let n = stored_rec.recipients.len();
        assert_eq!(hubs[1].deliveries(&id).await.unwrap().len(), n);
        assert_eq!(hubs[1].statement_history(&id).await.unwrap().len(), 1);
        assert_eq!(hubs[0].body_refs(&stored_rec.body_sha256).await.unwrap(), 1);
    }
    let sql = db.client().await;
    let accepted: i64 = sql
        .query_one(
            "SELECT sum(delta)::bigint FROM counter_deltas WHERE name = 'documents_accepted'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(accepted, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_answers_end_a_delivery_once() {
    let db = FreshDb::create().await;
    let hubs = [
        PgStore::connect(PgOptions::new(&db.url)).await.unwrap(),
        PgStore::connect(PgOptions::new(&db.url)).await.unwrap(),
    ];
    let k = SigningKey::generate().unwrap();
    let rec = doc(&k, 20, b"answered", &[H1, H2, H3], BodyAt::Inline);
    let id = id_of(&rec);
    hubs[0]
        .accept(rec, ReceivedBody::inline(b"answered".to_vec()))
        .await
        .unwrap();
    // Six answers for each recipient at once, from both hubs: each delivery ends once, and
    // the last to end puts the document in retention once.
    let mut tasks = Vec::new();
    for who in [H1, H2, H3] {
        for i in 0..6u64 {
            let store = hubs[i as usize % 2].clone();
            let answer = said(
                &k,
                receipt(id, who, Outcome::Delivered, 6_000).as_statement(),
            );
            tasks.push(tokio::spawn(async move {
                (
                    who,
                    store
                        .record_answer(id, a(who), answer, 6_000 + i)
                        .await
                        .unwrap(),
                )
            }));
        }
    }
    let mut recorded: HashMap<&str, usize> = HashMap::new();
    for t in tasks {
        let (who, o) = t.await.unwrap();
        match o {
            AnswerOutcome::Recorded { .. } => *recorded.entry(who).or_default() += 1,
            AnswerOutcome::AlreadyAnswered => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(recorded, [(H1, 1), (H2, 1), (H3, 1)].into_iter().collect());
    let h = hubs[1].statement_history(&id).await.unwrap();
    assert_eq!(h.len(), 4, "the acceptance and three receipts");
    assert_eq!(
        hubs[1]
            .statement_relays_for(&a(G), 10, &HashSet::new())
            .await
            .unwrap()
            .len(),
        1,
        "three receipts about one document: one relay at a time"
    );
    assert_eq!(
        hubs[1].statement_relay_docs(&a(G)).await.unwrap(),
        [id, id, id]
    );
    let sql = db.client().await;
    let row = sql
        .query_one(
            "SELECT (SELECT count(*) FROM retention), \
                    (SELECT sum(delta)::bigint FROM counter_deltas WHERE name = 'deliveries_delivered')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (1, 3));
    let released = hubs[0].release_bodies(u64::MAX, 10).await.unwrap();
    assert!(released.is_empty(), "an inline body: nothing to delete");
    assert!(hubs[0]
        .inline_body(&poros_protocol::sha256(b"answered"))
        .await
        .unwrap()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_statements_about_one_document_keep_their_order() {
    let db = FreshDb::create().await;
    let hubs = [
        PgStore::connect(PgOptions::new(&db.url)).await.unwrap(),
        PgStore::connect(PgOptions::new(&db.url)).await.unwrap(),
    ];
    let k = SigningKey::generate().unwrap();
    let rec = doc(&k, 30, b"busy", &[H1, H2], BodyAt::Inline);
    let id = id_of(&rec);
    hubs[0]
        .accept(rec, ReceivedBody::inline(b"busy".to_vec()))
        .await
        .unwrap();
    for who in [H1, H2] {
        let r = said(
            &k,
            receipt(id, who, Outcome::Delivered, 6_000).as_statement(),
        );
        hubs[0].record_answer(id, a(who), r, 6_000).await.unwrap();
    }
    // Both recipients register at once, each twice (the same signed payload): each stored
    // once, and the history's order is the order of the numbers.
    let mut tasks = Vec::new();
    for who in [H1, H2] {
        let s = statement(&k, id, who, &[G], status(BusinessStatus::Registered));
        for i in 0..4 {
            let (store, s) = (hubs[i % 2].clone(), s.clone());
            tasks.push(tokio::spawn(async move {
                let stmt = s.statement().unwrap();
                store.accept_statement(s, stmt, 8_000).await.unwrap()
            }));
        }
    }
    let mut accepted = 0;
    for t in tasks {
        match t.await.unwrap() {
            StatementOutcome::Accepted { .. } => accepted += 1,
            StatementOutcome::Duplicate => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(accepted, 2);
    let h = hubs[1].statement_history(&id).await.unwrap();
    let labels: Vec<_> = h.iter().map(|e| e.statement.kind.label()).collect();
    assert_eq!(
        labels,
        [
            "hub_accepted",
            "delivered",
            "delivered",
            "registered",
            "registered"
        ]
    );
    assert!(h.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(
        hubs[0].statement_counts().await.unwrap(),
        vec![("registered".to_string(), 2)]
    );
}
