//! The store as [`provisioning_sharding::LoadSource`] (feature `sharding`).

use std::collections::HashMap;

use async_trait::async_trait;
use provisioning_core::{Result, ShardId};
use provisioning_sharding::LoadSource;

use super::{PostgresStore, err};

/// Each shard's tenants, counted in one query over the catalog: a tenant
/// counts on the shard its placement names while it has one and is neither
/// Deleted nor Failed (tenants being created, moved or deleted hold their
/// shard until they settle; shared and dedicated alike).
#[async_trait]
impl LoadSource for PostgresStore {
    async fn tenant_counts(&self) -> Result<HashMap<ShardId, u64>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(self.sql.tenant_counts.clone())
            .fetch_all(&self.pool)
            .await
            .map_err(err("counting tenants per shard"))?;
        crate::store::load::counts(rows)
    }
}
