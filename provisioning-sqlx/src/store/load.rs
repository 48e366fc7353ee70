//! The stores as [`LoadSource`]: how many tenants each shard holds, counted
//! in the catalog (feature `sharding`).
//!
//! A tenant counts on the shard its placement names while it has one and is
//! neither Deleted nor Failed: tenants being created, moved or deleted hold
//! their shard until they settle. Shared and dedicated tenants count alike.

use std::collections::HashMap;

use provisioning_core::{Result, ShardId};

/// `(shard, count)` rows as the map [`LoadSource`] gives. A shard name the
/// catalog holds but [`ShardId`] refuses is an error: placements are written
/// from valid ids only.
///
/// [`LoadSource`]: provisioning_sharding::LoadSource
pub(crate) fn counts(rows: Vec<(String, i64)>) -> Result<HashMap<ShardId, u64>> {
    rows.into_iter()
        .map(|(shard, n)| Ok((shard.parse()?, u64::try_from(n).unwrap_or(0))))
        .collect()
}
