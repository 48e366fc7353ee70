//! The stores as `LoadSource` (feature `sharding`): each shard's tenant
//! count read from the catalog, on SQLite and on a real PostgreSQL server.
#![cfg(feature = "sharding")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[tokio::test]
async fn sqlite_store_counts_placed_tenants_per_shard() {
    let dir = tempfile::tempdir().unwrap();
    let store = provisioning_sqlx::SqliteStore::open(dir.path().join("catalog.sqlite"))
        .await
        .unwrap();
    common::shard_counts_follow_placements(&store).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn postgres_store_counts_placed_tenants_per_shard() {
    use common::pg;
    let url = pg::url();
    let catalog = pg::unique_prefix("load").trim_end_matches('_').to_owned() + "_catalog";
    let store = provisioning_sqlx::PostgresStore::connect_to_schema(&url, &catalog)
        .await
        .unwrap();
    common::shard_counts_follow_placements(&store).await;
    store.pool().close().await;
    pg::exec(&url, format!("DROP SCHEMA \"{catalog}\" CASCADE")).await;
}
