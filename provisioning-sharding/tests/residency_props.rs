//! Property: whatever the directory, statuses, fallbacks and pins, no resolver
//! places a strict tenant outside its region, a flexible one outside its region
//! and configured fallbacks, or any tenant on a shard that takes no new tenants
//! or serves the other pool.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{block_on, spec, tenant};
use proptest::prelude::*;
use provisioning_core::{Error, Isolation, PlacementDecision, Region, Residency, ShardResolver};
use provisioning_sharding::{
    FallbackRegions, InMemoryLoad, LeastLoadedResolver, Pinned, Pins, RendezvousResolver, Shard,
    ShardDirectory, ShardStatus,
};

const REGIONS: [&str; 3] = ["eu", "us", "ap"];

fn pool(dedicated: bool) -> Isolation {
    if dedicated {
        Isolation::Dedicated
    } else {
        Isolation::Shared
    }
}

fn status(n: u8) -> ShardStatus {
    match n % 4 {
        0 | 1 => ShardStatus::Active,
        2 => ShardStatus::Draining,
        _ => ShardStatus::Full,
    }
}

/// (region index, dedicated, status, capacity) per shard.
fn shards() -> impl Strategy<Value = Vec<(usize, bool, u8, u32)>> {
    prop::collection::vec((0..3usize, any::<bool>(), any::<u8>(), 1..4u32), 0..12)
}

/// `pinned_region` is the region of the tenant's pin when the resolver honours
/// pins: an explicit pin is, for a flexible tenant, as good as a fallback.
fn check(
    shard: &Shard,
    d: &PlacementDecision,
    fallbacks: &FallbackRegions,
    pinned_region: Option<&Region>,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(shard.pool(), d.isolation);
    prop_assert!(shard.accepts_new_tenants());
    let region = shard.region();
    match d.residency {
        Residency::Strict => prop_assert_eq!(region, &d.region),
        Residency::Flexible => prop_assert!(
            region == &d.region
                || fallbacks.get(&d.region).contains(region)
                || pinned_region == Some(region)
        ),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn residency_is_never_violated(
        layout in shards(),
        tenants in prop::collection::vec((0..3usize, any::<bool>(), any::<bool>(), prop::option::of(0..12usize)), 1..20),
        fallback_from in 0..3usize,
        fallback_to in 0..3usize,
    ) {
        let dir = Arc::new(ShardDirectory::from_specs(layout.iter().enumerate().map(|(i, &(r, ded, st, cap))| {
            spec(&format!("s{i}"), REGIONS[r], pool(ded), cap).with_status(status(st))
        })).unwrap());
        let mut fallbacks = FallbackRegions::new();
        if fallback_from != fallback_to {
            fallbacks = fallbacks.with(REGIONS[fallback_from], [REGIONS[fallback_to]]).unwrap();
        }
        // Pins point anywhere, including other regions and pools: residency must still win.
        let mut pins = Pins::new();
        for (i, (_, _, _, pin)) in tenants.iter().enumerate() {
            if let Some(p) = pin.filter(|&p| p < layout.len()) {
                pins = pins.with(tenant(i), format!("s{p}").parse().unwrap());
            }
        }
        let rendezvous = RendezvousResolver::new(dir.clone()).with_fallbacks(fallbacks.clone());
        let capacity = LeastLoadedResolver::new(dir.clone(), InMemoryLoad::new()).with_fallbacks(fallbacks.clone());
        let pinned = Pinned::new(dir.clone(), pins, rendezvous.clone()).unwrap();
        let resolvers: [(&dyn ShardResolver, bool); 3] = [(&rendezvous, false), (&capacity, false), (&pinned, true)];

        for (i, &(r, ded, strict, _)) in tenants.iter().enumerate() {
            let residency = if strict { Residency::Strict } else { Residency::Flexible };
            let d = PlacementDecision::new("free".parse().unwrap(), pool(ded), REGIONS[r].parse().unwrap(), residency, "p");
            for (resolver, honours_pins) in resolvers {
                let pinned_region = pinned
                    .pin_of(&tenant(i))
                    .filter(|_| honours_pins)
                    .map(|id| dir.get(id).unwrap().region());
                match block_on(resolver.resolve(&tenant(i), &d)) {
                    Ok(choice) => {
                        let shard = dir.get(&choice.shard).unwrap();
                        prop_assert_eq!(&choice.region, shard.region());
                        check(shard, &d, &fallbacks, pinned_region)?;
                    }
                    Err(Error::Placement { tenant: who, reason }) => {
                        prop_assert_eq!(who, tenant(i));
                        prop_assert!(reason.contains(&format!("region {}", d.region)) , "{}", reason);
                        prop_assert!(reason.contains(&format!("pool {}", d.isolation)), "{}", reason);
                    }
                    Err(other) => prop_assert!(false, "unexpected error {other}"),
                }
            }
        }
    }

    /// With no pins and an empty load, a placement error means there really was
    /// no eligible shard: residency is never bought with a false "no room".
    #[test]
    fn placement_fails_only_when_no_shard_qualifies(layout in shards(), r in 0..3usize, ded in any::<bool>()) {
        let dir = Arc::new(ShardDirectory::from_specs(layout.iter().enumerate().map(|(i, &(r, ded, st, cap))| {
            spec(&format!("s{i}"), REGIONS[r], pool(ded), cap).with_status(status(st))
        })).unwrap());
        let d = PlacementDecision::new("free".parse().unwrap(), pool(ded), REGIONS[r].parse().unwrap(), Residency::Strict, "p");
        let eligible = dir.in_group(&d.region, d.isolation).any(|s| s.accepts_new_tenants());
        let resolver = RendezvousResolver::new(dir);
        prop_assert_eq!(resolver.pick(&tenant(0), &d).is_ok(), eligible);
    }
}
