//! The store as [`provisioning_sharding::LoadSource`] (feature `sharding`).

use std::collections::HashMap;

use async_trait::async_trait;
use provisioning_core::{Result, ShardId};
use provisioning_sharding::LoadSource;

use super::{SqliteStore, err};

/// Each shard's tenants, counted in one query over the catalog: a tenant
/// counts on the shard its placement names while it has one and is neither
/// Deleted nor Failed (tenants being created, moved or deleted hold their
/// shard until they settle; shared and dedicated alike).
///
/// ```
/// use provisioning_sharding::LoadSource;
/// use provisioning_sqlx::SqliteStore;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// # let dir = tempfile::tempdir().unwrap();
/// let store = SqliteStore::open(dir.path().join("catalog.sqlite")).await?;
/// assert!(store.tenant_counts().await?.is_empty(), "no tenant placed yet");
/// # Ok::<(), provisioning_core::Error>(())
/// # }).unwrap();
/// ```
#[async_trait]
impl LoadSource for SqliteStore {
    async fn tenant_counts(&self) -> Result<HashMap<ShardId, u64>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT json_extract(record, '$.placement.shard') AS shard, COUNT(*) \
             FROM tenants \
             WHERE state NOT IN ('deleted', 'failed') \
               AND json_extract(record, '$.placement.shard') IS NOT NULL \
             GROUP BY 1",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(err("counting tenants per shard"))?;
        crate::store::load::counts(rows)
    }
}
