//! Fleet migration over SQLite tenants: each shared database once, bounded
//! concurrency, progress, failure isolation, resumable, dry run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;

use common::*;
use futures_util::StreamExt;
use provisioning_core::{Isolation, Placement, TenantSchemaManager};
use provisioning_sqlx::{
    FleetOptions, MigrationHook, SqliteSchemaManager, UnitOutcome, migrate_fleet,
    migrate_fleet_stream,
};

async fn manager(
    root: &std::path::Path,
    fleet: bool,
    hook: Option<MigrationHook>,
) -> SqliteSchemaManager {
    let mut b = SqliteSchemaManager::builder()
        .root(root)
        .dedicated(schema("sqlite", fleet).await)
        .shared(schema("sqlite-shared", fleet).await);
    if let Some(hook) = hook {
        b = b.before_migration(hook);
    }
    b.build().unwrap()
}

/// 12 dedicated tenants on two shards, 6 shared tenants on two shared shards,
/// all provisioned with the first release.
async fn fleet(root: &std::path::Path) -> Vec<Placement> {
    let m = manager(root, false, None).await;
    let mut plans = Vec::new();
    for i in 0..12 {
        plans.push(plan(
            &format!("ded-{i:02}"),
            Isolation::Dedicated,
            ["eu-1", "eu-2"][i % 2],
        ));
    }
    for i in 0..6 {
        plans.push(plan(
            &format!("shr-{i:02}"),
            Isolation::Shared,
            ["eu-s1", "eu-s2"][i % 2],
        ));
    }
    for p in &plans {
        m.provision(p).await.unwrap();
        m.migrate(p).await.unwrap();
        m.seed(p).await.unwrap();
    }
    plans
}

fn applied(unit: &provisioning_sqlx::FleetUnit) -> Vec<i64> {
    match &unit.outcome {
        UnitOutcome::Migrated(m) | UnitOutcome::WouldApply(m) => versions(m),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn dry_run_lists_pending_per_database_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let plans = fleet(dir.path()).await;
    let m = manager(dir.path(), true, None).await;
    let report = migrate_fleet(&m, plans.clone(), FleetOptions::new().dry_run(true)).await;
    assert!(report.failed.is_empty());
    assert_eq!(report.done.len(), 14, "12 dedicated + 2 shared databases");
    assert!(report.done.iter().all(|u| applied(u) == [11, 12]));
    assert_eq!(report.migrations(), 28);
    for p in [&plans[0], &plans[12]] {
        assert_eq!(
            ledger_versions(&m.database_path(p)).await,
            (1..=10).collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn one_broken_tenant_does_not_stop_the_rest_and_a_rerun_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let plans = fleet(dir.path()).await;
    let m = manager(dir.path(), true, None).await;
    let broken = &plans[5];
    std::fs::write(m.database_path(broken), b"not a database any more").unwrap();

    let progress: Vec<_> =
        migrate_fleet_stream(&m, plans.clone(), FleetOptions::new().concurrency(4))
            .collect()
            .await;
    assert_eq!(progress.len(), 14);
    for (i, p) in progress.iter().enumerate() {
        assert_eq!(p.done + p.failed, i + 1);
        assert_eq!(p.remaining, 14 - i - 1);
    }
    let last = progress.last().unwrap();
    assert_eq!((last.done, last.failed, last.remaining), (13, 1, 0));
    let mut report = provisioning_sqlx::FleetReport::default();
    for p in progress {
        report.record(p);
    }
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].tenants.len(), 1);
    assert_eq!(report.failed[0].tenants[0], broken.tenant_id);
    match &report.failed[0].outcome {
        UnitOutcome::Failed { reason, transient } => {
            assert!(reason.contains("ded-05"), "{reason}");
            assert!(!transient);
        }
        other => panic!("{other:?}"),
    }
    // Each shared database was migrated once, on behalf of its three tenants.
    let shared: Vec<_> = report
        .done
        .iter()
        .filter(|u| u.isolation == Isolation::Shared)
        .collect();
    assert_eq!(shared.len(), 2);
    assert!(
        shared
            .iter()
            .all(|u| u.tenants.len() == 3 && applied(u) == [11, 12])
    );
    assert!(report.done.iter().all(|u| applied(u) == [11, 12]));
    for p in plans.iter().filter(|p| p.tenant_id != broken.tenant_id) {
        assert_eq!(
            ledger_versions(&m.database_path(p)).await.len(),
            12,
            "{}",
            p.tenant_id
        );
    }

    // The rerun skips what is done; once repaired, the broken one catches up.
    let report = migrate_fleet(&m, plans.clone(), FleetOptions::new()).await;
    assert_eq!((report.skipped(), report.failed.len()), (13, 1));
    std::fs::remove_file(m.database_path(broken)).unwrap();
    m.provision(broken).await.unwrap();
    let report = migrate_fleet(&m, plans, FleetOptions::new().concurrency(0)).await;
    assert!(report.failed.is_empty());
    assert_eq!(report.skipped(), 13);
    assert_eq!(
        report.migrations(),
        12,
        "the repaired tenant got all twelve"
    );
}

#[tokio::test]
async fn a_fleet_run_interrupted_mid_release_resumes_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let plans = fleet(dir.path()).await;
    let (hook, armed) = fail_at(12);
    let m = manager(dir.path(), true, Some(hook)).await;
    let report = migrate_fleet(&m, plans.clone(), FleetOptions::new().concurrency(3)).await;
    assert_eq!(report.failed.len(), 14, "every database stopped at 12");
    assert!(
        report
            .failed
            .iter()
            .all(|u| u.duration > std::time::Duration::ZERO)
    );
    assert_eq!(ledger_versions(&m.database_path(&plans[0])).await.len(), 11);

    armed.store(0, Ordering::SeqCst);
    let report = migrate_fleet(&m, plans, FleetOptions::new().concurrency(3)).await;
    assert!(report.failed.is_empty());
    assert!(report.done.iter().all(|u| applied(u) == [12]));
}
