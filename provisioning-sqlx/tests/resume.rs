//! A migration run interrupted at migration k resumes at k.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;

use common::*;
use provisioning_core::{DatabaseOutcome, DropReason, Isolation, TenantSchemaManager};
use provisioning_sqlx::{SqliteSchemaManager, SqliteTenantSchema};

/// The first five workload migrations, the workload seed.
async fn five() -> SqliteTenantSchema {
    SqliteTenantSchema::new(first_migrations("sqlite", 5).await).seed(provisioning_sqlx::Seed::sql(
        "workload-seed",
        1,
        seed_sql("sqlite"),
    ))
}

#[tokio::test]
async fn injected_failure_at_3_of_5_resumes_at_3() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, armed) = fail_at(3);
    let m = SqliteSchemaManager::builder()
        .root(dir.path())
        .dedicated(five().await)
        .before_migration(hook)
        .build()
        .unwrap();
    let acme = plan("acme", Isolation::Dedicated, "eu-1");
    m.provision(&acme).await.unwrap();

    let err = m.migrate(&acme).await.unwrap_err();
    assert!(
        err.to_string().contains("injected failure at migration 3"),
        "{err}"
    );
    let path = m.database_path(&acme);
    assert_eq!(ledger_versions(&path).await, [1, 2]);
    let pending = m.preview(&acme).await.unwrap().pending_migrations;
    assert_eq!(versions(&pending), [3, 4, 5]);

    armed.store(0, Ordering::SeqCst);
    assert_eq!(versions(&m.migrate(&acme).await.unwrap()), [3, 4, 5]);
    assert_eq!(ledger_versions(&path).await, [1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn failing_sql_at_3_rolls_back_3_and_a_fixed_release_resumes_there() {
    let dir = tempfile::tempdir().unwrap();
    let good = first_migrations("sqlite", 5).await;
    let mut broken: Vec<_> = good.iter().cloned().collect();
    broken[2] = sqlx::migrate::Migration::new(
        3,
        "user_roles".into(),
        sqlx::migrate::MigrationType::Simple,
        sqlx::SqlSafeStr::into_sql_str(
            "CREATE TABLE user_roles (id INTEGER PRIMARY KEY); INSERT INTO nowhere VALUES (1);",
        ),
        false,
    );
    let acme = plan("acme", Isolation::Dedicated, "eu-1");
    let m = SqliteSchemaManager::builder()
        .root(dir.path())
        .dedicated(SqliteTenantSchema::new(
            sqlx::migrate::Migrator::with_migrations(broken),
        ))
        .build()
        .unwrap();
    m.provision(&acme).await.unwrap();
    let err = m.migrate(&acme).await.unwrap_err();
    assert!(!err.is_transient(), "{err}");
    assert!(err.to_string().contains("migration 3"), "{err}");
    let path = m.database_path(&acme);
    assert_eq!(ledger_versions(&path).await, [1, 2]);
    // Migration 3's first statement was rolled back with it.
    let mut conn = open_sqlite(&path).await;
    let tables: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = 'user_roles'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(tables, 0);

    let m = SqliteSchemaManager::builder()
        .root(dir.path())
        .dedicated(SqliteTenantSchema::new(good))
        .build()
        .unwrap();
    assert_eq!(versions(&m.migrate(&acme).await.unwrap()), [3, 4, 5]);
}

#[tokio::test]
async fn a_run_cut_short_by_another_tool_resumes_at_the_next_migration() {
    let dir = tempfile::tempdir().unwrap();
    let acme = plan("acme", Isolation::Dedicated, "eu-1");
    let schema = five().await;
    let m = SqliteSchemaManager::builder()
        .root(dir.path())
        .dedicated(schema.clone())
        .build()
        .unwrap();
    m.provision(&acme).await.unwrap();
    // What a crash after migration 2 leaves: sqlx's own ledger with 1 and 2.
    let mut conn = open_sqlite(&m.database_path(&acme)).await;
    schema.migrator().run_to(2, &mut conn).await.unwrap();
    drop(conn);
    assert_eq!(versions(&m.migrate(&acme).await.unwrap()), [3, 4, 5]);
}

#[tokio::test]
async fn dedicated_failure_at_3_of_5_is_compensated_and_a_retry_comes_up_clean() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, armed) = fail_at(3);
    let m = SqliteSchemaManager::builder()
        .root(dir.path())
        .dedicated(five().await)
        .before_migration(hook)
        .build()
        .unwrap();
    let acme = plan("acme", Isolation::Dedicated, "eu-1");
    let path = m.database_path(&acme);

    assert_eq!(m.provision(&acme).await.unwrap(), DatabaseOutcome::Created);
    m.migrate(&acme).await.unwrap_err();
    // The saga compensates: the database it created goes, with its sidecars.
    m.drop_tenant(&acme, DropReason::Compensation)
        .await
        .unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");

    // Later, the fault gone, the same tenant comes up clean.
    armed.store(0, Ordering::SeqCst);
    let dry_run = m.preview(&acme).await.unwrap();
    assert!(dry_run.will_create && !dry_run.exists);
    assert_eq!(m.provision(&acme).await.unwrap(), DatabaseOutcome::Created);
    assert_eq!(versions(&m.migrate(&acme).await.unwrap()), [1, 2, 3, 4, 5]);
    assert_eq!(m.seed(&acme).await.unwrap().len(), 1);
    let mut conn = open_sqlite(&path).await;
    let roles: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM roles")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(roles, 3);
}
