//! Least-loaded placement: fills the emptiest shard, never past capacity,
//! reserves and releases.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{block_on, decision, spec, tenant};
use provisioning_core::{Error, Isolation, Residency, ShardId, ShardResolver};
use provisioning_sharding::{
    FallbackRegions, InMemoryLoad, LeastLoadedResolver, ShardDirectory, ShardStatus,
};

fn id(s: &str) -> ShardId {
    s.parse().unwrap()
}

fn directory() -> Arc<ShardDirectory> {
    Arc::new(
        ShardDirectory::from_specs([
            spec("a", "eu", Isolation::Shared, 10),
            spec("b", "eu", Isolation::Shared, 10),
            spec("c", "eu", Isolation::Shared, 20),
        ])
        .unwrap(),
    )
}

#[test]
fn picks_the_lowest_fill_fraction() {
    // a: 5/10, b: 3/10, c: 8/20 -> b (0.3) before c (0.4) before a (0.5).
    let load = InMemoryLoad::new()
        .with_count(&id("a"), 5)
        .with_count(&id("b"), 3)
        .with_count(&id("c"), 8);
    let resolver = LeastLoadedResolver::new(directory(), load);
    let d = decision("eu", Isolation::Shared, Residency::Strict);
    let choice = block_on(resolver.resolve(&tenant(1), &d)).unwrap();
    assert_eq!(choice.shard.as_str(), "b");
    assert_eq!(choice.reason, "least-loaded shared shard in eu");
    assert_eq!(resolver.reserved(&id("b")), 1);
}

#[test]
fn fills_to_capacity_exactly_then_fails_with_region_and_pool() {
    let resolver = LeastLoadedResolver::new(directory(), InMemoryLoad::new());
    let d = decision("eu", Isolation::Shared, Residency::Strict);
    let placed = block_on(async {
        let mut placed = Vec::new();
        for i in 0..40 {
            placed.push(resolver.resolve(&tenant(i), &d).await.unwrap().shard);
        }
        placed
    });
    for (shard, capacity) in [("a", 10), ("b", 10), ("c", 20)] {
        assert_eq!(
            placed.iter().filter(|s| s.as_str() == shard).count(),
            capacity
        );
    }
    let err = block_on(resolver.resolve(&tenant(40), &d)).unwrap_err();
    assert!(matches!(err, Error::Placement { .. }));
    assert_eq!(
        err.to_string(),
        "no placement for tenant tenant-40: no shard with room in region eu, pool shared \
         (3 shards: 3 active, 0 draining, 0 full; 3 active at capacity)"
    );
}

#[test]
fn same_tenant_resolves_to_its_reservation() {
    let resolver = LeastLoadedResolver::new(directory(), InMemoryLoad::new());
    let d = decision("eu", Isolation::Shared, Residency::Strict);
    let first = block_on(resolver.resolve(&tenant(1), &d)).unwrap();
    let again = block_on(resolver.resolve(&tenant(1), &d)).unwrap();
    assert_eq!(first.shard, again.shard);
    assert_eq!(
        again.reason,
        format!("already reserved on shared shard in eu")
    );
    let total: u64 = ["a", "b", "c"]
        .iter()
        .map(|s| resolver.reserved(&id(s)))
        .sum();
    assert_eq!(total, 1);
}

#[test]
fn release_gives_room_back_and_is_idempotent() {
    let dir =
        Arc::new(ShardDirectory::from_specs([spec("a", "eu", Isolation::Shared, 1)]).unwrap());
    let resolver = LeastLoadedResolver::new(dir, InMemoryLoad::new());
    let d = decision("eu", Isolation::Shared, Residency::Strict);
    block_on(async {
        let first = resolver.resolve(&tenant(1), &d).await.unwrap();
        assert!(resolver.resolve(&tenant(2), &d).await.is_err());
        // Releasing another shard or another tenant gives nothing back.
        resolver.release(&tenant(1), &id("zz")).await.unwrap();
        resolver.release(&tenant(2), &first.shard).await.unwrap();
        assert_eq!(resolver.reserved(&first.shard), 1);
        resolver.release(&tenant(1), &first.shard).await.unwrap();
        resolver.release(&tenant(1), &first.shard).await.unwrap();
        assert_eq!(resolver.reserved(&first.shard), 0);
        assert_eq!(
            resolver.resolve(&tenant(2), &d).await.unwrap().shard,
            first.shard
        );
    });
}

#[test]
fn confirm_hands_counting_over_to_the_load_source() {
    let dir =
        Arc::new(ShardDirectory::from_specs([spec("a", "eu", Isolation::Shared, 2)]).unwrap());
    let load = Arc::new(InMemoryLoad::new());
    let resolver = LeastLoadedResolver::new(dir, load.clone());
    let d = decision("eu", Isolation::Shared, Residency::Strict);
    block_on(async {
        resolver.resolve(&tenant(1), &d).await.unwrap();
        load.add(&id("a"), 1); // the catalog now records tenant 1
        assert!(resolver.confirm(&tenant(1)));
        assert!(!resolver.confirm(&tenant(1)));
        resolver.resolve(&tenant(2), &d).await.unwrap();
        assert!(resolver.resolve(&tenant(3), &d).await.is_err());
    });
}

#[test]
fn reservations_expire_after_their_ttl() {
    let dir =
        Arc::new(ShardDirectory::from_specs([spec("a", "eu", Isolation::Shared, 1)]).unwrap());
    let resolver = LeastLoadedResolver::new(dir, InMemoryLoad::new())
        .with_reservation_ttl(Duration::from_millis(20));
    let d = decision("eu", Isolation::Shared, Residency::Strict);
    block_on(async {
        resolver.resolve(&tenant(1), &d).await.unwrap();
        assert!(resolver.resolve(&tenant(2), &d).await.is_err());
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(resolver.reserved(&id("a")), 0);
        assert_eq!(
            resolver
                .resolve(&tenant(2), &d)
                .await
                .unwrap()
                .shard
                .as_str(),
            "a"
        );
    });
}

#[test]
fn draining_shards_and_other_pools_are_skipped() {
    let dir = Arc::new(
        ShardDirectory::from_specs([
            spec("a", "eu", Isolation::Shared, 100).with_status(ShardStatus::Draining),
            spec("b", "eu", Isolation::Shared, 1),
            spec("d", "eu", Isolation::Dedicated, 100),
        ])
        .unwrap(),
    );
    let resolver = LeastLoadedResolver::new(dir, InMemoryLoad::new());
    let d = decision("eu", Isolation::Shared, Residency::Strict);
    assert_eq!(
        block_on(resolver.resolve(&tenant(1), &d))
            .unwrap()
            .shard
            .as_str(),
        "b"
    );
    let err = block_on(resolver.resolve(&tenant(2), &d)).unwrap_err();
    assert!(
        err.to_string()
            .contains("(2 shards: 1 active, 1 draining, 0 full; 1 active at capacity)"),
        "{err}"
    );
}

#[test]
fn flexible_tenants_overflow_to_configured_fallbacks_only() {
    let dir = Arc::new(
        ShardDirectory::from_specs([
            spec("eu-1", "eu", Isolation::Shared, 1),
            spec("us-1", "us", Isolation::Shared, 5),
        ])
        .unwrap(),
    );
    let resolver = LeastLoadedResolver::new(dir, InMemoryLoad::new().with_count(&id("eu-1"), 1))
        .with_fallbacks(FallbackRegions::new().with("eu", ["us"]).unwrap());
    let flexible = decision("eu", Isolation::Shared, Residency::Flexible);
    let strict = decision("eu", Isolation::Shared, Residency::Strict);
    let choice = block_on(resolver.resolve(&tenant(1), &flexible)).unwrap();
    assert_eq!(
        (choice.shard.as_str(), choice.region.as_str()),
        ("us-1", "us")
    );
    assert_eq!(
        choice.reason,
        "least-loaded shared shard in us (fallback from eu)"
    );
    // A strict tenant holding no reservation never leaves eu.
    let err = block_on(resolver.resolve(&tenant(2), &strict)).unwrap_err();
    assert!(err.to_string().contains("residency is strict"), "{err}");
    // Nor does a strict retry of a tenant whose flexible reservation is elsewhere.
    assert!(block_on(resolver.resolve(&tenant(1), &strict)).is_err());
}

#[test]
fn a_failing_load_source_fails_the_resolution_and_reserves_nothing() {
    struct Down;
    #[async_trait::async_trait]
    impl provisioning_sharding::LoadSource for Down {
        async fn tenant_counts(
            &self,
        ) -> provisioning_core::Result<std::collections::HashMap<ShardId, u64>> {
            Err(Error::Backend {
                component: "catalog",
                message: "down".into(),
                transient: true,
                source: None,
            })
        }
    }
    let resolver = LeastLoadedResolver::new(directory(), Down);
    let err = block_on(resolver.resolve(
        &tenant(1),
        &decision("eu", Isolation::Shared, Residency::Strict),
    ))
    .unwrap_err();
    assert!(err.is_transient());
    assert_eq!(
        resolver.reserved(&id("a")) + resolver.reserved(&id("b")) + resolver.reserved(&id("c")),
        0
    );
}

#[test]
fn preview_picks_like_resolve_but_reserves_nothing() {
    let load = InMemoryLoad::new()
        .with_count(&id("a"), 5)
        .with_count(&id("c"), 8);
    let resolver = LeastLoadedResolver::new(directory(), load);
    let d = decision("eu", Isolation::Shared, Residency::Strict);
    let previewed = block_on(resolver.preview(&tenant(1), &d)).unwrap();
    let previewed_again = block_on(resolver.preview(&tenant(1), &d)).unwrap();
    assert_eq!(previewed.shard.as_str(), "b");
    assert_eq!(previewed_again, previewed);
    let total: u64 = ["a", "b", "c"]
        .iter()
        .map(|s| resolver.reserved(&id(s)))
        .sum();
    assert_eq!(total, 0, "a dry run reserves nothing");
    let resolved = block_on(resolver.resolve(&tenant(1), &d)).unwrap();
    assert_eq!(resolved.shard, previewed.shard);
    assert_eq!(resolver.reserved(&id("b")), 1);
}

#[test]
fn a_chosen_shard_is_reserved_so_two_moves_cannot_take_its_last_slot() {
    // a: 9 of 10 tenants; two tenants are moved onto it at once.
    let resolver =
        LeastLoadedResolver::new(directory(), InMemoryLoad::new().with_count(&id("a"), 9));
    let d = decision("eu", Isolation::Shared, Residency::Strict);
    // A dry run reserves nothing.
    block_on(resolver.preview_on(&tenant(1), &d, &id("a"))).unwrap();
    assert_eq!(resolver.reserved(&id("a")), 0);
    let first = block_on(resolver.resolve_on(&tenant(1), &d, &id("a"))).unwrap();
    assert_eq!(first.shard.as_str(), "a");
    assert_eq!(resolver.reserved(&id("a")), 1);
    // The same tenant again holds the same slot.
    block_on(resolver.resolve_on(&tenant(1), &d, &id("a"))).unwrap();
    assert_eq!(resolver.reserved(&id("a")), 1);
    let err = block_on(resolver.resolve_on(&tenant(2), &d, &id("a"))).unwrap_err();
    assert!(
        err.to_string()
            .contains("shard a is full (10 of 10 tenants)"),
        "{err}"
    );
    // A rolled-back move gives the slot back.
    block_on(resolver.release(&tenant(1), &id("a"))).unwrap();
    block_on(resolver.resolve_on(&tenant(2), &d, &id("a"))).unwrap();
    let err = block_on(resolver.resolve_on(&tenant(3), &d, &id("nowhere"))).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}
