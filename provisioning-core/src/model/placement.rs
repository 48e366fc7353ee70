//! Placement: what the placement policy decides ([`PlacementDecision`]), what the shard
//! resolver picks ([`ShardChoice`]) and both together, with where the data
//! is ([`Placement`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{PlanName, Region, ShardId, TenantId};

/// Whether a tenant shares a database with others or has its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
        f.pad(self.as_str())
    }
}

/// How strictly the tenant's data must stay in its region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Residency {
    /// Never placed outside the region; no shard there is an error.
    Strict,
    /// May use fallback regions, but only those a resolver was configured with.
    Flexible,
}

/// What a [`PlacementPolicy`](crate::PlacementPolicy) decides for a request:
/// the isolation, the region, the residency rule and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PlacementDecision {
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

impl PlacementDecision {
    /// A decision with the given parts.
    pub fn new(
        plan: PlanName,
        isolation: Isolation,
        region: Region,
        residency: Residency,
        reason: impl Into<String>,
    ) -> Self {
        PlacementDecision {
            plan,
            isolation,
            region,
            residency,
            reason: reason.into(),
        }
    }

    /// Whether `choice` keeps to this decision's residency: a strict tenant
    /// only in its own region. The orchestrator checks every choice with it,
    /// so that a resolver's mistake cannot place a tenant abroad.
    ///
    /// # Errors
    /// [`Error::Placement`](crate::Error::Placement) naming the shard, its
    /// region and the region the residency requires.
    pub fn check_residency(&self, tenant: &TenantId, choice: &ShardChoice) -> crate::Result<()> {
        if self.residency == Residency::Strict && choice.region != self.region {
            return Err(crate::Error::Placement {
                tenant: tenant.clone(),
                reason: format!(
                    "shard {} is in region {}, but residency is strict to region {}",
                    choice.shard, choice.region, self.region
                ),
            });
        }
        Ok(())
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

/// Where a tenant lives, recorded on the tenant: isolation, region, shard,
/// the database its data is in, and the reasons for the decisions.
///
/// `database` is the one truth for where the data is once the tenant is
/// placed: the schema manager resolves it from the shard map's connection
/// when the tenant is placed (see
/// [`TenantSchemaManager::locate`](crate::TenantSchemaManager::locate)) and
/// opens what it says from then on, so editing the map later moves no
/// existing tenant by accident. It never holds a secret: passwords are
/// redacted ([`redact_secrets`](crate::model::redact_secrets)) before it is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct Placement {
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
    /// Where its data is: a SQLite file path, or a PostgreSQL URL (password
    /// redacted) naming its database, with `?schema=` for a schema of its own.
    /// `None` before the schema manager located it, or for managers that
    /// record no location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub database: Option<String>,
    /// Why: the placement policy's reason, then the resolver's.
    pub reason: String,
}

impl Placement {
    /// Combines a placement decision with the shard the resolver chose; the
    /// database is not located yet.
    pub fn new(tenant_id: TenantId, decision: PlacementDecision, choice: ShardChoice) -> Self {
        Placement {
            tenant_id,
            plan: decision.plan,
            isolation: decision.isolation,
            region: choice.region,
            shard: choice.shard,
            residency: decision.residency,
            database: None,
            reason: format!("{}; {}", decision.reason, choice.reason),
        }
    }

    /// The same placement with its database located at `database`, redacted
    /// of any secret it holds.
    #[must_use]
    pub fn with_database(mut self, database: Option<String>) -> Self {
        self.database = database.map(|d| crate::model::redact_secrets(&d));
        self
    }

    /// Whether `self` and `other` put the tenant's data in the same place:
    /// the same shard and isolation (and the same database when both record one).
    pub fn same_location(&self, other: &Placement) -> bool {
        self.shard == other.shard
            && self.isolation == other.isolation
            && match (&self.database, &other.database) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}
