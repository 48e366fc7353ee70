//! [`RendezvousResolver`]: stable placement by highest-random-weight hashing.

use std::sync::Arc;

use async_trait::async_trait;
use provisioning_core::{PlacementDecision, Result, ShardChoice, ShardId, ShardResolver, TenantId};

use crate::directory::{Group, ShardDirectory};
use crate::hash::{mix, stable_hash, weighted};
use crate::resolver::chosen;
use crate::resolver::fallback::{FallbackRegions, no_placement};
use crate::shard::Shard;

/// A shard chosen by [`RendezvousResolver::pick`], borrowed from the directory.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Pick<'a> {
    /// The chosen shard.
    pub shard: &'a Shard,
    /// Whether the shard is in a fallback region rather than the tenant's own.
    pub fallback: bool,
}

/// Places each tenant on the active shard of its region and pool with the
/// highest rendezvous score for (tenant, shard).
///
/// - **Stable**: the same tenant maps to the same shard for as long as that shard
///   is active, across processes and releases (fixed-key SipHash, not std's hasher).
/// - **Minimal movement**: adding a shard to a group of `n` moves only the tenants
///   the new shard now wins, about `1/(n+1)` of them; removing or draining a shard
///   moves only its own tenants.
/// - **Capacity-weighted**: when a group's shards have different capacities each
///   wins a share of tenants proportional to its capacity. Counts are not
///   checked: use [`LeastLoadedResolver`](crate::LeastLoadedResolver) to enforce them.
/// - **Residency**: only the tenant's region is searched, then, for a
///   [`Residency::Flexible`](provisioning_core::Residency::Flexible) tenant only,
///   the configured [`FallbackRegions`] in order. No active shard is
///   [`Error::Placement`](provisioning_core::Error::Placement) naming region and pool.
///
/// Resolution scans one (region, pool) group and allocates nothing until it
/// builds the returned [`ShardChoice`].
///
/// ```
/// use std::sync::Arc;
/// use provisioning_core::{Isolation, PlacementDecision, Residency, ShardResolver};
/// use provisioning_sharding::{RendezvousResolver, ShardDirectory, ShardSpec};
///
/// let shard = |id: &str| ShardSpec::new(id).with_region("eu-west").with_capacity(100)
///     .with_connection("postgres://app@db/tenants");
/// let directory = Arc::new(ShardDirectory::from_specs([shard("eu-1"), shard("eu-2"), shard("eu-3")])?);
/// let resolver = RendezvousResolver::new(directory);
///
/// let decision = PlacementDecision::new(
///     "free".parse()?, Isolation::Shared, "eu-west".parse()?, Residency::Strict, "free is shared",
/// );
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let first = resolver.resolve(&"acme".parse()?, &decision).await?;
/// let again = resolver.resolve(&"acme".parse()?, &decision).await?;
/// assert_eq!(first.shard, again.shard);
/// assert_eq!(first.region.as_str(), "eu-west");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct RendezvousResolver {
    directory: Arc<ShardDirectory>,
    fallbacks: FallbackRegions,
}

impl RendezvousResolver {
    /// A resolver over `directory` with no fallback regions.
    pub fn new(directory: Arc<ShardDirectory>) -> Self {
        RendezvousResolver {
            directory,
            fallbacks: FallbackRegions::new(),
        }
    }

    /// Lets flexible tenants use these fallback regions when their own has no
    /// active shard.
    #[must_use]
    pub fn with_fallbacks(mut self, fallbacks: FallbackRegions) -> Self {
        self.fallbacks = fallbacks;
        self
    }

    /// The directory it places on.
    pub fn directory(&self) -> &Arc<ShardDirectory> {
        &self.directory
    }

    /// The shard for `tenant`, without allocating on success.
    ///
    /// # Errors
    /// [`Error::Placement`](provisioning_core::Error::Placement) naming the region
    /// and pool (and each fallback tried) when no active shard qualifies.
    pub fn pick(&self, tenant: &TenantId, decision: &PlacementDecision) -> Result<Pick<'_>> {
        let tenant_hash = stable_hash(tenant.as_str());
        for (region, fallback) in self.fallbacks.candidates(decision) {
            let Some(group) = self.directory.group(region, decision.isolation) else {
                continue;
            };
            if let Some(index) = best(&self.directory, group, tenant_hash) {
                return Ok(Pick {
                    shard: self.directory.shard_at(index),
                    fallback,
                });
            }
        }
        Err(no_placement(
            tenant,
            decision,
            &self.fallbacks,
            "no active shard",
            |region| self.directory.describe_group(region, decision.isolation),
        ))
    }
}

/// The active member of `group` with the highest score for `tenant_hash`.
/// Ties keep the lowest id, so the result depends on nothing but the ids.
///
/// A shard's live status is only read when its score would win: about ln(n)
/// reads per scan instead of n, and the scan stays in the packed members.
pub(crate) fn best(directory: &ShardDirectory, group: &Group, tenant_hash: u64) -> Option<usize> {
    let accepts = |index: usize| directory.shard_at(index).accepts_new_tenants();
    let mut best = None;
    if group.uniform {
        // Equal weights: comparing raw scores gives the same order as the
        // weighted formula and skips a logarithm per shard.
        let mut top = 0u64;
        for member in &group.members {
            let score = mix(tenant_hash, member.seed);
            if (best.is_none() || score > top) && accepts(member.index) {
                (best, top) = (Some(member.index), score);
            }
        }
    } else {
        let mut top = 0f64;
        for member in &group.members {
            let score = weighted(mix(tenant_hash, member.seed), member.capacity);
            if (best.is_none() || score > top) && accepts(member.index) {
                (best, top) = (Some(member.index), score);
            }
        }
    }
    best
}

#[async_trait]
impl ShardResolver for RendezvousResolver {
    async fn resolve(
        &self,
        tenant: &TenantId,
        decision: &PlacementDecision,
    ) -> Result<ShardChoice> {
        let pick = self.pick(tenant, decision)?;
        let shard = pick.shard;
        // Built by hand rather than with `format!`: this is on the hot path.
        let mut reason = String::with_capacity(64);
        reason.push_str("rendezvous hash in region ");
        reason.push_str(shard.region().as_str());
        reason.push_str(", pool ");
        reason.push_str(decision.isolation.as_str());
        if pick.fallback {
            reason.push_str(" (fallback from ");
            reason.push_str(decision.region.as_str());
            reason.push(')');
        }
        Ok(ShardChoice::new(
            shard.id().clone(),
            shard.region().clone(),
            reason,
        ))
    }

    async fn resolve_on(
        &self,
        tenant: &TenantId,
        decision: &PlacementDecision,
        shard: &ShardId,
    ) -> Result<ShardChoice> {
        chosen::check_id(&self.directory, shard, tenant, decision, &self.fallbacks)
    }
}
