//! [`FallbackRegions`]: where a flexible tenant may go when its region has no
//! eligible shard, and the placement error when it may go nowhere.

use std::collections::BTreeMap;

use provisioning_core::{Error, PlacementDecision, Region, Residency, TenantId};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Fallback regions per home region, tried in order, and only for tenants
/// whose decision is [`Residency::Flexible`]. A strict tenant never leaves its
/// region, whatever this table says; an empty table means no tenant ever does.
///
/// In TOML: `us-east = ["us-west", "ca-central"]`.
///
/// ```
/// use provisioning_sharding::FallbackRegions;
///
/// let fallbacks = FallbackRegions::new().with("us-east", ["us-west"])?;
/// assert_eq!(fallbacks.get(&"us-east".parse()?)[0].as_str(), "us-west");
/// assert!(fallbacks.get(&"eu-west".parse()?).is_empty());
/// assert!(FallbackRegions::new().with("eu-west", ["eu-west"]).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    try_from = "BTreeMap<Region, Vec<Region>>",
    into = "BTreeMap<Region, Vec<Region>>"
)]
pub struct FallbackRegions(BTreeMap<Region, Vec<Region>>);

impl FallbackRegions {
    /// No fallbacks: every tenant stays in its region.
    pub fn new() -> Self {
        FallbackRegions::default()
    }

    /// Adds the fallbacks of `region`, in order of preference.
    ///
    /// # Errors
    /// [`crate::Error::InvalidPolicy`] on `fallbacks` when a name is not a valid
    /// region or a region falls back to itself.
    pub fn with<'a>(
        mut self,
        region: &str,
        fallbacks: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self> {
        let home = Region::parse(region)
            .map_err(|e| crate::Error::policy("fallbacks", region, crate::error::rule_of(e)))?;
        let list = fallbacks
            .into_iter()
            .map(|name| {
                Region::parse(name).map_err(|e| {
                    crate::Error::policy("fallbacks", region, crate::error::rule_of(e))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        self.0.insert(home, list);
        FallbackRegions::try_from(self.0)
    }

    /// The fallbacks of `region`, in order; empty when it has none.
    pub fn get(&self, region: &Region) -> &[Region] {
        self.0.get(region).map_or(&[], Vec::as_slice)
    }

    /// Whether no region has fallbacks.
    pub fn is_empty(&self) -> bool {
        self.0.values().all(Vec::is_empty)
    }

    /// The regions to search for `decision`, home first; the flag says whether
    /// the region is a fallback.
    pub(crate) fn candidates<'a>(
        &'a self,
        decision: &'a PlacementDecision,
    ) -> impl Iterator<Item = (&'a Region, bool)> + 'a {
        let fallbacks = match decision.residency {
            Residency::Flexible => self.get(&decision.region),
            // The one place residency is enforced for every resolver built on
            // this table: a strict tenant's candidate list is its region alone.
            Residency::Strict => &[],
        };
        std::iter::once((&decision.region, false)).chain(fallbacks.iter().map(|r| (r, true)))
    }
}

impl TryFrom<BTreeMap<Region, Vec<Region>>> for FallbackRegions {
    type Error = crate::Error;

    fn try_from(map: BTreeMap<Region, Vec<Region>>) -> Result<Self> {
        if let Some((home, _)) = map.iter().find(|(home, list)| list.contains(home)) {
            return Err(crate::Error::policy(
                "fallbacks",
                home.as_str(),
                "a region cannot fall back to itself",
            ));
        }
        Ok(FallbackRegions(map))
    }
}

impl From<FallbackRegions> for BTreeMap<Region, Vec<Region>> {
    fn from(fallbacks: FallbackRegions) -> Self {
        fallbacks.0
    }
}

/// The [`Error::Placement`] for a tenant no shard could take: names the region
/// and pool of every region searched, with `detail` saying why each failed.
pub(crate) fn no_placement(
    tenant: &TenantId,
    decision: &PlacementDecision,
    fallbacks: &FallbackRegions,
    what: &str,
    detail: impl Fn(&Region) -> String,
) -> Error {
    let pool = decision.isolation;
    let mut reason = String::new();
    for (region, is_fallback) in fallbacks.candidates(decision) {
        if is_fallback {
            reason.push_str("; nor in fallback ");
        } else {
            reason.push_str(what);
            reason.push_str(" in ");
        }
        reason.push_str(&format!(
            "region {region}, pool {pool} ({})",
            detail(region)
        ));
    }
    let unused = fallbacks.get(&decision.region);
    if decision.residency == Residency::Strict && !unused.is_empty() {
        let names: Vec<&str> = unused.iter().map(Region::as_str).collect();
        reason.push_str(&format!(
            "; residency is strict, so fallback regions {} were not considered",
            names.join(", ")
        ));
    }
    Error::Placement {
        tenant: tenant.clone(),
        reason: reason.trim_start_matches("; ").to_owned(),
    }
}
