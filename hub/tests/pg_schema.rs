//! A PostgreSQL database whose schema is newer than this hub knows (migrated by a newer hub)
//! is refused at connect with a typed error naming both versions, and nothing is applied to it.
//!
//! Runs on a real PostgreSQL server the test binary starts (Debian's postgresql package;
//! `scripts/test.sh` installs it), with a database of its own.

use poros_hub::state::pg::migrations::MIGRATIONS;
use poros_hub::state::pg::{PgOptions, PgStore};
use poros_store::{FormatError, StoreError};

async fn psql(url: &str, sql: &'static str) -> String {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || poros_harness::psql(&url, sql))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("psql {sql}: {e}"))
}

async fn connect(url: &str) -> Result<PgStore, StoreError> {
    let mut o = PgOptions::new(url);
    o.pool_size = 2;
    o.instance = "t_pgschema".into();
    PgStore::connect(o).await
}

#[tokio::test]
async fn a_schema_newer_than_the_hub_is_refused_naming_both_versions() {
    let url = tokio::task::spawn_blocking(|| poros_harness::fresh_database("t_pgschema"))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("a PostgreSQL database for the test: {e}"));
    let known = i64::from(MIGRATIONS.last().expect("migrations").0);

    // This hub migrates a new database to its own schema and opens it again as it is.
    drop(connect(&url).await.expect("a new database is migrated"));
    drop(connect(&url).await.expect("the same schema opens"));

    // A newer hub has applied a migration this one does not know.
    psql(
        &url,
        "INSERT INTO poros_schema (version, name) VALUES (99, 'from a newer hub')",
    )
    .await;
    let before = psql(
        &url,
        "SELECT version, name FROM poros_schema ORDER BY version",
    )
    .await;

    let e = match connect(&url).await {
        Ok(_) => panic!("a hub opened a schema newer than it knows"),
        Err(e) => e,
    };
    assert!(
        matches!(&e, StoreError::Format(f)
            if matches!(**f, FormatError::NewerSchema { found: 99, known: k } if k == known)),
        "{e}"
    );
    let msg = e.to_string();
    for part in [
        "migration 99".to_string(),
        format!("({known})"),
        "newer poros-hub".to_string(),
    ] {
        assert!(msg.contains(&part), "{msg:?} does not say {part:?}");
    }
    let after = psql(
        &url,
        "SELECT version, name FROM poros_schema ORDER BY version",
    )
    .await;
    assert_eq!(before, after, "the refused hub changed the schema record");
}
