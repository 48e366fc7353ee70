//! Fleet roll-outs on PostgreSQL: the catalog and a schema per tenant on the
//! real server, two processes' orchestrators running the same roll-out at
//! once on one catalog: each tenant's schema migrated exactly once.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use common::pg;
use common::*;
use provisioning_core::*;
use provisioning_sqlx::{PgDedicatedMode, PgSchemaManager, PostgresStore};

const TENANTS: usize = 24;

struct Dedicated;

#[async_trait]
impl TenantPlanBuilder for Dedicated {
    async fn build_plan(&self, r: &TenantRequest) -> Result<PlanDecision> {
        Ok(PlanDecision::new(
            r.plan.clone(),
            Isolation::Dedicated,
            r.region.clone(),
            Residency::Strict,
            "all dedicated",
        ))
    }
}

struct OneShard;

#[async_trait]
impl ShardResolver for OneShard {
    async fn resolve(&self, _: &TenantId, d: &PlanDecision) -> Result<ShardChoice> {
        Ok(ShardChoice::new("pg-1".parse()?, d.region.clone(), "one"))
    }
}

/// An orchestrator over the catalog schema `catalog` (a connection pool of
/// its own, as another process would have) migrating to `fleet`'s release.
async fn orchestrator(
    url: &str,
    db_url: &str,
    catalog: &str,
    fleet: bool,
) -> ProvisioningOrchestrator {
    let store = Arc::new(
        PostgresStore::connect_to_schema(url, catalog)
            .await
            .unwrap(),
    );
    let schema = PgSchemaManager::builder()
        .shard("pg-1".parse().unwrap(), db_url)
        .dedicated(schema("postgres", fleet).await)
        .dedicated_mode(PgDedicatedMode::Schema)
        .build()
        .unwrap();
    ProvisioningOrchestrator::builder()
        .store(store)
        .plan_builder(Arc::new(Dedicated))
        .shard_resolver(Arc::new(OneShard))
        .schema_manager(Arc::new(schema))
        .storage(Arc::new(NoStorage))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_roll_outs_on_one_catalog_migrate_each_tenant_once() {
    let Some(url) = pg::url() else {
        eprintln!("skipped: PROVISIONING_TEST_POSTGRES_URL is not set");
        return;
    };
    let (db, db_url) = pg::scratch_database(&url, "fleet").await;
    let catalog = pg::unique_prefix("fleet").trim_end_matches('_').to_owned() + "_catalog";
    let base = orchestrator(&url, &db_url, &catalog, false).await;
    let tenants: Vec<String> = (0..TENANTS).map(|i| format!("fleet-{i:02}")).collect();
    for t in &tenants {
        let receipt = base
            .create(TenantRequest::new(
                t.parse().unwrap(),
                "premium".parse().unwrap(),
                "eu-west".parse().unwrap(),
            ))
            .await
            .unwrap();
        assert_eq!(receipt.status, RequestStatus::Succeeded, "{receipt:?}");
    }

    // Two operators start the release's roll-out at the same moment.
    let a = orchestrator(&url, &db_url, &catalog, true).await;
    let b = orchestrator(&url, &db_url, &catalog, true).await;
    let options = |w: &str| RolloutOptions::new().worker(w).concurrency(3).canary(2);
    let (ra, rb) = tokio::join!(
        a.roll_out(options("a"), |_| {}),
        b.roll_out(options("b"), |_| {})
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.rollout.id, rb.rollout.id, "one roll-out for one release");
    assert_eq!(ra.rollout.release, rb.rollout.release);
    assert!(
        ra.rollout.release.starts_with("v12-"),
        "{}",
        ra.rollout.release
    );
    assert_eq!(
        ra.settled.len() + rb.settled.len(),
        TENANTS,
        "each unit settled once"
    );
    let units = a
        .store()
        .fleet()
        .unwrap()
        .rollout_units(ra.rollout.id)
        .await
        .unwrap();
    assert_eq!(units.len(), TENANTS);
    for unit in &units {
        assert_eq!(unit.status, UnitStatus::Migrated, "{unit:?}");
        assert_eq!(unit.attempts, 1, "{}: handed out once", unit.key);
        let versions: Vec<i64> = unit.applied.iter().map(|m| m.version).collect();
        assert_eq!(versions, [11, 12], "{}", unit.key);
    }
    for t in &tenants {
        let schema = format!("tenant_{}", t.replace('-', "_"));
        assert_eq!(
            pg::ledger(&db_url, Some(&schema)).await,
            (1..=12).collect::<Vec<_>>(),
            "{t}"
        );
    }
    let status = a.fleet_status().await.unwrap().unwrap();
    assert_eq!(status.rollout.status, RolloutStatus::Completed);
    assert_eq!(status.counts.migrated, TENANTS);

    pg::exec(&url, format!("DROP SCHEMA \"{catalog}\" CASCADE")).await;
    pg::drop_database(&url, &db).await;
}
