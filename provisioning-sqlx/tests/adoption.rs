//! Cold onboarding: a database a DBA made is adopted, never dropped by a rollback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use provisioning_core::{DatabaseOutcome, DropReason, Isolation, TenantSchemaManager};
use provisioning_sqlx::SqliteSchemaManager;

async fn dba_creates(path: &std::path::Path) {
    use sqlx::Connection;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE dba_notes (note TEXT)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}

#[tokio::test]
async fn a_prepared_database_is_adopted_migrated_seeded_and_kept_on_compensation() {
    let dir = tempfile::tempdir().unwrap();
    let m = SqliteSchemaManager::builder()
        .root(dir.path())
        .dedicated(schema("sqlite", false).await)
        .build()
        .unwrap();
    let acme = plan("acme", Isolation::Dedicated, "eu-1");
    let path = m.database_path(&acme);
    dba_creates(&path).await;

    let dry = m.preview(&acme).await.unwrap();
    assert!(dry.exists && !dry.will_create);
    assert_eq!(m.provision(&acme).await.unwrap(), DatabaseOutcome::Adopted);
    assert_eq!(m.provision(&acme).await.unwrap(), DatabaseOutcome::Adopted);
    assert_eq!(m.migrate(&acme).await.unwrap().len(), 10);
    assert_eq!(m.seed(&acme).await.unwrap().len(), 1);

    // A rollback does not drop what it did not create...
    m.drop_tenant(&acme, DropReason::Compensation)
        .await
        .unwrap();
    assert!(path.exists());
    let mut conn = open_sqlite(&path).await;
    let notes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dba_notes")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(notes, 0, "the DBA's table is still there");
    drop(conn);
    // ...but deleting the tenant removes its database.
    m.drop_tenant(&acme, DropReason::Delete).await.unwrap();
    assert!(!path.exists());
}

#[tokio::test]
async fn a_failed_provisioning_of_an_adopted_database_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, _armed) = fail_at(4);
    let m = SqliteSchemaManager::builder()
        .root(dir.path())
        .dedicated(schema("sqlite", false).await)
        .before_migration(hook)
        .build()
        .unwrap();
    let acme = plan("acme", Isolation::Dedicated, "eu-1");
    let path = m.database_path(&acme);
    dba_creates(&path).await;
    assert_eq!(m.provision(&acme).await.unwrap(), DatabaseOutcome::Adopted);
    m.migrate(&acme).await.unwrap_err();
    m.drop_tenant(&acme, DropReason::Compensation)
        .await
        .unwrap();
    assert!(path.exists());
    assert_eq!(ledger_versions(&path).await, [1, 2, 3]);
}

#[tokio::test]
async fn an_unreadable_file_is_not_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let m = SqliteSchemaManager::builder()
        .root(dir.path())
        .dedicated(schema("sqlite", false).await)
        .build()
        .unwrap();
    let acme = plan("acme", Isolation::Dedicated, "eu-1");
    let path = m.database_path(&acme);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"this is not a database, it is a spreadsheet export").unwrap();
    let err = m.provision(&acme).await.unwrap_err();
    assert!(!err.is_transient(), "{err}");
    // And a compensation leaves the file it cannot prove it made.
    m.drop_tenant(&acme, DropReason::Compensation)
        .await
        .unwrap();
    assert!(path.exists());
}
