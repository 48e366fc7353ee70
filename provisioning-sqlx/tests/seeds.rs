//! Seeds are idempotent through the `_tenant_seeds` ledger.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use provisioning_core::{Entity, Error, Isolation, TenantSchemaManager};
use provisioning_sqlx::{Seed, SqliteSchemaManager, SqliteTenantSchema};
use sqlx::SqliteConnection;

const PROJECT: &str = "INSERT INTO projects (name, slug) VALUES ('Welcome', 'welcome')";

async fn manager(root: &std::path::Path, schema: SqliteTenantSchema) -> SqliteSchemaManager {
    SqliteSchemaManager::builder()
        .root(root)
        .dedicated(schema)
        .build()
        .unwrap()
}

async fn ledger(path: &std::path::Path) -> Vec<(String, String, i64, String)> {
    let mut conn = open_sqlite(path).await;
    sqlx::query_as(
        "SELECT tenant_id, name, version, checksum FROM _tenant_seeds ORDER BY name, version",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_rerun_applies_only_missing_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let acme = plan("acme", Isolation::Dedicated, "eu-1");
    let base = schema::<SqliteConnection>("sqlite", false).await;
    let m = manager(dir.path(), base.clone()).await;
    m.provision(&acme).await.unwrap();
    m.migrate(&acme).await.unwrap();
    assert_eq!(m.seed(&acme).await.unwrap().len(), 1);
    assert!(m.seed(&acme).await.unwrap().is_empty());

    // A release adds a seed: only it runs.
    let welcome = Seed::sql("welcome-project", 1, PROJECT);
    let m = manager(dir.path(), base.clone().seed(welcome.clone())).await;
    let applied = m.seed(&acme).await.unwrap();
    assert_eq!(applied, [welcome.info()]);

    let path = m.database_path(&acme);
    let rows = ledger(&path).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].0, "acme");
    assert_eq!((rows[0].1.as_str(), rows[0].2), ("welcome-project", 1));
    assert_eq!(rows[0].3, welcome.checksum());
    let mut conn = open_sqlite(&path).await;
    let roles: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM roles")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(roles, 3, "the first seed did not run twice");
}

#[tokio::test]
async fn a_changed_body_under_the_same_version_is_an_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let acme = plan("acme", Isolation::Dedicated, "eu-1");
    let m = manager(dir.path(), schema("sqlite", false).await).await;
    m.provision(&acme).await.unwrap();
    m.migrate(&acme).await.unwrap();
    m.seed(&acme).await.unwrap();

    let tampered = SqliteTenantSchema::new(migrator("sqlite", false).await)
        .seed(Seed::sql("welcome-project", 1, PROJECT))
        .seed(Seed::sql(
            "workload-seed",
            1,
            "INSERT INTO roles (name) VALUES ('intruder')",
        ));
    let m = manager(dir.path(), tampered).await;
    let err = m.seed(&acme).await.unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { kind: Entity::Seed, id, .. } if id == "workload-seed@1"),
        "{err}"
    );
    assert!(!err.is_transient());
    // Checked before anything ran: the new seed listed first was not applied either.
    assert_eq!(ledger(&m.database_path(&acme)).await.len(), 1);
    // The dry run reports the same conflict.
    assert!(matches!(
        m.preview(&acme).await.unwrap_err(),
        Error::Conflict { .. }
    ));
}

#[tokio::test]
async fn a_failing_seed_leaves_no_rows_and_no_ledger_entry() {
    let dir = tempfile::tempdir().unwrap();
    let acme = plan("acme", Isolation::Dedicated, "eu-1");
    let broken = SqliteTenantSchema::new(migrator("sqlite", false).await).seed(Seed::sql(
        "half",
        1,
        "INSERT INTO roles (name) VALUES ('ok'); INSERT INTO no_such_table VALUES (1)",
    ));
    let m = manager(dir.path(), broken).await;
    m.provision(&acme).await.unwrap();
    m.migrate(&acme).await.unwrap();
    let err = m.seed(&acme).await.unwrap_err();
    assert!(!err.is_transient(), "an SQL error is permanent: {err}");
    let mut conn = open_sqlite(&m.database_path(&acme)).await;
    let roles: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM roles")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let seeds: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _tenant_seeds")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!((roles, seeds), (0, 0));
}

#[tokio::test]
async fn rust_seeds_get_the_connection_and_the_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let acme = plan("acme-eu", Isolation::Dedicated, "eu-1");
    let seed = Seed::<SqliteConnection>::from_fn("settings", 1, "theme=dark", |conn, tenant| {
        Box::pin(async move {
            sqlx::query("INSERT INTO settings (key, value) VALUES ('owner', ?1)")
                .bind(tenant.as_str())
                .execute(&mut *conn)
                .await
                .map_err(|e| provisioning_core::Error::backend("seed", "settings", false, e))?;
            Ok(())
        })
    });
    let m = manager(
        dir.path(),
        SqliteTenantSchema::new(migrator("sqlite", false).await).seed(seed),
    )
    .await;
    m.provision(&acme).await.unwrap();
    m.migrate(&acme).await.unwrap();
    assert_eq!(m.seed(&acme).await.unwrap().len(), 1);
    assert!(m.seed(&acme).await.unwrap().is_empty());
    let mut conn = open_sqlite(&m.database_path(&acme)).await;
    let owner: String = sqlx::query_scalar("SELECT value FROM settings WHERE key = 'owner'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(owner, "acme-eu");
}

#[tokio::test]
async fn duplicate_seeds_are_rejected_when_building() {
    let schema = SqliteTenantSchema::new(migrator("sqlite", false).await)
        .seed(Seed::sql("a", 1, "SELECT 1"))
        .seed(Seed::sql("a", 1, "SELECT 2"));
    let err = SqliteSchemaManager::builder()
        .root("/tmp/x")
        .dedicated(schema)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("a@1 is declared twice"), "{err}");
}
