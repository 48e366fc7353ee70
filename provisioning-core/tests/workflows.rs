//! The user's own workflows on the orchestrator: idempotent by request id,
//! journaled with an audit trail, events emitted, refused for tenants that are
//! not Active, compensated on failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::world::*;
use provisioning_core::Entity;
use provisioning_core::*;
use serde::{Deserialize, Serialize};

/// The input of the `service` workflow: no tenant in it, the orchestrator
/// gives the steps theirs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Service {
    service: String,
    tier: String,
}

type ServiceCtx = WorkflowContext<Service>;

/// The "subscriptions" a service workflow creates, per tenant.
#[derive(Default)]
struct Subscriptions(Mutex<Vec<String>>);

struct Subscribe(Arc<Subscriptions>);

#[async_trait]
impl Step<ServiceCtx> for Subscribe {
    fn name(&self) -> &str {
        "subscribe"
    }
    async fn execute(&self, ctx: &mut ServiceCtx) -> Result<(), StepError> {
        assert_eq!(ctx.tenant().state, TenantState::Active);
        assert_eq!(&ctx.tenant().tenant_id, ctx.tenant_id());
        assert_eq!(&ctx.placement().tenant_id, ctx.tenant_id());
        let key = key(ctx);
        let mut subs = self.0.0.lock().unwrap();
        if !subs.contains(&key) {
            subs.push(key);
        }
        Ok(())
    }
    async fn compensate(&self, ctx: &mut ServiceCtx) -> Result<(), StepError> {
        let key = key(ctx);
        self.0.0.lock().unwrap().retain(|s| *s != key);
        Ok(())
    }
}

/// What a subscription is keyed by: the tenant and shard the orchestrator
/// gave the step, the request, and the input.
fn key(ctx: &ServiceCtx) -> String {
    format!(
        "{}@{}:{}:{}:{}",
        ctx.tenant_id(),
        ctx.placement().shard,
        ctx.request_id(),
        ctx.input.service,
        ctx.input.tier
    )
}

struct SetRateLimits;

#[async_trait]
impl Step<ServiceCtx> for SetRateLimits {
    fn name(&self) -> &str {
        "set-rate-limits"
    }
    async fn execute(&self, _: &mut ServiceCtx) -> Result<(), StepError> {
        Ok(())
    }
}

fn orchestrator(
    world: &Arc<World>,
    subs: &Arc<Subscriptions>,
    faults: Option<StepFaults>,
) -> ProvisioningOrchestrator {
    orchestrator_on(world, Arc::new(InMemoryStore::new()), subs, faults)
}

fn orchestrator_on(
    world: &Arc<World>,
    store: Arc<InMemoryStore>,
    subs: &Arc<Subscriptions>,
    faults: Option<StepFaults>,
) -> ProvisioningOrchestrator {
    let saga = Saga::builder("service")
        .step(Subscribe(subs.clone()))
        .step(SetRateLimits)
        .build()
        .unwrap();
    let mut builder = world
        .orchestrator(store)
        .workflow_with_event(saga, "ServiceProvisioned");
    if let Some(faults) = faults {
        builder = builder.fault_injector(Arc::new(faults));
    }
    builder.build().unwrap()
}

fn ctx() -> Service {
    Service {
        service: "search".into(),
        tier: "gold".into(),
    }
}

#[tokio::test]
async fn a_registered_workflow_runs_once_per_request_with_events_and_audit() {
    let world = World::new();
    let subs = Arc::new(Subscriptions::default());
    let orchestrator = orchestrator(&world, &subs, None);
    let id: TenantId = "acme".parse().unwrap();
    orchestrator
        .create(request("acme", "free", "eu-west"))
        .await
        .unwrap();
    assert!(orchestrator.workflows().contains(&"service".to_owned()));

    let request_id = RequestId::new();
    let first = orchestrator
        .run_workflow("service", &id, request_id, ctx())
        .await
        .unwrap();
    let again = orchestrator
        .run_workflow("service", &id, request_id, ctx())
        .await
        .unwrap();

    assert_eq!(first, again);
    assert_eq!(first.status, RequestStatus::Succeeded);
    assert_eq!(first.workflow, "service");
    let shard = orchestrator
        .tenant(&id)
        .await
        .unwrap()
        .placement
        .unwrap()
        .shard;
    assert_eq!(
        *subs.0.lock().unwrap(),
        [format!("acme@{shard}:{request_id}:search:gold")]
    );
    let events = orchestrator.events(&id).await.unwrap();
    assert_eq!(
        kinds(&events),
        ["TenantCreated", "TenantProvisioned", "ServiceProvisioned"]
    );
    assert_gapless(&events);
    let trail = orchestrator.audit_trail(request_id).await.unwrap();
    let steps: Vec<_> = trail
        .entries
        .iter()
        .filter(|e| e.outcome == AuditOutcome::Completed)
        .map(|e| e.step.clone().unwrap())
        .collect();
    assert_eq!(steps, ["subscribe", "set-rate-limits"]);

    // The same request id with other parameters is a conflict.
    let mut other = ctx();
    other.tier = "silver".into();
    let err = orchestrator
        .run_workflow("service", &id, request_id, other)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                kind: Entity::Request,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_workflow_is_refused_for_a_suspended_tenant() {
    let world = World::new();
    let subs = Arc::new(Subscriptions::default());
    let orchestrator = orchestrator(&world, &subs, None);
    let id: TenantId = "acme".parse().unwrap();
    orchestrator
        .create(request("acme", "free", "eu-west"))
        .await
        .unwrap();
    orchestrator.suspend(&id, RequestId::new()).await.unwrap();
    let err = orchestrator
        .run_workflow("service", &id, RequestId::new(), ctx())
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::NotActive {
                tenant,
                state: TenantState::Suspended,
                ..
            } if *tenant == id
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "tenant acme is suspended: workflow \"service\" needs an Active tenant"
    );
    assert!(subs.0.lock().unwrap().is_empty());
    let err = orchestrator
        .run_workflow("nope", &id, RequestId::new(), ctx())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::NotFound {
            kind: Entity::Workflow,
            ..
        }
    ));
    let err = orchestrator
        .run_workflow("service", &id, RequestId::new(), 42u32)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput { field: "input", .. }),
        "{err}"
    );
}

#[tokio::test]
async fn a_failing_workflow_is_compensated_and_emits_nothing() {
    let world = World::new();
    let subs = Arc::new(Subscriptions::default());
    let orchestrator = orchestrator(&world, &subs, Some("set-rate-limits".parse().unwrap()));
    let id: TenantId = "acme".parse().unwrap();
    orchestrator
        .create(request("acme", "free", "eu-west"))
        .await
        .unwrap();
    let receipt = orchestrator
        .run_workflow("service", &id, RequestId::new(), ctx())
        .await
        .unwrap();
    assert_eq!(receipt.status, RequestStatus::Failed);
    assert_eq!(receipt.failure.unwrap().step, "set-rate-limits");
    assert!(
        subs.0.lock().unwrap().is_empty(),
        "subscription compensated"
    );
    let events = orchestrator.events(&id).await.unwrap();
    assert_eq!(kinds(&events), ["TenantCreated", "TenantProvisioned"]);
    assert_eq!(
        orchestrator.tenant(&id).await.unwrap().state,
        TenantState::Active
    );
}

#[tokio::test]
async fn a_workflow_name_cannot_be_taken_twice() {
    let world = World::new();
    let saga = || {
        Saga::builder(CREATE_TENANT)
            .step(SetRateLimits)
            .build()
            .unwrap()
    };
    let err = world
        .orchestrator(Arc::new(InMemoryStore::new()))
        .workflow(saga())
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidInput {
                field: "workflow",
                ..
            }
        ),
        "{err}"
    );
}

/// A request that a crash left before its first step, for a tenant suspended
/// since: recovery starts it, the orchestrator refuses to build its context,
/// and the request fails at `start` without running a step.
#[tokio::test]
async fn a_recovered_run_whose_tenant_left_active_fails_at_start() {
    let world = World::new();
    let subs = Arc::new(Subscriptions::default());
    let store = Arc::new(InMemoryStore::new());
    let orchestrator = orchestrator_on(&world, store.clone(), &subs, None);
    let id: TenantId = "acme".parse().unwrap();
    orchestrator
        .create(request("acme", "free", "eu-west"))
        .await
        .unwrap();
    orchestrator.suspend(&id, RequestId::new()).await.unwrap();

    // As `run_workflow` left it when the process died after submitting.
    let request_id = RequestId::new();
    let record = RequestRecord::new(
        request_id,
        id.clone(),
        "service",
        serde_json::to_value(ctx()).unwrap(),
        RunId::from_uuid(*request_id.as_uuid()).unwrap(),
    );
    store.submit(Submission::request(record)).await.unwrap();

    let report = orchestrator.recover().await.unwrap();
    assert_eq!(report.recovered.len(), 1, "{report:?}");
    let receipt = &report.recovered[0];
    assert_eq!(receipt.request_id, request_id);
    assert_eq!(receipt.status, RequestStatus::Failed);
    let failure = receipt.failure.clone().unwrap();
    assert_eq!(failure.step, "start");
    assert!(
        failure.reason.contains("is suspended") && failure.reason.contains("Active"),
        "{failure:?}"
    );
    assert!(subs.0.lock().unwrap().is_empty(), "no step ran");
    assert_eq!(
        orchestrator.tenant(&id).await.unwrap().state,
        TenantState::Suspended
    );
    let events = orchestrator.events(&id).await.unwrap();
    assert_eq!(
        kinds(&events),
        ["TenantCreated", "TenantProvisioned", "TenantSuspended"]
    );
    // Settled: a second recovery has nothing to do.
    assert!(orchestrator.recover().await.unwrap().recovered.is_empty());
}

/// The `service` input of a later release: `tier` became a number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ServiceV2 {
    service: String,
    tier: u32,
}

struct SubscribeV2;

#[async_trait]
impl Step<WorkflowContext<ServiceV2>> for SubscribeV2 {
    fn name(&self) -> &str {
        "subscribe"
    }
    async fn execute(&self, _: &mut WorkflowContext<ServiceV2>) -> Result<(), StepError> {
        Ok(())
    }
}

struct SetRateLimitsV2;

#[async_trait]
impl Step<WorkflowContext<ServiceV2>> for SetRateLimitsV2 {
    fn name(&self) -> &str {
        "set-rate-limits"
    }
    async fn execute(&self, _: &mut WorkflowContext<ServiceV2>) -> Result<(), StepError> {
        Ok(())
    }
}

/// A run cut short by a crash, whose context a later release cannot read:
/// recovery reports it and goes on with the other requests.
#[tokio::test]
async fn recovery_reports_a_run_whose_context_a_new_release_cannot_read() {
    let world = World::new();
    let subs = Arc::new(Subscriptions::default());
    let durable = Arc::new(InMemoryStore::new());
    let healthy = orchestrator_on(&world, durable.clone(), &subs, None);
    let id: TenantId = "acme".parse().unwrap();
    healthy
        .create(request("acme", "free", "eu-west"))
        .await
        .unwrap();
    // Dies after the run started and its first step began.
    let crashing = Arc::new(provisioning_core::testing::CrashingStore::new(
        durable.clone(),
        2,
    ));
    let saga = Saga::builder("service")
        .step(Subscribe(subs.clone()))
        .step(SetRateLimits)
        .build()
        .unwrap();
    let dying = world.orchestrator(crashing).workflow(saga).build().unwrap();
    let cut = RequestId::new();
    dying
        .run_workflow("service", &id, cut, ctx())
        .await
        .unwrap_err();
    // And a create cut short, which the new release can finish.
    let dying_create = world
        .orchestrator(Arc::new(provisioning_core::testing::CrashingStore::new(
            durable.clone(),
            3,
        )))
        .build()
        .unwrap();
    let bolt = request("bolt", "free", "eu-west");
    dying_create.create(bolt.clone()).await.unwrap_err();

    let saga = Saga::builder("service")
        .step(SubscribeV2)
        .step(SetRateLimitsV2)
        .build()
        .unwrap();
    let upgraded = world
        .orchestrator(durable.clone())
        .workflow(saga)
        .build()
        .unwrap();
    let report = upgraded.recover().await.unwrap();
    assert_eq!(report.mismatched.len(), 1, "{report:?}");
    assert_eq!(report.mismatched[0].0, cut);
    assert!(
        report.mismatched[0].1.contains("serialization"),
        "{report:?}"
    );
    assert_eq!(report.recovered.len(), 1, "{report:?}");
    assert_eq!(report.recovered[0].request_id, bolt.request_id);
    assert_eq!(
        upgraded.tenant(&bolt.tenant_id).await.unwrap().state,
        TenantState::Active
    );
}
