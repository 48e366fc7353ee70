//! The marker object `tenants/{tenant_id}/.tenant.json`: written last by
//! `initialize`, so a prefix without it is a half-initialized tenant; rewritten by
//! suspend and resume; and the place an archive records its timestamp, so a retry
//! after a crash archives to the same folder.

use chrono::{DateTime, Utc};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use provisioning_core::{Placement, PlanName, Region, TenantId};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::paths::TenantPaths;

/// The marker's format version, written in every marker.
pub const MARKER_VERSION: u32 = 1;

/// What `tenants/{tenant_id}/.tenant.json` holds (pretty-printed JSON).
///
/// ```json
/// {
///   "version": 1,
///   "tenant_id": "acme",
///   "region": "eu-west",
///   "plan": "free",
///   "created": "2025-03-01T12:30:05.123456Z",
///   "layout": ["uploads", "exports"],
///   "suspended": false,
///   "suspended_at": null,
///   "resumed_at": null,
///   "archive_started_at": null
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TenantMarker {
    /// The format version ([`MARKER_VERSION`]).
    pub version: u32,
    /// The tenant whose prefix holds the marker.
    pub tenant_id: TenantId,
    /// The region whose store holds the tenant's objects.
    pub region: Region,
    /// The tenant's plan when the storage was (last) initialized.
    pub plan: PlanName,
    /// When the storage was first initialized.
    pub created: DateTime<Utc>,
    /// The layout folders initialization ensured.
    pub layout: Vec<String>,
    /// Whether the tenant is suspended.
    #[serde(default)]
    pub suspended: bool,
    /// When the current suspension began; `None` while active.
    #[serde(default)]
    pub suspended_at: Option<DateTime<Utc>>,
    /// When the tenant was last resumed.
    #[serde(default)]
    pub resumed_at: Option<DateTime<Utc>>,
    /// When a removal in [`RemovalMode::Archive`](provisioning_core::RemovalMode)
    /// began: it names the archive folder, so a retry finishes the same archive.
    #[serde(default)]
    pub archive_started_at: Option<DateTime<Utc>>,
}

impl TenantMarker {
    /// A marker for a tenant being initialized now with `layout`.
    pub(crate) fn new(placement: &Placement, layout: &[String], now: DateTime<Utc>) -> Self {
        TenantMarker {
            version: MARKER_VERSION,
            tenant_id: placement.tenant_id.clone(),
            region: placement.region.clone(),
            plan: placement.plan.clone(),
            created: now,
            layout: layout.to_vec(),
            suspended: false,
            suspended_at: None,
            resumed_at: None,
            archive_started_at: None,
        }
    }

    /// Why this marker cannot belong to `plan`'s tenant, if it cannot: another
    /// tenant id or another region means the prefix holds someone else's data.
    pub(crate) fn conflict(&self, placement: &Placement) -> Option<Error> {
        let reason = if self.tenant_id != placement.tenant_id {
            format!(
                "marker names tenant {} but the prefix belongs to {}",
                self.tenant_id, placement.tenant_id
            )
        } else if self.region != placement.region {
            format!(
                "marker records region {} but the placement says {}",
                self.region, placement.region
            )
        } else {
            return None;
        };
        Some(Error::MarkerConflict {
            tenant: placement.tenant_id.clone(),
            reason,
        })
    }

    /// [`conflict`](Self::conflict) as an error, and a refusal while an
    /// archive of the tenant is in progress (it must finish first).
    pub(crate) fn check_usable(&self, placement: &Placement) -> Result<()> {
        if let Some(conflict) = self.conflict(placement) {
            return Err(conflict);
        }
        if self.archive_started_at.is_some() {
            return Err(Error::MarkerConflict {
                tenant: placement.tenant_id.clone(),
                reason: "an archive of this tenant is in progress: finish `remove` first"
                    .to_owned(),
            });
        }
        Ok(())
    }

    /// Whether initialization for `plan` with `layout` has nothing left to do.
    pub(crate) fn is_current(&self, placement: &Placement, layout: &[String]) -> bool {
        self.version == MARKER_VERSION
            && self.tenant_id == placement.tenant_id
            && self.region == placement.region
            && self.plan == placement.plan
            && self.layout == layout
    }

    fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut bytes = serde_json::to_vec_pretty(self)?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}

/// Reads the tenant's marker; `None` when there is none.
pub(crate) async fn read(
    store: &dyn ObjectStore,
    paths: &TenantPaths,
) -> Result<Option<TenantMarker>> {
    let path = paths.marker();
    let bytes = match store.get(&path).await {
        Ok(result) => result.bytes().await,
        Err(e) => Err(e),
    };
    let bytes = match bytes {
        Ok(bytes) => bytes,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(Error::store("get", &path, e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| Error::CorruptMarker {
            path: path.to_string(),
            source,
        })
}

/// Writes (or overwrites) the tenant's marker.
pub(crate) async fn write(
    store: &dyn ObjectStore,
    paths: &TenantPaths,
    marker: &TenantMarker,
) -> Result<()> {
    let path = paths.marker();
    let bytes = marker.to_bytes().map_err(|source| Error::CorruptMarker {
        path: path.to_string(),
        source,
    })?;
    store
        .put(&path, PutPayload::from(bytes))
        .await
        .map_err(|e| Error::store("put", &path, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use provisioning_core::{Isolation, PlacementDecision, Residency, ShardChoice};

    use super::*;

    fn plan(tenant: &str, region: &str) -> Placement {
        Placement::new(
            tenant.parse().unwrap(),
            PlacementDecision::new(
                "free".parse().unwrap(),
                Isolation::Shared,
                region.parse().unwrap(),
                Residency::Strict,
                "test",
            ),
            ShardChoice::new("s1".parse().unwrap(), region.parse().unwrap(), "test"),
        )
    }

    #[test]
    fn json_round_trips_with_every_field_named() {
        let at = Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap();
        let marker = TenantMarker::new(&plan("acme", "eu-west"), &["uploads".into()], at);
        let bytes = marker.to_bytes().unwrap();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "version": 1,
                "tenant_id": "acme",
                "region": "eu-west",
                "plan": "free",
                "created": "2025-03-01T12:00:00Z",
                "layout": ["uploads"],
                "suspended": false,
                "suspended_at": null,
                "resumed_at": null,
                "archive_started_at": null,
            })
        );
        let back: TenantMarker = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, marker);
    }

    #[test]
    fn a_marker_of_another_tenant_or_region_conflicts() {
        let at = Utc::now();
        let marker = TenantMarker::new(&plan("acme", "eu-west"), &[], at);
        assert!(marker.conflict(&plan("acme", "eu-west")).is_none());
        let err = marker.conflict(&plan("acme", "us-east")).unwrap();
        assert_eq!(
            err.to_string(),
            "storage marker of tenant acme conflicts with the placement: \
             marker records region eu-west but the placement says us-east"
        );
        assert!(marker.conflict(&plan("other", "eu-west")).is_some());
    }
}
