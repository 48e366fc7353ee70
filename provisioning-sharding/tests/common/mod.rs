//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::Arc;

use provisioning_core::{Isolation, PlacementDecision, Residency, TenantId};
use provisioning_sharding::{ShardDirectory, ShardSpec};

/// A valid shard spec in `region` and `pool` with `capacity`.
pub(crate) fn spec(id: &str, region: &str, pool: Isolation, capacity: u32) -> ShardSpec {
    ShardSpec::new(id)
        .with_region(region)
        .with_pool(pool)
        .with_capacity(capacity)
        .with_connection(format!("postgres://app:pw@{id}.db/tenants"))
}

/// A directory of `n` shared shards `s0..` in `region`, capacity 1000 each.
pub(crate) fn uniform(region: &str, n: usize) -> Arc<ShardDirectory> {
    Arc::new(
        ShardDirectory::from_specs(
            (0..n).map(|i| spec(&format!("s{i}"), region, Isolation::Shared, 1000)),
        )
        .unwrap(),
    )
}

/// A decision for `region` with `isolation` and `residency`.
pub(crate) fn decision(
    region: &str,
    isolation: Isolation,
    residency: Residency,
) -> PlacementDecision {
    PlacementDecision::new(
        "free".parse().unwrap(),
        isolation,
        region.parse().unwrap(),
        residency,
        "test",
    )
}

/// Tenant `t<i>`.
pub(crate) fn tenant(i: usize) -> TenantId {
    format!("tenant-{i}").parse().unwrap()
}

/// Runs a future to completion on a fresh current-thread runtime.
pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}
