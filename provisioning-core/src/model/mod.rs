//! The domain model: ids, requests, placements, records and lifecycle states.

mod ids;
mod location;
mod names;
mod placement;
mod record;
mod request;
mod state;
mod tenant_id;

pub use ids::{RequestId, RolloutId, RunId};
pub use location::{REDACTED, fill_template, redact_paths, redact_secrets};
pub use names::{NAME_MAX_LEN, PlanName, Region, ShardId};
#[allow(deprecated)]
pub use placement::{Isolation, Placement, PlacementDecision, Residency, ShardChoice};
pub use record::{FailureInfo, FailureKind, TenantRecord};
pub use request::{
    ATTRIBUTE_KEY_MAX_LEN, ATTRIBUTE_VALUE_MAX_LEN, ATTRIBUTES_MAX, TenantRequest,
    validate_attribute,
};
pub use state::{TRANSITIONS, TenantState};
pub use tenant_id::{
    RESERVED_TENANT_IDS, TENANT_ID_MAX_LEN, TENANT_ID_MIN_LEN, TenantId, TenantIdRule,
};
