//! The default [`TenantPlanBuilder`](provisioning_core::TenantPlanBuilder):
//! [`PolicyPlanBuilder`], driven by a [`PlacementPolicy`] read from config.

mod builder;
mod config;

pub use builder::PolicyPlanBuilder;
pub use config::{AttributeOverride, PlacementPolicy, PlanRule, RegionRule};
