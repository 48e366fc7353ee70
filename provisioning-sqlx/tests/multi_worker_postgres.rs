//! Many orchestrator workers draining one PostgreSQL catalog: 500 queued
//! creates end Active exactly once each with complete journals, also when a
//! worker dies mid-run (its runs are finished by another once its lease
//! expires) — with workers as tasks on separate pools, and as OS processes.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod pg_store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::NoStorage;
use provisioning_core::*;
use provisioning_sqlx::PostgresStore;

const TENANTS: usize = 500;
const LEASE: Duration = Duration::from_secs(5);
const CHILD_URL: &str = "PROVISIONING_WORKER_CHILD_URL";
const CHILD_SCHEMA: &str = "PROVISIONING_WORKER_CHILD_SCHEMA";

struct Plans;

#[async_trait]
impl PlacementPolicy for Plans {
    async fn decide(&self, r: &TenantRequest) -> Result<PlacementDecision> {
        Ok(PlacementDecision::new(
            r.plan.clone(),
            Isolation::Shared,
            r.region.clone(),
            Residency::Strict,
            "shared",
        ))
    }
}

struct Shards;

#[async_trait]
impl ShardResolver for Shards {
    async fn resolve(&self, _: &TenantId, d: &PlacementDecision) -> Result<ShardChoice> {
        Ok(ShardChoice::new(
            "shared-1".parse()?,
            d.region.clone(),
            "one shard",
        ))
    }
}

/// Counts provisions per tenant (in this process).
#[derive(Default)]
struct Schemas(Mutex<HashMap<String, usize>>);

#[async_trait]
impl TenantSchemaManager for Schemas {
    async fn preview(&self, _: &Placement) -> Result<SchemaPreview> {
        Ok(SchemaPreview::new("shared", true, false, vec![], vec![]))
    }
    async fn provision(&self, placement: &Placement) -> Result<DatabaseOutcome> {
        *self
            .0
            .lock()
            .unwrap()
            .entry(placement.tenant_id.to_string())
            .or_default() += 1;
        Ok(DatabaseOutcome::Shared)
    }
    async fn migrate(&self, _: &Placement) -> Result<Vec<MigrationInfo>> {
        Ok(vec![])
    }
    async fn seed(&self, _: &Placement) -> Result<Vec<SeedInfo>> {
        Ok(vec![])
    }
    async fn drop_tenant(&self, _: &Placement, _: DropReason) -> Result<()> {
        Ok(())
    }
}

/// Hangs forever in the first run that reaches it for `tenant`: the worker
/// running it is then killed there.
struct HangOnce {
    tenant: &'static str,
    armed: AtomicBool,
}

#[async_trait]
impl Step<CreateContext> for HangOnce {
    fn name(&self) -> &str {
        "notify"
    }
    async fn execute(&self, ctx: &mut CreateContext) -> Result<(), StepError> {
        if ctx.request.tenant_id.as_str() == self.tenant && self.armed.swap(false, Ordering::SeqCst)
        {
            std::future::pending::<()>().await;
        }
        // Some work, so that workers overlap.
        tokio::time::sleep(Duration::from_millis(2)).await;
        Ok(())
    }
}

async fn orchestrator(
    url: &str,
    schema: &str,
    schemas: Arc<Schemas>,
    hang: Arc<HangOnce>,
) -> ProvisioningOrchestrator {
    let store = Arc::new(PostgresStore::connect_to_schema(url, schema).await.unwrap());
    ProvisioningOrchestrator::builder()
        .store(store)
        .placement_policy(Arc::new(Plans))
        .shard_resolver(Arc::new(Shards))
        .schema_manager(schemas)
        .storage(Arc::new(NoStorage))
        .create_step(hang)
        .build()
        .unwrap()
}

fn tenant(i: usize) -> String {
    format!("t-{i:04}")
}

async fn submit_all(orchestrator: &ProvisioningOrchestrator) {
    for i in 0..TENANTS {
        let request = TenantRequest::new(
            tenant(i).parse().unwrap(),
            "free".parse().unwrap(),
            "eu-west".parse().unwrap(),
        );
        let receipt = orchestrator.submit(request).await.unwrap();
        assert_eq!(receipt.status, RequestStatus::Running);
    }
}

/// Every tenant Active with exactly one TenantProvisioned, every request
/// succeeded, no run unfinished.
async fn assert_all_done(orchestrator: &ProvisioningOrchestrator) {
    let store = orchestrator.store().clone();
    assert!(store.unfinished_requests().await.unwrap().is_empty());
    assert!(store.unfinished_runs().await.unwrap().is_empty());
    let mut filter = TenantFilter::all();
    filter.limit = 10_000;
    let tenants = orchestrator.list_tenants(&filter).await.unwrap();
    assert_eq!(tenants.len(), TENANTS);
    for record in tenants {
        assert_eq!(record.state, TenantState::Active, "{}", record.tenant_id);
        let kinds: Vec<String> = orchestrator
            .events(&record.tenant_id)
            .await
            .unwrap()
            .iter()
            .map(|e| e.kind.to_string())
            .collect();
        assert_eq!(
            kinds,
            ["TenantCreated", "TenantProvisioned"],
            "{}",
            record.tenant_id
        );
        let receipt = orchestrator.status(record.request_id).await.unwrap();
        assert_eq!(receipt.status, RequestStatus::Succeeded);
        let trail = orchestrator.audit_trail(record.request_id).await.unwrap();
        assert_eq!(
            trail.entries.last().unwrap().outcome,
            provisioning_core::AuditOutcome::RunCompleted
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn four_workers_on_separate_pools_drain_500_creates_one_dies_mid_run() {
    pg_store::with_schema("workers", |url, schema| async move {
        let schemas = Arc::new(Schemas::default());
        let hang = Arc::new(HangOnce {
            tenant: "t-0042",
            armed: AtomicBool::new(true),
        });
        let submitter = orchestrator(&url, &schema, schemas.clone(), hang.clone()).await;
        submit_all(&submitter).await;

        let options = WorkerOptions::drain().with_lease(LEASE).with_concurrency(4);
        let mut workers = Vec::new();
        for w in 0..4 {
            let o = orchestrator(&url, &schema, schemas.clone(), hang.clone()).await;
            let options = options.clone();
            workers.push(tokio::spawn(async move {
                o.run_worker(&format!("worker-{w}"), &options, &CancellationToken::new())
                    .await
            }));
        }
        // The worker stuck on t-0042 never returns: kill it once the rest are done.
        let mut finished = 0;
        while finished < 3 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            finished = workers.iter().filter(|w| w.is_finished()).count();
        }
        for worker in &workers {
            worker.abort();
        }
        for worker in workers {
            let _ = worker.await; // the killed one ends cancelled
        }
        let left: Vec<String> = submitter
            .store()
            .unfinished_requests()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.tenant_id.to_string())
            .collect();
        assert_eq!(
            left,
            ["t-0042"],
            "all but the hung one were driven before the kill"
        );

        // Its lease expires; another worker resumes it from the journal.
        tokio::time::sleep(LEASE).await;
        let rescuer = orchestrator(&url, &schema, schemas.clone(), hang.clone()).await;
        let report = rescuer
            .run_worker("rescuer", &options, &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(report.succeeded, 1);
        assert_all_done(&submitter).await;
        // Each tenant's database was prepared once: no run executed twice.
        let counts = schemas.0.lock().unwrap();
        assert_eq!(counts.len(), TENANTS);
        assert!(counts.values().all(|c| *c == 1), "a step ran twice");
    })
    .await;
}

/// A worker process (spawned by the test below): drains until idle, then
/// keeps polling until killed or nothing is left.
/// Named `child_process_*`: runs of the ignored tests skip it
/// (`--include-ignored --skip child_process_`, as `.ci/run` does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by two_worker_processes_drain_500_creates_one_killed as a child"]
async fn child_process_worker() {
    let (Ok(url), Ok(schema)) = (std::env::var(CHILD_URL), std::env::var(CHILD_SCHEMA)) else {
        return;
    };
    let hang = Arc::new(HangOnce {
        tenant: "none",
        armed: AtomicBool::new(false),
    });
    let o = orchestrator(&url, &schema, Arc::default(), hang).await;
    let options = WorkerOptions::drain().with_lease(LEASE).with_concurrency(4);
    let worker = format!("process-{}", std::process::id());
    o.run_worker(&worker, &options, &CancellationToken::new())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn two_worker_processes_drain_500_creates_one_killed() {
    pg_store::with_schema("procs", |url, schema| async move {
        let hang = Arc::new(HangOnce {
            tenant: "none",
            armed: AtomicBool::new(false),
        });
        let submitter = orchestrator(&url, &schema, Arc::default(), hang.clone()).await;
        submit_all(&submitter).await;

        let spawn = || {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "child_process_worker",
                    "--exact",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_URL, &url)
                .env(CHILD_SCHEMA, &schema)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        };
        let mut doomed = spawn();
        let mut survivor = spawn();
        tokio::time::sleep(Duration::from_millis(700)).await;
        doomed.kill().unwrap(); // SIGKILL, mid-run
        doomed.wait().unwrap();
        let status = tokio::task::spawn_blocking(move || survivor.wait().unwrap())
            .await
            .unwrap();
        assert!(status.success());

        // Whatever the killed process held is finished once its leases expire.
        tokio::time::sleep(LEASE).await;
        let options = WorkerOptions::drain().with_lease(LEASE).with_concurrency(4);
        submitter
            .run_worker("rescuer", &options, &CancellationToken::new())
            .await
            .unwrap();
        assert_all_done(&submitter).await;
    })
    .await;
}

/// Waits for the next notice on `notices`, failing after a generous minute.
async fn next_notice(notices: &mut RequestNotices) -> RequestNotice {
    use futures_util::StreamExt;
    tokio::time::timeout(Duration::from_secs(60), notices.next())
        .await
        .expect("a notice within a minute")
        .expect("the stream goes on")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn queueing_and_finishing_requests_notify_every_process_on_their_schema_only() {
    pg_store::with_schemas("notices", 2, |url, schemas| async move {
        let (ours, theirs) = (&schemas[0], &schemas[1]);
        let waiter = PostgresStore::connect_to_schema(&url, ours).await.unwrap();
        let writer = PostgresStore::connect_to_schema(&url, ours).await.unwrap();
        let other = PostgresStore::connect_to_schema(&url, theirs)
            .await
            .unwrap();
        let mut notices = waiter.request_notices().await.unwrap().expect("notices");

        let submit = |store: &PostgresStore, leased: bool| {
            let store = store.clone();
            async move {
                let id = RequestId::new();
                let tenant = provisioning_core::testing::unique_tenant("n");
                let mut submission = provisioning_core::testing::create(&tenant, id);
                if leased {
                    submission = submission.leased_to("process-1", Duration::from_secs(30));
                }
                store.submit(submission).await.unwrap();
                id
            }
        };
        // Queued for workers: a notice; finished: another.
        let first = submit(&writer, false).await;
        assert_eq!(
            next_notice(&mut notices).await,
            RequestNotice::Changed(first)
        );
        writer
            .finish_request(first, RequestStatus::Succeeded, None)
            .await
            .unwrap();
        assert_eq!(
            next_notice(&mut notices).await,
            RequestNotice::Changed(first)
        );

        // Another schema's requests are not ours; a run leased to the process
        // that submitted it wakes no worker. The next notice is that run's end.
        let foreign = submit(&other, false).await;
        other
            .finish_request(foreign, RequestStatus::Succeeded, None)
            .await
            .unwrap();
        let leased = submit(&writer, true).await;
        writer
            .finish_request(leased, RequestStatus::Failed, None)
            .await
            .unwrap();
        assert_eq!(
            next_notice(&mut notices).await,
            RequestNotice::Changed(leased)
        );

        // A finish that writes nothing (an unknown request), or a duplicate
        // submission, notifies nobody.
        assert!(matches!(
            writer
                .finish_request(RequestId::new(), RequestStatus::Succeeded, None)
                .await,
            Err(Error::NotFound { .. })
        ));
        let tenant = provisioning_core::testing::unique_tenant("d");
        let again = RequestId::new();
        writer
            .submit(
                provisioning_core::testing::create(&tenant, again)
                    .leased_to("p", Duration::from_secs(30)),
            )
            .await
            .unwrap();
        assert!(matches!(
            writer
                .submit(provisioning_core::testing::create(&tenant, again))
                .await
                .unwrap(),
            SubmitOutcome::Duplicate(_)
        ));
        let last = submit(&writer, false).await;
        assert_eq!(
            next_notice(&mut notices).await,
            RequestNotice::Changed(last)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn an_idle_worker_is_woken_by_queued_requests_and_their_waiters_by_the_outcome() {
    pg_store::with_schema("queued", |url, schema| async move {
        let hang = Arc::new(HangOnce {
            tenant: "none",
            armed: AtomicBool::new(false),
        });
        let api = orchestrator(&url, &schema, Arc::default(), hang.clone())
            .await
            .queued();
        let worker = orchestrator(&url, &schema, Arc::default(), hang).await;
        let cancel = CancellationToken::new();
        // Idle for an hour between looks: only the notice of a queued
        // request can wake it in time for the waits below.
        let mut options = WorkerOptions::default();
        options.idle = Duration::from_secs(3600);
        let running = {
            let (worker, cancel) = (worker.clone(), cancel.clone());
            tokio::spawn(async move { worker.run_worker("worker-1", &options, &cancel).await })
        };
        // Its first claim finds nothing; then it waits.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let id: TenantId = "t-queued".parse().unwrap();
        let create = TenantRequest::new(
            id.clone(),
            "free".parse().unwrap(),
            "eu-west".parse().unwrap(),
        );
        let accepted = api.create(create).await.unwrap();
        assert_eq!(accepted.status, RequestStatus::Running);
        // Waited for less than the waiter's 5 s safety read: only the
        // notices (the worker's wake-up, then the waiter's) end it in time.
        let within = Duration::from_millis(4500);
        let done = api
            .wait_until_finished(accepted.request_id, within)
            .await
            .unwrap();
        assert_eq!(done.status, RequestStatus::Succeeded);

        let accepted = api.suspend(&id, RequestId::new()).await.unwrap();
        assert_eq!(accepted.status, RequestStatus::Running);
        let done = api
            .wait_until_finished(accepted.request_id, within)
            .await
            .unwrap();
        assert_eq!(done.status, RequestStatus::Succeeded);
        assert_eq!(api.tenant(&id).await.unwrap().state, TenantState::Suspended);
        let kinds: Vec<String> = api
            .events(&id)
            .await
            .unwrap()
            .iter()
            .map(|e| e.kind.to_string())
            .collect();
        assert_eq!(
            kinds,
            ["TenantCreated", "TenantProvisioned", "TenantSuspended"]
        );
        cancel.cancel();
        running.await.unwrap().unwrap();
    })
    .await;
}
