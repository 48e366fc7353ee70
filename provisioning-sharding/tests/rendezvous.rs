//! Rendezvous placement: stable, even, residency-respecting, skipping draining
//! and full shards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::{block_on, decision, spec, tenant, uniform};
use provisioning_core::{Error, Isolation, Residency, ShardResolver};
use provisioning_sharding::{FallbackRegions, RendezvousResolver, ShardDirectory, ShardStatus};

#[test]
fn same_tenant_same_shard_across_resolvers() {
    let d = decision("eu", Isolation::Shared, Residency::Strict);
    let a = RendezvousResolver::new(uniform("eu", 10));
    let b = RendezvousResolver::new(uniform("eu", 10));
    for i in 0..200 {
        let t = tenant(i);
        assert_eq!(
            a.pick(&t, &d).unwrap().shard.id(),
            b.pick(&t, &d).unwrap().shard.id()
        );
    }
    // Pinned value: placement is a data format; if this moves, every tenant moves.
    assert_eq!(
        a.pick(&"acme".parse().unwrap(), &d)
            .unwrap()
            .shard
            .id()
            .as_str(),
        "s8"
    );
}

#[test]
fn tenants_spread_evenly() {
    let resolver = RendezvousResolver::new(uniform("eu", 10));
    let d = decision("eu", Isolation::Shared, Residency::Strict);
    let mut counts: HashMap<String, usize> = HashMap::new();
    for i in 0..10_000 {
        *counts
            .entry(
                resolver
                    .pick(&tenant(i), &d)
                    .unwrap()
                    .shard
                    .id()
                    .to_string(),
            )
            .or_default() += 1;
    }
    assert_eq!(counts.len(), 10);
    for (shard, count) in counts {
        assert!(
            (850..=1150).contains(&count),
            "{shard} got {count} of 10000"
        );
    }
}

#[test]
fn capacity_weights_the_share() {
    let dir = Arc::new(
        ShardDirectory::from_specs([
            spec("small", "eu", Isolation::Shared, 100),
            spec("big", "eu", Isolation::Shared, 300),
        ])
        .unwrap(),
    );
    let resolver = RendezvousResolver::new(dir);
    let d = decision("eu", Isolation::Shared, Residency::Strict);
    let big = (0..8000)
        .filter(|&i| resolver.pick(&tenant(i), &d).unwrap().shard.id().as_str() == "big")
        .count();
    assert!(
        (5700..=6300).contains(&big),
        "big got {big} of 8000, expected ~6000"
    );
}

#[test]
fn draining_and_full_shards_get_no_new_tenants_and_only_theirs_move() {
    let dir = uniform("eu", 5);
    let resolver = RendezvousResolver::new(dir.clone());
    let d = decision("eu", Isolation::Shared, Residency::Strict);
    let before: Vec<_> = (0..1000)
        .map(|i| resolver.pick(&tenant(i), &d).unwrap().shard.id().clone())
        .collect();
    dir.set_status(&"s1".parse().unwrap(), ShardStatus::Draining)
        .unwrap();
    dir.set_status(&"s3".parse().unwrap(), ShardStatus::Full)
        .unwrap();
    for (i, old) in before.iter().enumerate() {
        let now = resolver.pick(&tenant(i), &d).unwrap();
        assert!(now.shard.accepts_new_tenants());
        if old.as_str() != "s1" && old.as_str() != "s3" {
            assert_eq!(now.shard.id(), old, "tenant {i} moved without cause");
        }
    }
}

#[test]
fn no_eligible_shard_is_a_placement_error_naming_region_and_pool() {
    let dir = Arc::new(
        ShardDirectory::from_specs([
            spec("eu-1", "eu", Isolation::Shared, 10),
            spec("eu-d", "eu", Isolation::Dedicated, 10).with_status(ShardStatus::Draining),
            spec("us-d", "us", Isolation::Dedicated, 10),
        ])
        .unwrap(),
    );
    let resolver = RendezvousResolver::new(dir);
    let err = block_on(resolver.resolve(
        &tenant(1),
        &decision("eu", Isolation::Dedicated, Residency::Strict),
    ))
    .unwrap_err();
    let Error::Placement {
        tenant: who,
        reason,
    } = err
    else {
        panic!("not a placement error")
    };
    assert_eq!(who, tenant(1));
    assert_eq!(
        reason,
        "no active shard in region eu, pool dedicated (1 shard: 0 active, 1 draining, 0 full)"
    );
    let err = block_on(resolver.resolve(
        &tenant(1),
        &decision("ap", Isolation::Shared, Residency::Flexible),
    ))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no placement for tenant tenant-1: no active shard in region ap, pool shared (no shards)"
    );
}

#[test]
fn fallback_regions_serve_flexible_tenants_only() {
    let dir = Arc::new(
        ShardDirectory::from_specs([
            spec("eu-1", "eu", Isolation::Shared, 10).with_status(ShardStatus::Full),
            spec("us-1", "us", Isolation::Shared, 10),
        ])
        .unwrap(),
    );
    let resolver = RendezvousResolver::new(dir)
        .with_fallbacks(FallbackRegions::new().with("eu", ["us"]).unwrap());

    let choice = block_on(resolver.resolve(
        &tenant(1),
        &decision("eu", Isolation::Shared, Residency::Flexible),
    ))
    .unwrap();
    assert_eq!(
        (choice.shard.as_str(), choice.region.as_str()),
        ("us-1", "us")
    );
    assert_eq!(
        choice.reason,
        "rendezvous hash in region us, pool shared (fallback from eu)"
    );

    let err = block_on(resolver.resolve(
        &tenant(1),
        &decision("eu", Isolation::Shared, Residency::Strict),
    ))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no placement for tenant tenant-1: no active shard in region eu, pool shared \
         (1 shard: 0 active, 0 draining, 1 full); residency is strict, so fallback regions us were not considered"
    );
}

#[test]
fn without_configured_fallbacks_flexible_tenants_stay_home() {
    let dir =
        Arc::new(ShardDirectory::from_specs([spec("us-1", "us", Isolation::Shared, 10)]).unwrap());
    let resolver = RendezvousResolver::new(dir);
    let err = resolver
        .pick(
            &tenant(1),
            &decision("eu", Isolation::Shared, Residency::Flexible),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Placement { .. }));
}

#[test]
fn resolve_reason_says_how() {
    let resolver = RendezvousResolver::new(uniform("eu", 3));
    let choice = block_on(resolver.resolve(
        &tenant(1),
        &decision("eu", Isolation::Shared, Residency::Strict),
    ))
    .unwrap();
    assert_eq!(choice.reason, "rendezvous hash in region eu, pool shared");
    assert_eq!(choice.region.as_str(), "eu");
}
