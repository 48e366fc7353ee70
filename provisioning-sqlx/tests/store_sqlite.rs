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
