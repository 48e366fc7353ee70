//! The store conformance suite, and the orchestrator end to end, on SqliteStore.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use provisioning_sqlx::{Durability, SqliteStore};

#[tokio::test]
async fn sqlite_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(dir.path().join("catalog.sqlite"))
            .await
            .unwrap(),
    );
    provisioning_core::testing::store_conformance(store.clone()).await;
    provisioning_core::testing::store_conformance(store).await;
}

#[tokio::test]
async fn power_loss_durability_conforms_too_and_data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.sqlite");
    let store = Arc::new(
        SqliteStore::open_with(&path, Durability::PowerLoss)
            .await
            .unwrap(),
    );
    provisioning_core::testing::submit_is_atomic_and_idempotent(&*store).await;
    let before = {
        use provisioning_core::{TenantFilter, TenantStore};
        store.list_tenants(&TenantFilter::all()).await.unwrap()
    };
    store.pool().close().await;
    drop(store);
    let reopened = SqliteStore::open(&path).await.unwrap();
    use provisioning_core::{TenantFilter, TenantStore};
    assert_eq!(
        reopened.list_tenants(&TenantFilter::all()).await.unwrap(),
        before
    );
}

#[tokio::test]
async fn a_read_only_open_reads_everything_and_writes_nothing() {
    use provisioning_core::testing::{create, unique_tenant};
    use provisioning_core::{Error, RequestId, TenantFilter, TenantStore};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.sqlite");
    let writer = SqliteStore::open(&path).await.unwrap();
    let tenant = unique_tenant("ro");
    writer
        .submit(create(&tenant, RequestId::new()))
        .await
        .unwrap();
    let written = writer.list_tenants(&TenantFilter::all()).await.unwrap();
    writer.close().await;
    let bytes = std::fs::read(&path).unwrap();

    let reader = SqliteStore::open_read_only(&path).await.unwrap();
    assert_eq!(
        reader.list_tenants(&TenantFilter::all()).await.unwrap(),
        written
    );
    assert!(reader.tenant(&tenant).await.unwrap().is_some());
    let refused = reader
        .submit(create(&unique_tenant("ro"), RequestId::new()))
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Backend { .. }), "{refused:?}");
    assert!(
        Error::report_of(&refused).contains("readonly"),
        "{}",
        Error::report_of(&refused)
    );
    reader.close().await;
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "the file was written");
}

#[tokio::test]
async fn a_read_only_open_refuses_a_missing_or_unmigrated_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.sqlite");
    assert!(SqliteStore::open_read_only(&missing).await.is_err());
    assert!(!missing.exists(), "a read-only open created the file");

    let empty = dir.path().join("empty.sqlite");
    let pool = sqlx::SqlitePool::connect_with(
        sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&empty)
            .create_if_missing(true),
    )
    .await
    .unwrap();
    sqlx::query("CREATE TABLE unrelated (x)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let err = SqliteStore::open_read_only(&empty).await.unwrap_err();
    let report = provisioning_core::Error::report_of(&err);
    assert!(
        report.contains("schema version none") && report.contains("open it once for writing"),
        "{report}"
    );
}

#[tokio::test]
async fn an_unopenable_catalog_names_the_cause_the_system_gives() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), b"x").unwrap();
    let path = dir.path().join("file").join("catalog.sqlite");
    let err = SqliteStore::open(&path).await.unwrap_err();
    let report = provisioning_core::Error::report_of(&err);
    assert!(
        report.contains("for writing") && report.contains("Not a directory (os error 20)"),
        "{report}"
    );
}
