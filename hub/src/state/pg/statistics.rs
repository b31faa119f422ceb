//! Statistics in PostgreSQL ([`StatisticsBackend`]): connections (`seen`), paper-only counts
//! (`paper_reports`), overdue deliveries, the recount that checks the live counters, counter
//! values, and [`PgStatsView`], one consistent read of the statistics for a report. The redb
//! original is `state/statistics.rs` with `crate::stats`, whose pure parts both use.
//!
//! The counts are rows of `stat_totals` plus `stat_deltas` (see [`super::counters`]): every
//! read adds the deltas not yet rolled up to the totals, per (period, scope, metric).

use super::{counters, PgStore, Tx};
use crate::state::backend::{StatisticsBackend, StatsView};
use crate::state::dec;
use crate::stats::{PaperCount, Recount, Sums};
use async_trait::async_trait;
use futures_util::TryStreamExt;
use poros_protocol::AgencyId;
use poros_store::StoreError;
use std::collections::{HashMap, HashSet};
use tracing::debug;

/// A Unix-ms time as a `bigint` (times past its range read as its end).
fn ms(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// Add signed statistics changes ((period, scope, metric) → by), in the caller's
/// transaction: a corrected paper report takes back what the one it replaces added.
async fn add_signed_stats(
    tx: &Tx<'_>,
    store: &PgStore,
    changes: Vec<((String, String, &'static str), i64)>,
) -> Result<(), StoreError> {
    let (mut p, mut s, mut m, mut d) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((period, scope, metric), by) in changes {
        p.push(period);
        s.push(scope);
        m.push(metric);
        d.push(by);
    }
    tx.execute(
        "INSERT INTO stat_deltas (period, scope, metric, delta) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])",
        &[&p, &s, &m, &d],
    )
    .await
    .map_err(|e| store.sql_error("count paper report", e))?;
    Ok(())
}

#[async_trait]
impl StatisticsBackend for PgStore {
    async fn mark_seen(&self, agencies: Vec<AgencyId>, now_ms: u64) -> Result<(), StoreError> {
        const OP: &str = "mark seen";
        let (mut periods, mut names) = (Vec::new(), Vec::new());
        for a in &agencies {
            for p in crate::stats::periods(now_ms) {
                periods.push(p);
                names.push(a.to_string());
            }
        }
        let store = self.clone();
        self.write(OP, move |tx| {
            let (store, periods, names) = (store.clone(), periods.clone(), names.clone());
            Box::pin(async move {
                tx.execute(
                    "INSERT INTO seen (period, agency) \
                     SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
                    &[&periods, &names],
                )
                .await
                .map_err(|e| store.sql_error(OP, e))?;
                Ok(())
            })
        })
        .await
    }

    async fn put_paper(
        &self,
        agency: AgencyId,
        month: String,
        count: PaperCount,
    ) -> Result<(), StoreError> {
        const OP: &str = "store paper report";
        let store = self.clone();
        let stored = count.encode()?;
        self.write(OP, move |tx| {
            let (store, agency, month, count, stored) = (
                store.clone(),
                agency.clone(),
                month.clone(),
                count.clone(),
                stored.clone(),
            );
            Box::pin(async move {
                let sql = |e| store.sql_error(OP, e);
                let old = tx
                    .query_opt(
                        "SELECT record FROM paper_reports WHERE month = $1 AND agency = $2",
                        &[&month, &agency.as_str()],
                    )
                    .await
                    .map_err(sql)?
                    .map(|r| PaperCount::decode(r.get(0)))
                    .transpose()?;
                tx.execute(
                    "INSERT INTO paper_reports (month, agency, record) VALUES ($1, $2, $3) \
                     ON CONFLICT (month, agency) DO UPDATE SET record = excluded.record",
                    &[&month, &agency.as_str(), &stored],
                )
                .await
                .map_err(sql)?;
                let changes = crate::stats::paper_changes(&agency, &month, old.as_ref(), &count);
                add_signed_stats(tx, &store, changes).await
            })
        })
        .await
    }

    async fn overdue(
        &self,
        from_ms: u64,
        to_ms: u64,
        older_than_ms: u64,
    ) -> Result<HashMap<String, u64>, StoreError> {
        const OP: &str = "overdue deliveries";
        let end = to_ms.min(older_than_ms);
        if end <= from_ms {
            return Ok(HashMap::new());
        }
        let store = self.clone();
        self.read(OP, move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        "SELECT recipient, count(*) FROM deliveries \
                         WHERE pending AND accepted_ms >= $1 AND accepted_ms < $2 \
                         GROUP BY recipient",
                        &[&ms(from_ms), &ms(end)],
                    )
                    .await
                    .map_err(|e| store.sql_error(OP, e))?;
                Ok(rows
                    .iter()
                    .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
                    .collect())
            })
        })
        .await
    }

    async fn recount(&self, on_time_ms: u64) -> Result<Sums, StoreError> {
        const OP: &str = "recount statistics";
        let store = self.clone();
        self.read(OP, move |tx| {
            Box::pin(async move {
                let sql = |e| store.sql_error(OP, e);
                // Every document with its deliveries, one document's rows together (streamed:
                // the whole history is read).
                let rows = tx
                    .query_raw(
                        "SELECT d.id, d.sender, l.recipient, l.accepted_ms, l.record \
                         FROM docs d LEFT JOIN deliveries l ON l.doc = d.id ORDER BY d.id",
                        std::iter::empty::<i64>(),
                    )
                    .await
                    .map_err(sql)?;
                futures_util::pin_mut!(rows);
                let mut count = Recount::new(on_time_ms);
                let mut cur: Option<(uuid::Uuid, AgencyId)> = None;
                let mut deliveries = Vec::new();
                while let Some(r) = rows.try_next().await.map_err(sql)? {
                    let id: uuid::Uuid = r.get(0);
                    if cur.as_ref().map(|c| c.0) != Some(id) {
                        if let Some((_, sender)) = cur.take() {
                            count.doc(&sender, &std::mem::take(&mut deliveries));
                        }
                        cur = Some((id, super::repair::agency(r.get(1))?));
                    }
                    let Some(rcpt) = r.get::<_, Option<&str>>(2) else {
                        continue;
                    };
                    let due_ms = r.get::<_, i64>(3) as u64;
                    let d = dec(r.get::<_, &[u8]>(4))?;
                    deliveries.push((super::repair::agency(rcpt)?, due_ms, Some(d)));
                }
                if let Some((_, sender)) = cur {
                    count.doc(&sender, &deliveries);
                }
                Ok(count.finish())
            })
        })
        .await
    }

    async fn counters(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let store = self.clone();
        let mut all = self
            .read("read counters", move |tx| {
                Box::pin(async move { counters::all(tx, &store).await })
            })
            .await?;
        // In byte order, as redb keeps them, whatever the database's collation.
        all.sort();
        Ok(all)
    }

    async fn stats_snapshot(&self) -> Result<Box<dyn StatsView>, StoreError> {
        Ok(Box::new(PgStatsView::open(self).await?))
    }

    async fn compact_counters(&self) -> Result<u64, StoreError> {
        self.roll_up().await
    }
}

/// One consistent read of the statistics: a pooled connection holding a REPEATABLE READ,
/// READ ONLY transaction whose snapshot is taken when the view opens, so every figure of a
/// report comes from the same commit. Dropping the view ends the transaction (on the runtime,
/// in the background) before the connection goes back to the pool; a connection whose
/// transaction could not be ended is closed instead, never reused.
pub(crate) struct PgStatsView {
    store: PgStore,
    client: Option<deadpool_postgres::Object>,
}

impl PgStatsView {
    async fn open(store: &PgStore) -> Result<PgStatsView, StoreError> {
        const OP: &str = "statistics snapshot";
        let client = store.client().await?;
        // The snapshot is taken by the first statement after BEGIN: here, not at the first
        // figure read.
        let began = client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT 1")
            .await;
        if let Err(e) = began {
            // Perhaps inside a transaction now: not back to the pool.
            drop(deadpool_postgres::Object::take(client));
            return Err(store.sql_error(OP, e));
        }
        Ok(PgStatsView {
            store: store.clone(),
            client: Some(client),
        })
    }

    fn client(&self) -> Result<&deadpool_postgres::Object, StoreError> {
        self.client
            .as_ref()
            .ok_or_else(|| StoreError::Other("statistics snapshot already closed".into()))
    }

    async fn rows(
        &self,
        op: &'static str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        self.client()?
            .query(sql, params)
            .await
            .map_err(|e| self.store.sql_error(op, e))
    }
}

/// Totals plus deltas of the given periods (of one scope, or of all when `$2` is NULL), per
/// key, joined with the periods asked so a period asked twice counts twice, as in redb.
const SUMS: &str = "SELECT s.scope, s.metric, s.v FROM unnest($1::text[]) AS p(period) \
     JOIN (SELECT period, scope, metric, greatest(sum(v), 0)::bigint AS v FROM ( \
         SELECT period, scope, metric, value AS v FROM stat_totals \
             WHERE period = ANY($1) AND ($2::text IS NULL OR scope = $2) \
         UNION ALL \
         SELECT period, scope, metric, delta FROM stat_deltas \
             WHERE period = ANY($1) AND ($2::text IS NULL OR scope = $2) \
     ) u GROUP BY period, scope, metric) s ON s.period = p.period";

#[async_trait]
impl StatsView for PgStatsView {
    async fn sums(&self, periods: &[String], scope: Option<&str>) -> Result<Sums, StoreError> {
        let rows = self
            .rows("read statistics", SUMS, &[&periods, &scope])
            .await?;
        let mut out = Sums::new();
        for r in &rows {
            crate::stats::add_sum(&mut out, r.get(0), r.get(1), r.get::<_, i64>(2) as u64);
        }
        Ok(out)
    }

    async fn paper_sums(&self, months: &[String]) -> Result<Sums, StoreError> {
        let rows = self
            .rows(
                "read paper reports",
                "SELECT r.agency, r.record FROM unnest($1::text[]) AS m(month) \
                 JOIN paper_reports r ON r.month = m.month",
                &[&months],
            )
            .await?;
        let mut out = Sums::new();
        for r in &rows {
            crate::stats::add_paper(&mut out, r.get(0), r.get(1))?;
        }
        Ok(out)
    }

    async fn seen(&self, periods: &[String]) -> Result<HashSet<String>, StoreError> {
        let rows = self
            .rows(
                "read connections",
                "SELECT DISTINCT agency FROM seen WHERE period = ANY($1)",
                &[&periods],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

impl Drop for PgStatsView {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let mut end = EndOrClose(Some(client));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let ended = match &end.0 {
                    Some(c) => c.batch_execute("COMMIT").await,
                    None => return,
                };
                match ended {
                    // Back to the pool, outside any transaction.
                    Ok(()) => drop(end.0.take()),
                    Err(e) => debug!(error = %e, "statistics snapshot not ended; closing it"),
                }
            });
        }
        // No runtime: `end` drops here and closes the connection.
    }
}

/// A connection whose transaction is being ended: closed, not pooled, unless the end
/// succeeded and took it out first.
struct EndOrClose(Option<deadpool_postgres::Object>);

impl Drop for EndOrClose {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            drop(deadpool_postgres::Object::take(c));
        }
    }
}

/// Databases for the tests of this backend: a fresh database per test on the PostgreSQL
/// server this test binary starts and shares (`poros_harness::fresh_database`).
#[cfg(test)]
pub(super) mod dev {
    use super::super::{PgOptions, PgStore};
    use crate::state::backend::{
        ExchangeBackend, RepairBackend, StatementBackend, StatisticsBackend,
    };
    use std::time::{Duration, Instant};

    /// A fresh database with the schema applied, and a plain connection to it.
    pub(in crate::state) struct DevDb {
        pub(in crate::state) store: PgStore,
        pub(in crate::state) client: tokio_postgres::Client,
        name: String,
    }

    /// A new database on the shared server, migrated.
    pub(in crate::state) async fn fresh() -> DevDb {
        let url = tokio::task::spawn_blocking(|| poros_harness::fresh_database("pgunit"))
            .await
            .expect("the database maker ran")
            .unwrap_or_else(|e| panic!("a fresh database on the shared PostgreSQL: {e}"));
        let name = url.rsplit('/').next().expect("a database name").to_string();
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let store = PgStore::connect(PgOptions::new(&url))
            .await
            .expect("connect and migrate");
        DevDb {
            store,
            client,
            name,
        }
    }

    impl DevDb {
        /// End the test's connections (the database goes with the server).
        pub(in crate::state) async fn drop_db(self) {
            drop(self);
        }

        /// Connections to this database inside a transaction they have not ended.
        pub(in crate::state) async fn idle_in_transaction(&self) -> i64 {
            self.client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
                     AND state LIKE 'idle in transaction%'",
                    &[&self.name],
                )
                .await
                .unwrap()
                .get(0)
        }
    }

    /// Every area of the backend but the registry, as one trait object.
    pub(in crate::state) trait Areas:
        ExchangeBackend + StatementBackend + RepairBackend + StatisticsBackend
    {
    }
    impl<T: ExchangeBackend + StatementBackend + RepairBackend + StatisticsBackend> Areas for T {}

    /// Poll `f` until it holds, for at most `within`.
    pub(in crate::state) async fn eventually<F, Fut>(what: &str, within: Duration, mut f: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + within;
        while !f().await {
            assert!(Instant::now() < deadline, "{what}: not within {within:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::dev::Areas;
    use super::dev::{eventually, fresh};
    use crate::state::backend::StatisticsBackend;
    use crate::state::tests::{a, doc, key, said};
    use crate::state::{AnswerOutcome, HubStore};
    use crate::stats::PaperCount;
    use poros_protocol::{HubNotice, NoticeKind, Outcome, Reason, ReasonCode, Receipt};
    use poros_store::{Db, ReceivedBody};
    use std::time::Duration;

    /// A redb store in `dir` (opened off the runtime: opening writes synchronously).
    pub(in crate::state) async fn redb(dir: &tempfile::TempDir) -> HubStore {
        let path = dir.path().join("h.redb");
        tokio::task::spawn_blocking(move || HubStore::open(Db::open(&path).unwrap()).unwrap())
            .await
            .unwrap()
    }

    fn paper(sent: u64, received: u64) -> PaperCount {
        PaperCount {
            sent,
            received,
            signed: vec![sent as u8, received as u8],
        }
    }

    const DAY: u64 = 86_400_000;
    /// 2026-11-22T00:00Z.
    const T0: u64 = 1_795_305_600_000;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    /// Every figure a report reads, from one snapshot of `b`.
    async fn figures(b: &dyn StatisticsBackend) -> Vec<String> {
        let v = b.stats_snapshot().await.unwrap();
        let mut out = Vec::new();
        for (periods, scope) in [
            (s(&["Y2026"]), None),
            (s(&["M2026-11", "M2026-11", "D2026-11-22"]), None),
            (s(&["M2026-11", "Y2026", "M2026-12"]), Some("group:H")),
            (s(&["Y2026"]), Some("000.00.00.H01")),
            (s(&["Y2025"]), None),
            (s(&[]), None),
        ] {
            let sums = v.sums(&periods, scope).await.unwrap();
            let mut rows: Vec<_> = sums.into_iter().collect();
            rows.sort();
            out.push(format!("sums {periods:?} {scope:?}: {rows:?}"));
        }
        for months in [
            s(&["2026-11", "2026-12"]),
            s(&["2026-11", "2026-11"]),
            s(&[]),
        ] {
            let mut rows: Vec<_> = v.paper_sums(&months).await.unwrap().into_iter().collect();
            rows.sort();
            out.push(format!("paper {months:?}: {rows:?}"));
        }
        for periods in [s(&["D2026-11-22"]), s(&["D2026-11-23", "M2026-11"]), s(&[])] {
            let mut seen: Vec<_> = v.seen(&periods).await.unwrap().into_iter().collect();
            seen.sort();
            out.push(format!("seen {periods:?}: {seen:?}"));
        }
        out
    }

    #[tokio::test]
    async fn connections_and_paper_counts_read_as_in_redb() {
        let dir = tempfile::tempdir().unwrap();
        let r = redb(&dir).await;
        let pg = fresh().await;
        let (h1, h2, g1) = (a("000.00.00.H01"), a("000.00.00.H02"), a("000.00.00.G01"));
        let both: [&dyn StatisticsBackend; 2] = [&r, &pg.store];
        for (i, b) in both.iter().enumerate() {
            b.mark_seen(vec![h1.clone(), h2.clone()], T0 + 5)
                .await
                .unwrap();
            b.mark_seen(vec![h1.clone(), g1.clone()], T0 + DAY)
                .await
                .unwrap();
            b.mark_seen(vec![], T0 + DAY).await.unwrap();
            b.put_paper(h1.clone(), "2026-11".into(), paper(3, 4))
                .await
                .unwrap();
            if i == 1 {
                // What is rolled up reads the same as what is not.
                pg.store.roll_up().await.unwrap();
            }
            b.put_paper(h2.clone(), "2026-11".into(), paper(1, 1))
                .await
                .unwrap();
            // A correction replaces the count, downwards here (a negative delta against a
            // rolled-up total in PostgreSQL).
            b.put_paper(h1.clone(), "2026-11".into(), paper(2, 9))
                .await
                .unwrap();
            b.put_paper(g1.clone(), "2026-12".into(), paper(5, 0))
                .await
                .unwrap();
            b.put_paper(g1.clone(), "2026-12".into(), paper(5, 0))
                .await
                .unwrap();
        }
        let expect = figures(&r).await;
        assert!(expect.iter().any(|l| l.contains("paper_received")));
        assert_eq!(figures(&pg.store).await, expect);
        pg.store.roll_up().await.unwrap();
        assert_eq!(figures(&pg.store).await, expect, "after a roll-up");
        pg.drop_db().await;
    }

    #[tokio::test]
    async fn a_snapshot_reads_one_commit_and_ends_its_transaction() {
        let pg = fresh().await;
        let b: &dyn StatisticsBackend = &pg.store;
        let h1 = a("000.00.00.H01");
        b.put_paper(h1.clone(), "2026-11".into(), paper(3, 4))
            .await
            .unwrap();
        b.mark_seen(vec![h1.clone()], T0).await.unwrap();
        let view = b.stats_snapshot().await.unwrap();
        // Written after the snapshot: not in it, in the next one.
        b.put_paper(h1.clone(), "2026-11".into(), paper(7, 7))
            .await
            .unwrap();
        b.mark_seen(vec![a("000.00.00.H02")], T0).await.unwrap();
        let months = s(&["M2026-11"]);
        let old = view.sums(&months, Some("national")).await.unwrap();
        assert_eq!(old["national"]["paper_sent"], 3);
        let paper_old = view.paper_sums(&s(&["2026-11"])).await.unwrap();
        assert_eq!(paper_old["national"]["paper_received"], 4);
        assert_eq!(view.seen(&s(&["D2026-11-22"])).await.unwrap().len(), 1);
        drop(view);
        let new = b.stats_snapshot().await.unwrap();
        assert_eq!(
            new.sums(&months, Some("national")).await.unwrap()["national"]["paper_sent"],
            7
        );
        assert_eq!(new.seen(&s(&["D2026-11-22"])).await.unwrap().len(), 2);
        drop(new);
        // Many more views than pooled connections, each dropped: every transaction ends and
        // its connection serves again.
        for _ in 0..3 * poros_config::HubStoreConfig::default().pool_size {
            let v = b.stats_snapshot().await.unwrap();
            v.seen(&s(&["D2026-11-22"])).await.unwrap();
        }
        eventually("snapshots ended", Duration::from_secs(10), || async {
            pg.idle_in_transaction().await == 0
        })
        .await;
        b.mark_seen(vec![h1.clone()], T0 + DAY).await.unwrap();
        pg.drop_db().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_corrections_of_one_report_count_it_once() {
        let pg = fresh().await;
        let b: &dyn StatisticsBackend = &pg.store;
        let h1 = a("000.00.00.H01");
        // Each correction adds its difference from the report it replaces: run at once, they
        // must still see each other's (SERIALIZABLE runs one of two again).
        let all = (1..=8u64).map(|i| b.put_paper(h1.clone(), "2026-11".into(), paper(i, 10 * i)));
        for r in futures_util::future::join_all(all).await {
            r.unwrap();
        }
        let v = b.stats_snapshot().await.unwrap();
        let stored = v.paper_sums(&s(&["2026-11"])).await.unwrap();
        let sums = v
            .sums(&s(&["M2026-11", "Y2026"]), Some("000.00.00.H01"))
            .await
            .unwrap();
        let (sent, received) = (
            stored["000.00.00.H01"]["paper_sent"],
            stored["national"]["paper_received"],
        );
        assert_eq!(received, 10 * sent, "one report's counts: {stored:?}");
        assert_eq!(
            sums["000.00.00.H01"]["paper_sent"],
            2 * sent,
            "month + year: {sums:?}"
        );
        assert_eq!(sums["000.00.00.H01"]["paper_received"], 2 * received);
        drop(v);
        pg.drop_db().await;
    }

    #[tokio::test]
    async fn recount_and_overdue_read_as_in_redb() {
        let dir = tempfile::tempdir().unwrap();
        let r = redb(&dir).await;
        let pg = fresh().await;
        let k = key();
        let g1 = a("000.00.00.G01");
        let (r, p): (&dyn Areas, &dyn Areas) = (&r, &pg.store);
        let mut ids = Vec::new();
        // Five documents a minute apart, answered in every way a delivery ends.
        for n in 0..5u8 {
            let (id, mut rec) = doc(&k, 10 + n, &[n; 4], &["000.00.00.H01", "000.00.00.H02"]);
            rec.accepted_ms = T0 + u64::from(n) * 60_000;
            for b in [r, p] {
                b.accept(rec.clone(), ReceivedBody::inline(vec![n; 4]))
                    .await
                    .unwrap();
            }
            ids.push((id, T0 + u64::from(n) * 60_000));
        }
        let receipt = |id, rcpt: &str, outcome, at| {
            said(
                &k,
                Receipt {
                    doc_id: id,
                    sender: g1.clone(),
                    recipient: a(rcpt),
                    body_sha256: [0; 32],
                    outcome,
                    time_ms: at,
                }
                .as_statement(),
            )
        };
        let (d0, t0) = ids[0];
        let (d1, t1) = ids[1];
        let (d2, t2) = ids[2];
        // On time, late, rejected (with its code), expired.
        let answers = [
            (
                d0,
                "000.00.00.H01",
                receipt(d0, "000.00.00.H01", Outcome::Delivered, t0 + 5),
            ),
            (
                d0,
                "000.00.00.H02",
                receipt(d0, "000.00.00.H02", Outcome::Delivered, t0 + 2 * 3_600_000),
            ),
            (
                d1,
                "000.00.00.H01",
                receipt(
                    d1,
                    "000.00.00.H01",
                    Outcome::RejectedFor(Reason::new(ReasonCode::TooLarge, "big")),
                    t1 + 9,
                ),
            ),
            (
                d2,
                "000.00.00.H02",
                said(
                    &k,
                    HubNotice {
                        doc_id: d2,
                        sender: g1.clone(),
                        recipient: a("000.00.00.H02"),
                        kind: NoticeKind::Expired,
                        time_ms: t2 + DAY,
                    }
                    .as_statement(),
                ),
            ),
        ];
        for (id, rcpt, answer) in answers {
            let at = match &answer {
                crate::state::Answer::Said(_, st) => st.time_ms,
                crate::state::Answer::Legacy(_) => unreachable!(),
            };
            for b in [r, p] {
                let out = b
                    .record_answer(id, a(rcpt), answer.clone(), at)
                    .await
                    .unwrap();
                assert!(matches!(out, AnswerOutcome::Recorded { .. }), "{out:?}");
            }
        }
        let mut out = Vec::new();
        for b in [r, p] {
            // The live statistics hold what a recount finds (they count more: latencies and
            // the business figures).
            let recount = b.recount(3_600_000).await.unwrap();
            let live = b.stats_snapshot().await.unwrap();
            let live = live.sums(&s(&["Y2026"]), None).await.unwrap();
            for (scope, metrics) in &recount {
                for (m, n) in metrics {
                    assert_eq!(live[scope].get(m), Some(n), "{scope} {m}");
                }
            }
            let mut lines = Vec::new();
            for on_time in [3_600_000, 1, u64::MAX] {
                let mut rows: Vec<_> = b.recount(on_time).await.unwrap().into_iter().collect();
                rows.sort();
                lines.push(format!("recount {on_time}: {rows:?}"));
            }
            for (from, to, older) in [
                (0, u64::MAX, u64::MAX),
                (T0 + 60_000, T0 + 4 * 60_000, u64::MAX),
                (T0, u64::MAX, T0 + 3 * 60_000),
                (T0 + 60_000, T0 + 60_000, u64::MAX),
                (T0 + 5, T0, T0),
            ] {
                let mut rows: Vec<_> = b
                    .overdue(from, to, older)
                    .await
                    .unwrap()
                    .into_iter()
                    .collect();
                rows.sort();
                lines.push(format!("overdue {from} {to} {older}: {rows:?}"));
            }
            out.push(lines);
        }
        assert!(out[0][0].contains("rej:too_large"), "{:?}", out[0][0]);
        assert!(out[0][0].contains("in_late"), "{:?}", out[0][0]);
        assert_eq!(out[1], out[0]);
        pg.drop_db().await;
    }
}
