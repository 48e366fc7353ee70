//! Workers drain queued requests under leases; a worker that dies mid-run
//! loses its lease and another finishes its runs from the journal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::world::*;
use provisioning_core::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_workers_drain_queued_creates_each_exactly_once() {
    let world = World::new();
    let store: Arc<InMemoryStore> = Arc::new(InMemoryStore::new());
    let submitter = world.orchestrator(store.clone()).build().unwrap();
    let mut ids = Vec::new();
    for i in 0..100 {
        let receipt = submitter
            .submit(request(
                &format!("tenant-{i}"),
                if i % 3 == 0 { "premium" } else { "free" },
                "eu-west",
            ))
            .await
            .unwrap();
        assert_eq!(receipt.status, RequestStatus::Running);
        ids.push(receipt.tenant_id);
    }
    // Submitting again is idempotent.
    let again = submitter
        .submit(request("tenant-0", "premium", "eu-west"))
        .await;
    assert!(
        matches!(again, Err(Error::Conflict { .. })),
        "another request id: conflict"
    );

    let workers: Vec<_> = (0..4)
        .map(|w| {
            let orchestrator = world.orchestrator(store.clone()).build().unwrap();
            tokio::spawn(async move {
                orchestrator
                    .run_worker(
                        &format!("worker-{w}"),
                        &WorkerOptions::drain().with_concurrency(4),
                        &CancellationToken::new(),
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut succeeded = 0;
    for worker in workers {
        let report = worker.await.unwrap();
        assert_eq!(report.failed, 0);
        succeeded += report.succeeded;
    }
    assert_eq!(succeeded, 100, "every request driven exactly once");
    for id in &ids {
        assert_eq!(
            submitter.tenant(id).await.unwrap().state,
            TenantState::Active
        );
        let events = submitter.events(id).await.unwrap();
        assert_eq!(
            kinds(&events),
            ["TenantCreated", "TenantProvisioned"],
            "{id}"
        );
    }
    let provisions = world.count_calls("provision:");
    assert_eq!(provisions, 100, "no step ran twice");
    assert!(store.unfinished_requests().await.unwrap().is_empty());
}

/// A step that never finishes for one tenant, the first time: the worker
/// running it "dies" there.
struct Hang(std::sync::atomic::AtomicBool);

#[async_trait]
impl Step<CreateContext> for Hang {
    fn name(&self) -> &str {
        "register-dns"
    }
    async fn execute(&self, _: &mut CreateContext) -> Result<(), StepError> {
        if !self.0.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_workers_run_is_finished_by_another_after_its_lease_expires() {
    let world = World::new();
    let store: Arc<InMemoryStore> = Arc::new(InMemoryStore::new());
    let hang = Arc::new(Hang(Default::default()));
    let build = || {
        world
            .orchestrator(store.clone())
            .create_step(hang.clone())
            .build()
            .unwrap()
    };
    let request = request("acme", "premium", "eu-west");
    build().submit(request.clone()).await.unwrap();

    let lease = Duration::from_millis(300);
    let options = WorkerOptions::drain().with_lease(lease);
    let doomed = build();
    let options_a = options.clone();
    let dying = tokio::spawn(async move {
        doomed
            .run_worker("worker-a", &options_a, &CancellationToken::new())
            .await
    });
    // Let worker A claim the request and hang in the step, then kill it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    dying.abort();
    let _ = dying.await;
    assert_eq!(
        store
            .tenant(&request.tenant_id)
            .await
            .unwrap()
            .unwrap()
            .state,
        TenantState::Provisioning,
        "half-way when the worker died"
    );

    // Worker B finds nothing while A's lease holds, then takes over.
    let survivor = build();
    takes_over_once_the_lease_lapses(&survivor, "worker-b", &options, &request).await;
    // Resumed from the journal: the completed steps did not run again.
    let provisions = world.count_calls("provision:");
    assert_eq!(provisions, 1);
    let trail = survivor.audit_trail(request.request_id).await.unwrap();
    let dns_attempts: Vec<u32> = trail
        .entries
        .iter()
        .filter(|e| e.step.as_deref() == Some("register-dns") && e.outcome == AuditOutcome::Started)
        .map(|e| e.attempt.unwrap())
        .collect();
    assert_eq!(dns_attempts, [1, 2], "the interrupted step re-ran once");
}

/// A step that waits for a signal (or forever while none comes).
struct Gate(Arc<tokio::sync::Notify>);

#[async_trait]
impl Step<CreateContext> for Gate {
    fn name(&self) -> &str {
        "register-dns"
    }
    async fn execute(&self, _: &mut CreateContext) -> Result<(), StepError> {
        self.0.notified().await;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_driven_in_process_is_never_claimed_by_a_worker_while_its_process_lives() {
    let world = World::new();
    let store: Arc<InMemoryStore> = Arc::new(InMemoryStore::new());
    let gate = Arc::new(tokio::sync::Notify::new());
    let lease = Duration::from_millis(90);
    let request = request("acme", "premium", "eu-west");
    let create = held_in_a_step(&world, &store, &gate, lease, &request);

    // Another process's worker polls through several lease periods while
    // the run waits in its step: the lease is renewed, nothing is claimed.
    let other = world.orchestrator(store.clone()).build().unwrap();
    let options = WorkerOptions::drain().with_lease(lease);
    for _ in 0..6 {
        tokio::time::sleep(lease / 2).await;
        // A worker that claimed the run would drive it (and report it) or,
        // racing the in-process driver, hang: either fails here.
        let report = tokio::time::timeout(
            lease * 3,
            other.run_worker("other", &options, &CancellationToken::new()),
        )
        .await
        .expect("the worker claimed the in-process run and hangs")
        .unwrap();
        assert_eq!(
            report,
            WorkerReport::default(),
            "an in-process run was claimed"
        );
    }
    gate.notify_one();
    let receipt = create.await.unwrap().unwrap();
    assert_eq!(receipt.status, RequestStatus::Succeeded);
    let provisions = world.count_calls("provision:");
    assert_eq!(provisions, 1, "driven once");
    let events = store.tenant_events(&request.tenant_id).await.unwrap();
    assert_eq!(kinds(&events), ["TenantCreated", "TenantProvisioned"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_process_run_whose_process_died_passes_to_a_worker_when_its_lease_lapses() {
    let world = World::new();
    let store: Arc<InMemoryStore> = Arc::new(InMemoryStore::new());
    let lease = Duration::from_millis(200);
    let hang = Arc::new(Hang(Default::default()));
    let request = request("acme", "premium", "eu-west");
    dies_in_a_step(&world, &store, &hang, lease, &request).await;

    let survivor = world
        .orchestrator(store.clone())
        .create_step(hang.clone())
        .build()
        .unwrap();
    let options = WorkerOptions::drain().with_lease(lease);
    takes_over_once_the_lease_lapses(&survivor, "survivor", &options, &request).await;
}

/// Creates `request` in a live process of its own (run lease `lease`),
/// whose run waits in a step until `gate` is notified, renewing its lease.
fn held_in_a_step(
    world: &Arc<World>,
    store: &Arc<InMemoryStore>,
    gate: &Arc<tokio::sync::Notify>,
    lease: Duration,
    request: &TenantRequest,
) -> tokio::task::JoinHandle<Result<Receipt>> {
    let live = world
        .orchestrator(store.clone())
        .create_step(Gate(gate.clone()))
        .run_lease(lease)
        .build()
        .unwrap();
    let request = request.clone();
    tokio::spawn(async move { live.create(request).await })
}

/// Creates `request` in a process of its own (run lease `lease`) that
/// "dies" in `hang`'s step, holding the lease: the run is left unfinished
/// until the lease lapses.
async fn dies_in_a_step(
    world: &Arc<World>,
    store: &Arc<InMemoryStore>,
    hang: &Arc<Hang>,
    lease: Duration,
    request: &TenantRequest,
) {
    let doomed = world
        .orchestrator(store.clone())
        .create_step(hang.clone())
        .run_lease(lease)
        .build()
        .unwrap();
    let dying = tokio::spawn({
        let request = request.clone();
        async move { doomed.create(request).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    dying.abort();
    let _ = dying.await;
}

/// `survivor` claims nothing while another holds `request`'s lease, then,
/// once the lease has lapsed, finishes the run: the tenant is Active.
async fn takes_over_once_the_lease_lapses(
    survivor: &ProvisioningOrchestrator,
    name: &str,
    options: &WorkerOptions,
    request: &TenantRequest,
) {
    let early = survivor
        .run_worker(name, options, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(early, WorkerReport::default(), "the lease still holds");
    tokio::time::sleep(options.lease).await;
    let report = survivor
        .run_worker(name, options, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.succeeded, 1);
    assert_eq!(
        survivor.tenant(&request.tenant_id).await.unwrap().state,
        TenantState::Active
    );
}

#[test]
fn a_run_lease_of_zero_or_over_a_day_is_refused_by_name() {
    let world = World::new();
    for lease in [Duration::ZERO, Duration::from_secs(24 * 3600 + 1)] {
        let store: Arc<InMemoryStore> = Arc::new(InMemoryStore::new());
        let refused = world
            .orchestrator(store)
            .run_lease(lease)
            .build()
            .unwrap_err();
        assert!(
            matches!(
                refused,
                Error::InvalidInput {
                    field: "run_lease",
                    ..
                }
            ),
            "{refused:?}"
        );
    }
}

/// A step of a workflow of the user's: records the tenant it ran for.
struct Note(Arc<std::sync::Mutex<Vec<String>>>);

#[async_trait]
impl Step<WorkflowContext<String>> for Note {
    fn name(&self) -> &str {
        "note"
    }
    async fn execute(&self, ctx: &mut WorkflowContext<String>) -> Result<(), StepError> {
        self.0
            .lock()
            .unwrap()
            .push(format!("{}:{}", ctx.tenant_id(), ctx.input));
        Ok(())
    }
}

/// Accepts through `api` (queued), checks the answer is `Running` with
/// nothing run, drains with a worker, and returns the final receipt.
async fn queued_then_drained(
    api: &ProvisioningOrchestrator,
    worker: &ProvisioningOrchestrator,
    accepted: Receipt,
) -> Receipt {
    assert_eq!(accepted.status, RequestStatus::Running, "{accepted:?}");
    let report = worker
        .run_worker(
            "worker-1",
            &WorkerOptions::drain(),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    let receipt = api.status(accepted.request_id).await.unwrap();
    assert_eq!(
        (report.succeeded, report.failed),
        (1, 0),
        "{report:?} {receipt:?}"
    );
    let done = api
        .wait_until_finished(accepted.request_id, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(done.status, RequestStatus::Succeeded, "{done:?}");
    done
}

#[tokio::test]
async fn every_operation_can_be_queued_and_is_run_by_a_worker() {
    let world = World::new();
    let store: Arc<InMemoryStore> = Arc::new(InMemoryStore::new());
    let notes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let saga = Saga::builder("note")
        .step(Note(notes.clone()))
        .build()
        .unwrap();
    let orchestrator = world
        .orchestrator(store.clone())
        .workflow_with_event(saga, "Noted")
        .build()
        .unwrap();
    let api = orchestrator.queued();
    assert!(api.is_queued() && !orchestrator.is_queued());
    let id: TenantId = "acme".parse().unwrap();

    let create = request("acme", "free", "eu-west");
    let accepted = api.create(create.clone()).await.unwrap();
    assert_eq!(api.tenant(&id).await.unwrap().state, TenantState::Requested);
    queued_then_drained(&api, &orchestrator, accepted.clone()).await;
    assert_eq!(api.tenant(&id).await.unwrap().state, TenantState::Active);
    // The same request again: its stored receipt, nothing queued.
    assert_eq!(
        api.create(create).await.unwrap().status,
        RequestStatus::Succeeded
    );

    let suspend = RequestId::new();
    let accepted = api.suspend(&id, suspend).await.unwrap();
    assert_eq!(api.tenant(&id).await.unwrap().state, TenantState::Active);
    // A repeat while queued answers the same request, still Running.
    assert_eq!(api.suspend(&id, suspend).await.unwrap(), accepted);
    queued_then_drained(&api, &orchestrator, accepted).await;
    assert_eq!(api.tenant(&id).await.unwrap().state, TenantState::Suspended);

    // Refused at once, nothing written: a suspended tenant is not suspended again.
    let refused = RequestId::new();
    assert!(matches!(
        api.suspend(&id, refused).await,
        Err(Error::IllegalTransition { .. })
    ));
    assert!(matches!(
        api.status(refused).await,
        Err(Error::NotFound { .. })
    ));

    let accepted = api.resume(&id, RequestId::new()).await.unwrap();
    queued_then_drained(&api, &orchestrator, accepted).await;
    assert_eq!(api.tenant(&id).await.unwrap().state, TenantState::Active);

    let accepted = api
        .run_workflow("note", &id, RequestId::new(), "hello".to_owned())
        .await
        .unwrap();
    assert!(notes.lock().unwrap().is_empty(), "not run at submission");
    queued_then_drained(&api, &orchestrator, accepted).await;
    assert_eq!(*notes.lock().unwrap(), ["acme:hello"]);

    let accepted = api
        .change_plan(&id, "standard".parse().unwrap(), RequestId::new())
        .await
        .unwrap();
    queued_then_drained(&api, &orchestrator, accepted).await;
    let record = api.tenant(&id).await.unwrap();
    assert_eq!(record.plan.as_str(), "standard");

    let accepted = api
        .delete(&id, RemovalMode::Purge, RequestId::new())
        .await
        .unwrap();
    queued_then_drained(&api, &orchestrator, accepted).await;
    assert_eq!(api.tenant(&id).await.unwrap().state, TenantState::Deleted);

    let events = api.events(&id).await.unwrap();
    assert_gapless(&events);
    assert_eq!(
        kinds(&events),
        [
            "TenantCreated",
            "TenantProvisioned",
            "TenantSuspended",
            "TenantResumed",
            "Noted",
            "TenantPlanChanged",
            "TenantDeleted"
        ]
    );
}

#[tokio::test]
async fn waiting_for_a_queued_request_ends_at_its_timeout_while_no_worker_runs() {
    let world = World::new();
    let store: Arc<InMemoryStore> = Arc::new(InMemoryStore::new());
    let orchestrator = world.orchestrator(store).build().unwrap();
    let accepted = orchestrator
        .queued()
        .create(request("acme", "free", "eu-west"))
        .await
        .unwrap();
    let waited = orchestrator
        .wait_until_finished(accepted.request_id, Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(waited.status, RequestStatus::Running);
    assert!(matches!(
        orchestrator
            .wait_until_finished(RequestId::new(), Duration::from_millis(50))
            .await,
        Err(Error::NotFound { .. })
    ));

    // A worker of this process starting meanwhile wakes the waiter.
    let waiter = {
        let orchestrator = orchestrator.clone();
        tokio::spawn(async move {
            orchestrator
                .wait_until_finished(accepted.request_id, Duration::from_secs(30))
                .await
                .unwrap()
        })
    };
    let report = orchestrator
        .run_worker(
            "worker-1",
            &WorkerOptions::drain(),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(report.succeeded, 1);
    assert_eq!(waiter.await.unwrap().status, RequestStatus::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leased_recovery_leaves_live_runs_alone_and_takes_dead_ones_once_their_lease_lapses() {
    let world = World::new();
    let store: Arc<InMemoryStore> = Arc::new(InMemoryStore::new());
    let lease = Duration::from_millis(200);

    // A live process's run, held in a step while its lease is renewed.
    let gate = Arc::new(tokio::sync::Notify::new());
    let held = request("held", "premium", "eu-west");
    let holding = held_in_a_step(&world, &store, &gate, lease, &held);
    // A dead process's run: its lease lapses.
    let hang = Arc::new(Hang(Default::default()));
    let dead = request("dead", "premium", "eu-west");
    dies_in_a_step(&world, &store, &hang, lease, &dead).await;
    // A request of a workflow this build does not know, queued before both:
    // reported, and the pass goes on past it.
    let unknown = RequestRecord::new(
        RequestId::new(),
        "held".parse().unwrap(),
        "archive-tenant",
        serde_json::json!({}),
        RunId::new(),
    );
    store
        .submit(Submission::request(unknown.clone()))
        .await
        .unwrap();

    let rescuer = world
        .orchestrator(store.clone())
        .create_step(hang.clone())
        .run_lease(lease)
        .build()
        .unwrap();
    let early = rescuer.recover_leased().await.unwrap();
    assert!(early.recovered.is_empty(), "{early:?}");
    assert_eq!(early.unknown_workflows, [unknown.request_id]);

    tokio::time::sleep(lease * 2).await;
    let report = rescuer.recover_leased().await.unwrap();
    let recovered: Vec<_> = report
        .recovered
        .iter()
        .map(|r| (r.tenant_id.to_string(), r.status))
        .collect();
    assert_eq!(
        recovered,
        [("dead".to_owned(), RequestStatus::Succeeded)],
        "the live run is left to its process: {report:?}"
    );
    assert_eq!(report.unknown_workflows, [unknown.request_id]);
    assert_eq!(
        rescuer.tenant(&dead.tenant_id).await.unwrap().state,
        TenantState::Active
    );

    gate.notify_one();
    let receipt = holding.await.unwrap().unwrap();
    assert_eq!(receipt.status, RequestStatus::Succeeded);
    let provisions = world.count_calls("provision:held");
    assert_eq!(provisions, 1, "the live run was driven once");
}
