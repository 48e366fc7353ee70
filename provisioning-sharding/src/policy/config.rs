//! [`PlacementRules`]: the plan table, region rules and attribute overrides, as config.

use std::collections::BTreeMap;

use provisioning_core::{Isolation, Residency};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// What a plan maps to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PlanRule {
    /// Shared or dedicated; shared when not said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<Isolation>,
    /// `strict` keeps every tenant of the plan in its region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residency: Option<Residency>,
}

impl PlanRule {
    /// A plan on shared databases with no residency rule of its own.
    pub fn shared() -> Self {
        PlanRule::default()
    }

    /// A plan on dedicated databases with no residency rule of its own.
    pub fn dedicated() -> Self {
        PlanRule {
            isolation: Some(Isolation::Dedicated),
            residency: None,
        }
    }

    /// The same rule, keeping every tenant of the plan in its region.
    #[must_use]
    pub fn strict(mut self) -> Self {
        self.residency = Some(Residency::Strict);
        self
    }
}

/// What a region requires of every tenant in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RegionRule {
    /// `strict` keeps every tenant of the region in it (a data-protection law).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residency: Option<Residency>,
}

impl RegionRule {
    /// A known region with no residency rule of its own.
    pub fn open() -> Self {
        RegionRule::default()
    }

    /// A region whose tenants never leave it.
    pub fn strict() -> Self {
        RegionRule {
            residency: Some(Residency::Strict),
        }
    }
}

/// When a request has `attribute = value`, set the isolation and/or require
/// strict residency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AttributeOverride {
    /// The request attribute's key.
    pub attribute: String,
    /// The value it must have.
    pub value: String,
    /// The isolation to use instead of the plan's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<Isolation>,
    /// `strict` to keep the tenant in its region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residency: Option<Residency>,
}

impl AttributeOverride {
    /// An override matching `attribute = value` that changes nothing yet.
    pub fn when(attribute: impl Into<String>, value: impl Into<String>) -> Self {
        AttributeOverride {
            attribute: attribute.into(),
            value: value.into(),
            isolation: None,
            residency: None,
        }
    }

    /// The same override, setting the isolation.
    #[must_use]
    pub fn isolation(mut self, isolation: Isolation) -> Self {
        self.isolation = Some(isolation);
        self
    }

    /// The same override, requiring strict residency.
    #[must_use]
    pub fn strict(self) -> Self {
        self.residency(Residency::Strict)
    }

    /// The same override, with this residency. `flexible` cannot relax a strict
    /// plan or region: the strictest rule wins.
    #[must_use]
    pub fn residency(mut self, residency: Residency) -> Self {
        self.residency = Some(residency);
        self
    }
}

/// The placement policy: which plans and regions exist, what each plan maps to,
/// what each region requires, and attribute overrides.
///
/// Residency is the strictest of every rule that applies: a tenant is strict
/// when its plan, its region, a matching override or `default_residency` says
/// so. Nothing relaxes it, so no attribute a caller sends can move a regulated
/// tenant out of its region. Isolation is the plan's (shared when unsaid), then
/// each matching override in order, the last one winning.
///
/// [`PlacementRules::default`] has the plans `free` and `standard` (shared),
/// `premium` (dedicated) and `regulated` (dedicated, strict), no regions, and
/// flexible default residency. In TOML:
///
/// ```
/// use provisioning_sharding::PlacementRules;
///
/// let policy = PlacementRules::from_toml_str(r#"
///     default_residency = "flexible"
///
///     [plans]
///     free = {}
///     premium = { isolation = "dedicated" }
///     regulated = { isolation = "dedicated", residency = "strict" }
///
///     [regions]
///     eu-west = { residency = "strict" }   # GDPR: EU tenants stay in the EU
///     us-east = {}
///
///     [[overrides]]
///     attribute = "dedicated"
///     value = "true"
///     isolation = "dedicated"
/// "#)?;
/// assert_eq!(policy.plans.len(), 3);
/// # Ok::<(), provisioning_sharding::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PlacementRules {
    /// The residency of a tenant no rule makes strict.
    #[serde(default = "flexible")]
    pub default_residency: Residency,
    /// Every known plan, by name.
    #[serde(default)]
    pub plans: BTreeMap<String, PlanRule>,
    /// Every known region, by name.
    #[serde(default)]
    pub regions: BTreeMap<String, RegionRule>,
    /// Attribute overrides, applied in order.
    #[serde(default)]
    pub overrides: Vec<AttributeOverride>,
}

fn flexible() -> Residency {
    Residency::Flexible
}

impl Default for PlacementRules {
    fn default() -> Self {
        PlacementRules {
            default_residency: Residency::Flexible,
            plans: BTreeMap::from([
                ("free".to_owned(), PlanRule::shared()),
                ("standard".to_owned(), PlanRule::shared()),
                ("premium".to_owned(), PlanRule::dedicated()),
                ("regulated".to_owned(), PlanRule::dedicated().strict()),
            ]),
            regions: BTreeMap::new(),
            overrides: Vec::new(),
        }
    }
}

impl PlacementRules {
    /// No plans, no regions: build one up with the `with_` methods.
    pub fn empty() -> Self {
        PlacementRules {
            plans: BTreeMap::new(),
            ..PlacementRules::default()
        }
    }

    /// Adds or replaces a plan.
    #[must_use]
    pub fn with_plan(mut self, name: impl Into<String>, rule: PlanRule) -> Self {
        self.plans.insert(name.into(), rule);
        self
    }

    /// Adds or replaces a region.
    #[must_use]
    pub fn with_region(mut self, name: impl Into<String>, rule: RegionRule) -> Self {
        self.regions.insert(name.into(), rule);
        self
    }

    /// Appends an override.
    #[must_use]
    pub fn with_override(mut self, rule: AttributeOverride) -> Self {
        self.overrides.push(rule);
        self
    }

    /// Sets the residency of tenants no rule makes strict.
    #[must_use]
    pub fn with_default_residency(mut self, residency: Residency) -> Self {
        self.default_residency = residency;
        self
    }

    /// Parses a TOML policy. Names are checked by
    /// [`RuleBasedPolicy::new`](crate::RuleBasedPolicy::new).
    ///
    /// # Errors
    /// [`crate::Error::Parse`] for bad TOML or an unknown field.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| crate::Error::toml("placement policy", text, &e))
    }

    /// Parses a JSON policy.
    ///
    /// # Errors
    /// [`crate::Error::Parse`] for bad JSON or an unknown field.
    pub fn from_json_str(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| crate::Error::json("placement policy", &e))
    }
}
