//! [`ShardResolver`]: picks the shard a tenant lives on.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;
use crate::model::{PlacementDecision, ShardChoice, ShardId, TenantId};

/// Picks a shard for a tenant, given the placement policy's decision.
///
/// A resolver must honour [`Residency::Strict`](crate::Residency::Strict): a
/// strict tenant is never placed outside `decision.region`, and no eligible shard
/// is an [`Error::Placement`](crate::Error::Placement), never a silent fallback.
/// `resolve` may reserve capacity; [`ShardResolver::release`] gives it back when
/// the provisioning is rolled back or the tenant deleted. Both may be called again
/// for the same tenant after a crash, so they must be idempotent.
///
/// Writing one for your own rule takes a few lines; this one picks by a tier tag:
///
/// ```
/// use async_trait::async_trait;
/// use provisioning_core::{
///     Error, Isolation, PlacementDecision, Residency, Result, ShardChoice, ShardResolver, TenantId,
/// };
///
/// /// Gold tenants go to the region's `-gold` shard, everyone else to `-std`.
/// struct ByTier;
///
/// #[async_trait]
/// impl ShardResolver for ByTier {
///     async fn resolve(&self, tenant: &TenantId, decision: &PlacementDecision) -> Result<ShardChoice> {
///         let tier = if decision.isolation == Isolation::Dedicated { "gold" } else { "std" };
///         let shard = format!("{}-{tier}", decision.region).parse()?;
///         Ok(ShardChoice::new(shard, decision.region.clone(), format!("{tier} tier")))
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let decision = PlacementDecision::new(
///     "premium".parse()?, Isolation::Dedicated, "eu-west".parse()?, Residency::Strict, "premium",
/// );
/// let choice = ByTier.resolve(&"acme".parse()?, &decision).await?;
/// assert_eq!(choice.shard.as_str(), "eu-west-gold");
/// # Ok::<(), Error>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait ShardResolver: Send + Sync {
    /// The shard for `tenant`.
    ///
    /// # Errors
    /// [`Error::Placement`](crate::Error::Placement) when no shard qualifies.
    async fn resolve(&self, tenant: &TenantId, decision: &PlacementDecision)
    -> Result<ShardChoice>;

    /// The shard `resolve` would pick, for a dry run: it must not reserve or
    /// change anything. The default calls `resolve`, which is right for
    /// resolvers that reserve nothing; resolvers that reserve must override it.
    ///
    /// # Errors
    /// As [`resolve`](Self::resolve).
    async fn preview(
        &self,
        tenant: &TenantId,
        decision: &PlacementDecision,
    ) -> Result<ShardChoice> {
        self.resolve(tenant, decision).await
    }

    /// Places `tenant` on the `shard` an operator chose (a move), if the
    /// shard may take it under `decision`: it exists, serves the decision's
    /// pool, takes new tenants, has room, and is in the decision's region
    /// when residency is strict. May reserve, as `resolve` does. The
    /// default refuses: a resolver that knows no shards cannot judge one.
    ///
    /// # Errors
    /// [`Error::Placement`](crate::Error::Placement) naming the rule the
    /// shard breaks; [`Error::NotFound`](crate::Error::NotFound) for an
    /// unknown shard.
    async fn resolve_on(
        &self,
        tenant: &TenantId,
        decision: &PlacementDecision,
        shard: &ShardId,
    ) -> Result<ShardChoice> {
        let _ = decision;
        Err(crate::Error::Placement {
            tenant: tenant.clone(),
            reason: format!(
                "this shard resolver cannot place a tenant on a chosen shard ({shard})"
            ),
        })
    }

    /// [`resolve_on`](Self::resolve_on) for a dry run: checks the same
    /// rules, reserves nothing. The default calls `resolve_on`, right for
    /// resolvers whose `resolve_on` reserves nothing.
    ///
    /// # Errors
    /// As `resolve_on`.
    async fn preview_on(
        &self,
        tenant: &TenantId,
        decision: &PlacementDecision,
        shard: &ShardId,
    ) -> Result<ShardChoice> {
        self.resolve_on(tenant, decision, shard).await
    }

    /// Gives back whatever `resolve` reserved for `tenant` on `shard`. The default
    /// reserves nothing and so releases nothing.
    async fn release(&self, tenant: &TenantId, shard: &ShardId) -> Result<()> {
        let _ = (tenant, shard);
        Ok(())
    }
}

// Smart pointers to a resolver are resolvers (as for the other traits).
macro_rules! forward_resolver {
    ($ty:ty) => {
        #[async_trait]
        impl<T: ShardResolver + ?Sized> ShardResolver for $ty {
            async fn resolve(
                &self,
                tenant: &TenantId,
                decision: &PlacementDecision,
            ) -> Result<ShardChoice> {
                (**self).resolve(tenant, decision).await
            }
            async fn preview(
                &self,
                tenant: &TenantId,
                decision: &PlacementDecision,
            ) -> Result<ShardChoice> {
                (**self).preview(tenant, decision).await
            }
            async fn resolve_on(
                &self,
                tenant: &TenantId,
                decision: &PlacementDecision,
                shard: &ShardId,
            ) -> Result<ShardChoice> {
                (**self).resolve_on(tenant, decision, shard).await
            }
            async fn preview_on(
                &self,
                tenant: &TenantId,
                decision: &PlacementDecision,
                shard: &ShardId,
            ) -> Result<ShardChoice> {
                (**self).preview_on(tenant, decision, shard).await
            }
            async fn release(&self, tenant: &TenantId, shard: &ShardId) -> Result<()> {
                (**self).release(tenant, shard).await
            }
        }
    };
}

forward_resolver!(Arc<T>);
forward_resolver!(Box<T>);
