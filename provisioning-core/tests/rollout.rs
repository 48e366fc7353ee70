//! Fleet roll-outs over the in-memory catalog: canary and failure halts with
//! the rest left pending, retries, tenants deleted, suspended and created
//! between runs, and two processes sharing one roll-out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::world::*;
use provisioning_core::*;

/// The world's schema manager, whose `migrate` fails for chosen tenants
/// while the roll-out runs, and which counts migrations per tenant.
struct Release {
    inner: Schemas,
    failing: Mutex<BTreeSet<String>>,
    armed: Mutex<bool>,
    migrations: Mutex<BTreeMap<String, usize>>,
    /// Migrations running now, and the most that ever ran at once.
    running: Mutex<(usize, usize)>,
}

#[async_trait]
impl TenantSchemaManager for Release {
    async fn preview(&self, p: &Placement) -> Result<SchemaPreview> {
        self.inner.preview(p).await
    }
    async fn provision(&self, p: &Placement) -> Result<DatabaseOutcome> {
        self.inner.provision(p).await
    }
    async fn migrate(&self, p: &Placement) -> Result<Vec<MigrationInfo>> {
        if !*self.armed.lock().unwrap() {
            return self.inner.migrate(p).await;
        }
        {
            let mut running = self.running.lock().unwrap();
            running.0 += 1;
            running.1 = running.1.max(running.0);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        self.running.lock().unwrap().0 -= 1;
        if self.failing.lock().unwrap().contains(p.tenant_id.as_str()) {
            return Err(Error::invalid(
                "migration 11",
                "column estimate_hours exists",
            ));
        }
        *self
            .migrations
            .lock()
            .unwrap()
            .entry(p.tenant_id.to_string())
            .or_default() += 1;
        Ok(vec![MigrationInfo::new(11, "task estimate")])
    }
    async fn seed(&self, p: &Placement) -> Result<Vec<SeedInfo>> {
        self.inner.seed(p).await
    }
    async fn drop_tenant(&self, p: &Placement, reason: DropReason) -> Result<()> {
        self.inner.drop_tenant(p, reason).await
    }
}

struct Fleet {
    orchestrator: ProvisioningOrchestrator,
    release: Arc<Release>,
}

impl Fleet {
    fn migrations(&self, tenant: &str) -> usize {
        self.release
            .migrations
            .lock()
            .unwrap()
            .get(tenant)
            .copied()
            .unwrap_or(0)
    }
    fn fail(&self, tenants: &[&str]) {
        *self.release.failing.lock().unwrap() = tenants.iter().map(|t| t.to_string()).collect();
    }
}

/// Six premium (dedicated) tenants and two free ones on one shared shard
/// (sorting last, so the shared unit is the last unit).
async fn fleet(store: Arc<InMemoryStore>) -> Fleet {
    let world = World::new();
    let release = Arc::new(Release {
        inner: Schemas(world.clone()),
        failing: Mutex::default(),
        armed: Mutex::new(false),
        migrations: Mutex::default(),
        running: Mutex::default(),
    });
    let orchestrator = world
        .orchestrator(store)
        .schema_manager(release.clone())
        .build()
        .unwrap();
    for t in ["t-a", "t-b", "t-c", "t-d", "t-e", "t-f"] {
        let r = orchestrator
            .create(request(t, "premium", "eu-west"))
            .await
            .unwrap();
        assert_eq!(r.status, RequestStatus::Succeeded);
    }
    for t in ["u-a", "u-b"] {
        orchestrator
            .create(request(t, "free", "eu-west"))
            .await
            .unwrap();
    }
    *release.armed.lock().unwrap() = true;
    Fleet {
        orchestrator,
        release,
    }
}

fn options() -> RolloutOptions {
    RolloutOptions::new().release("r2").concurrency(1)
}

fn statuses(units: &[RolloutUnit]) -> BTreeMap<String, UnitStatus> {
    units.iter().map(|u| (u.key.clone(), u.status)).collect()
}

async fn units(f: &Fleet, id: RolloutId) -> Vec<RolloutUnit> {
    f.orchestrator
        .store()
        .fleet()
        .unwrap()
        .rollout_units(id)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_failed_canary_halts_the_roll_out_and_a_retry_finishes_it() {
    let f = fleet(Arc::new(InMemoryStore::new())).await;
    f.fail(&["t-a"]);
    let mut seen = Vec::new();
    let report = f
        .orchestrator
        .roll_out(options().canary(2).concurrency(4), |p| {
            seen.push(p.unit.key.clone())
        })
        .await
        .unwrap();
    assert_eq!(report.rollout.status, RolloutStatus::Halted);
    let reason = report.rollout.reason.clone().unwrap();
    assert!(
        reason.contains("canary t-a failed") && reason.contains("estimate_hours"),
        "{reason}"
    );
    let mut canaries = seen.clone();
    canaries.sort();
    assert_eq!(canaries, ["t-a", "t-b"], "only the canary wave ran");
    assert_eq!(
        (
            report.counts.failed,
            report.counts.migrated,
            report.counts.pending
        ),
        (1, 1, 5)
    );
    assert_eq!(f.migrations("t-c"), 0);

    // Without a fix and without --retry-failed, running again keeps the halt.
    let again = f.orchestrator.roll_out(options(), |_| {}).await.unwrap();
    assert!(again.resumed);
    assert_eq!(again.rollout.id, report.rollout.id);
    assert_eq!(again.rollout.status, RolloutStatus::Halted);
    assert!(again.settled.is_empty());

    f.fail(&[]);
    let done = f
        .orchestrator
        .roll_out(options().retry_failed(true), |_| {})
        .await
        .unwrap();
    assert_eq!(done.rollout.id, report.rollout.id);
    assert_eq!(done.rollout.status, RolloutStatus::Completed);
    assert_eq!(done.counts.migrated, 7, "6 dedicated + 1 shared database");
    for t in ["t-a", "t-b", "t-c", "t-d", "t-e", "t-f"] {
        assert_eq!(f.migrations(t), 1, "{t} migrated exactly once");
    }
    // The shared database once, through the first of its tenants.
    assert_eq!(f.migrations("u-a") + f.migrations("u-b"), 1);
    let status = f.orchestrator.fleet_status().await.unwrap().unwrap();
    assert_eq!(status.rollout.id, report.rollout.id);
    assert!(status.failures.is_empty());
    let shared = units(&f, report.rollout.id)
        .await
        .into_iter()
        .find(|u| u.key == "shared:eu-west/eu-west-shared")
        .unwrap();
    assert_eq!(shared.tenants.len(), 2);
}

#[tokio::test]
async fn max_failures_halts_with_the_rest_pending_and_failures_never_stop_the_others() {
    let f = fleet(Arc::new(InMemoryStore::new())).await;
    f.fail(&["t-c"]);
    let halted = f
        .orchestrator
        .roll_out(options().max_failures(FailureLimit::Count(0)), |_| {})
        .await
        .unwrap();
    assert_eq!(halted.rollout.status, RolloutStatus::Halted);
    assert!(
        halted
            .rollout
            .reason
            .as_deref()
            .unwrap()
            .contains("over the limit of 0"),
        "{:?}",
        halted.rollout.reason
    );
    let by_key = statuses(&units(&f, halted.rollout.id).await);
    use UnitStatus::*;
    assert_eq!(by_key["t-a"], Migrated);
    assert_eq!(by_key["t-b"], Migrated);
    assert_eq!(by_key["t-c"], Failed);
    for t in ["t-d", "t-e", "t-f", "shared:eu-west/eu-west-shared"] {
        assert_eq!(by_key[t], Pending, "{t} left pending, not half-done");
    }

    // Run again without a limit given: the one kept still holds.
    let kept = f.orchestrator.roll_out(options(), |_| {}).await.unwrap();
    assert_eq!(kept.rollout.status, RolloutStatus::Halted);
    assert!(kept.settled.is_empty(), "nothing runs past the kept limit");
    // With the limit raised the others go on; t-c stays failed (not retried).
    let rest = f
        .orchestrator
        .roll_out(options().max_failures(FailureLimit::Unlimited), |_| {})
        .await
        .unwrap();
    assert_eq!(rest.rollout.status, RolloutStatus::Failed);
    assert_eq!((rest.counts.migrated, rest.counts.failed), (6, 1));
    let status = f.orchestrator.fleet_status().await.unwrap().unwrap();
    assert_eq!(status.failures.len(), 1);
    assert_eq!(status.failures[0].tenants[0].as_str(), "t-c");
    assert!(
        status.failures[0]
            .note
            .as_deref()
            .unwrap()
            .contains("estimate_hours")
    );
    assert_eq!(f.migrations("t-c"), 0);
    assert_eq!(f.migrations("t-a"), 1, "not run again");

    // A percentage: 1 failure of 7 units is over 10%.
    let f = fleet(Arc::new(InMemoryStore::new())).await;
    f.fail(&["t-a"]);
    let r = f
        .orchestrator
        .roll_out(options().max_failures("10%".parse().unwrap()), |_| {})
        .await
        .unwrap();
    assert_eq!(r.rollout.status, RolloutStatus::Halted);
    assert_eq!(r.counts.pending, 6);
}

#[tokio::test]
async fn suspended_are_migrated_deleted_never_and_new_tenants_join_a_continued_roll_out() {
    let f = fleet(Arc::new(InMemoryStore::new())).await;
    f.fail(&["t-a"]);
    let halted = f
        .orchestrator
        .roll_out(options().max_failures(FailureLimit::Count(0)), |_| {})
        .await
        .unwrap();
    assert_eq!(halted.rollout.status, RolloutStatus::Halted);
    let o = &f.orchestrator;
    o.suspend(&"t-b".parse().unwrap(), RequestId::new())
        .await
        .unwrap();
    o.delete(
        &"t-c".parse().unwrap(),
        RemovalMode::Purge,
        RequestId::new(),
    )
    .await
    .unwrap();
    o.create(request("t-z", "premium", "eu-west"))
        .await
        .unwrap();

    f.fail(&[]);
    let done = o
        .roll_out(options().retry_failed(true), |_| {})
        .await
        .unwrap();
    assert_eq!(done.rollout.id, halted.rollout.id);
    assert_eq!(done.rollout.status, RolloutStatus::Completed);
    let all = units(&f, done.rollout.id).await;
    let by_key = statuses(&all);
    assert_eq!(by_key["t-b"], UnitStatus::Migrated, "suspended: migrated");
    assert_eq!(by_key["t-c"], UnitStatus::Skipped, "deleted since: skipped");
    let skipped = all.iter().find(|u| u.key == "t-c").unwrap();
    assert_eq!(skipped.note.as_deref(), Some("tenant is deleted"));
    assert_eq!(f.migrations("t-c"), 0);
    assert_eq!(by_key["t-z"], UnitStatus::Migrated, "created since: added");
    assert_eq!(all.last().unwrap().key, "t-z");
    assert_eq!(f.migrations("t-b"), 1);
}

#[tokio::test]
async fn two_processes_on_one_roll_out_migrate_each_database_once() {
    let store = Arc::new(InMemoryStore::new());
    let f = fleet(store.clone()).await;
    // Spawned: a roll-out's future is Send, for a server to run it.
    let spawn = |worker: &'static str| {
        let o = f.orchestrator.clone();
        tokio::spawn(async move {
            o.roll_out(options().worker(worker).concurrency(2), |_| {})
                .await
        })
    };
    let (a, b) = (spawn("a"), spawn("b"));
    let (a, b) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
    assert_eq!(a.rollout.id, b.rollout.id, "one roll-out");
    assert_eq!(a.settled.len() + b.settled.len(), 7);
    let all = units(&f, a.rollout.id).await;
    assert!(
        all.iter()
            .all(|u| u.status == UnitStatus::Migrated && u.attempts == 1)
    );
    for t in ["t-a", "t-b", "t-c", "t-d", "t-e", "t-f"] {
        assert_eq!(f.migrations(t), 1, "{t}");
    }
    let status = f.orchestrator.fleet_status().await.unwrap().unwrap();
    assert_eq!(status.rollout.status, RolloutStatus::Completed);
    assert!(status.workers.is_empty());
}

#[tokio::test]
async fn a_roll_out_without_a_release_name_is_refused_and_writes_nothing() {
    let f = fleet(Arc::new(InMemoryStore::new())).await;
    let err = f
        .orchestrator
        .roll_out(RolloutOptions::new(), |_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invalid release"), "{err}");
    assert!(f.orchestrator.fleet_status().await.unwrap().is_none());
    let dry = f.orchestrator.preview_rollout(2).await.unwrap();
    assert_eq!(dry.len(), 7);
    assert!(f.orchestrator.fleet_status().await.unwrap().is_none());
}

#[tokio::test]
async fn workers_batches_together_start_no_more_than_the_limit_allows() {
    let f = fleet(Arc::new(InMemoryStore::new())).await;
    f.fail(&["t-a", "t-b", "t-c", "t-d"]);
    let halted = f
        .orchestrator
        .roll_out(
            options()
                .concurrency(3)
                .max_failures(FailureLimit::Count(1)),
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(halted.rollout.status, RolloutStatus::Halted);
    // The workers' batches together: one more failure than allowed (two
    // units) plus one unit for each other worker, four at once, never the
    // six that batches sized alone would start.
    let most = f.release.running.lock().unwrap().1;
    assert!(most <= 4, "{most} migrations ran at once");
    // After the first failure, one unit more; after the second, none.
    assert!(
        halted.settled.len() <= 5,
        "{} started: {:?}",
        halted.settled.len(),
        halted.settled.iter().map(|u| &u.key).collect::<Vec<_>>()
    );
    let by_key = statuses(&units(&f, halted.rollout.id).await);
    for t in ["t-f", "shared:eu-west/eu-west-shared"] {
        assert_eq!(by_key[t], UnitStatus::Pending, "{t} left pending");
    }
}

#[tokio::test]
async fn a_batched_roll_out_at_concurrency_four_settles_every_unit_once() {
    let f = fleet(Arc::new(InMemoryStore::new())).await;
    let mut seen = Vec::new();
    let report = f
        .orchestrator
        .roll_out(options().concurrency(4), |p| seen.push(p.unit.key.clone()))
        .await
        .unwrap();
    assert_eq!(report.rollout.status, RolloutStatus::Completed);
    assert_eq!(report.counts.migrated, 7);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 7, "each unit reported once");
    for t in ["t-a", "t-b", "t-c", "t-d", "t-e", "t-f"] {
        assert_eq!(f.migrations(t), 1, "{t}");
    }
}
