//! Property: adding one shard to a group of n moves about 1/(n+1) of its
//! tenants, always onto the new shard, and never more than about 2/n.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{decision, spec, tenant};
use proptest::prelude::*;
use provisioning_core::{Isolation, Residency};
use provisioning_sharding::{RendezvousResolver, ShardDirectory};

const TENANTS: usize = 2000;

fn directory(n: usize, seed: u32) -> Arc<ShardDirectory> {
    Arc::new(
        ShardDirectory::from_specs(
            (0..n).map(|i| spec(&format!("g{seed}-s{i}"), "eu", Isolation::Shared, 100)),
        )
        .unwrap(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn adding_a_shard_moves_at_most_about_two_over_n(n in 1usize..60, seed in any::<u32>()) {
        let before = RendezvousResolver::new(directory(n, seed));
        let after = RendezvousResolver::new(directory(n + 1, seed));
        let new_shard = format!("g{seed}-s{n}");
        let d = decision("eu", Isolation::Shared, Residency::Strict);
        let mut moved = 0usize;
        for i in 0..TENANTS {
            let old = before.pick(&tenant(i), &d).unwrap().shard.id().clone();
            let now = after.pick(&tenant(i), &d).unwrap().shard.id().clone();
            if old != now {
                moved += 1;
                // Rendezvous: a tenant only moves to the shard that was added.
                prop_assert_eq!(now.as_str(), new_shard.as_str());
            }
        }
        let bound = 2.0 * TENANTS as f64 / n as f64;
        prop_assert!((moved as f64) <= bound.max(40.0), "moved {} of {} with n = {}", moved, TENANTS, n);
        // And not suspiciously few: the new shard takes its share.
        let expected = TENANTS as f64 / (n + 1) as f64;
        prop_assert!((moved as f64) >= expected / 2.0, "moved {} of {}, expected about {}", moved, TENANTS, expected);
    }
}
