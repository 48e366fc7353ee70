//! [`ProvisioningOrchestrator`]: the control surface that creates, suspends,
//! resumes and deletes tenants, and runs the user's own workflows, all on the
//! saga executor with idempotency, a journal, events and an audit trail.

mod audit;
mod builder;
mod create;
mod drain;
mod drift;
mod lifecycle;
mod moving;
mod requests;
mod rollout;
mod transition;
mod worker;
mod workflow;

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use crate::sync::KeyedLocks;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use audit::{AuditEntry, AuditOutcome, AuditTrail};
pub use builder::ProvisioningOrchestratorBuilder;
pub use create::{CREATE_TENANT, CreateContext, steps};
pub use drain::{DrainOutcome, DrainReport, DrainStatus};
pub use drift::{DriftOptions, DriftReport, UnitDrift};
pub use lifecycle::{DELETE_TENANT, LifecycleContext, RESUME_TENANT, SUSPEND_TENANT};
pub use moving::{MOVE_TENANT, MoveContext, MovePreview, MoveReason, move_steps};
pub use rollout::{FleetStatus, RolloutOptions, RolloutProgress, RolloutReport, UnitPreview};
pub use worker::{WorkerOptions, WorkerReport};
pub use workflow::WorkflowContext;

use crate::error::{Entity, Error, Result};
use crate::events::{EventDispatcher, EventKind, NewEvent, TenantEvent};
use crate::model::{
    FailureInfo, Placement, PlacementDecision, PlanName, RequestId, RunId, ShardId, TenantId,
    TenantRecord, TenantRequest, TenantState,
};
use crate::saga::SagaExecutor;
use crate::store::{RequestRecord, RequestStatus, Submission, TenantFilter, TenantStore};
use crate::traits::{
    PlacementPolicy, RemovalMode, SchemaPreview, ShardResolver, StorageInitializer, StoragePreview,
    TenantSchemaManager,
};
use lifecycle::DELETABLE;
use requests::new_request;
use transition::{RecentRecords, load};
use workflow::{Typed, Workflow, require_active};

/// The parts every workflow step uses.
pub(crate) struct Parts {
    pub(crate) store: Arc<dyn TenantStore>,
    pub(crate) placement_policy: Arc<dyn PlacementPolicy>,
    pub(crate) resolver: Arc<dyn ShardResolver>,
    pub(crate) schema: Arc<dyn TenantSchemaManager>,
    pub(crate) storage: Arc<dyn StorageInitializer>,
    /// What this process last wrote for tenants with runs in flight.
    pub(crate) records: RecentRecords,
    /// The executor's timer, for steps that wait.
    pub(crate) timer: Arc<dyn crate::saga::Timer>,
}

/// A workflow in the registry: erased for `recover`, and as `Any` so that
/// [`ProvisioningOrchestrator::run_workflow`] can get its typed saga back.
#[derive(Clone)]
pub(crate) struct Registered {
    pub(crate) erased: Arc<dyn Workflow>,
    pub(crate) typed: Arc<dyn Any + Send + Sync>,
}

impl Registered {
    pub(crate) fn new<C>(workflow: Typed<C>) -> Self
    where
        C: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let workflow = Arc::new(workflow);
        Registered {
            erased: workflow.clone(),
            typed: workflow,
        }
    }
}

/// What a request came to, the same however often it is asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct Receipt {
    /// The idempotency key.
    pub request_id: RequestId,
    /// The tenant.
    pub tenant_id: TenantId,
    /// The workflow.
    pub workflow: String,
    /// The run that carried it out (its journal is the audit trail).
    pub run_id: RunId,
    /// Where it stands.
    pub status: RequestStatus,
    /// Why it failed, when it did.
    #[cfg_attr(feature = "openapi", schema(required))]
    pub failure: Option<FailureInfo>,
    /// When it was accepted.
    pub submitted_at: DateTime<Utc>,
    /// When it finished.
    #[cfg_attr(feature = "openapi", schema(required))]
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<RequestRecord> for Receipt {
    fn from(r: RequestRecord) -> Self {
        Receipt {
            request_id: r.request_id,
            tenant_id: r.tenant_id,
            workflow: r.workflow,
            run_id: r.run_id,
            status: r.status,
            failure: r.failure,
            submitted_at: r.submitted_at,
            finished_at: r.finished_at,
        }
    }
}

/// What creating a tenant would do: the dry run. Nothing was written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProvisioningPreview {
    /// The placement policy's decision.
    pub decision: PlacementDecision,
    /// The placement the resolver would choose.
    pub placement: Placement,
    /// The database work: location, whether it exists, pending migrations and seeds.
    pub schema: SchemaPreview,
    /// The storage paths.
    pub storage: StoragePreview,
    /// The create workflow's steps, in order.
    pub steps: Vec<String>,
}

/// What [`ProvisioningOrchestrator::recover`] did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// The requests driven to an end, with how they ended.
    pub recovered: Vec<Receipt>,
    /// Requests of workflows this orchestrator does not know (registered by
    /// another build), left alone.
    pub unknown_workflows: Vec<RequestId>,
    /// Requests journaled by another version of their workflow (other
    /// steps, or a context this version cannot read): left unfinished for
    /// an operator, with why, while the rest are recovered.
    #[serde(default)]
    pub mismatched: Vec<(RequestId, String)>,
    /// Requests whose recovery failed (the store or the journal failing
    /// for them), with the error: left unfinished for a later `recover`,
    /// while the rest are recovered.
    #[serde(default)]
    pub failed: Vec<(RequestId, String)>,
}

impl RecoveryReport {
    /// Every request left unfinished, with why: unknown workflows,
    /// mismatched journals and failed recoveries.
    pub fn unrecovered(&self) -> Vec<(RequestId, String)> {
        let unknown = self.unknown_workflows.iter().map(|id| {
            (
                *id,
                "its workflow is not registered in this process".to_owned(),
            )
        });
        unknown
            .chain(self.mismatched.iter().cloned())
            .chain(self.failed.iter().cloned())
            .collect()
    }
}

/// Creates, suspends, resumes and deletes tenants, and runs registered
/// workflows, with the guarantees of the design: idempotent by request id,
/// resumable after a crash ([`recover`](Self::recover)), nothing left behind
/// after a failure, gapless ordered events, an audit trail per request.
///
/// Every method that changes something takes a [`RequestId`]: sending the same
/// one again returns the same [`Receipt`] and runs nothing twice, also when
/// sent concurrently. Methods wait for the run to end; spawn them to answer
/// callers early.
///
/// ```
/// # use std::sync::Arc;
/// # use async_trait::async_trait;
/// # use provisioning_core::*;
/// # struct Plans; #[async_trait] impl PlacementPolicy for Plans {
/// #   async fn decide(&self, r: &TenantRequest) -> Result<PlacementDecision> {
/// #     Ok(PlacementDecision::new(r.plan.clone(), Isolation::Shared, r.region.clone(), Residency::Strict, "all shared")) } }
/// # struct Shards; #[async_trait] impl ShardResolver for Shards {
/// #   async fn resolve(&self, _: &TenantId, d: &PlacementDecision) -> Result<ShardChoice> {
/// #     Ok(ShardChoice::new("shared-1".parse()?, d.region.clone(), "one shard")) } }
/// # struct Db; #[async_trait] impl TenantSchemaManager for Db {
/// #   async fn preview(&self, _: &Placement) -> Result<SchemaPreview> { Ok(SchemaPreview::new("mem", true, false, vec![], vec![])) }
/// #   async fn provision(&self, _: &Placement) -> Result<DatabaseOutcome> { Ok(DatabaseOutcome::Shared) }
/// #   async fn migrate(&self, _: &Placement) -> Result<Vec<MigrationInfo>> { Ok(vec![]) }
/// #   async fn seed(&self, _: &Placement) -> Result<Vec<SeedInfo>> { Ok(vec![]) }
/// #   async fn drop_tenant(&self, _: &Placement, _: DropReason) -> Result<()> { Ok(()) } }
/// # struct Files; #[async_trait] impl StorageInitializer for Files {
/// #   async fn preview(&self, _: &Placement) -> Result<StoragePreview> { Ok(StoragePreview::new(vec![], false)) }
/// #   async fn initialize(&self, _: &Placement) -> Result<()> { Ok(()) }
/// #   async fn remove(&self, _: &Placement, _: RemovalMode) -> Result<()> { Ok(()) } }
/// // A workflow of your own: provision a message queue for a tenant. Its
/// // steps get the tenant (id, state, plan, placement) from the orchestrator.
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Queue { name: String, created: Option<String> }
///
/// struct CreateQueue;
///
/// #[async_trait]
/// impl Step<WorkflowContext<Queue>> for CreateQueue {
///     fn name(&self) -> &str { "create-queue" }
///     async fn execute(&self, ctx: &mut WorkflowContext<Queue>) -> Result<(), StepError> {
///         // e.g. declare "tenant.acme.jobs" on the broker of the tenant's region
///         let queue = format!("tenant.{}.{}", ctx.tenant_id(), ctx.input.name);
///         ctx.input.created = Some(queue);
///         Ok(())
///     }
///     async fn compensate(&self, ctx: &mut WorkflowContext<Queue>) -> Result<(), StepError> {
///         ctx.input.created = None; // delete it again
///         Ok(())
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let orchestrator = ProvisioningOrchestrator::builder()
///     .store(Arc::new(InMemoryStore::new()))
///     .placement_policy(Arc::new(Plans))
///     .shard_resolver(Arc::new(Shards))
///     .schema_manager(Arc::new(Db))
///     .storage(Arc::new(Files))
///     .workflow_with_event(Saga::builder("provision-queue").step(CreateQueue).build()?, "QueueProvisioned")
///     .build()?;
///
/// let request = TenantRequest::new("acme".parse()?, "free".parse()?, "eu-west".parse()?);
/// let receipt = orchestrator.create(request.clone()).await?;
/// assert_eq!(receipt.status, RequestStatus::Succeeded);
/// assert_eq!(orchestrator.tenant(&request.tenant_id).await?.state, TenantState::Active);
/// // The same request again: the same receipt, nothing runs twice.
/// assert_eq!(orchestrator.create(request.clone()).await?, receipt);
///
/// // The resource workflow, with the same idempotency, journal and events.
/// let queue = Queue { name: "jobs".into(), created: None };
/// let receipt = orchestrator
///     .run_workflow("provision-queue", &request.tenant_id, RequestId::new(), queue)
///     .await?;
/// assert_eq!(receipt.status, RequestStatus::Succeeded);
/// let events = orchestrator.events(&request.tenant_id).await?;
/// assert_eq!(events.last().unwrap().kind, EventKind::Other("QueueProvisioned".into()));
/// # Ok::<(), Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct ProvisioningOrchestrator {
    inner: Arc<Inner>,
    /// Whether requests are recorded for workers instead of run here (see
    /// [`queued`](Self::queued)).
    queued: bool,
}

struct Inner {
    parts: Arc<Parts>,
    executor: SagaExecutor,
    workflows: HashMap<String, Registered>,
    dispatcher: EventDispatcher,
    /// One lock per request id being handled in this process, so that
    /// concurrent copies of a request wait for the first instead of racing.
    inflight: KeyedLocks<RequestId>,
    /// This orchestrator's name as a lease owner: unique per instance.
    driver: String,
    /// How long the runs it starts are leased (see the builder's `run_lease`).
    run_lease: std::time::Duration,
    /// Notified whenever a run this process drives ends, for local waiters.
    finished: event_listener::Event,
}

impl std::fmt::Debug for ProvisioningOrchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self.inner.workflows.keys().collect();
        names.sort();
        f.debug_struct("ProvisioningOrchestrator")
            .field("workflows", &names)
            .field("queued", &self.queued)
            .finish_non_exhaustive()
    }
}

impl ProvisioningOrchestrator {
    /// A builder; see [`ProvisioningOrchestratorBuilder`].
    pub fn builder() -> ProvisioningOrchestratorBuilder {
        ProvisioningOrchestratorBuilder::default()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn TenantStore> {
        &self.inner.parts.store
    }

    /// The event dispatcher over the store's outbox and the registered
    /// subscribers. Run [`EventDispatcher::run`] in a task for continuous
    /// delivery; the orchestrator also delivers once after each request.
    pub fn dispatcher(&self) -> &EventDispatcher {
        &self.inner.dispatcher
    }

    /// The registered workflows' names, built-in ones included.
    pub fn workflows(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.workflows.keys().cloned().collect();
        names.sort();
        names
    }

    /// The step names of workflow `name`.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown workflow.
    pub fn workflow_steps(&self, name: &str) -> Result<Vec<String>> {
        Ok(self.registered(name)?.erased.step_names().to_vec())
    }

    /// Creates a tenant: submit (request, tenant `Requested` and
    /// `TenantCreated` in one write), then validate, place, prepare the
    /// database, migrate, seed, initialize storage, the registered create
    /// steps, and activate (`TenantProvisioned`). On failure everything is
    /// rolled back and the tenant is `Failed` (`TenantProvisioningFailed`).
    ///
    /// # Errors
    /// Bad input ([`Error::InvalidInput`], [`Error::InvalidTenantId`]), nothing
    /// written; [`Error::Conflict`] when the tenant exists under another request
    /// or the request id was used for a different request; store failures. A
    /// failed provisioning is not an error: the receipt says `Failed`.
    pub async fn create(&self, request: TenantRequest) -> Result<Receipt> {
        let submission = self.create_submission(&request).await?;
        // No precondition to guard, so no read before the submission: `submit`
        // answers a known request id with the stored request itself.
        let request_id = submission.request.request_id;
        if self.queued {
            return self
                .with_request_lock(request_id, self.record_queued(submission))
                .await;
        }
        self.with_request_lock(request_id, self.submit_and_drive(submission))
            .await
    }

    /// Validates a create request (input, then plan and region with the
    /// placement policy) and builds its submission. An unknown plan or region is bad
    /// input: refused before anything is written. The decision goes into the
    /// run's context, so the validate step does not ask the placement policy
    /// again (it does for a run whose context has none, as `retry`'s).
    async fn create_submission(&self, request: &TenantRequest) -> Result<Submission> {
        request.validate()?;
        let decision = self.inner.parts.placement_policy.decide(request).await?;
        let mut context = CreateContext::new(request.clone());
        context.decision = Some(decision);
        let record = new_request(
            request.request_id,
            &request.tenant_id,
            CREATE_TENANT,
            &context,
        )?;
        let tenant = TenantRecord::new_requested(
            request.tenant_id.clone(),
            request.request_id,
            request.plan.clone(),
            request.region.clone(),
            request.attributes.clone(),
            Utc::now(),
        );
        let event = NewEvent::new(
            EventKind::TenantCreated,
            request.request_id,
            serde_json::json!({ "plan": request.plan, "region": request.region }),
        );
        Ok(Submission::create(record, tenant, event))
    }

    /// Provisions a `Failed` tenant again, under a new request.
    ///
    /// # Errors
    /// [`Error::IllegalTransition`] when the tenant is not Failed;
    /// [`Error::NotFound`]; as [`create`](Self::create).
    pub async fn retry(&self, tenant_id: &TenantId, request_id: RequestId) -> Result<Receipt> {
        let record = load(&*self.inner.parts.store, tenant_id).await?;
        let mut request = TenantRequest::new(tenant_id.clone(), record.plan, record.region)
            .with_request_id(request_id);
        request.attributes = record.metadata;
        request
            .attributes
            .retain(|k, _| !k.starts_with("placement."));
        let context = CreateContext::new(request);
        let submission =
            Submission::request(new_request(request_id, tenant_id, CREATE_TENANT, &context)?);
        self.execute(submission, || {
            self.require_state(tenant_id, &[TenantState::Failed], TenantState::Validating)
        })
        .await
    }

    /// Suspends an Active tenant (storage and database hooks, then
    /// `Suspended` and `TenantSuspended`).
    ///
    /// # Errors
    /// [`Error::IllegalTransition`] when the tenant is not Active, nothing
    /// changed; [`Error::NotFound`]; store failures.
    pub async fn suspend(&self, tenant_id: &TenantId, request_id: RequestId) -> Result<Receipt> {
        let submission = self.lifecycle_submission(SUSPEND_TENANT, tenant_id, request_id, None)?;
        self.execute(submission, || {
            self.require_state(tenant_id, &[TenantState::Active], TenantState::Suspended)
        })
        .await
    }

    /// Resumes a Suspended tenant (`Active` and `TenantResumed`).
    ///
    /// # Errors
    /// [`Error::IllegalTransition`] when the tenant is not Suspended, nothing
    /// changed; [`Error::NotFound`]; store failures.
    pub async fn resume(&self, tenant_id: &TenantId, request_id: RequestId) -> Result<Receipt> {
        let submission = self.lifecycle_submission(RESUME_TENANT, tenant_id, request_id, None)?;
        self.execute(submission, || {
            self.require_state(tenant_id, &[TenantState::Suspended], TenantState::Active)
        })
        .await
    }

    /// Deletes an Active, Suspended or Failed tenant: `Deleting`, storage
    /// archived or purged, database (or the tenant's rows) dropped, shard
    /// capacity released, then `Deleted` and `TenantDeleted`. The tombstone
    /// stays, and the id is never reused. Deletion only goes forward: if a step
    /// fails for good the tenant stays `Deleting` and deleting again finishes it.
    ///
    /// # Errors
    /// [`Error::IllegalTransition`] from other states, nothing changed;
    /// [`Error::NotFound`]; store failures.
    pub async fn delete(
        &self,
        tenant_id: &TenantId,
        removal: RemovalMode,
        request_id: RequestId,
    ) -> Result<Receipt> {
        let submission =
            self.lifecycle_submission(DELETE_TENANT, tenant_id, request_id, Some(removal))?;
        self.execute(submission, || {
            self.require_state(tenant_id, DELETABLE, TenantState::Deleting)
        })
        .await
    }

    /// Changes an Active tenant's plan. The placement policy decides again: when
    /// the new plan needs another isolation (standard to premium: a database
    /// of its own; and back) the tenant moves, as
    /// [`move_tenant`](Self::move_tenant) describes, to a shard the resolver
    /// picks in its region; otherwise only the plan is recorded
    /// (`TenantPlanChanged`).
    ///
    /// # Errors
    /// Refused before anything is written: [`Error::InvalidInput`] on `plan`
    /// for the plan it has or one the placement policy does not know;
    /// [`Error::IllegalTransition`] when the tenant is not Active;
    /// [`Error::Placement`] when no shard can take it; [`Error::NotFound`].
    /// A move that fails is not an error: the receipt says `Failed`, and the
    /// tenant is Active where it was, with its data untouched.
    pub async fn change_plan(
        &self,
        tenant_id: &TenantId,
        plan: PlanName,
        request_id: RequestId,
    ) -> Result<Receipt> {
        let context = MoveContext::new(
            tenant_id.clone(),
            request_id,
            MoveReason::PlanChange,
            Some(plan),
            None,
        );
        self.execute_move(context).await
    }

    /// Moves an Active tenant's data to `shard`: the target is reserved,
    /// created and migrated; the tenant's writes are held (`Moving`) while
    /// its rows are copied and verified (row counts and a checksum per
    /// table); then one catalog write points it at the target, makes it
    /// `Active` and emits `TenantMoved` (from, to, why); then the source is
    /// released. A failure before that write rolls everything back (target
    /// dropped, reservation released, tenant Active on its source, data
    /// untouched); a crash anywhere leaves it wholly on one side, and
    /// [`recover`](Self::recover) finishes or rolls back the move.
    ///
    /// While it is `Moving`, suspend, resume, delete, workflows and other
    /// moves are refused ([`Error::IllegalTransition`] from `moving`): they
    /// would write to a database about to be left.
    ///
    /// # Errors
    /// Refused before anything is written: [`Error::NotFound`] for an unknown
    /// tenant or shard; [`Error::InvalidInput`] on `shard` for the shard it
    /// is on (or one whose connection is the database it is in);
    /// [`Error::Placement`] for a shard its residency (or the resolver's
    /// fallback regions) forbids, of the wrong pool, draining, or full;
    /// [`Error::IllegalTransition`] when the tenant is not Active.
    pub async fn move_tenant(
        &self,
        tenant_id: &TenantId,
        shard: ShardId,
        request_id: RequestId,
    ) -> Result<Receipt> {
        let context = MoveContext::new(
            tenant_id.clone(),
            request_id,
            MoveReason::Operator,
            None,
            Some(shard),
        );
        self.execute_move(context).await
    }

    /// Moves an Active or Suspended tenant off its shard to another shard of
    /// its region and pool that the resolver picks (mark the shard draining
    /// first, so that the resolver skips it): one tenant of a drain. A
    /// suspended tenant stays suspended.
    ///
    /// # Errors
    /// As [`move_tenant`](Self::move_tenant).
    pub async fn move_off_shard(
        &self,
        tenant_id: &TenantId,
        request_id: RequestId,
    ) -> Result<Receipt> {
        let context =
            MoveContext::new(tenant_id.clone(), request_id, MoveReason::Drain, None, None);
        self.execute_move(context).await
    }

    /// The dry run of [`change_plan`](Self::change_plan) (with `plan`) or
    /// [`move_tenant`](Self::move_tenant) (with `shard`): from, to, the steps
    /// and the rows per table that would be copied. Writes and reserves nothing.
    ///
    /// # Errors
    /// As the move would be refused.
    pub async fn preview_move(
        &self,
        tenant_id: &TenantId,
        plan: Option<PlanName>,
        shard: Option<ShardId>,
    ) -> Result<MovePreview> {
        let reason = match (&plan, &shard) {
            (Some(_), _) => MoveReason::PlanChange,
            (None, Some(_)) => MoveReason::Operator,
            (None, None) => MoveReason::Drain,
        };
        let context = MoveContext::new(tenant_id.clone(), RequestId::new(), reason, plan, shard);
        let (record, to) = self.check_move(&context).await?;
        let from = record.placement.clone().ok_or_else(|| {
            Error::invalid("tenant", format!("tenant {tenant_id} has no placement"))
        })?;
        let tables = match &to {
            Some(_) => self.inner.parts.schema.compare_tenant(&from, &from).await?,
            None => Vec::new(),
        };
        let steps = match &to {
            Some(_) => self.workflow_steps(MOVE_TENANT)?,
            None => vec![move_steps::CUT_OVER.to_owned()],
        };
        Ok(MovePreview {
            tenant_id: tenant_id.clone(),
            from,
            to,
            steps,
            tables,
        })
    }

    /// The checks a move passes before anything is written: the tenant is
    /// Active (or Suspended, in a drain), a new plan differs from its plan,
    /// and the target is allowed.
    async fn check_move(&self, context: &MoveContext) -> Result<(TenantRecord, Option<Placement>)> {
        let parts = &self.inner.parts;
        let record = load(&*parts.store, &context.tenant_id).await?;
        if !moving::movable(record.state, context.reason) {
            return Err(Error::IllegalTransition {
                from: record.state,
                to: TenantState::Moving,
            });
        }
        if let Some(holder) = record.metadata.get(transition::MOVE_CLAIM)
            && *holder != context.request_id.to_string()
        {
            return Err(Error::Conflict {
                kind: Entity::Tenant,
                id: record.tenant_id.to_string(),
                reason: format!(
                    "tenant {} is being moved by request {holder}",
                    record.tenant_id
                ),
            });
        }
        if let Some(plan) = &context.plan
            && *plan == record.plan
        {
            return Err(Error::invalid(
                "plan",
                format!("tenant {} is on plan {plan} already", record.tenant_id),
            ));
        }
        let target = moving::decide_target(
            parts,
            &record,
            context.reason,
            context.plan.as_ref(),
            context.shard.as_ref(),
            false,
        )
        .await?;
        Ok((record, target))
    }

    async fn execute_move(&self, context: MoveContext) -> Result<Receipt> {
        let submission = Submission::request(new_request(
            context.request_id,
            &context.tenant_id,
            MOVE_TENANT,
            &context,
        )?);
        self.execute(submission, || async {
            self.check_move(&context).await.map(|_| ())
        })
        .await
    }

    /// Runs the registered workflow `name` for an Active tenant, with the same
    /// idempotency, journal, audit trail and metrics as the built-in ones;
    /// `input` becomes [`WorkflowContext::input`], and the orchestrator adds the
    /// tenant (from the catalog, with its placement) and the request.
    ///
    /// The same `request_id` again returns the first run's receipt and runs
    /// nothing; another request under the same id is a conflict.
    ///
    /// # How a run settles
    /// - Every step succeeded: the receipt is
    ///   [`Succeeded`](RequestStatus::Succeeded), and the workflow's event (if
    ///   it was registered with one) is emitted for the tenant.
    /// - A step failed (after its retries): the steps that ran are compensated
    ///   in reverse and the receipt is [`Failed`](RequestStatus::Failed) with
    ///   the step and the reason ([`Receipt::failure`]). The tenant stays
    ///   Active: a workflow of yours never changes the tenant's state.
    /// - A compensation failed as well: the receipt is
    ///   [`CompensationFailed`](RequestStatus::CompensationFailed), naming the
    ///   step left to undo; [`recover`](Self::recover) retries it.
    /// - Cut short by a crash before its first step, and the tenant left Active
    ///   before [`recover`](Self::recover) started it: no step runs and the
    ///   receipt is `Failed` at `start`.
    ///
    /// [`audit_trail`](Self::audit_trail) has every step, attempt, error and
    /// compensation of a run (none for a request refused at `start`).
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown workflow or tenant;
    /// [`Error::InvalidInput`] on `input` when `I` is not the workflow's input
    /// type; [`Error::NotActive`] when the tenant is not Active (nothing is
    /// written).
    pub async fn run_workflow<I>(
        &self,
        name: &str,
        tenant_id: &TenantId,
        request_id: RequestId,
        input: I,
    ) -> Result<Receipt>
    where
        I: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let registered = self.registered(name)?;
        if registered
            .typed
            .downcast_ref::<Typed<WorkflowContext<I>>>()
            .is_none()
        {
            return Err(Error::invalid(
                "input",
                format!(
                    "workflow {name:?} takes another input type than {}",
                    std::any::type_name::<I>()
                ),
            ));
        }
        let submission = Submission::request(new_request(request_id, tenant_id, name, &input)?);
        self.execute(submission, || async {
            let record = load(&*self.inner.parts.store, tenant_id).await?;
            require_active(&record, &format!("workflow {name:?}"))
        })
        .await
    }

    /// The dry run of [`create`](Self::create): the decision, the placement,
    /// the database and storage work and the steps. Writes and reserves nothing.
    ///
    /// # Errors
    /// As `create`'s validation and placement would fail.
    pub async fn preview(&self, request: &TenantRequest) -> Result<ProvisioningPreview> {
        request.validate()?;
        let parts = &self.inner.parts;
        if let Some(existing) = parts.store.tenant(&request.tenant_id).await? {
            return Err(Error::Conflict {
                kind: Entity::Tenant,
                id: request.tenant_id.to_string(),
                reason: format!("tenant exists (state {})", existing.state),
            });
        }
        let decision = parts.placement_policy.decide(request).await?;
        let choice = parts
            .resolver
            .preview(&request.tenant_id, &decision)
            .await?;
        decision.check_residency(&request.tenant_id, &choice)?;
        let placement = Placement::new(request.tenant_id.clone(), decision.clone(), choice);
        let database = parts.schema.locate(&placement)?;
        let placement = placement.with_database(database);
        Ok(ProvisioningPreview {
            schema: parts.schema.preview(&placement).await?,
            storage: parts.storage.preview(&placement).await?,
            steps: self.workflow_steps(CREATE_TENANT)?,
            decision,
            placement,
        })
    }

    /// The receipt of a request.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown request.
    pub async fn status(&self, request_id: RequestId) -> Result<Receipt> {
        Ok(self.request_record(request_id).await?.into())
    }

    /// A tenant, tombstones included.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown tenant.
    pub async fn tenant(&self, tenant_id: &TenantId) -> Result<TenantRecord> {
        load(&*self.inner.parts.store, tenant_id).await
    }

    /// Tenants by state, region and plan, ordered by id; page with
    /// [`TenantFilter::after`] set to the last id of the previous page.
    ///
    /// # Errors
    /// Store failures.
    pub async fn list_tenants(&self, filter: &TenantFilter) -> Result<Vec<TenantRecord>> {
        self.inner.parts.store.list_tenants(filter).await
    }

    /// A tenant's events, in sequence order.
    ///
    /// # Errors
    /// Store failures.
    pub async fn events(&self, tenant_id: &TenantId) -> Result<Vec<TenantEvent>> {
        self.inner.parts.store.tenant_events(tenant_id).await
    }

    /// The ordered history of a request: every step, attempt, error and
    /// compensation, with durations.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown request.
    pub async fn audit_trail(&self, request_id: RequestId) -> Result<AuditTrail> {
        let request = self.request_record(request_id).await?;
        let records = self.inner.parts.store.load(request.run_id).await?;
        Ok(AuditTrail {
            entries: records.iter().map(AuditEntry::from_record).collect(),
            request: request.into(),
        })
    }

    fn registered(&self, name: &str) -> Result<&Registered> {
        self.inner
            .workflows
            .get(name)
            .ok_or_else(|| Error::NotFound {
                kind: Entity::Workflow,
                id: name.to_owned(),
            })
    }

    fn lifecycle_submission(
        &self,
        workflow: &str,
        tenant_id: &TenantId,
        request_id: RequestId,
        removal: Option<RemovalMode>,
    ) -> Result<Submission> {
        let context = LifecycleContext::new(tenant_id.clone(), request_id, removal);
        Ok(Submission::request(new_request(
            request_id, tenant_id, workflow, &context,
        )?))
    }

    /// The tenant exists and is in one of `states` (`to` names the move, for
    /// the error).
    async fn require_state(
        &self,
        tenant_id: &TenantId,
        states: &[TenantState],
        to: TenantState,
    ) -> Result<()> {
        let record = load(&*self.inner.parts.store, tenant_id).await?;
        if states.contains(&record.state) {
            Ok(())
        } else {
            Err(Error::IllegalTransition {
                from: record.state,
                to,
            })
        }
    }
}
