//! [`ProvisioningOrchestratorBuilder`].

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::events::{EventDispatcher, EventSubscriber};
use crate::orchestrator::create::{self, CREATE_TENANT, CreateContext};
use crate::orchestrator::lifecycle::{
    Action, DELETE_TENANT, LifecycleStep, RESUME_TENANT, SUSPEND_TENANT,
};
use crate::orchestrator::moving::{self, MOVE_TENANT};
use crate::orchestrator::workflow::{Kind, Typed, WorkflowContext};
use crate::orchestrator::{Inner, Parts, ProvisioningOrchestrator, Registered};
use crate::saga::{FaultInjector, RetryPolicy, Saga, SagaExecutor, Step, Timer};
use crate::store::TenantStore;
use crate::sync::KeyedLocks;
use crate::traits::{PlacementPolicy, ShardResolver, StorageInitializer, TenantSchemaManager};

/// Builds a [`ProvisioningOrchestrator`]: the store and the four extension
/// points are required; retry policy, timer, extra create steps, workflows and
/// event subscribers are optional.
#[derive(Default)]
#[must_use]
pub struct ProvisioningOrchestratorBuilder {
    store: Option<Arc<dyn TenantStore>>,
    placement_policy: Option<Arc<dyn PlacementPolicy>>,
    resolver: Option<Arc<dyn ShardResolver>>,
    schema: Option<Arc<dyn TenantSchemaManager>>,
    storage: Option<Arc<dyn StorageInitializer>>,
    retry: Option<RetryPolicy>,
    timer: Option<Arc<dyn Timer>>,
    faults: Option<Arc<dyn FaultInjector>>,
    create_steps: Vec<Arc<dyn Step<CreateContext>>>,
    workflows: Vec<(String, Registered)>,
    subscribers: Vec<Arc<dyn EventSubscriber>>,
    run_lease: Option<std::time::Duration>,
}

impl ProvisioningOrchestratorBuilder {
    /// The catalog, journal and outbox (required).
    pub fn store(mut self, store: Arc<dyn TenantStore>) -> Self {
        self.store = Some(store);
        self
    }
    /// Decides isolation and region (required).
    pub fn placement_policy(mut self, placement_policy: Arc<dyn PlacementPolicy>) -> Self {
        self.placement_policy = Some(placement_policy);
        self
    }
    /// Picks the shard (required).
    pub fn shard_resolver(mut self, resolver: Arc<dyn ShardResolver>) -> Self {
        self.resolver = Some(resolver);
        self
    }
    /// Creates, migrates, seeds and drops tenant databases (required).
    pub fn schema_manager(mut self, schema: Arc<dyn TenantSchemaManager>) -> Self {
        self.schema = Some(schema);
        self
    }
    /// Creates and removes tenant storage (required).
    pub fn storage(mut self, storage: Arc<dyn StorageInitializer>) -> Self {
        self.storage = Some(storage);
        self
    }
    /// The retry policy for steps that set none (default [`RetryPolicy::default`]).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }
    /// The timer for backoffs and timeouts (default: tokio's, with the feature).
    pub fn timer(mut self, timer: Arc<dyn Timer>) -> Self {
        self.timer = Some(timer);
        self
    }
    /// Injects failures into named steps of any workflow, for drills and
    /// tests (see [`StepFaults`](crate::StepFaults)).
    pub fn fault_injector(mut self, faults: Arc<dyn FaultInjector>) -> Self {
        self.faults = Some(faults);
        self
    }
    /// A step of yours for the create workflow, run after storage is
    /// initialized and before the tenant is activated, in the order added. It
    /// sees the placement in [`CreateContext::placement`] and is compensated on failure.
    pub fn create_step(mut self, step: impl Step<CreateContext> + 'static) -> Self {
        self.create_steps.push(Arc::new(step));
        self
    }
    /// Registers a workflow of yours (service, user, resource provisioning...)
    /// under its saga's name, run by [`ProvisioningOrchestrator::run_workflow`].
    /// Its steps run over a [`WorkflowContext`]: the tenant from the catalog
    /// (Active, with its placement), the request, and the caller's input `I`.
    pub fn workflow<I>(self, saga: Saga<WorkflowContext<I>>) -> Self
    where
        I: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        self.register(saga, None)
    }
    /// As [`workflow`](Self::workflow), emitting an event of kind `event`
    /// (`ServiceProvisioned`) for the tenant when a run completes.
    pub fn workflow_with_event<I>(
        self,
        saga: Saga<WorkflowContext<I>>,
        event: impl Into<String>,
    ) -> Self
    where
        I: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        self.register(saga, Some(event.into()))
    }
    fn register<I>(mut self, saga: Saga<WorkflowContext<I>>, success_event: Option<String>) -> Self
    where
        I: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let name = saga.name().to_owned();
        self.workflows
            .push((name, Registered::new(Typed::custom(saga, success_event))));
        self
    }
    /// How long a run this orchestrator starts is leased to it before a
    /// renewal (every third of it while the run goes on; default 30 s). The
    /// lease is written with the request, so that no worker of another
    /// process ([`run_worker`](ProvisioningOrchestrator::run_worker)) on the
    /// same catalog takes the run while this process drives it; if this
    /// process dies, the run passes to a worker once the lease lapses.
    /// [`build`](Self::build) refuses zero and more than 24 hours.
    pub fn run_lease(mut self, lease: std::time::Duration) -> Self {
        self.run_lease = Some(lease);
        self
    }
    /// Receives lifecycle events.
    pub fn subscriber(mut self, subscriber: Arc<dyn EventSubscriber>) -> Self {
        self.subscribers.push(subscriber);
        self
    }

    /// The orchestrator.
    ///
    /// # Errors
    /// [`Error::MissingPart`] naming a missing required part;
    /// [`Error::InvalidInput`] on `workflow` for a workflow name registered
    /// twice or taken by a built-in workflow, or on `steps` for a create step
    /// named like a built-in one.
    pub fn build(self) -> Result<ProvisioningOrchestrator> {
        let run_lease = self
            .run_lease
            .unwrap_or(crate::orchestrator::WorkerOptions::default().lease);
        if run_lease.is_zero() || run_lease > std::time::Duration::from_secs(24 * 3600) {
            return Err(Error::invalid(
                "run_lease",
                "must be more than zero and at most 24 hours",
            ));
        }
        fn required<T>(part: Option<T>, name: &'static str, setter: &'static str) -> Result<T> {
            part.ok_or(Error::MissingPart { part: name, setter })
        }
        let store = required(self.store, "store", "store")?;
        let mut executor = SagaExecutor::builder().journal(store.clone());
        if let Some(timer) = self.timer {
            executor = executor.timer(timer);
        }
        if let Some(faults) = self.faults {
            executor = executor.fault_injector(faults);
        }
        if let Some(retry) = self.retry {
            executor = executor.retry_policy(retry);
        }
        let executor = executor.build()?;
        let parts = Arc::new(Parts {
            placement_policy: required(
                self.placement_policy,
                "placement policy",
                "placement_policy",
            )?,
            resolver: required(self.resolver, "shard resolver", "shard_resolver")?,
            schema: required(self.schema, "schema manager", "schema_manager")?,
            storage: required(self.storage, "storage initializer", "storage")?,
            store: store.clone(),
            records: Default::default(),
            timer: executor.timer().clone(),
        });

        let mut workflows: HashMap<String, Registered> = HashMap::new();
        workflows.insert(
            CREATE_TENANT.to_owned(),
            Registered::new(Typed::builtin(
                create_saga(&parts, self.create_steps)?,
                Kind::Create,
            )),
        );
        for (name, steps) in lifecycle_sagas() {
            let saga = steps
                .iter()
                .fold(Saga::builder(name), |b, (step, action)| {
                    b.step(LifecycleStep::new(step, &parts, *action))
                })
                .build()?;
            workflows.insert(
                name.to_owned(),
                Registered::new(Typed::builtin(saga, Kind::Lifecycle)),
            );
        }
        let move_saga = moving::MoveStep::all(&parts)
            .into_iter()
            .fold(Saga::builder(MOVE_TENANT), |b, step| b.step(step))
            .build()?;
        workflows.insert(
            MOVE_TENANT.to_owned(),
            Registered::new(Typed::builtin(move_saga, Kind::Lifecycle)),
        );
        for (name, registered) in self.workflows {
            if workflows.contains_key(&name) {
                return Err(Error::invalid(
                    "workflow",
                    format!("a workflow named {name:?} is already registered"),
                ));
            }
            workflows.insert(name, registered);
        }
        Ok(ProvisioningOrchestrator {
            queued: false,
            inner: Arc::new(Inner {
                dispatcher: EventDispatcher::new(store, self.subscribers),
                parts,
                executor,
                workflows,
                inflight: KeyedLocks::default(),
                driver: format!(
                    "process-{}-{}",
                    std::process::id(),
                    uuid::Uuid::now_v7().simple()
                ),
                run_lease,
                finished: event_listener::Event::new(),
            }),
        })
    }
}

fn create_saga(
    parts: &Arc<Parts>,
    user_steps: Vec<Arc<dyn Step<CreateContext>>>,
) -> Result<Saga<CreateContext>> {
    let p = || Arc::clone(parts);
    let builder = Saga::builder(CREATE_TENANT)
        .step(create::Validate(p()))
        .step(create::Place(p()))
        .step(create::PrepareDatabase(p()))
        .step(create::Migrate(p()))
        .step(create::Seed(p()))
        .step(create::InitializeStorage(p()));
    user_steps
        .into_iter()
        .fold(builder, |b, step| b.step_arc(step))
        .step(create::Activate(p()))
        .build()
}

type LifecycleSaga = (&'static str, &'static [(&'static str, Action)]);

fn lifecycle_sagas() -> [LifecycleSaga; 3] {
    [
        (
            SUSPEND_TENANT,
            &[
                ("suspend-storage", Action::SuspendStorage),
                ("suspend-database", Action::SuspendDatabase),
                ("mark-suspended", Action::MarkSuspended),
            ],
        ),
        (
            RESUME_TENANT,
            &[
                ("resume-database", Action::ResumeDatabase),
                ("resume-storage", Action::ResumeStorage),
                ("mark-active", Action::MarkResumed),
            ],
        ),
        (
            DELETE_TENANT,
            &[
                ("mark-deleting", Action::MarkDeleting),
                ("remove-storage", Action::RemoveStorage),
                ("drop-database", Action::DropDatabase),
                ("release-shard", Action::ReleaseShard),
                ("mark-deleted", Action::MarkDeleted),
            ],
        ),
    ]
}
