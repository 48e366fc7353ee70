//! [`LeastLoadedResolver`]: capacity-aware placement with reservations.

use provisioning_core::Entity;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use provisioning_core::{
    Error, PlacementDecision, Result, ShardChoice, ShardId, ShardResolver, TenantId,
};

use crate::directory::ShardDirectory;
use crate::hash::{mix, stable_hash};
use crate::resolver::chosen;
use crate::resolver::fallback::{FallbackRegions, no_placement};
use crate::resolver::load::LoadSource;

/// How long a reservation counts by default: long enough for the orchestrator
/// to record the placement in the catalog, after which the load source counts it.
pub const DEFAULT_RESERVATION_TTL: Duration = Duration::from_secs(300);

/// Places each tenant on the least-loaded active shard of its region and pool
/// that has room, and never past a shard's capacity.
///
/// Load is `tenants from the LoadSource + reservations`, compared as a fraction
/// of capacity; ties go to the tenant's rendezvous favourite, so equal shards
/// still spread tenants evenly. A placement is reserved as soon as `resolve`
/// returns, under one lock with the capacity check, so concurrent resolutions
/// can never overfill a shard (within this resolver: several processes need the
/// catalog to enforce capacity too).
///
/// A reservation lasts until [`ShardResolver::release`] (rollback, delete),
/// [`LeastLoadedResolver::confirm`] (the load source now counts the tenant),
/// or its time to live. While both the source and the reservation count a
/// tenant, the shard looks fuller than it is: placement errs on the side of
/// room. Resolving a tenant that holds a reservation returns the same shard,
/// so a retry after a crash is idempotent.
///
/// Residency is as for [`RendezvousResolver`](crate::RendezvousResolver): the
/// tenant's region, then configured fallbacks for flexible tenants only.
///
/// ```
/// use std::sync::Arc;
/// use provisioning_core::{Error, Isolation, PlacementDecision, Residency, ShardResolver};
/// use provisioning_sharding::{InMemoryLoad, LeastLoadedResolver, ShardDirectory, ShardSpec};
///
/// let shard = |id: &str| ShardSpec::new(id).with_region("eu-west").with_capacity(2)
///     .with_connection("postgres://app@db/tenants");
/// let directory = Arc::new(ShardDirectory::from_specs([shard("eu-1"), shard("eu-2")])?);
/// let load = InMemoryLoad::new().with_count(&"eu-1".parse()?, 2); // eu-1 is full
/// let resolver = LeastLoadedResolver::new(directory, load);
///
/// let decision = PlacementDecision::new(
///     "free".parse()?, Isolation::Shared, "eu-west".parse()?, Residency::Strict, "free",
/// );
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let a = resolver.resolve(&"tenant-a".parse()?, &decision).await?;
/// let b = resolver.resolve(&"tenant-b".parse()?, &decision).await?;
/// assert_eq!((a.shard.as_str(), b.shard.as_str()), ("eu-2", "eu-2"));
/// let err = resolver.resolve(&"tenant-c".parse()?, &decision).await.unwrap_err();
/// assert!(matches!(err, Error::Placement { .. }));
/// assert!(err.to_string().contains("region eu-west, pool shared"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct LeastLoadedResolver<L> {
    directory: Arc<ShardDirectory>,
    load: L,
    fallbacks: FallbackRegions,
    ttl: Duration,
    ledger: Mutex<Ledger>,
}

/// Reservations: per tenant (for idempotency and release) and per shard (for
/// the capacity check), always updated together.
#[derive(Debug, Default)]
struct Ledger {
    by_tenant: HashMap<TenantId, Reservation>,
    /// Indexed like the directory's shards.
    per_shard: Vec<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Reservation {
    shard: usize,
    at: Instant,
}

impl Ledger {
    fn reserve(&mut self, tenant: &TenantId, shard: usize, now: Instant) {
        if let Some(old) = self
            .by_tenant
            .insert(tenant.clone(), Reservation { shard, at: now })
        {
            self.per_shard[old.shard] -= 1;
        }
        self.per_shard[shard] += 1;
    }

    fn remove(&mut self, tenant: &TenantId) -> Option<usize> {
        let old = self.by_tenant.remove(tenant)?;
        self.per_shard[old.shard] -= 1;
        Some(old.shard)
    }

    fn expire(&mut self, now: Instant, ttl: Duration) {
        let per_shard = &mut self.per_shard;
        self.by_tenant.retain(|_, r| {
            let live = now.duration_since(r.at) < ttl;
            if !live {
                per_shard[r.shard] -= 1;
            }
            live
        });
    }
}

impl<L: LoadSource> LeastLoadedResolver<L> {
    /// A resolver over `directory` reading counts from `load`, with no fallback
    /// regions and a [`DEFAULT_RESERVATION_TTL`].
    pub fn new(directory: Arc<ShardDirectory>, load: L) -> Self {
        let ledger = Ledger {
            by_tenant: HashMap::new(),
            per_shard: vec![0; directory.len()],
        };
        LeastLoadedResolver {
            directory,
            load,
            fallbacks: FallbackRegions::new(),
            ttl: DEFAULT_RESERVATION_TTL,
            ledger: Mutex::new(ledger),
        }
    }

    /// Lets flexible tenants use these fallback regions when their own has no room.
    #[must_use]
    pub fn with_fallbacks(mut self, fallbacks: FallbackRegions) -> Self {
        self.fallbacks = fallbacks;
        self
    }

    /// How long a reservation counts before the load source is trusted to count
    /// the tenant. Set it above the time from `resolve` to the catalog write.
    #[must_use]
    pub fn with_reservation_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The load source.
    pub fn load_source(&self) -> &L {
        &self.load
    }

    /// Drops `tenant`'s reservation because the load source now counts it.
    /// Returns whether there was one.
    pub fn confirm(&self, tenant: &TenantId) -> bool {
        self.ledger().remove(tenant).is_some()
    }

    /// How many reservations `shard` holds now.
    pub fn reserved(&self, shard: &ShardId) -> u64 {
        let now = Instant::now();
        let mut ledger = self.ledger();
        ledger.expire(now, self.ttl);
        self.directory
            .index_of(shard)
            .map_or(0, |i| ledger.per_shard[i])
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        // Ledger updates are a few arithmetic writes that cannot panic between
        // them, so a lock poisoned elsewhere still guards consistent counts.
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The reservation `tenant` already holds, if it still fits `decision`.
    fn existing(
        &self,
        ledger: &Ledger,
        tenant: &TenantId,
        decision: &PlacementDecision,
    ) -> Option<usize> {
        let reservation = ledger.by_tenant.get(tenant)?;
        let shard = self.directory.shard_at(reservation.shard);
        let fits = shard.pool() == decision.isolation
            && self
                .fallbacks
                .candidates(decision)
                .any(|(r, _)| r == shard.region());
        fits.then_some(reservation.shard)
    }

    fn choice(&self, index: usize, decision: &PlacementDecision, how: &str) -> ShardChoice {
        let shard = self.directory.shard_at(index);
        let mut reason = format!("{how} {} shard in {}", decision.isolation, shard.region());
        if shard.region() != &decision.region {
            reason.push_str(&format!(" (fallback from {})", decision.region));
        }
        ShardChoice::new(shard.id().clone(), shard.region().clone(), reason)
    }
}

impl<L: LoadSource> LeastLoadedResolver<L> {
    /// Picks the least-loaded eligible shard; reserves a slot on it only when
    /// `reserve` (a dry run must change nothing).
    async fn place(
        &self,
        tenant: &TenantId,
        decision: &PlacementDecision,
        reserve: bool,
    ) -> Result<ShardChoice> {
        {
            let mut ledger = self.ledger();
            ledger.expire(Instant::now(), self.ttl);
            if let Some(index) = self.existing(&ledger, tenant, decision) {
                return Ok(self.choice(index, decision, "already reserved on"));
            }
        }
        // Read outside the lock: the source may be a database round trip.
        let counts = self.load.tenant_counts().await?;
        let tenant_hash = stable_hash(tenant.as_str());

        let now = Instant::now();
        let mut ledger = self.ledger();
        // Another resolution of the same tenant may have won the race meanwhile.
        if let Some(index) = self.existing(&ledger, tenant, decision) {
            return Ok(self.choice(index, decision, "already reserved on"));
        }
        for (region, _) in self.fallbacks.candidates(decision) {
            let members = self
                .directory
                .group(region, decision.isolation)
                .map_or(&[][..], |g| g.members.as_slice());
            // (index, used, capacity, rendezvous score) of the best shard so far.
            let mut best: Option<(usize, u64, u64, u64)> = None;
            for member in members {
                let index = member.index;
                let shard = self.directory.shard_at(index);
                if !shard.accepts_new_tenants() {
                    continue;
                }
                let used = counts.get(shard.id()).copied().unwrap_or(0) + ledger.per_shard[index];
                let capacity = u64::from(shard.capacity());
                if used >= capacity {
                    continue;
                }
                let score = mix(tenant_hash, member.seed);
                // used/capacity < best_used/best_capacity, cross-multiplied to stay in integers.
                let better = best.is_none_or(|(_, b_used, b_cap, b_score)| {
                    let (lhs, rhs) = (
                        u128::from(used) * u128::from(b_cap),
                        u128::from(b_used) * u128::from(capacity),
                    );
                    lhs < rhs || (lhs == rhs && score > b_score)
                });
                if better {
                    best = Some((index, used, capacity, score));
                }
            }
            if let Some((index, ..)) = best {
                if reserve {
                    ledger.reserve(tenant, index, now);
                }
                return Ok(self.choice(index, decision, "least-loaded"));
            }
        }
        drop(ledger);
        Err(no_placement(
            tenant,
            decision,
            &self.fallbacks,
            "no shard with room",
            |region| {
                let ledger = self.ledger();
                let full = self
                    .directory
                    .in_group(region, decision.isolation)
                    .filter(|s| s.accepts_new_tenants())
                    .filter(|s| {
                        let reserved = self
                            .directory
                            .index_of(s.id())
                            .map_or(0, |i| ledger.per_shard[i]);
                        counts.get(s.id()).copied().unwrap_or(0) + reserved
                            >= u64::from(s.capacity())
                    })
                    .count();
                format!(
                    "{}; {full} active at capacity",
                    self.directory.describe_group(region, decision.isolation)
                )
            },
        ))
    }
}

impl<L: LoadSource> LeastLoadedResolver<L> {
    /// `shard` if its rules allow the tenant and it has room; a slot is
    /// reserved on it when `reserve`, decided under the ledger's lock.
    async fn place_on(
        &self,
        tenant: &TenantId,
        decision: &PlacementDecision,
        shard: &ShardId,
        reserve: bool,
    ) -> Result<ShardChoice> {
        let choice = chosen::check_id(&self.directory, shard, tenant, decision, &self.fallbacks)?;
        // Read outside the lock: the source may be a database round trip.
        let counts = self.load.tenant_counts().await?;
        let index = self
            .directory
            .index_of(shard)
            .ok_or_else(|| Error::NotFound {
                kind: Entity::Shard,
                id: shard.to_string(),
            })?;
        let now = Instant::now();
        let mut ledger = self.ledger();
        ledger.expire(now, self.ttl);
        let held = ledger
            .by_tenant
            .get(tenant)
            .is_some_and(|r| r.shard == index);
        let reserved = ledger.per_shard[index] - u64::from(held);
        let used = counts.get(shard).copied().unwrap_or(0) + reserved;
        let capacity = u64::from(self.directory.shard_at(index).capacity());
        if used >= capacity {
            return Err(Error::Placement {
                tenant: tenant.clone(),
                reason: format!(
                    "shard {shard} is full ({used} of {capacity} tenants); the plan needs region {}, pool {}",
                    decision.region, decision.isolation
                ),
            });
        }
        if reserve {
            ledger.reserve(tenant, index, now);
        }
        Ok(choice)
    }
}

#[async_trait]
impl<L: LoadSource> ShardResolver for LeastLoadedResolver<L> {
    async fn resolve(
        &self,
        tenant: &TenantId,
        decision: &PlacementDecision,
    ) -> Result<ShardChoice> {
        self.place(tenant, decision, true).await
    }

    async fn preview(
        &self,
        tenant: &TenantId,
        decision: &PlacementDecision,
    ) -> Result<ShardChoice> {
        self.place(tenant, decision, false).await
    }

    /// Checks the chosen shard's rules and its room (tenants counted by the
    /// load source, plus reservations) and reserves a slot on it, as
    /// `resolve` does: two moves onto a shard with one slot left cannot both
    /// pass. The move releases it if it rolls back.
    async fn resolve_on(
        &self,
        tenant: &TenantId,
        decision: &PlacementDecision,
        shard: &ShardId,
    ) -> Result<ShardChoice> {
        self.place_on(tenant, decision, shard, true).await
    }

    /// The same checks as `resolve_on`; reserves nothing.
    async fn preview_on(
        &self,
        tenant: &TenantId,
        decision: &PlacementDecision,
        shard: &ShardId,
    ) -> Result<ShardChoice> {
        self.place_on(tenant, decision, shard, false).await
    }

    async fn release(&self, tenant: &TenantId, shard: &ShardId) -> Result<()> {
        let mut ledger = self.ledger();
        let holds = ledger
            .by_tenant
            .get(tenant)
            .is_some_and(|r| self.directory.index_of(shard) == Some(r.shard));
        // Releasing what is not held (already released, expired, another shard)
        // is a no-op: release may run again after a crash.
        if holds {
            ledger.remove(tenant);
        }
        Ok(())
    }
}
