//! The rules a shard an operator chose (a move, a pin) must meet, written
//! once for every resolver.

use provisioning_core::Entity;
use provisioning_core::{
    Error, PlacementDecision, Region, Residency, Result, ShardChoice, ShardId, TenantId,
};

use crate::directory::ShardDirectory;
use crate::resolver::FallbackRegions;
use crate::shard::Shard;

/// `shard` for `tenant` under `decision`, if it serves the decision's pool,
/// takes new tenants and is in a region the tenant may live in: its own, or
/// for a flexible tenant one of `fallbacks` (any region when `None`: a pin
/// is an explicit override). `why` starts every refusal
/// (`pinned to shard eu-2`, `shard eu-2`); each ends with the region and
/// pool the tenant needed.
pub(crate) fn check(
    shard: &Shard,
    tenant: &TenantId,
    decision: &PlacementDecision,
    fallbacks: Option<&FallbackRegions>,
    why: &str,
) -> Result<ShardChoice> {
    let refuse = |detail: String| Error::Placement {
        tenant: tenant.clone(),
        reason: format!("{why}{detail}"),
    };
    let (region, pool) = (&decision.region, decision.isolation);
    let allowed = |r: &Region| {
        r == region
            || (decision.residency == Residency::Flexible
                && fallbacks.is_none_or(|f| f.candidates(decision).any(|(c, _)| c == r)))
    };
    if !allowed(shard.region()) {
        let rule = match decision.residency {
            Residency::Strict => "residency is strict to",
            Residency::Flexible => "no fallback allows it; the tenant lives in",
        };
        return Err(refuse(format!(
            " in region {}, but {rule} region {region}, pool {pool}",
            shard.region()
        )));
    }
    if shard.pool() != pool {
        return Err(refuse(format!(
            " in pool {}, but the plan needs region {region}, pool {pool}",
            shard.pool()
        )));
    }
    if !shard.accepts_new_tenants() {
        return Err(refuse(format!(
            ", which is {} and takes no new tenants; the plan needs region {region}, pool {pool}",
            shard.status()
        )));
    }
    Ok(ShardChoice::new(
        shard.id().clone(),
        shard.region().clone(),
        format!("{why} chosen"),
    ))
}

/// [`check`] for the shard named `id`, which must be in `directory`.
pub(crate) fn check_id(
    directory: &ShardDirectory,
    id: &ShardId,
    tenant: &TenantId,
    decision: &PlacementDecision,
    fallbacks: &FallbackRegions,
) -> Result<ShardChoice> {
    let shard = directory.get(id).ok_or_else(|| Error::NotFound {
        kind: Entity::Shard,
        id: id.to_string(),
    })?;
    check(
        shard,
        tenant,
        decision,
        Some(fallbacks),
        &format!("shard {id}"),
    )
}
