//! The PostgreSQL schema, as numbered migrations applied in order at start.
//!
//! Each migration is one SQL file under `sql/`, applied once, in its own transaction, and
//! recorded in `poros_schema`. Hubs that start together take an advisory lock first, so each
//! migration runs exactly once. A database whose schema is newer than this binary knows is
//! refused with a message naming both versions: an older hub must not write to it.

use poros_store::{FormatError, StoreError};

/// Every migration: (version, name, SQL), in increasing version order. Each version not yet
/// recorded in the database is applied, in this order.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "core", include_str!("sql/0001_core.sql")),
    (2, "registry", include_str!("sql/0002_registry.sql")),
    (3, "exchange", include_str!("sql/0003_exchange.sql")),
    (4, "statements", include_str!("sql/0004_statements.sql")),
    (5, "repair", include_str!("sql/0005_repair.sql")),
    (6, "statistics", include_str!("sql/0006_statistics.sql")),
    (7, "bodies", include_str!("sql/0007_bodies.sql")),
    (8, "coordination", include_str!("sql/0008_coordination.sql")),
    (9, "recovery", include_str!("sql/0009_recovery.sql")),
];

/// Advisory-lock key of the migration step (any fixed number, the same in every hub).
const LOCK_KEY: i64 = 0x706f_726f_735f_6d67; // "poros_mg"

/// Bring the schema up to date.
pub async fn apply(client: &mut tokio_postgres::Client) -> Result<(), StoreError> {
    let sql = |e: tokio_postgres::Error| StoreError::Sql(format!("schema migration: {e}"));
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(sql)?;
    let result = apply_locked(client).await;
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await
        .map_err(sql);
    result.and(unlock.map(|_| ()))
}

async fn apply_locked(client: &mut tokio_postgres::Client) -> Result<(), StoreError> {
    let sql = |e: tokio_postgres::Error| StoreError::Sql(format!("schema migration: {e}"));
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS poros_schema (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(sql)?;
    let applied: Vec<i32> = client
        .query("SELECT version FROM poros_schema ORDER BY version", &[])
        .await
        .map_err(sql)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let known = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    if let Some(newest) = applied.iter().copied().filter(|v| *v > known).max() {
        // Nothing applied, nothing written: an older hub must not write to a newer schema.
        return Err(FormatError::NewerSchema {
            found: newest.into(),
            known: known.into(),
        }
        .into());
    }
    for (version, name, text) in MIGRATIONS.iter().filter(|m| !applied.contains(&m.0)) {
        let tx = client.transaction().await.map_err(sql)?;
        tx.batch_execute(text)
            .await
            .map_err(|e| StoreError::Sql(format!("schema migration {version} ({name}): {e}")))?;
        tx.execute(
            "INSERT INTO poros_schema (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await
        .map_err(sql)?;
        tx.commit().await.map_err(sql)?;
        tracing::info!(version, name, "database schema migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_increase() {
        for w in super::MIGRATIONS.windows(2) {
            assert!(
                w[0].0 < w[1].0,
                "migration {} listed after {}",
                w[1].0,
                w[0].0
            );
        }
    }
}
