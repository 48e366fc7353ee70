//! Pins first, then the policy; a pin never outranks residency, pool or status.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{block_on, decision, spec, tenant};
use provisioning_core::{Error, Isolation, Residency, ShardResolver};
use provisioning_sharding::{
    Error as ShardingError, InMemoryLoad, LeastLoadedResolver, Pinned, Pins, RendezvousResolver,
    ShardDirectory, ShardStatus,
};

fn directory() -> Arc<ShardDirectory> {
    Arc::new(
        ShardDirectory::from_specs([
            spec("eu-1", "eu", Isolation::Shared, 10),
            spec("eu-2", "eu", Isolation::Shared, 10),
            spec("eu-d", "eu", Isolation::Dedicated, 10),
            spec("us-1", "us", Isolation::Shared, 10),
        ])
        .unwrap(),
    )
}

fn pinned(pins: Pins) -> Pinned<RendezvousResolver> {
    let dir = directory();
    Pinned::new(dir.clone(), pins, RendezvousResolver::new(dir)).unwrap()
}

#[test]
fn pinned_tenants_go_to_their_shard_and_others_to_the_policy() {
    let d = decision("eu", Isolation::Shared, Residency::Strict);
    let plain = RendezvousResolver::new(directory());
    // Pin tenant 1 to whichever eu shard the hash would not pick.
    let hashed = plain.pick(&tenant(1), &d).unwrap().shard.id().clone();
    let other = if hashed.as_str() == "eu-1" {
        "eu-2"
    } else {
        "eu-1"
    };
    let resolver = pinned(Pins::new().with(tenant(1), other.parse().unwrap()));

    let choice = block_on(resolver.resolve(&tenant(1), &d)).unwrap();
    assert_eq!(choice.shard.as_str(), other);
    assert_eq!(choice.reason, format!("pinned to shard {other}"));
    for i in 2..50 {
        let choice = block_on(resolver.resolve(&tenant(i), &d)).unwrap();
        assert_eq!(
            &choice.shard,
            plain.pick(&tenant(i), &d).unwrap().shard.id()
        );
    }
    assert_eq!(resolver.pin_of(&tenant(1)).unwrap().as_str(), other);
    assert!(resolver.pin_of(&tenant(2)).is_none());
}

#[test]
fn a_pin_outside_a_strict_tenants_region_is_refused() {
    let resolver = pinned(Pins::new().with(tenant(1), "us-1".parse().unwrap()));
    let err = block_on(resolver.resolve(
        &tenant(1),
        &decision("eu", Isolation::Shared, Residency::Strict),
    ))
    .unwrap_err();
    assert!(matches!(err, Error::Placement { .. }));
    assert_eq!(
        err.to_string(),
        "no placement for tenant tenant-1: pinned to shard us-1 in region us, \
         but residency is strict to region eu, pool shared"
    );
    // A flexible tenant may follow its explicit pin.
    let choice = block_on(resolver.resolve(
        &tenant(1),
        &decision("eu", Isolation::Shared, Residency::Flexible),
    ))
    .unwrap();
    assert_eq!(
        (choice.shard.as_str(), choice.region.as_str()),
        ("us-1", "us")
    );
}

#[test]
fn a_pin_to_the_wrong_pool_or_a_draining_shard_is_refused() {
    let dir = directory();
    let resolver = Pinned::new(
        dir.clone(),
        Pins::new().with(tenant(1), "eu-1".parse().unwrap()),
        RendezvousResolver::new(dir.clone()),
    )
    .unwrap();
    let err = block_on(resolver.resolve(
        &tenant(1),
        &decision("eu", Isolation::Dedicated, Residency::Strict),
    ))
    .unwrap_err();
    assert!(
        err.to_string().ends_with(
            "pinned to shard eu-1 in pool shared, but the plan needs region eu, pool dedicated"
        ),
        "{err}"
    );

    dir.set_status(&"eu-1".parse().unwrap(), ShardStatus::Draining)
        .unwrap();
    let err = block_on(resolver.resolve(
        &tenant(1),
        &decision("eu", Isolation::Shared, Residency::Strict),
    ))
    .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("eu-1, which is draining and takes no new tenants; the plan needs region eu, pool shared"),
        "{err}"
    );
}

#[test]
fn a_pin_to_an_unknown_shard_fails_at_construction() {
    let dir = directory();
    let err = Pinned::new(
        dir.clone(),
        Pins::new().with(tenant(1), "nope".parse().unwrap()),
        RendezvousResolver::new(dir),
    )
    .unwrap_err();
    assert!(
        matches!(err, ShardingError::UnknownShard { ref shard, field: "pins" } if shard == "nope")
    );
}

#[test]
fn pins_compose_with_the_capacity_resolver_and_bypass_its_ledger() {
    let dir = directory();
    let inner = LeastLoadedResolver::new(dir.clone(), InMemoryLoad::new());
    let resolver = Pinned::new(
        dir,
        Pins::new().with(tenant(1), "eu-d".parse().unwrap()),
        inner,
    )
    .unwrap();
    let shared = decision("eu", Isolation::Shared, Residency::Strict);
    let dedicated = decision("eu", Isolation::Dedicated, Residency::Strict);
    block_on(async {
        let pinned = resolver.resolve(&tenant(1), &dedicated).await.unwrap();
        assert_eq!(pinned.shard.as_str(), "eu-d");
        assert_eq!(resolver.inner().reserved(&pinned.shard), 0);
        let other = resolver.resolve(&tenant(2), &shared).await.unwrap();
        assert_eq!(resolver.inner().reserved(&other.shard), 1);
        resolver.release(&tenant(2), &other.shard).await.unwrap();
        resolver.release(&tenant(1), &pinned.shard).await.unwrap();
        assert_eq!(resolver.inner().reserved(&other.shard), 0);
    });
}

#[test]
fn pins_load_from_toml() {
    let pins: Pins = toml::from_str("tenant-1 = \"eu-2\"\n").unwrap();
    let resolver = pinned(pins);
    let choice = block_on(resolver.resolve(
        &tenant(1),
        &decision("eu", Isolation::Shared, Residency::Strict),
    ))
    .unwrap();
    assert_eq!(choice.shard.as_str(), "eu-2");
    assert!(toml::from_str::<Pins>("Bad = \"eu-2\"\n").is_err());
}
