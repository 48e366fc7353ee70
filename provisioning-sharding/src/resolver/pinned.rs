//! [`Pinned`]: explicit tenant-to-shard overrides in front of any resolver.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use provisioning_core::{PlacementDecision, Result, ShardChoice, ShardId, ShardResolver, TenantId};
use serde::{Deserialize, Serialize};

use crate::directory::ShardDirectory;
use crate::resolver::chosen;

/// Tenant to shard pins, as config: in TOML `acme = "eu-west-gold-1"`.
///
/// ```
/// use provisioning_sharding::Pins;
///
/// let pins: Pins = toml::from_str(r#"acme = "eu-west-gold-1""#)?;
/// assert_eq!(pins.get(&"acme".parse()?).map(|s| s.as_str()), Some("eu-west-gold-1"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Pins(BTreeMap<TenantId, ShardId>);

impl Pins {
    /// No pins.
    pub fn new() -> Self {
        Pins::default()
    }

    /// The same pins plus `tenant` on `shard`.
    #[must_use]
    pub fn with(mut self, tenant: TenantId, shard: ShardId) -> Self {
        self.0.insert(tenant, shard);
        self
    }

    /// The shard `tenant` is pinned to.
    pub fn get(&self, tenant: &TenantId) -> Option<&ShardId> {
        self.0.get(tenant)
    }

    /// How many tenants are pinned.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no tenant is pinned.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every pin, sorted by tenant.
    pub fn iter(&self) -> impl Iterator<Item = (&TenantId, &ShardId)> {
        self.0.iter()
    }
}

/// Puts pinned tenants on their shard and asks `inner` for everyone else: pins
/// first, then the policy, as two resolvers composed.
///
/// A pin is an operator's explicit choice, but it does not outrank the rules:
/// a pinned shard must serve the tenant's pool, take new tenants, and, for a
/// [`Residency::Strict`] tenant, be in the tenant's region. A pin that breaks one
/// is an [`Error::Placement`] saying which rule, never a quiet fall-through to
/// `inner`. A flexible tenant may be pinned to another region: the pin is as
/// explicit as a configured fallback. Pinned placements reserve nothing in
/// `inner`; `release` of a pinned tenant is a no-op.
///
/// ```
/// use std::sync::Arc;
/// use provisioning_core::{Isolation, PlacementDecision, Residency, ShardResolver};
/// use provisioning_sharding::{Pinned, Pins, RendezvousResolver, ShardDirectory, ShardSpec};
///
/// let shard = |id: &str| ShardSpec::new(id).with_region("eu-west").with_capacity(100)
///     .with_connection("postgres://app@db/tenants");
/// let directory = Arc::new(ShardDirectory::from_specs([shard("eu-1"), shard("eu-2")])?);
/// let pins = Pins::new().with("acme".parse()?, "eu-2".parse()?);
/// let resolver = Pinned::new(directory.clone(), pins, RendezvousResolver::new(directory))?;
///
/// let decision = PlacementDecision::new(
///     "free".parse()?, Isolation::Shared, "eu-west".parse()?, Residency::Strict, "free",
/// );
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let choice = resolver.resolve(&"acme".parse()?, &decision).await?;
/// assert_eq!(choice.shard.as_str(), "eu-2");
/// assert_eq!(choice.reason, "pinned to shard eu-2");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Pinned<R> {
    directory: Arc<ShardDirectory>,
    pins: HashMap<TenantId, usize>,
    inner: R,
}

impl<R> Pinned<R> {
    /// Pins in front of `inner`, checked against `directory`.
    ///
    /// # Errors
    /// [`crate::Error::UnknownShard`] on `pins` when a pin names a shard the
    /// directory does not hold: a typo should fail at startup, not at placement.
    pub fn new(directory: Arc<ShardDirectory>, pins: Pins, inner: R) -> Result<Self, crate::Error> {
        let pins = pins
            .0
            .into_iter()
            .map(|(tenant, shard)| match directory.index_of(&shard) {
                Some(index) => Ok((tenant, index)),
                None => Err(crate::Error::UnknownShard {
                    shard: shard.to_string(),
                    field: "pins",
                }),
            })
            .collect::<Result<_, _>>()?;
        Ok(Pinned {
            directory,
            pins,
            inner,
        })
    }

    /// The resolver for unpinned tenants.
    pub fn inner(&self) -> &R {
        &self.inner
    }

    /// The shard `tenant` is pinned to, if any.
    pub fn pin_of(&self, tenant: &TenantId) -> Option<&ShardId> {
        self.pins
            .get(tenant)
            .map(|&i| self.directory.shard_at(i).id())
    }

    /// The pinned shard, if it satisfies the decision's rules.
    fn check(
        &self,
        tenant: &TenantId,
        index: usize,
        decision: &PlacementDecision,
    ) -> Result<ShardChoice> {
        let shard = self.directory.shard_at(index);
        let mut choice = chosen::check(
            shard,
            tenant,
            decision,
            None,
            &format!("pinned to shard {}", shard.id()),
        )?;
        choice.reason = format!("pinned to shard {}", shard.id());
        Ok(choice)
    }
}

#[async_trait]
impl<R: ShardResolver> ShardResolver for Pinned<R> {
    async fn resolve(
        &self,
        tenant: &TenantId,
        decision: &PlacementDecision,
    ) -> Result<ShardChoice> {
        match self.pins.get(tenant) {
            Some(&index) => self.check(tenant, index, decision),
            None => self.inner.resolve(tenant, decision).await,
        }
    }

    async fn preview(
        &self,
        tenant: &TenantId,
        decision: &PlacementDecision,
    ) -> Result<ShardChoice> {
        match self.pins.get(tenant) {
            Some(&index) => self.check(tenant, index, decision),
            None => self.inner.preview(tenant, decision).await,
        }
    }

    async fn resolve_on(
        &self,
        tenant: &TenantId,
        decision: &PlacementDecision,
        shard: &ShardId,
    ) -> Result<ShardChoice> {
        self.inner.resolve_on(tenant, decision, shard).await
    }

    async fn preview_on(
        &self,
        tenant: &TenantId,
        decision: &PlacementDecision,
        shard: &ShardId,
    ) -> Result<ShardChoice> {
        self.inner.preview_on(tenant, decision, shard).await
    }

    async fn release(&self, tenant: &TenantId, shard: &ShardId) -> Result<()> {
        if self.pins.contains_key(tenant) {
            return Ok(());
        }
        self.inner.release(tenant, shard).await
    }
}
