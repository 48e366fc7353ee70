//! [`TenantRecord`]: a tenant as the catalog stores it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{Placement, PlanName, Region, RequestId, TenantId, TenantState};

/// Why a run failed, as a receipt and a tenant record keep it: the step, how
/// it failed, and the error's text with its causes.
///
/// The text has no secrets and no server directories
/// ([`redact_paths`](crate::model::redact_paths)): it is what the tenant's
/// owner may read. The full text is in the log, under the run's span.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct FailureInfo {
    /// The step that failed.
    pub step: String,
    /// How it failed.
    #[serde(default)]
    pub kind: FailureKind,
    /// The error and its causes, as text.
    pub reason: String,
}

impl FailureInfo {
    /// A failure of `step`, of `kind`, for `reason`.
    pub fn new(step: impl Into<String>, kind: FailureKind, reason: impl Into<String>) -> Self {
        FailureInfo {
            step: step.into(),
            kind,
            reason: reason.into(),
        }
    }
}

/// How a run failed.
///
/// ```
/// use provisioning_core::{FailureCause, FailureKind};
///
/// assert_eq!(FailureKind::from(FailureCause::RetriesExhausted), FailureKind::RetriesExhausted);
/// assert_eq!(serde_json::to_string(&FailureKind::RetriesExhausted)?, "\"retries_exhausted\"");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// A step returned a permanent error; the run compensated.
    Permanent,
    /// Transient errors (or timeouts) used up the step's retry policy; the
    /// run compensated.
    RetriesExhausted,
    /// The run was cancelled; it compensated.
    Cancelled,
    /// Compensating a step failed too: the run stopped where it was, and a
    /// retry (or `recover`) finishes the compensation.
    CompensationFailed,
    /// The run was refused before its first step (its journal belongs to
    /// another workflow, or its input no longer decodes).
    Refused,
    /// Recorded by a version that did not keep the kind, or a kind this
    /// version does not know.
    #[default]
    #[serde(other)]
    Unknown,
}

impl FailureKind {
    /// The kind as JSON names it (`retries_exhausted`).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Permanent => "permanent",
            FailureKind::RetriesExhausted => "retries_exhausted",
            FailureKind::Cancelled => "cancelled",
            FailureKind::CompensationFailed => "compensation_failed",
            FailureKind::Refused => "refused",
            FailureKind::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl From<crate::saga::FailureCause> for FailureKind {
    fn from(cause: crate::saga::FailureCause) -> Self {
        use crate::saga::FailureCause;
        match cause {
            FailureCause::Permanent => FailureKind::Permanent,
            FailureCause::RetriesExhausted => FailureKind::RetriesExhausted,
            FailureCause::Cancelled => FailureKind::Cancelled,
        }
    }
}

/// A tenant in the catalog.
///
/// `version` grows by one on every write; a write that names a stale version is a
/// [`Conflict`](crate::Error::Conflict) (optimistic concurrency).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct TenantRecord {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The request that created it (its idempotency key).
    pub request_id: RequestId,
    /// Where it is in its lifecycle.
    pub state: TenantState,
    /// Its commercial plan.
    pub plan: PlanName,
    /// The region it asked for.
    pub region: Region,
    /// Its placement, once decided.
    #[cfg_attr(feature = "openapi", schema(required))]
    pub placement: Option<Placement>,
    /// Free-form metadata (the request's attributes, and what steps record).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub metadata: BTreeMap<String, String>,
    /// Why the last provisioning failed, while the tenant is Failed.
    #[cfg_attr(feature = "openapi", schema(required))]
    pub failure: Option<FailureInfo>,
    /// Optimistic-concurrency version, starting at 1.
    pub version: u64,
    /// When the tenant was submitted.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl TenantRecord {
    /// A freshly submitted tenant: state `Requested`, version 1.
    pub fn new_requested(
        tenant_id: TenantId,
        request_id: RequestId,
        plan: PlanName,
        region: Region,
        metadata: BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) -> Self {
        TenantRecord {
            tenant_id,
            request_id,
            state: TenantState::Requested,
            plan,
            region,
            placement: None,
            metadata,
            failure: None,
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_field_names_are_stable() {
        let now = Utc::now();
        let record = TenantRecord::new_requested(
            "acme".parse().unwrap(),
            RequestId::new(),
            "free".parse().unwrap(),
            "eu-west".parse().unwrap(),
            BTreeMap::new(),
            now,
        );
        let json = serde_json::to_value(&record).unwrap();
        for field in [
            "tenant_id",
            "request_id",
            "state",
            "plan",
            "region",
            "placement",
            "metadata",
            "failure",
            "version",
            "created_at",
            "updated_at",
        ] {
            assert!(json.get(field).is_some(), "missing {field}");
        }
        assert_eq!(json["state"], "requested");
        let back: TenantRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, record);
    }
}
