//! Counters and exact statistics in PostgreSQL: each counting transaction inserts its deltas,
//! readers add deltas to totals, and the roll-up folds old deltas into the totals.
//!
//! Insert-only deltas keep two transactions that count the same thing (every accept counts
//! `documents_accepted`) from ever touching the same row, so they neither wait for each other
//! nor conflict, while each count still commits with the event it counts.

use super::{PgStore, Tx};
use poros_store::StoreError;
use std::collections::HashMap;

/// Add to operational counters, in the caller's transaction.
pub(crate) async fn add(
    tx: &Tx<'_>,
    store: &PgStore,
    counts: &[(&str, u64)],
) -> Result<(), StoreError> {
    let counts: Vec<_> = counts.iter().filter(|(_, by)| *by > 0).collect();
    if counts.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = counts.iter().map(|(n, _)| *n).collect();
    let deltas: Vec<i64> = counts.iter().map(|(_, by)| *by as i64).collect();
    tx.execute(
        "INSERT INTO counter_deltas (name, delta) SELECT * FROM unnest($1::text[], $2::bigint[])",
        &[&names, &deltas],
    )
    .await
    .map_err(|e| store.sql_error("count", e))?;
    Ok(())
}

/// Add statistics increments ((period, scope, metric) → by), in the caller's transaction.
pub(crate) async fn add_stats(
    tx: &Tx<'_>,
    store: &PgStore,
    incs: HashMap<(String, String, String), u64>,
) -> Result<(), StoreError> {
    if incs.is_empty() {
        return Ok(());
    }
    let mut p = Vec::with_capacity(incs.len());
    let mut s = Vec::with_capacity(incs.len());
    let mut m = Vec::with_capacity(incs.len());
    let mut d = Vec::with_capacity(incs.len());
    for ((period, scope, metric), by) in incs {
        p.push(period);
        s.push(scope);
        m.push(metric);
        d.push(by as i64);
    }
    tx.execute(
        "INSERT INTO stat_deltas (period, scope, metric, delta) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])",
        &[&p, &s, &m, &d],
    )
    .await
    .map_err(|e| store.sql_error("count statistics", e))?;
    Ok(())
}

/// Every counter's value, totals plus deltas.
pub(crate) async fn all(tx: &Tx<'_>, store: &PgStore) -> Result<Vec<(String, u64)>, StoreError> {
    let rows = tx
        .query(
            "SELECT name, sum(v)::bigint FROM ( \
                 SELECT name, value AS v FROM counter_totals \
                 UNION ALL SELECT name, delta FROM counter_deltas \
             ) c GROUP BY name ORDER BY name",
            &[],
        )
        .await
        .map_err(|e| store.sql_error("read counters", e))?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1).max(0) as u64))
        .collect())
}

impl PgStore {
    /// Fold the deltas present now into the totals, in one transaction; one hub at a time
    /// (an advisory transaction lock), the others skip. Returns the deltas folded.
    pub async fn roll_up(&self) -> Result<u64, StoreError> {
        self.write("roll up counters", |tx| {
            let store = self.clone();
            Box::pin(async move {
                let sql = |e| store.sql_error("roll up counters", e);
                let locked: bool = tx
                    .query_one("SELECT pg_try_advisory_xact_lock(7070707001)", &[])
                    .await
                    .map_err(sql)?
                    .get(0);
                if !locked {
                    return Ok(0);
                }
                let a = tx
                    .execute(
                        "WITH moved AS (DELETE FROM counter_deltas RETURNING name, delta) \
                         INSERT INTO counter_totals (name, value) \
                         SELECT name, sum(delta) FROM moved GROUP BY name \
                         ON CONFLICT (name) DO UPDATE SET value = counter_totals.value + excluded.value",
                        &[],
                    )
                    .await
                    .map_err(sql)?;
                let b = tx
                    .execute(
                        "WITH moved AS (DELETE FROM stat_deltas RETURNING period, scope, metric, delta) \
                         INSERT INTO stat_totals (period, scope, metric, value) \
                         SELECT period, scope, metric, sum(delta) FROM moved \
                         GROUP BY period, scope, metric \
                         ON CONFLICT (period, scope, metric) \
                         DO UPDATE SET value = stat_totals.value + excluded.value",
                        &[],
                    )
                    .await
                    .map_err(sql)?;
                tx.execute(
                    "DELETE FROM poros_commits WHERE at < now() - interval '1 day'",
                    &[],
                )
                .await
                .map_err(sql)?;
                let c = super::statements::roll_up_kinds(tx, &store).await?;
                Ok(a + b + c)
            })
        })
        .await
    }
}
