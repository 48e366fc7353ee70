//! Lifecycle events: what the outbox holds ([`TenantEvent`]), who receives them
//! ([`EventSubscriber`]) and how they are delivered ([`EventDispatcher`]).

mod dispatcher;

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use dispatcher::{DispatchReport, EventDispatcher, EventSubscriber};

use crate::model::{RequestId, TenantId};

/// What happened to a tenant. Serialized as its name (`"TenantCreated"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// The request was accepted and the tenant recorded (`Requested`).
    TenantCreated,
    /// Provisioning finished; the tenant is `Active`.
    TenantProvisioned,
    /// The tenant was suspended.
    TenantSuspended,
    /// The tenant was resumed.
    TenantResumed,
    /// The tenant was deleted; a tombstone remains.
    TenantDeleted,
    /// Provisioning failed and was rolled back; the tenant is `Failed`:
    /// `step`, `kind` and `reason` in its data, as in the request's
    /// [`FailureInfo`](crate::FailureInfo) (the reason without server paths).
    TenantProvisioningFailed,
    /// The tenant's data moved to another database (a plan change, an
    /// operator's move, a drain): `from`, `to` and `reason` in its data.
    TenantMoved,
    /// The tenant's plan changed where its data stays.
    TenantPlanChanged,
    /// A drift repair changed the tenant's database (a migration applied
    /// or recorded, a seed run): `database` and `repairs` in its data.
    TenantSchemaRepaired,
    /// An event of a workflow the user registered (`ServiceProvisioned`).
    Other(String),
}

impl EventKind {
    /// The event's name.
    pub fn as_str(&self) -> &str {
        match self {
            EventKind::TenantCreated => "TenantCreated",
            EventKind::TenantProvisioned => "TenantProvisioned",
            EventKind::TenantSuspended => "TenantSuspended",
            EventKind::TenantResumed => "TenantResumed",
            EventKind::TenantDeleted => "TenantDeleted",
            EventKind::TenantProvisioningFailed => "TenantProvisioningFailed",
            EventKind::TenantMoved => "TenantMoved",
            EventKind::TenantPlanChanged => "TenantPlanChanged",
            EventKind::TenantSchemaRepaired => "TenantSchemaRepaired",
            EventKind::Other(name) => name,
        }
    }

    /// The kind named `name` (an unknown name is [`EventKind::Other`]).
    pub fn from_name(name: &str) -> Self {
        match name {
            "TenantCreated" => EventKind::TenantCreated,
            "TenantProvisioned" => EventKind::TenantProvisioned,
            "TenantSuspended" => EventKind::TenantSuspended,
            "TenantResumed" => EventKind::TenantResumed,
            "TenantDeleted" => EventKind::TenantDeleted,
            "TenantProvisioningFailed" => EventKind::TenantProvisioningFailed,
            "TenantMoved" => EventKind::TenantMoved,
            "TenantPlanChanged" => EventKind::TenantPlanChanged,
            "TenantSchemaRepaired" => EventKind::TenantSchemaRepaired,
            other => EventKind::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl Serialize for EventKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(EventKind::from_name(&name))
    }
}

/// An event about to be written: the store gives it its sequence number and time.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NewEvent {
    /// What happened.
    pub kind: EventKind,
    /// The request that caused it.
    pub request_id: RequestId,
    /// Details, about this tenant only.
    pub data: serde_json::Value,
}

impl NewEvent {
    /// An event of `kind` caused by `request_id`, with `data`.
    pub fn new(kind: EventKind, request_id: RequestId, data: serde_json::Value) -> Self {
        NewEvent {
            kind,
            request_id,
            data,
        }
    }
}

/// A lifecycle event as the outbox stores and subscribers receive it.
///
/// `sequence` counts from 1 per tenant with no gap; subscribers receive one
/// tenant's events in that order, at least once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TenantEvent {
    /// The tenant the event is about (and the only one whose data it carries).
    pub tenant_id: TenantId,
    /// Its position in the tenant's events, from 1.
    pub sequence: u64,
    /// What happened.
    pub kind: EventKind,
    /// The request that caused it.
    pub request_id: RequestId,
    /// When it was written.
    pub at: DateTime<Utc>,
    /// Details.
    pub data: serde_json::Value,
}

impl TenantEvent {
    /// The stored form of `event` at `sequence`, stamped `at`.
    pub fn stored(tenant_id: TenantId, sequence: u64, at: DateTime<Utc>, event: NewEvent) -> Self {
        TenantEvent {
            tenant_id,
            sequence,
            kind: event.kind,
            request_id: event.request_id,
            at,
            data: event.data,
        }
    }
}
