#![doc = include_str!("../README.md")]
//!
//! ## What is where
//!
//! - **Model**: [`TenantId`] (a validated slug: a `TenantId` that exists is
//!   safe as a file name, an SQL identifier and an object-store path segment),
//!   [`RequestId`], [`TenantRequest`], [`Placement`], [`TenantRecord`].
//! - **Lifecycle**: [`TenantState`] and its one transition table, [`TRANSITIONS`].
//! - **Extension points** (the seed documents' `ITenantPlanBuilder`,
//!   `IShardResolver`, `ITenantSchemaManager`): [`PlacementPolicy`],
//!   [`ShardResolver`], [`TenantSchemaManager`], [`StorageInitializer`].
//! - **Saga executor**: [`Saga`] of [`Step`]s run by a [`SagaExecutor`] with
//!   [`RetryPolicy`] backoff, compensation in reverse, a [`SagaJournal`] (here
//!   [`InMemoryJournal`]; durable ones in `provisioning-sqlx`), resume after a
//!   crash, and [`CancellationToken`]s.
//! - **Orchestrator**: [`ProvisioningOrchestrator`] (create, suspend, resume,
//!   delete, change plan, move, drain, roll out, drift, run workflows) over a
//!   [`TenantStore`] (here [`InMemoryStore`]).

mod error;
pub mod events;
pub mod fleet;
pub mod model;
#[cfg(feature = "openapi")]
mod openapi;
pub mod orchestrator;
pub mod saga;
pub mod store;
pub mod sync;
#[cfg(feature = "testing")]
pub mod testing;
pub mod traits;

pub use error::{BoxError, Entity, Error, Result};
pub use events::{
    DispatchReport, EventDispatcher, EventKind, EventSubscriber, NewEvent, TenantEvent,
};
pub use fleet::{
    Drift, DriftKind, FailureLimit, FleetStore, NewRolloutUnit, OpenedRollout, Repair, Rollout,
    RolloutCounts, RolloutSettings, RolloutStatus, RolloutUnit, UnitResult, UnitStatus,
};
#[allow(deprecated)]
pub use model::{
    FailureInfo, FailureKind, Isolation, Placement, PlacementDecision, PlanName, Region, RequestId,
    Residency, RolloutId, RunId, ShardChoice, ShardId, TENANT_ID_MAX_LEN, TENANT_ID_MIN_LEN,
    TRANSITIONS, TenantId, TenantIdRule, TenantRecord, TenantRequest, TenantState,
};
pub use orchestrator::{
    AuditEntry, AuditOutcome, AuditTrail, CREATE_TENANT, CreateContext, DELETE_TENANT,
    DrainOutcome, DrainReport, DrainStatus, DriftOptions, DriftReport, FleetStatus,
    LifecycleContext, MOVE_TENANT, MoveContext, MovePreview, MoveReason, ProvisioningOrchestrator,
    ProvisioningOrchestratorBuilder, ProvisioningPreview, RESUME_TENANT, Receipt, RecoveryReport,
    RolloutOptions, RolloutProgress, RolloutReport, SUSPEND_TENANT, UnitDrift, UnitPreview,
    WorkerOptions, WorkerReport, WorkflowContext,
};
#[cfg(feature = "tokio")]
pub use saga::TokioTimer;
pub use saga::{
    CancellationToken, FailureCause, FaultInjector, FaultKind, InMemoryJournal, JournalEntry,
    JournalRecord, RetryPolicy, RetryPolicyBuilder, RunReport, RunStatus, Saga, SagaBuilder,
    SagaExecutor, SagaExecutorBuilder, SagaJournal, Step, StepError, StepErrorKind, StepFailure,
    StepFaults, Timer,
};
pub use store::{
    InMemoryStore, RequestNotice, RequestNotices, RequestRecord, RequestStatus, Submission,
    SubmissionLease, SubmitOutcome, TenantFilter, TenantStore,
};
pub use traits::{
    DatabaseOutcome, DropReason, MigrationInfo, PlacementPolicy, RemovalMode, SchemaPreview,
    SeedInfo, ShardResolver, StorageInitializer, StoragePreview, TableComparison,
    TenantSchemaManager, Upgrade,
};
