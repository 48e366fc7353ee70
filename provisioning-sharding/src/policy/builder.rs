//! [`RuleBasedPolicy`]: the default [`PlacementPolicy`], driven by a
//! [`PlacementRules`].

use std::collections::HashMap;

use async_trait::async_trait;
use provisioning_core::{
    Error, Isolation, PlacementDecision, PlacementPolicy, PlanName, Region, Residency, Result,
    TenantRequest, model::validate_attribute,
};

use crate::directory::ShardDirectory;
use crate::error::rule_of;
use crate::policy::config::{AttributeOverride, PlacementRules, PlanRule, RegionRule};

/// The default [`PlacementPolicy`]: looks the request's plan and region up in
/// a validated [`PlacementRules`] and applies its overrides.
///
/// It has no side effects, so it is safe for dry runs. An unknown plan or region
/// is an [`Error::InvalidInput`] on `plan` or `region` that lists the known ones.
///
/// ```
/// use provisioning_core::{Isolation, Residency, PlacementPolicy, TenantRequest};
/// use provisioning_sharding::{PlacementRules, RuleBasedPolicy, RegionRule};
///
/// let policy = PlacementRules::default()
///     .with_region("eu-west", RegionRule::strict())
///     .with_region("us-east", RegionRule::open());
/// let builder = RuleBasedPolicy::new(policy)?;
///
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let request = TenantRequest::new("acme".parse()?, "premium".parse()?, "us-east".parse()?);
/// let decision = builder.decide(&request).await?;
/// assert_eq!(decision.isolation, Isolation::Dedicated);
/// assert_eq!(decision.residency, Residency::Flexible);
/// assert_eq!(decision.reason, "plan premium maps to dedicated");
///
/// let request = TenantRequest::new("acme".parse()?, "free".parse()?, "eu-west".parse()?);
/// let decision = builder.decide(&request).await?;
/// assert_eq!((decision.isolation, decision.residency), (Isolation::Shared, Residency::Strict));
///
/// let request = TenantRequest::new("acme".parse()?, "gold".parse()?, "eu-west".parse()?);
/// let err = builder.decide(&request).await.unwrap_err();
/// assert_eq!(err.to_string(), "invalid plan: unknown plan \"gold\" (known: free, premium, regulated, standard)");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct RuleBasedPolicy {
    plans: HashMap<PlanName, PlanRule>,
    regions: HashMap<Region, RegionRule>,
    overrides: Vec<AttributeOverride>,
    default_residency: Residency,
}

impl RuleBasedPolicy {
    /// Validates `policy` into a placement policy.
    ///
    /// # Errors
    /// [`crate::Error::InvalidPolicy`] naming the section and key: a plan or
    /// region name that is not a valid name, an override whose attribute key is
    /// invalid or that sets nothing.
    pub fn new(policy: PlacementRules) -> Result<Self, crate::Error> {
        let plans = policy
            .plans
            .into_iter()
            .map(|(name, rule)| {
                PlanName::parse(name.as_str())
                    .map(|plan| (plan, rule))
                    .map_err(|e| crate::Error::policy("plans", name, rule_of(e)))
            })
            .collect::<Result<_, _>>()?;
        let regions = policy
            .regions
            .into_iter()
            .map(|(name, rule)| {
                Region::parse(name.as_str())
                    .map(|region| (region, rule))
                    .map_err(|e| crate::Error::policy("regions", name, rule_of(e)))
            })
            .collect::<Result<_, _>>()?;
        for (index, rule) in policy.overrides.iter().enumerate() {
            validate_attribute(&rule.attribute, &rule.value)
                .map_err(|e| crate::Error::policy("overrides", index.to_string(), rule_of(e)))?;
            if rule.isolation.is_none() && rule.residency.is_none() {
                return Err(crate::Error::policy(
                    "overrides",
                    index.to_string(),
                    "sets neither isolation nor residency",
                ));
            }
        }
        Ok(RuleBasedPolicy {
            plans,
            regions,
            overrides: policy.overrides,
            default_residency: policy.default_residency,
        })
    }

    /// The same builder, also knowing every region `directory` has shards in
    /// (with no residency rule unless the policy gives one).
    #[must_use]
    pub fn with_directory_regions(mut self, directory: &ShardDirectory) -> Self {
        for region in directory.regions() {
            self.regions.entry(region.clone()).or_default();
        }
        self
    }

    /// The decision for `request`, or the input error, without the async wrapper.
    ///
    /// # Errors
    /// As [`PlacementPolicy::decide`].
    pub fn evaluate(&self, request: &TenantRequest) -> Result<PlacementDecision> {
        let plan_rule = self.plans.get(&request.plan).ok_or_else(|| {
            Error::invalid(
                "plan",
                format!(
                    "unknown plan {:?} (known: {})",
                    request.plan.as_str(),
                    known(self.plans.keys())
                ),
            )
        })?;
        let region_rule = self.regions.get(&request.region).ok_or_else(|| {
            Error::invalid(
                "region",
                format!(
                    "unknown region {:?} (known: {})",
                    request.region.as_str(),
                    known(self.regions.keys())
                ),
            )
        })?;

        let mut isolation = plan_rule.isolation.unwrap_or(Isolation::Shared);
        let mut reasons = vec![format!("plan {} maps to {isolation}", request.plan)];
        let mut strict_because = Vec::new();
        if plan_rule.residency == Some(Residency::Strict) {
            strict_because.push(format!("plan {}", request.plan));
        }
        if region_rule.residency == Some(Residency::Strict) {
            strict_because.push(format!("region {}", request.region));
        }
        for rule in &self.overrides {
            if request.attributes.get(&rule.attribute) != Some(&rule.value) {
                continue;
            }
            if let Some(to) = rule.isolation {
                isolation = to;
                reasons.push(format!(
                    "attribute {}={} sets {to}",
                    rule.attribute, rule.value
                ));
            }
            if rule.residency == Some(Residency::Strict) {
                strict_because.push(format!("attribute {}={}", rule.attribute, rule.value));
            }
        }
        let residency = if strict_because.is_empty() {
            if self.default_residency == Residency::Strict {
                reasons.push("residency is strict by default".to_owned());
            }
            self.default_residency
        } else {
            reasons.push(format!(
                "{} requires strict residency",
                strict_because.join(" and ")
            ));
            Residency::Strict
        };
        Ok(PlacementDecision::new(
            request.plan.clone(),
            isolation,
            request.region.clone(),
            residency,
            reasons.join("; "),
        ))
    }
}

/// `a, b, c` sorted, or `none`, for error messages.
fn known<'a, T: AsRef<str> + 'a>(names: impl Iterator<Item = &'a T>) -> String {
    let mut names: Vec<&str> = names.map(AsRef::as_ref).collect();
    if names.is_empty() {
        return "none".to_owned();
    }
    names.sort_unstable();
    names.join(", ")
}

#[async_trait]
impl PlacementPolicy for RuleBasedPolicy {
    async fn decide(&self, request: &TenantRequest) -> Result<PlacementDecision> {
        self.evaluate(request)
    }
}
