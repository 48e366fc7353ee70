//! The [`ShardResolver`](provisioning_core::ShardResolver)s of this crate, and
//! what they share.
//!
//! - [`RendezvousResolver`]: stable hashing within a region and pool.
//! - [`LeastLoadedResolver`]: capacity-aware, with reservations, over a [`LoadSource`].
//! - [`Pinned`]: explicit overrides in front of any resolver.
//! - [`FallbackRegions`]: where flexible tenants may go when their region is out of room.
//!
//! Every resolver honours the same rules: draining and full shards get no new
//! tenants; a strict tenant is only ever placed in its region; no eligible
//! shard is an [`Error::Placement`](provisioning_core::Error::Placement) that
//! names the region and pool.
//!
//! Writing your own takes about a dozen lines. This one sends each plan to the
//! active shards of the region tagged with the plan's tier:
//!
//! ```
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use provisioning_core::{Error, PlacementDecision, Result, ShardChoice, ShardResolver, TenantId};
//! use provisioning_sharding::ShardDirectory;
//!
//! /// Places a tenant on the first active shard of its region and pool whose
//! /// `tier` tag equals its plan.
//! struct ByTierTag(Arc<ShardDirectory>);
//!
//! #[async_trait]
//! impl ShardResolver for ByTierTag {
//!     async fn resolve(&self, tenant: &TenantId, d: &PlacementDecision) -> Result<ShardChoice> {
//!         let shard = self.0.in_group(&d.region, d.isolation)
//!             .find(|s| s.accepts_new_tenants() && s.tag("tier") == Some(d.plan.as_str()))
//!             .ok_or_else(|| Error::Placement {
//!                 tenant: tenant.clone(),
//!                 reason: format!("no active {} shard tagged tier={} in region {}", d.isolation, d.plan, d.region),
//!             })?;
//!         Ok(ShardChoice::new(shard.id().clone(), shard.region().clone(), format!("tier {}", d.plan)))
//!     }
//! }
//!
//! # use provisioning_core::{Isolation, Residency};
//! # use provisioning_sharding::ShardSpec;
//! # let spec = |id: &str, tier: &str| ShardSpec::new(id).with_region("eu-west").with_capacity(9)
//! #     .with_pool(Isolation::Dedicated).with_connection("/data").with_tag("tier", tier);
//! # let directory = ShardDirectory::from_specs([spec("eu-std", "standard"), spec("eu-gold", "premium")])?;
//! # let decision = PlacementDecision::new("premium".parse()?, Isolation::Dedicated, "eu-west".parse()?, Residency::Strict, "");
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let choice = ByTierTag(Arc::new(directory)).resolve(&"acme".parse()?, &decision).await?;
//! assert_eq!(choice.shard.as_str(), "eu-gold");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod capacity;
mod chosen;
mod fallback;
mod load;
mod pinned;
mod rendezvous;

pub use capacity::{DEFAULT_RESERVATION_TTL, LeastLoadedResolver};
pub use fallback::FallbackRegions;
pub use load::{InMemoryLoad, LoadSource};
pub use pinned::{Pinned, Pins};
pub use rendezvous::{Pick, RendezvousResolver};
