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
use provisioning_sqlx::{PostgresDedicatedMode, PostgresSchemaManager, PostgresStore};

const TENANTS: usize = 24;

/// A difference as the tests compare it: kind, object, repairable.
type Found = (DriftKind, String, bool);

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

struct OneShard;

#[async_trait]
impl ShardResolver for OneShard {
    async fn resolve(&self, _: &TenantId, d: &PlacementDecision) -> Result<ShardChoice> {
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
    let schema = PostgresSchemaManager::builder()
        .shard("pg-1".parse().unwrap(), db_url)
        .dedicated(schema("postgres", fleet).await)
        .dedicated_mode(PostgresDedicatedMode::Schema)
        .build()
        .unwrap();
    ProvisioningOrchestrator::builder()
        .store(store)
        .placement_policy(Arc::new(Dedicated))
        .shard_resolver(Arc::new(OneShard))
        .schema_manager(Arc::new(schema))
        .storage(Arc::new(NoStorage))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn concurrent_roll_outs_on_one_catalog_migrate_each_tenant_once() {
    let url = pg::url();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn drift_names_the_tampered_schemas_and_repair_fixes_the_mechanical_ones() {
    let url = pg::url();
    let (db, db_url) = pg::scratch_database(&url, "drift").await;
    let catalog = pg::unique_prefix("drift").trim_end_matches('_').to_owned() + "_catalog";
    let o = orchestrator(&url, &db_url, &catalog, true).await;
    for t in [
        "drift-a", "drift-b", "drift-c", "drift-d", "drift-e", "drift-f",
    ] {
        let receipt = o
            .create(TenantRequest::new(
                t.parse().unwrap(),
                "premium".parse().unwrap(),
                "eu-west".parse().unwrap(),
            ))
            .await
            .unwrap();
        assert_eq!(receipt.status, RequestStatus::Succeeded, "{receipt:?}");
    }
    let report = o.check_drift(DriftOptions::new()).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert!(report.release.as_deref().unwrap().starts_with("v12-"));

    // Behind the SDK's back.
    pg::exec_script(
        &db_url,
        "ALTER TABLE tenant_drift_b.comments DROP COLUMN edited_at; \
         DROP INDEX tenant_drift_c.tasks_assignee_idx; \
         CREATE TABLE tenant_drift_d.notes (id bigint PRIMARY KEY, body text); \
         DELETE FROM tenant_drift_e._sqlx_migrations WHERE version = 12; \
         UPDATE tenant_drift_f._sqlx_migrations SET checksum = '\\x00' WHERE version = 3;",
    )
    .await;
    let summary = |report: &DriftReport| -> Vec<(String, Vec<Found>)> {
        report
            .drifted()
            .map(|u| {
                let drifts = u
                    .drifts
                    .iter()
                    .map(|d| (d.kind, d.object.clone(), d.repair.is_some()))
                    .collect();
                (u.database.clone(), drifts)
            })
            .collect()
    };
    let report = o.check_drift(DriftOptions::new()).await.unwrap();
    let owned = |kind, object: &str, repairable| vec![(kind, object.to_owned(), repairable)];
    assert_eq!(
        summary(&report),
        vec![
            (
                "drift-b".to_owned(),
                owned(DriftKind::MissingColumn, "comments.edited_at", false)
            ),
            (
                "drift-c".to_owned(),
                owned(DriftKind::MissingIndex, "tasks_assignee_idx", false)
            ),
            (
                "drift-d".to_owned(),
                owned(DriftKind::ExtraTable, "notes", false)
            ),
            (
                "drift-e".to_owned(),
                owned(DriftKind::LedgerMissing, "migration 12", true)
            ),
            (
                "drift-f".to_owned(),
                owned(DriftKind::LedgerMismatch, "migration 3", false)
            ),
        ]
    );
    let b = report
        .units
        .iter()
        .find(|u| u.database == "drift-b")
        .unwrap();
    assert_eq!(
        b.drifts[0].expected.as_deref(),
        Some("timestamp with time zone")
    );

    let repaired = o
        .check_drift(DriftOptions::new().repair(true))
        .await
        .unwrap();
    let e = repaired
        .units
        .iter()
        .find(|u| u.database == "drift-e")
        .unwrap();
    assert_eq!(e.repaired, [Repair::RecordMigration { version: 12 }]);
    assert!(e.is_clean(), "{e:?}");
    assert_eq!(
        summary(&repaired)
            .iter()
            .map(|(db, _)| db.as_str())
            .collect::<Vec<_>>(),
        ["drift-b", "drift-c", "drift-d", "drift-f"],
        "what needs a person is left, untouched"
    );
    assert_eq!(
        pg::ledger(&db_url, Some("tenant_drift_e")).await,
        (1..=12).collect::<Vec<_>>()
    );
    let events = o.events(&"drift-e".parse().unwrap()).await.unwrap();
    assert_eq!(events.last().unwrap().kind, EventKind::TenantSchemaRepaired);
    let one = o
        .check_drift(DriftOptions::new().tenant("drift-e".parse().unwrap()))
        .await
        .unwrap();
    assert!(one.is_clean() && one.units.len() == 1);

    pg::exec(&url, format!("DROP SCHEMA \"{catalog}\" CASCADE")).await;
    pg::drop_database(&url, &db).await;
}

/// A schema manager for `db_url` at the base release (ten migrations) or
/// the fleet release (twelve).
async fn manager(db_url: &str, fleet: bool) -> PostgresSchemaManager {
    PostgresSchemaManager::builder()
        .shard("pg-1".parse().unwrap(), db_url)
        .dedicated(schema("postgres", fleet).await)
        .dedicated_mode(PostgresDedicatedMode::Schema)
        .build()
        .unwrap()
}

fn versions(upgrade: &Upgrade) -> Vec<i64> {
    upgrade.applied.iter().map(|m| m.version).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn schemas_upgraded_together_keep_each_its_own_outcome() {
    let url = pg::url();
    let (db, db_url) = pg::scratch_database(&url, "upgrade").await;
    let base = manager(&db_url, false).await;
    let names = ["up-a", "up-b", "up-c", "up-d", "up-e", "up-f"];
    let mut databases = Vec::new();
    for t in names {
        let p = plan(t, Isolation::Dedicated, "pg-1");
        base.provision(&p).await.unwrap();
        assert_eq!(base.migrate(&p).await.unwrap().len(), 10);
        assert_eq!(base.seed(&p).await.unwrap().len(), 1);
        databases.push((p.clone(), vec![p.tenant_id.clone()]));
    }
    // Behind the SDK's back: d lost its seed's ledger row (so the seed runs
    // again: its rows deleted first), e's migration 3 changed, and c already
    // has the column 0011 adds.
    pg::exec_script(
        &db_url,
        "DELETE FROM tenant_up_d.user_roles; DELETE FROM tenant_up_d.users; \
         DELETE FROM tenant_up_d.roles; DELETE FROM tenant_up_d._tenant_seeds; \
         UPDATE tenant_up_e._sqlx_migrations SET checksum = '\\x00' WHERE version = 3; \
         ALTER TABLE tenant_up_c.tasks ADD COLUMN estimate_hours NUMERIC(6, 2);",
    )
    .await;
    let fleet = manager(&db_url, true).await;

    // a, b, d and e together: one transaction for the three it upgrades.
    let batch: Vec<_> = [0, 1, 3, 4].map(|i| databases[i].clone()).to_vec();
    let outcomes = fleet.upgrade(&batch).await;
    assert_eq!(outcomes.len(), 4);
    for (i, outcome) in [0, 1, 2].map(|i| (i, &outcomes[i])) {
        let upgrade = outcome.as_ref().unwrap();
        assert_eq!(versions(upgrade), [11, 12], "{}", names[[0, 1, 3][i]]);
    }
    assert!(outcomes[0].as_ref().unwrap().seeded.is_empty());
    assert_eq!(
        outcomes[2].as_ref().unwrap().seeded,
        [SeedInfo::new("workload-seed", 1)],
        "d's missing seed applied again"
    );
    let refused = outcomes[3].as_ref().unwrap_err().report();
    assert!(refused.contains("migration 3"), "e: {refused}");
    for (schema, ledger) in [
        ("tenant_up_a", 12),
        ("tenant_up_b", 12),
        ("tenant_up_d", 12),
        ("tenant_up_e", 10),
    ] {
        assert_eq!(
            pg::ledger(&db_url, Some(schema)).await,
            (1..=ledger).collect::<Vec<_>>(),
            "{schema}"
        );
    }
    // Together: one transaction, whose start every ledger row it wrote has.
    let started = pg::texts(
        &db_url,
        "SELECT DISTINCT installed_on::text FROM ( \
           SELECT installed_on FROM tenant_up_a._sqlx_migrations WHERE version > 10 \
           UNION ALL SELECT installed_on FROM tenant_up_b._sqlx_migrations WHERE version > 10 \
           UNION ALL SELECT installed_on FROM tenant_up_d._sqlx_migrations WHERE version > 10) t"
            .to_owned(),
    )
    .await;
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(
        pg::workload_counts(&db_url, Some("tenant_up_d")).await,
        pg::workload_counts(&db_url, Some("tenant_up_a")).await,
        "d seeded once more, like the others"
    );

    // c fails on its data: f beside it is upgraded all the same, c keeps
    // the ten it had, and its error names the column.
    let outcomes = fleet
        .upgrade(&[databases[2].clone(), databases[5].clone()])
        .await;
    let failed = outcomes[0].as_ref().unwrap_err().report();
    assert!(failed.contains("estimate_hours"), "{failed}");
    assert_eq!(versions(outcomes[1].as_ref().unwrap()), [11, 12]);
    assert_eq!(
        pg::ledger(&db_url, Some("tenant_up_c")).await,
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(
        pg::ledger(&db_url, Some("tenant_up_f")).await,
        (1..=12).collect::<Vec<_>>()
    );
    // One schema a transaction when asked: g and h each in their own.
    let alone = PostgresSchemaManager::builder()
        .shard("pg-1".parse().unwrap(), &db_url)
        .dedicated(schema("postgres", true).await)
        .dedicated_mode(PostgresDedicatedMode::Schema)
        .upgrade_batch(1)
        .build()
        .unwrap();
    let mut more = Vec::new();
    for t in ["up-g", "up-h"] {
        let p = plan(t, Isolation::Dedicated, "pg-1");
        base.provision(&p).await.unwrap();
        base.migrate(&p).await.unwrap();
        base.seed(&p).await.unwrap();
        more.push((p.clone(), vec![p.tenant_id.clone()]));
    }
    let outcomes = alone.upgrade(&more).await;
    assert!(
        outcomes
            .iter()
            .all(|o| versions(o.as_ref().unwrap()) == [11, 12])
    );
    let started = pg::texts(
        &db_url,
        "SELECT DISTINCT installed_on::text FROM ( \
           SELECT installed_on FROM tenant_up_g._sqlx_migrations WHERE version > 10 \
           UNION ALL SELECT installed_on FROM tenant_up_h._sqlx_migrations WHERE version > 10) t"
            .to_owned(),
    )
    .await;
    assert_eq!(started.len(), 2, "{started:?}");

    // Up to date: run again, nothing applied anywhere, one outcome each.
    let again = fleet.upgrade(&batch).await;
    assert!(
        again[..3]
            .iter()
            .all(|o| o.as_ref().unwrap().applied.is_empty())
    );
    assert!(again[3].is_err());

    pg::drop_database(&url, &db).await;
}
