//! `recover()` after a crash at every journal write of a create (completing or
//! rolling back), of a suspend and of a delete: each request ends as if
//! nothing had crashed, with gapless events and nothing left behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::world::*;
use provisioning_core::testing::CrashingStore;
use provisioning_core::*;

/// Journal writes of one clean run of `op` on a fresh world.
async fn writes_of(op: Op) -> usize {
    let world = World::new();
    let store = Arc::new(InMemoryStore::new());
    let orchestrator = build(&world, store.clone(), op);
    let receipt = op.run(&orchestrator).await.unwrap();
    store.load(receipt.run_id).await.unwrap().len()
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Create,
    CreateFailingAtSeed,
    Suspend,
    Delete,
}

fn build(world: &Arc<World>, store: Arc<dyn TenantStore>, op: Op) -> ProvisioningOrchestrator {
    let mut builder = world.orchestrator(store);
    if let Op::CreateFailingAtSeed = op {
        builder = builder.fault_injector(Arc::new(
            StepFaults::new().fail("seed", FaultKind::Permanent),
        ));
    }
    builder.build().unwrap()
}

const TENANT: &str = "acme";

impl Op {
    async fn setup(self, orchestrator: &ProvisioningOrchestrator) {
        if let Op::Suspend | Op::Delete = self {
            orchestrator
                .create(request(TENANT, "premium", "eu-west"))
                .await
                .unwrap();
        }
    }

    async fn run(self, orchestrator: &ProvisioningOrchestrator) -> Result<Receipt> {
        self.setup(orchestrator).await;
        self.request(orchestrator, RequestId::new()).await
    }

    async fn request(
        self,
        orchestrator: &ProvisioningOrchestrator,
        id: RequestId,
    ) -> Result<Receipt> {
        let tenant: TenantId = TENANT.parse().unwrap();
        match self {
            Op::Create | Op::CreateFailingAtSeed => {
                orchestrator
                    .create(request(TENANT, "premium", "eu-west").with_request_id(id))
                    .await
            }
            Op::Suspend => orchestrator.suspend(&tenant, id).await,
            Op::Delete => orchestrator.delete(&tenant, RemovalMode::Purge, id).await,
        }
    }

    fn expected(self) -> (RequestStatus, TenantState, &'static [&'static str]) {
        match self {
            Op::Create => (
                RequestStatus::Succeeded,
                TenantState::Active,
                &["TenantCreated", "TenantProvisioned"],
            ),
            Op::CreateFailingAtSeed => (
                RequestStatus::Failed,
                TenantState::Failed,
                &["TenantCreated", "TenantProvisioningFailed"],
            ),
            Op::Suspend => (
                RequestStatus::Succeeded,
                TenantState::Suspended,
                &["TenantCreated", "TenantProvisioned", "TenantSuspended"],
            ),
            Op::Delete => (
                RequestStatus::Succeeded,
                TenantState::Deleted,
                &["TenantCreated", "TenantProvisioned", "TenantDeleted"],
            ),
        }
    }
}

async fn crash_everywhere(op: Op) {
    let writes = writes_of(op).await;
    assert!(writes >= 8, "{op:?}: {writes}");
    for crash_at in 1..writes {
        let world = World::new();
        let durable = Arc::new(InMemoryStore::new());
        // Setup (for suspend and delete) on a healthy process.
        op.setup(&build(&world, durable.clone(), op)).await;

        let crashing = Arc::new(CrashingStore::new(durable.clone(), crash_at));
        let dying = build(&world, crashing, op);
        let request_id = RequestId::new();
        let err = op.request(&dying, request_id).await.unwrap_err();
        assert!(
            matches!(err, Error::Backend { .. }),
            "{op:?}@{crash_at}: {err}"
        );
        assert_eq!(
            durable.request(request_id).await.unwrap().unwrap().status,
            RequestStatus::Running
        );

        // A new process recovers.
        let restarted = build(&world, durable.clone(), op);
        let report = restarted.recover().await.unwrap();
        assert_eq!(report.recovered.len(), 1, "{op:?}@{crash_at}");
        let (status, state, events) = op.expected();
        assert_eq!(report.recovered[0].status, status, "{op:?}@{crash_at}");
        assert_eq!(report.recovered[0].request_id, request_id);
        let tenant: TenantId = TENANT.parse().unwrap();
        assert_eq!(
            restarted.tenant(&tenant).await.unwrap().state,
            state,
            "{op:?}@{crash_at}"
        );
        let stored = restarted.events(&tenant).await.unwrap();
        assert_eq!(kinds(&stored), events, "{op:?}@{crash_at}");
        assert_gapless(&stored);
        if !matches!(op, Op::Create | Op::Suspend) {
            assert!(
                world.leftovers(TENANT).is_empty(),
                "{op:?}@{crash_at}: {:?}",
                world.leftovers(TENANT)
            );
        }
        assert!(durable.unfinished_requests().await.unwrap().is_empty());
        assert!(durable.unfinished_runs().await.unwrap().is_empty());
        // Recovering again finds nothing to do.
        assert!(restarted.recover().await.unwrap().recovered.is_empty());
    }
}

#[tokio::test]
async fn recover_a_create_crashed_at_every_step_boundary() {
    crash_everywhere(Op::Create).await;
}

#[tokio::test]
async fn recover_a_rolling_back_create_crashed_at_every_step_boundary() {
    crash_everywhere(Op::CreateFailingAtSeed).await;
}

#[tokio::test]
async fn recover_a_suspend_crashed_at_every_step_boundary() {
    crash_everywhere(Op::Suspend).await;
}

#[tokio::test]
async fn recover_a_delete_crashed_at_every_step_boundary() {
    crash_everywhere(Op::Delete).await;
}

#[tokio::test]
async fn recover_starts_a_run_that_crashed_before_its_first_journal_write() {
    let world = World::new();
    let durable = Arc::new(InMemoryStore::new());
    let dying = build(
        &world,
        Arc::new(CrashingStore::new(durable.clone(), 0)),
        Op::Create,
    );
    let request = request(TENANT, "free", "eu-west");
    dying.create(request.clone()).await.unwrap_err();
    assert_eq!(
        durable
            .tenant(&request.tenant_id)
            .await
            .unwrap()
            .unwrap()
            .state,
        TenantState::Requested
    );
    let restarted = build(&world, durable.clone(), Op::Create);
    let report = restarted.recover().await.unwrap();
    assert_eq!(report.recovered[0].status, RequestStatus::Succeeded);
    assert_eq!(
        restarted.tenant(&request.tenant_id).await.unwrap().state,
        TenantState::Active
    );
}

/// A request journaled by another version of its workflow (here: a create
/// step added since) cannot resume: it is reported and left unfinished, and
/// the other requests are still recovered.
#[tokio::test]
async fn a_run_of_another_workflow_version_is_reported_and_the_rest_recovered() {
    struct Audit;
    #[async_trait::async_trait]
    impl Step<CreateContext> for Audit {
        fn name(&self) -> &str {
            "audit"
        }
        async fn execute(&self, _: &mut CreateContext) -> Result<(), StepError> {
            Ok(())
        }
    }
    let world = World::new();
    let durable = Arc::new(InMemoryStore::new());
    // Two creates crash mid-run under the old build.
    let mut ids = Vec::new();
    for tenant in ["acme", "bolt"] {
        let dying = build(
            &world,
            Arc::new(CrashingStore::new(durable.clone(), 3)),
            Op::Create,
        );
        let request = request(tenant, "free", "eu-west");
        ids.push(request.request_id);
        dying.create(request).await.unwrap_err();
    }
    // The new build has one step more: neither run can resume.
    let upgraded = world
        .orchestrator(durable.clone())
        .create_step(Audit)
        .build()
        .unwrap();
    let report = upgraded.recover().await.unwrap();
    assert!(report.recovered.is_empty(), "{report:?}");
    let mut mismatched: Vec<_> = report.mismatched.iter().map(|(id, _)| *id).collect();
    mismatched.sort();
    ids.sort();
    assert_eq!(mismatched, ids);
    assert!(
        report.mismatched[0].1.contains("cannot resume"),
        "{report:?}"
    );
    // The old build (or an operator) can still finish them.
    let old = build(&world, durable.clone(), Op::Create);
    let report = old.recover().await.unwrap();
    assert_eq!(report.recovered.len(), 2);
    assert!(
        report
            .recovered
            .iter()
            .all(|r| r.status == RequestStatus::Succeeded)
    );
}

/// A request whose recovery fails (here its journal dies at the first
/// write) is reported with its error, and recovery goes on to the next one
/// instead of stopping there; a later `recover` finishes them.
#[tokio::test]
async fn a_request_whose_recovery_fails_is_reported_and_the_rest_go_on() {
    let world = World::new();
    let durable = Arc::new(InMemoryStore::new());
    let mut ids = Vec::new();
    for tenant in ["acme", "bolt"] {
        let dying = build(
            &world,
            Arc::new(CrashingStore::new(durable.clone(), 3)),
            Op::Create,
        );
        let request = request(tenant, "free", "eu-west");
        ids.push(request.request_id);
        dying.create(request).await.unwrap_err();
    }
    let failing = build(
        &world,
        Arc::new(CrashingStore::new(durable.clone(), 0)),
        Op::Create,
    );
    let report = failing.recover().await.unwrap();
    assert!(report.recovered.is_empty(), "{report:?}");
    let mut failed: Vec<_> = report.failed.iter().map(|(id, _)| *id).collect();
    failed.sort();
    ids.sort();
    assert_eq!(failed, ids, "both were tried: {report:?}");
    assert!(report.failed[0].1.contains("simulated crash"), "{report:?}");
    assert_eq!(report.unrecovered().len(), 2);

    let report = build(&world, durable.clone(), Op::Create)
        .recover()
        .await
        .unwrap();
    assert_eq!(report.recovered.len(), 2, "{report:?}");
    assert!(report.failed.is_empty() && report.unrecovered().is_empty());
    assert!(
        report
            .recovered
            .iter()
            .all(|r| r.status == RequestStatus::Succeeded)
    );
}

/// A run a fault interrupted (the journal refusing writes, as on a full
/// disk) is resumed by the same process once the fault is gone, by
/// `recover` called while the process lives: no restart.
#[tokio::test]
async fn a_live_process_resumes_a_run_once_its_fault_is_gone() {
    let world = World::new();
    let durable = Arc::new(InMemoryStore::new());
    let flaky = Arc::new(CrashingStore::new(durable.clone(), 3));
    let orchestrator = build(&world, flaky.clone(), Op::Create);
    let request = request(TENANT, "free", "eu-west");
    let id = request.request_id;
    orchestrator.create(request).await.unwrap_err();
    assert_eq!(
        orchestrator.status(id).await.unwrap().status,
        RequestStatus::Running
    );
    // While the fault lasts, a pass reports it and changes nothing.
    let report = orchestrator.recover().await.unwrap();
    assert_eq!(report.failed.len(), 1, "{report:?}");
    flaky.revive();
    let report = orchestrator.recover().await.unwrap();
    assert_eq!(report.recovered.len(), 1, "{report:?}");
    assert_eq!(report.recovered[0].status, RequestStatus::Succeeded);
    let tenant = orchestrator.tenant(&TENANT.parse().unwrap()).await.unwrap();
    assert_eq!(tenant.state, TenantState::Active);
}

/// `recover` in a live process skips a request this process is driving,
/// rather than waiting for its run to end.
#[tokio::test]
async fn recover_skips_a_request_this_process_is_driving() {
    struct Gate(Arc<tokio::sync::Notify>);
    #[async_trait::async_trait]
    impl Step<CreateContext> for Gate {
        fn name(&self) -> &str {
            "gate"
        }
        async fn execute(&self, _: &mut CreateContext) -> Result<(), StepError> {
            self.0.notified().await;
            Ok(())
        }
    }
    let world = World::new();
    let gate = Arc::new(tokio::sync::Notify::new());
    let orchestrator = world
        .orchestrator(Arc::new(InMemoryStore::new()))
        .create_step(Gate(gate.clone()))
        .build()
        .unwrap();
    let request = request(TENANT, "free", "eu-west");
    let id = request.request_id;
    let running = tokio::spawn({
        let orchestrator = orchestrator.clone();
        async move { orchestrator.create(request).await }
    });
    while orchestrator.status(id).await.is_err() {
        tokio::task::yield_now().await;
    }
    let report = tokio::time::timeout(std::time::Duration::from_secs(30), orchestrator.recover())
        .await
        .expect("recover waited for the run in flight")
        .unwrap();
    assert!(
        report.recovered.is_empty() && report.failed.is_empty(),
        "{report:?}"
    );
    gate.notify_one();
    assert_eq!(
        running.await.unwrap().unwrap().status,
        RequestStatus::Succeeded
    );
}
