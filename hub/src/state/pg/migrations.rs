//! The PostgreSQL schema, as numbered migrations applied in order at start.
//!
//! Each migration is one SQL file under `sql/`, applied once, in its own transaction, and
//! recorded in `poros_schema`. Hubs that start together take an advisory lock first, so each
//! migration runs exactly once. A database whose schema is newer than this binary knows is
//! refused with a message naming both versions: an older hub must not write to it.

use poros_store::StoreError;

/// Every migration: (version, name, SQL). Versions are 1, 2, 3… with no gaps.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "core", include_str!("sql/0001_core.sql")),
    // PLACEHOLDERS on branch i10-pgbody only, so versions stay consecutive until the areas'
    // migrations (2 registry, 3 exchange, 4 statements, 5 repair, 6 statistics) are merged:
    // take their lines here.
    (2, "registry", ""),
    (3, "exchange", ""),
    (4, "statements", ""),
    (5, "repair", ""),
    (6, "statistics", ""),
    (7, "bodies", include_str!("sql/0007_bodies.sql")),
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
    let current: i32 = client
        .query_one("SELECT coalesce(max(version), 0) FROM poros_schema", &[])
        .await
        .map_err(sql)?
        .get(0);
    let known = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    if current > known {
        return Err(StoreError::Other(format!(
            "the database schema is version {current}, newer than this hub knows ({known}): \
             upgrade this hub before starting it on this database"
        )));
    }
    for (version, name, text) in MIGRATIONS.iter().filter(|m| m.0 > current) {
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
    fn versions_are_consecutive_from_one() {
        for (i, (v, _, _)) in super::MIGRATIONS.iter().enumerate() {
            assert_eq!(*v as usize, i + 1, "migration {v} out of order");
        }
    }
}
