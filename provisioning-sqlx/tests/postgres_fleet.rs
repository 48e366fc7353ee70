//! Fleet migration on PostgreSQL (a schema per tenant), against the real server.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::pg::{self, ledger};
use common::*;
use provisioning_core::{Isolation, TenantSchemaManager};
use provisioning_sqlx::{
    FleetOptions, PostgresDedicatedMode, PostgresSchemaManager, UnitOutcome, migrate_fleet,
};

async fn manager(url: &str, fleet: bool) -> PostgresSchemaManager {
    PostgresSchemaManager::builder()
        .shard("pg-1".parse().unwrap(), url)
        .dedicated(schema("postgres", fleet).await)
        .dedicated_mode(PostgresDedicatedMode::Schema)
        .build()
        .unwrap()
}

#[tokio::test]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn fleet_migration_isolates_a_broken_tenant_and_resumes() {
    let url = pg::url();
    let (db, db_url) = pg::scratch_database(&url, "fleet").await;
    let plans: Vec<_> = (0..6)
        .map(|i| plan(&format!("tenant-{i}"), Isolation::Dedicated, "pg-1"))
        .collect();
    let old = manager(&db_url, false).await;
    for p in &plans {
        old.provision(p).await.unwrap();
        old.migrate(p).await.unwrap();
        old.seed(p).await.unwrap();
    }
    // tenant-2 lost its tasks table: 0011 cannot apply there.
    pg::exec(&db_url, "DROP TABLE tenant_tenant_2.tasks CASCADE".into()).await;

    let new = manager(&db_url, true).await;
    let dry = migrate_fleet(&new, plans.clone(), FleetOptions::new().dry_run(true)).await;
    assert_eq!(dry.migrations(), 12);
    assert_eq!(
        ledger(&db_url, Some("tenant_tenant_0")).await.len(),
        10,
        "dry run changed nothing"
    );

    let report = migrate_fleet(&new, plans.clone(), FleetOptions::new().concurrency(3)).await;
    assert_eq!(report.done.len(), 5);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].tenants[0].as_str(), "tenant-2");
    assert!(
        matches!(&report.failed[0].outcome, UnitOutcome::Failed { reason, .. } if reason.contains("migration 11"))
    );
    assert_eq!(ledger(&db_url, Some("tenant_tenant_5")).await.len(), 12);
    assert_eq!(ledger(&db_url, Some("tenant_tenant_2")).await.len(), 10);

    let again = migrate_fleet(&new, plans, FleetOptions::new().concurrency(3)).await;
    assert_eq!((again.skipped(), again.failed.len()), (5, 1));
    pg::drop_database(&url, &db).await;
}
