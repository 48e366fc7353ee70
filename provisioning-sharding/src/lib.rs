#![doc = include_str!("../README.md")]
//!
//! ## What is where
//!
//! - **Directory**: [`ShardSpec`] (config and builder) → [`Shard`] (id, region,
//!   pool, capacity, live [`ShardStatus`], [`ConnectionTarget`] with its password
//!   redacted, tags), gathered in a [`ShardDirectory`] from TOML, JSON or code.
//! - **Resolvers**: [`RendezvousResolver`] (stable hashing), [`LeastLoadedResolver`]
//!   (capacity, with reservations, over a [`LoadSource`] such as [`InMemoryLoad`]),
//!   [`Pinned`] (overrides in front of either), [`FallbackRegions`] (opt-in, for
//!   flexible tenants only). Writing your own: see [`resolver`].
//! - **Plans**: [`PlacementRules`] (plans, regions, overrides) →
//!   [`RuleBasedPolicy`].
//! - **Errors**: config problems are a [`Error`] that names the shard or
//!   key and the field; placement problems are core's
//!   [`Error::Placement`](provisioning_core::Error::Placement) naming region and pool.

mod connection;
mod directory;
mod error;
mod hash;
pub mod policy;
pub mod resolver;
mod shard;

pub use connection::ConnectionTarget;
pub use directory::{DirectoryConfig, ShardDirectory};
pub use error::{BoxError, Error, Result, redacted_toml_error};
pub use policy::{AttributeOverride, PlacementRules, PlanRule, RegionRule, RuleBasedPolicy};
pub use resolver::{
    DEFAULT_RESERVATION_TTL, FallbackRegions, InMemoryLoad, LeastLoadedResolver, LoadSource, Pick,
    Pinned, Pins, RendezvousResolver,
};
pub use shard::{Shard, ShardSpec, ShardStatus};
