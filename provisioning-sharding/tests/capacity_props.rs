//! Property: under concurrent placement on a multi-threaded runtime, no shard
//! ever holds more tenants than its capacity, and every free slot is used.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::{decision, spec, tenant};
use proptest::prelude::*;
use provisioning_core::{Error, Isolation, Residency, ShardId, ShardResolver};
use provisioning_sharding::{InMemoryLoad, LeastLoadedResolver, LoadSource, ShardDirectory};

/// An in-memory source that yields before answering, so that concurrent
/// resolutions interleave exactly between reading the load and reserving.
struct Yielding(InMemoryLoad);

#[async_trait::async_trait]
impl LoadSource for Yielding {
    async fn tenant_counts(&self) -> provisioning_core::Result<HashMap<ShardId, u64>> {
        let counts = self.0.tenant_counts().await;
        tokio::task::yield_now().await;
        counts
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn capacity_is_never_exceeded_under_concurrent_placement(
        shards in prop::collection::vec((1..8u32, 0..8u64), 1..6),
        tenants in 1..60usize,
    ) {
        let dir = Arc::new(ShardDirectory::from_specs(
            shards.iter().enumerate().map(|(i, &(cap, _))| spec(&format!("s{i}"), "eu", Isolation::Shared, cap)),
        ).unwrap());
        let load = InMemoryLoad::new();
        for (i, &(_, used)) in shards.iter().enumerate() {
            load.set(&format!("s{i}").parse().unwrap(), used);
        }
        let free: u64 = shards.iter().map(|&(cap, used)| u64::from(cap).saturating_sub(used)).sum();
        let resolver = Arc::new(LeastLoadedResolver::new(dir, Yielding(load)));

        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(4).build().unwrap();
        let results = runtime.block_on(async {
            let handles: Vec<_> = (0..tenants)
                .map(|i| {
                    let resolver = resolver.clone();
                    tokio::spawn(async move {
                        let d = decision("eu", Isolation::Shared, Residency::Strict);
                        resolver.resolve(&tenant(i), &d).await
                    })
                })
                .collect();
            let mut results = Vec::new();
            for handle in handles {
                results.push(handle.await.unwrap());
            }
            results
        });

        let mut placed: HashMap<ShardId, u64> = HashMap::new();
        for result in results {
            match result {
                Ok(choice) => *placed.entry(choice.shard).or_default() += 1,
                Err(Error::Placement { .. }) => {}
                Err(other) => prop_assert!(false, "unexpected error {other}"),
            }
        }
        for (i, &(cap, used)) in shards.iter().enumerate() {
            let id: ShardId = format!("s{i}").parse().unwrap();
            let now = placed.get(&id).copied().unwrap_or(0);
            prop_assert!(used + now <= u64::from(cap).max(used), "s{} holds {} + {} > {}", i, used, now, cap);
            prop_assert_eq!(resolver.reserved(&id), now);
        }
        let total: u64 = placed.values().sum();
        prop_assert_eq!(total, free.min(tenants as u64));
    }
}
