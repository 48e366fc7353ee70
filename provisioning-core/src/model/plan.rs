//! Placement: what the plan builder decides ([`PlanDecision`]), what the shard
//! resolver picks ([`ShardChoice`]) and both together ([`TenantPlan`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{PlanName, Region, ShardId, TenantId};

/// Whether a tenant shares a database with others or has its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// Rows keyed by `tenant_id` in a database shared by many tenants.
    Shared,
    /// A database (or schema) of its own on a dedicated shard.
    Dedicated,
}

impl Isolation {
    /// `shared` or `dedicated`.
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Shared => "shared",
            Isolation::Dedicated => "dedicated",
        }
    }
}

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How strictly the tenant's data must stay in its region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Residency {
    /// Never placed outside the region; no shard there is an error.
    Strict,
    /// May use fallback regions, but only those a resolver was configured with.
    Flexible,
}

/// What a [`TenantPlanBuilder`](crate::TenantPlanBuilder) decides for a request:
/// the isolation, the region, the residency rule and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PlanDecision {
    /// The commercial plan the decision was made for.
    pub plan: PlanName,
    /// Shared or dedicated.
    pub isolation: Isolation,
    /// The region to place the tenant in.
    pub region: Region,
    /// Whether the region is a hard requirement.
    pub residency: Residency,
    /// A sentence saying why (`plan premium maps to dedicated`).
    pub reason: String,
}

impl PlanDecision {
    /// A decision with the given parts.
    pub fn new(
        plan: PlanName,
        isolation: Isolation,
        region: Region,
        residency: Residency,
        reason: impl Into<String>,
    ) -> Self {
        PlanDecision {
            plan,
            isolation,
            region,
            residency,
            reason: reason.into(),
        }
    }
}

/// What a [`ShardResolver`](crate::ShardResolver) picks: a shard, its region and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ShardChoice {
    /// The chosen shard.
    pub shard: ShardId,
    /// The shard's region (differs from the requested one only on a configured
    /// fallback for a [`Residency::Flexible`] tenant).
    pub region: Region,
    /// A sentence saying why (`rendezvous hash over 3 active shards`).
    pub reason: String,
}

impl ShardChoice {
    /// A choice with the given parts.
    pub fn new(shard: ShardId, region: Region, reason: impl Into<String>) -> Self {
        ShardChoice {
            shard,
            region,
            reason: reason.into(),
        }
    }
}

/// A tenant's full placement, recorded on the tenant: isolation, region, shard,
/// and the reasons for both decisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TenantPlan {
    /// The tenant placed.
    pub tenant_id: TenantId,
    /// Its commercial plan.
    pub plan: PlanName,
    /// Shared or dedicated.
    pub isolation: Isolation,
    /// The region its data lives in.
    pub region: Region,
    /// The shard it lives on.
    pub shard: ShardId,
    /// The residency rule it was placed under.
    pub residency: Residency,
    /// Why: the plan builder's reason, then the resolver's.
    pub reason: String,
}

impl TenantPlan {
    /// Combines a plan decision with the shard the resolver chose.
    pub fn new(tenant_id: TenantId, decision: PlanDecision, choice: ShardChoice) -> Self {
        TenantPlan {
            tenant_id,
            plan: decision.plan,
            isolation: decision.isolation,
            region: choice.region,
            shard: choice.shard,
            residency: decision.residency,
            reason: format!("{}; {}", decision.reason, choice.reason),
        }
    }
}
