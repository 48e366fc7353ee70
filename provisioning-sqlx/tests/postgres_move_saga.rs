//! Moves on PostgreSQL end to end, through the orchestrator with the
//! catalog on PostgreSQL: a tenant's schema on one shard moves to a schema on
//! another shard, then to a database of its own; its rows (seed and rows
//! written after provisioning) are identical on the target and gone from the
//! source, and its events end with `TenantMoved`.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use common::pg::{self, with_database};
use common::*;
use provisioning_core::Entity;
use provisioning_core::*;
use provisioning_sqlx::{PostgresDedicatedMode, PostgresSchemaManager, PostgresStore};

const SHARDS: [&str; 3] = ["pg-a", "pg-b", "pg-c"];

/// Every plan dedicated, strictly in its region.
struct Dedicated;

#[async_trait]
impl PlacementPolicy for Dedicated {
    async fn decide(&self, r: &TenantRequest) -> Result<PlacementDecision> {
        Ok(PlacementDecision::new(
            r.plan.clone(),
            Isolation::Dedicated,
            r.region.clone(),
            Residency::Strict,
            "all dedicated",
        ))
    }
}

/// New tenants go to pg-a; a move may name any of the three shards.
struct Three;

#[async_trait]
impl ShardResolver for Three {
    async fn resolve(&self, _: &TenantId, d: &PlacementDecision) -> Result<ShardChoice> {
        Ok(ShardChoice::new(
            "pg-a".parse()?,
            d.region.clone(),
            "first shard",
        ))
    }
    async fn resolve_on(
        &self,
        _: &TenantId,
        d: &PlacementDecision,
        shard: &ShardId,
    ) -> Result<ShardChoice> {
        if !SHARDS.contains(&shard.as_str()) {
            return Err(Error::NotFound {
                kind: Entity::Shard,
                id: shard.to_string(),
            });
        }
        Ok(ShardChoice::new(shard.clone(), d.region.clone(), "chosen"))
    }
}

#[tokio::test]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn a_tenant_moves_schema_to_schema_across_shards_then_to_a_database_of_its_own() {
    let url = pg::url();
    let (db_a, url_a) = pg::scratch_database(&url, "move_a").await;
    let (db_b, url_b) = pg::scratch_database(&url, "move_b").await;
    let prefix = pg::unique_prefix("mv");
    let catalog = prefix.trim_end_matches('_').to_owned() + "_catalog";
    let store = Arc::new(
        PostgresStore::connect_to_schema(&url, &catalog)
            .await
            .unwrap(),
    );
    let schema = Arc::new(
        PostgresSchemaManager::builder()
            .shard("pg-a".parse().unwrap(), &url_a)
            .shard("pg-b".parse().unwrap(), &url_b)
            .shard("pg-c".parse().unwrap(), with_database(&url, "{tenant}"))
            .dedicated(common::schema("postgres", false).await)
            .dedicated_mode(PostgresDedicatedMode::Schema)
            .name_prefix(&prefix)
            .build()
            .unwrap(),
    );
    let orchestrator = ProvisioningOrchestrator::builder()
        .store(store.clone())
        .placement_policy(Arc::new(Dedicated))
        .shard_resolver(Arc::new(Three))
        .schema_manager(schema.clone())
        .storage(Arc::new(NoStorage))
        .build()
        .unwrap();
    let tenant: TenantId = "acme-co".parse().unwrap();
    let name = format!("{prefix}acme_co");
    let receipt = orchestrator
        .create(TenantRequest::new(
            tenant.clone(),
            "premium".parse().unwrap(),
            "eu-west".parse().unwrap(),
        ))
        .await
        .unwrap();
    assert_eq!(receipt.status, RequestStatus::Succeeded, "{receipt:?}");
    // Rows written after provisioning.
    pg::exec_script(
        &url_a,
        &format!(
            "INSERT INTO \"{name}\".projects (name, slug, owner_id) SELECT 'Launch', 'launch', id FROM \"{name}\".users;
             INSERT INTO \"{name}\".tasks (project_id, title) SELECT id, 'Ship it' FROM \"{name}\".projects;
             INSERT INTO \"{name}\".comments (task_id, body) SELECT id, 'it''s shipped ✓' FROM \"{name}\".tasks;"
        ),
    )
    .await;
    let before = pg::workload_counts(&url_a, Some(&name)).await;
    assert_eq!(before[3..6], [1, 1, 1]);

    let receipt = orchestrator
        .move_tenant(&tenant, "pg-b".parse().unwrap(), RequestId::new())
        .await
        .unwrap();
    assert_eq!(receipt.status, RequestStatus::Succeeded, "{receipt:?}");
    assert_eq!(
        pg::workload_counts(&url_b, Some(&name)).await,
        before,
        "identical on the target"
    );
    assert!(
        !pg::schema_exists(&url_a, &name).await,
        "released from the source"
    );
    let record = orchestrator.tenant(&tenant).await.unwrap();
    assert_eq!(record.state, TenantState::Active);
    let placement = record.placement.unwrap();
    assert_eq!(placement.shard.as_str(), "pg-b");
    let database = placement.database.unwrap();
    assert!(
        database.contains(&db_b) && database.ends_with(&format!("?schema={name}")),
        "{database}"
    );

    let receipt = orchestrator
        .move_tenant(&tenant, "pg-c".parse().unwrap(), RequestId::new())
        .await
        .unwrap();
    assert_eq!(receipt.status, RequestStatus::Succeeded, "{receipt:?}");
    assert!(pg::database_exists(&url, &name).await);
    assert_eq!(
        pg::workload_counts(&with_database(&url, &name), None).await,
        before
    );
    assert!(!pg::schema_exists(&url_b, &name).await);

    let events = orchestrator.events(&tenant).await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str().to_owned()).collect();
    assert_eq!(
        kinds,
        [
            "TenantCreated",
            "TenantProvisioned",
            "TenantMoved",
            "TenantMoved"
        ]
    );
    assert_eq!(events[3].sequence, 4);
    assert_eq!(events[3].data["from"]["shard"], "pg-b");
    assert_eq!(events[3].data["to"]["shard"], "pg-c");

    // A permanent failure while copying rolls the move back: the tenant
    // stays Active in its database with every row, no schema left on pg-a.
    let faulty = ProvisioningOrchestrator::builder()
        .store(store.clone())
        .placement_policy(Arc::new(Dedicated))
        .shard_resolver(Arc::new(Three))
        .schema_manager(schema.clone())
        .storage(Arc::new(NoStorage))
        .fault_injector(Arc::new(
            StepFaults::new().fail("verify-copy", FaultKind::Permanent),
        ))
        .build()
        .unwrap();
    let receipt = faulty
        .move_tenant(&tenant, "pg-a".parse().unwrap(), RequestId::new())
        .await
        .unwrap();
    assert_eq!(receipt.status, RequestStatus::Failed);
    assert!(
        !pg::schema_exists(&url_a, &name).await,
        "the target was dropped"
    );
    let record = orchestrator.tenant(&tenant).await.unwrap();
    assert_eq!(
        (
            record.state,
            record.placement.unwrap().shard.as_str().to_owned()
        ),
        (TenantState::Active, "pg-c".to_owned())
    );
    assert_eq!(
        pg::workload_counts(&with_database(&url, &name), None).await,
        before
    );

    pg::drop_database(&url, &name).await;
    pg::drop_database(&url, &db_a).await;
    pg::drop_database(&url, &db_b).await;
    pg::exec(&url, format!("DROP SCHEMA IF EXISTS \"{catalog}\" CASCADE")).await;
}
