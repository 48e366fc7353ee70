//! Crash test: a child process provisions tenants on the SQLite store, with
//! real dedicated and shared SQLite databases and local storage, and is killed
//! with SIGKILL at random moments. After `recover()` no acknowledged request is
//! lost, no tenant is half-made, and each tenant's events are gapless.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use provisioning_core::*;
use provisioning_sqlx::{SqliteSchemaManager, SqliteStore};
use provisioning_storage::ObjectStoreInitializer;

const CHILD_DIR: &str = "PROVISIONING_CRASH_CHILD_DIR";
const CHILD_ROUND: &str = "PROVISIONING_CRASH_CHILD_ROUND";

struct Plans;

#[async_trait]
impl PlacementPolicy for Plans {
    async fn decide(&self, r: &TenantRequest) -> Result<PlacementDecision> {
        let isolation = if r.plan.as_str() == "premium" {
            Isolation::Dedicated
        } else {
            Isolation::Shared
        };
        Ok(PlacementDecision::new(
            r.plan.clone(),
            isolation,
            r.region.clone(),
            Residency::Strict,
            "test",
        ))
    }
}

struct Shards;

#[async_trait]
impl ShardResolver for Shards {
    async fn resolve(&self, _: &TenantId, d: &PlacementDecision) -> Result<ShardChoice> {
        let shard = format!("{}-{}", d.region, d.isolation).parse()?;
        Ok(ShardChoice::new(
            shard,
            d.region.clone(),
            "one shard per pool",
        ))
    }
}

async fn orchestrator(dir: &Path) -> (ProvisioningOrchestrator, Arc<SqliteSchemaManager>) {
    let store = Arc::new(SqliteStore::open(dir.join("catalog.sqlite")).await.unwrap());
    let schema = Arc::new(
        SqliteSchemaManager::builder()
            .root(dir.join("databases"))
            .dedicated(common::schema("sqlite", false).await)
            .shared(common::schema("sqlite-shared", false).await)
            .build()
            .unwrap(),
    );
    let storage = Arc::new(
        ObjectStoreInitializer::builder()
            .with_local("eu-west".parse().unwrap(), dir.join("storage"))
            .layout(["uploads", "exports"])
            .build()
            .unwrap(),
    );
    let orchestrator = ProvisioningOrchestrator::builder()
        .store(store)
        .placement_policy(Arc::new(Plans))
        .shard_resolver(Arc::new(Shards))
        .schema_manager(schema.clone())
        .storage(storage)
        .build()
        .unwrap();
    (orchestrator, schema)
}

fn request(round: usize, i: usize) -> TenantRequest {
    let plan = if i % 2 == 0 { "premium" } else { "free" };
    TenantRequest::new(
        format!("t{round}x{i}").parse().unwrap(),
        plan.parse().unwrap(),
        "eu-west".parse().unwrap(),
    )
}

/// The child: provisions tenants until it is killed, logging each request id
/// once its receipt came back.
/// Named `child_process_*`: runs of the ignored tests skip it
/// (`--include-ignored --skip child_process_`, as `.ci/run` does).
#[tokio::test]
#[ignore = "run by crash_test_kill_and_recover as a child process"]
async fn child_process_crash() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let round: usize = std::env::var(CHILD_ROUND).unwrap().parse().unwrap();
    let dir = PathBuf::from(dir);
    let (orchestrator, _) = orchestrator(&dir).await;
    let mut acked = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("acked.log"))
        .unwrap();
    for i in 0.. {
        let receipt = orchestrator.create(request(round, i)).await.unwrap();
        writeln!(acked, "{} {}", receipt.request_id, receipt.tenant_id).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_test_kill_and_recover() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut total_acked = 0;
    for round in 0..6 {
        let mut child = std::process::Command::new(&exe)
            .args([
                "child_process_crash",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_ROUND, round.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(fastrand::u64(300..1500))).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        // A new process: recover, then check every tenant.
        let (orchestrator, schema) = orchestrator(dir.path()).await;
        let report = orchestrator.recover().await.unwrap();
        let store = orchestrator.store().clone();
        assert!(
            store.unfinished_requests().await.unwrap().is_empty(),
            "round {round}"
        );
        assert!(
            store.unfinished_runs().await.unwrap().is_empty(),
            "round {round}"
        );

        let acked = std::fs::read_to_string(dir.path().join("acked.log")).unwrap_or_default();
        for line in acked.lines() {
            let (id, _) = line.split_once(' ').unwrap();
            let receipt = orchestrator.status(id.parse().unwrap()).await.unwrap();
            assert_eq!(
                receipt.status,
                RequestStatus::Succeeded,
                "acknowledged {id} was lost"
            );
        }
        total_acked = acked.lines().count();

        let mut all = TenantFilter::all();
        all.limit = 10_000;
        for tenant in orchestrator.list_tenants(&all).await.unwrap() {
            let events = orchestrator.events(&tenant.tenant_id).await.unwrap();
            let seqs: Vec<u64> = events.iter().map(|e| e.sequence).collect();
            assert_eq!(
                seqs,
                (1..=events.len() as u64).collect::<Vec<_>>(),
                "{}",
                tenant.tenant_id
            );
            let kinds: Vec<String> = events.iter().map(|e| e.kind.to_string()).collect();
            let plan = tenant.placement.clone();
            match tenant.state {
                TenantState::Active => {
                    assert_eq!(kinds, ["TenantCreated", "TenantProvisioned"]);
                    let plan = plan.unwrap();
                    let marker = dir
                        .path()
                        .join("storage/eu-west/tenants")
                        .join(tenant.tenant_id.as_str())
                        .join(".tenant.json");
                    assert!(marker.exists(), "{}: storage marker", tenant.tenant_id);
                    if plan.isolation == Isolation::Dedicated {
                        assert!(schema.database_path(&plan).exists(), "{}", tenant.tenant_id);
                    }
                    assert!(
                        schema
                            .preview(&plan)
                            .await
                            .unwrap()
                            .pending_seeds
                            .is_empty()
                    );
                }
                TenantState::Failed => {
                    assert_eq!(kinds, ["TenantCreated", "TenantProvisioningFailed"]);
                    if let Some(plan) = plan {
                        assert!(
                            !schema.database_path(&plan).exists()
                                || plan.isolation == Isolation::Shared
                        );
                    }
                }
                other => panic!(
                    "round {round}: {} half-made in state {other}",
                    tenant.tenant_id
                ),
            }
        }
        eprintln!(
            "round {round}: recovered {} in-flight request(s), {total_acked} acknowledged so far",
            report.recovered.len()
        );
    }
    assert!(total_acked > 0, "the child made progress");
}
