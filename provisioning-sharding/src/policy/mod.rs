//! The default [`PlacementPolicy`](provisioning_core::PlacementPolicy):
//! [`RuleBasedPolicy`], driven by a [`PlacementRules`] read from config.

mod builder;
mod config;

pub use builder::RuleBasedPolicy;
pub use config::{AttributeOverride, PlacementRules, PlanRule, RegionRule};
