//! # provisioning-sharding
//!
//! Where a tenant lives: a region-aware [`ShardDirectory`], the
//! [`ShardResolver`](provisioning_core::ShardResolver)s that pick a shard in it,
//! and the default [`TenantPlanBuilder`](provisioning_core::TenantPlanBuilder),
//! [`PolicyPlanBuilder`], that decides shared or dedicated and how strict the
//! tenant's data residency is.
//!
//! - **Directory**: [`ShardSpec`] (config and builder) → [`Shard`] (id, region,
//!   pool, capacity, live [`ShardStatus`], [`ConnectionTarget`] with its password
//!   redacted, tags), gathered in a [`ShardDirectory`] from TOML, JSON or code.
//! - **Resolvers**: [`RendezvousResolver`] (stable hashing), [`LeastLoadedResolver`]
//!   (capacity, with reservations, over a [`LoadSource`] such as [`InMemoryLoad`]),
//!   [`Pinned`] (overrides in front of either), [`FallbackRegions`] (opt-in, for
//!   flexible tenants only). Writing your own: see [`resolver`].
//! - **Plans**: [`PlacementPolicy`] (plans, regions, overrides) →
//!   [`PolicyPlanBuilder`].
//! - **Errors**: config problems are a [`ShardingError`] that names the shard or
//!   key and the field; placement problems are core's
//!   [`Error::Placement`](provisioning_core::Error::Placement) naming region and pool.
//!
//! Guarantees: draining and full shards get no new tenants; a
//! [`Residency::Strict`](provisioning_core::Residency::Strict) tenant is never
//! placed outside its region, and no eligible shard there is an error, never a
//! fallback; a [`LeastLoadedResolver`] never fills a shard past its capacity,
//! however many resolutions run at once.
//!
//! ## Quick start
//!
//! ```
//! use std::sync::Arc;
//! use provisioning_core::{Isolation, Residency, ShardResolver, TenantPlanBuilder, TenantRequest};
//! use provisioning_sharding::{
//!     InMemoryLoad, LeastLoadedResolver, Pinned, Pins, PlacementPolicy, PolicyPlanBuilder,
//!     RegionRule, ShardDirectory,
//! };
//!
//! let directory = Arc::new(ShardDirectory::from_toml_str(r#"
//!     [[shards]]
//!     id = "eu-west-shared-1"
//!     region = "eu-west"
//!     capacity = 500
//!     connection = "postgres://app:secret@eu1.db.internal/tenants"
//!
//!     [[shards]]
//!     id = "eu-west-dedicated-1"
//!     region = "eu-west"
//!     pool = "dedicated"
//!     capacity = 20
//!     connection = "postgres://app:secret@eu2.db.internal/{tenant}"
//! "#)?);
//!
//! // Plans: premium and regulated are dedicated; EU tenants never leave the EU.
//! let plans = PolicyPlanBuilder::new(PlacementPolicy::default().with_region("eu-west", RegionRule::strict()))?;
//! // Shards: pins first, then the least-loaded shard with room.
//! let shards = Pinned::new(
//!     directory.clone(),
//!     Pins::new(),
//!     LeastLoadedResolver::new(directory.clone(), InMemoryLoad::new()),
//! )?;
//!
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let request = TenantRequest::new("acme".parse()?, "premium".parse()?, "eu-west".parse()?);
//! let decision = plans.build_plan(&request).await?;
//! assert_eq!((decision.isolation, decision.residency), (Isolation::Dedicated, Residency::Strict));
//!
//! let choice = shards.resolve(&request.tenant_id, &decision).await?;
//! assert_eq!(choice.shard.as_str(), "eu-west-dedicated-1");
//! let shard = directory.get(&choice.shard).unwrap();
//! assert_eq!(shard.connection_for(&request.tenant_id).to_string(), "postgres://app:***@eu2.db.internal/acme");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod connection;
mod directory;
mod error;
mod hash;
pub mod policy;
pub mod resolver;
mod shard;

pub use connection::ConnectionTarget;
pub use directory::{DirectoryConfig, ShardDirectory};
pub use error::{BoxError, Result, ShardingError};
pub use policy::{AttributeOverride, PlacementPolicy, PlanRule, PolicyPlanBuilder, RegionRule};
pub use resolver::{
    DEFAULT_RESERVATION_TTL, FallbackRegions, InMemoryLoad, LeastLoadedResolver, LoadSource, Pick,
    Pinned, Pins, RendezvousResolver,
};
pub use shard::{Shard, ShardSpec, ShardStatus};
