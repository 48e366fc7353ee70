//! The schema manager conformance suite.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use crate::model::{Isolation, Placement, TenantId};
use crate::testing::unique_tenant;
use crate::traits::{DatabaseOutcome, DropReason, SchemaPreview, TenantSchemaManager};

/// Runs every check against `manager`, placing each fresh tenant with
/// `place` (which decides shared or dedicated, and on which of the manager's
/// shards). Run it once per isolation your manager serves.
///
/// The manager must have at least one migration and one seed, and `place`
/// must put tenants where the manager can create or reach their database.
/// Every tenant the checks create is dropped again. Refusals of bad input
/// are checked apart, with a placement of your choosing:
/// [`schema_bad_input_is_refused_and_writes_nothing`].
///
/// ```
/// # use std::sync::Arc;
/// # use provisioning_core::*;
/// # async fn check(manager: Arc<dyn TenantSchemaManager>) {
/// let place = |tenant: &TenantId| {
///     Placement::new(
///         tenant.clone(),
///         PlacementDecision::new("premium".parse().unwrap(), Isolation::Dedicated,
///             "eu-west".parse().unwrap(), Residency::Strict, "conformance"),
///         ShardChoice::new("eu-dedicated-1".parse().unwrap(), "eu-west".parse().unwrap(), "conformance"),
///     )
/// };
/// provisioning_core::testing::schema_conformance(manager, place).await;
/// # }
/// ```
pub async fn schema_conformance<F>(manager: Arc<dyn TenantSchemaManager>, place: F)
where
    F: Fn(&TenantId) -> Placement + Send + Sync,
{
    let m = &*manager;
    schema_dry_run_changes_nothing(m, &place).await;
    schema_provision_migrate_seed_then_nothing_again(m, &place).await;
    schema_drop_is_idempotent_and_leaves_nothing(m, &place, DropReason::Delete).await;
    schema_drop_is_idempotent_and_leaves_nothing(m, &place, DropReason::Compensation).await;
    schema_upgrade_brings_databases_to_the_release(m, &place).await;
    schema_concurrent_runs_apply_each_step_once(manager.clone(), &place).await;
}

fn dedicated(placement: &Placement) -> bool {
    placement.isolation == Isolation::Dedicated
}

/// A fresh tenant and its placement, with the database location the
/// manager records (as the orchestrator's place step does).
fn fresh(manager: &dyn TenantSchemaManager, place: &dyn Fn(&TenantId) -> Placement) -> Placement {
    let placement = place(&unique_tenant("conform"));
    let database = manager
        .locate(&placement)
        .unwrap_or_else(|e| panic!("locate({}) failed: {e}", placement.tenant_id));
    placement.with_database(database)
}

async fn preview(manager: &dyn TenantSchemaManager, placement: &Placement) -> SchemaPreview {
    manager
        .preview(placement)
        .await
        .unwrap_or_else(|e| panic!("preview({}) failed: {e}", placement.tenant_id))
}

/// The dry run creates nothing, lists what provisioning would do (a
/// dedicated tenant's database to create and every migration; the seeds;
/// a shared database may be made by its first tenant), and says the same
/// when run again.
pub async fn schema_dry_run_changes_nothing(
    manager: &dyn TenantSchemaManager,
    place: &dyn Fn(&TenantId) -> Placement,
) {
    let placement = fresh(manager, place);
    let first = preview(manager, &placement).await;
    assert!(
        !first.pending_seeds.is_empty(),
        "the suite needs a manager with at least one seed; preview: {first:?}"
    );
    if dedicated(&placement) {
        assert!(
            !first.exists && first.will_create,
            "a new dedicated tenant's database neither exists nor is kept: {first:?}"
        );
        assert!(
            !first.pending_migrations.is_empty(),
            "the suite needs a manager with at least one migration; preview: {first:?}"
        );
    }
    assert_eq!(
        preview(manager, &placement).await,
        first,
        "a dry run changed something"
    );
}

/// Provision, migrate and seed do what the dry run listed, in its order;
/// each again does nothing; the dry run then has nothing left.
pub async fn schema_provision_migrate_seed_then_nothing_again(
    manager: &dyn TenantSchemaManager,
    place: &dyn Fn(&TenantId) -> Placement,
) {
    let placement = fresh(manager, place);
    let expected = if dedicated(&placement) {
        DatabaseOutcome::Created
    } else {
        DatabaseOutcome::Shared
    };
    let outcome = manager.provision(&placement).await.unwrap();
    assert_eq!(outcome, expected, "provision of {}", placement.tenant_id);
    let planned = preview(manager, &placement).await;
    assert!(
        planned.exists,
        "provisioned, yet the dry run says missing: {planned:?}"
    );
    assert!(!planned.will_create, "{planned:?}");

    let applied = manager.migrate(&placement).await.unwrap();
    assert_eq!(
        applied, planned.pending_migrations,
        "migrate applied other than planned"
    );
    assert_eq!(
        manager.migrate(&placement).await.unwrap(),
        vec![],
        "migrate again applied"
    );
    let seeded = manager.seed(&placement).await.unwrap();
    assert_eq!(
        seeded, planned.pending_seeds,
        "seed applied other than planned"
    );
    assert_eq!(
        manager.seed(&placement).await.unwrap(),
        vec![],
        "seed again applied"
    );

    let after = preview(manager, &placement).await;
    assert!(
        after.exists && after.pending_migrations.is_empty() && after.pending_seeds.is_empty(),
        "after provisioning, the dry run still lists work: {after:?}"
    );
    let again = manager.provision(&placement).await.unwrap();
    assert_eq!(again, expected, "provision again reported otherwise");
    manager
        .drop_tenant(&placement, DropReason::Delete)
        .await
        .unwrap();
}

/// Dropping a provisioned tenant (for `reason`) leaves nothing of it: a
/// dedicated database is gone, a shared database's rows are (its seeds are
/// pending again); dropping again succeeds.
pub async fn schema_drop_is_idempotent_and_leaves_nothing(
    manager: &dyn TenantSchemaManager,
    place: &dyn Fn(&TenantId) -> Placement,
    reason: DropReason,
) {
    let placement = fresh(manager, place);
    manager.provision(&placement).await.unwrap();
    manager.migrate(&placement).await.unwrap();
    let seeds = manager.seed(&placement).await.unwrap();
    manager.drop_tenant(&placement, reason).await.unwrap();
    let after = preview(manager, &placement).await;
    if dedicated(&placement) {
        assert!(
            !after.exists && after.will_create,
            "{reason:?}: the dedicated database is still there: {after:?}"
        );
    } else {
        assert_eq!(
            after.pending_seeds, seeds,
            "{reason:?}: the tenant's seeded rows are still in the shared database"
        );
    }
    manager
        .drop_tenant(&placement, reason)
        .await
        .unwrap_or_else(|e| panic!("{reason:?}: dropping again failed: {e}"));
}

/// `upgrade` brings provisioned databases to the release (their migrations,
/// then every tenant's seeds), one outcome per database, and a second
/// upgrade applies nothing.
pub async fn schema_upgrade_brings_databases_to_the_release(
    manager: &dyn TenantSchemaManager,
    place: &dyn Fn(&TenantId) -> Placement,
) {
    let (a, b) = (fresh(manager, place), fresh(manager, place));
    for placement in [&a, &b] {
        manager.provision(placement).await.unwrap();
    }
    let planned = [preview(manager, &a).await, preview(manager, &b).await];
    // A shared database is one unit with all its tenants; dedicated ones are
    // a unit each.
    let units: Vec<(Placement, Vec<TenantId>)> =
        if dedicated(&a) || a.shard != b.shard || a.database != b.database {
            vec![
                (a.clone(), vec![a.tenant_id.clone()]),
                (b.clone(), vec![b.tenant_id.clone()]),
            ]
        } else {
            vec![(a.clone(), vec![a.tenant_id.clone(), b.tenant_id.clone()])]
        };
    let outcomes = manager.upgrade(&units).await;
    assert_eq!(outcomes.len(), units.len(), "one outcome per database");
    let mut seeded = Vec::new();
    for (outcome, (placement, _)) in outcomes.into_iter().zip(&units) {
        let upgrade =
            outcome.unwrap_or_else(|e| panic!("upgrade of {} failed: {e}", placement.tenant_id));
        seeded.extend(upgrade.seeded);
    }
    let expected: usize = planned.iter().map(|p| p.pending_seeds.len()).sum();
    assert_eq!(
        seeded.len(),
        expected,
        "every tenant's seeds, once: {seeded:?}"
    );
    for placement in [&a, &b] {
        let after = preview(manager, placement).await;
        assert!(
            after.pending_migrations.is_empty() && after.pending_seeds.is_empty(),
            "upgraded, yet work is left: {after:?}"
        );
    }
    for outcome in manager.upgrade(&units).await {
        let again = outcome.unwrap();
        assert!(
            again.applied.is_empty() && again.seeded.is_empty(),
            "a second upgrade applied {again:?}"
        );
    }
    for placement in [&a, &b] {
        manager
            .drop_tenant(placement, DropReason::Delete)
            .await
            .unwrap();
    }
}

/// Four runs provisioning one tenant at once (as after a retry racing a
/// recovery) all succeed, and between them apply each migration and each
/// seed exactly once.
pub async fn schema_concurrent_runs_apply_each_step_once(
    manager: Arc<dyn TenantSchemaManager>,
    place: &dyn Fn(&TenantId) -> Placement,
) {
    let placement = fresh(&*manager, place);
    let planned = preview(&*manager, &placement).await;
    let runs = (0..4).map(|_| {
        let (manager, placement) = (manager.clone(), placement.clone());
        async move {
            manager.provision(&placement).await?;
            let migrations = manager.migrate(&placement).await?;
            let seeds = manager.seed(&placement).await?;
            Ok::<_, crate::Error>((migrations, seeds))
        }
    });
    let mut migrations = Vec::new();
    let mut seeds = Vec::new();
    for run in futures_util::future::join_all(runs).await {
        let (m, s) = run.unwrap_or_else(|e| panic!("a concurrent run failed: {e}"));
        migrations.extend(m);
        seeds.extend(s);
    }
    // Between them, in whatever order the runs interleaved.
    let mut planned_migrations = planned.pending_migrations;
    let mut planned_seeds = planned.pending_seeds;
    migrations.sort_by_key(|m| m.version);
    planned_migrations.sort_by_key(|m| m.version);
    seeds.sort_by(|a, b| (&a.name, a.version).cmp(&(&b.name, b.version)));
    planned_seeds.sort_by(|a, b| (&a.name, a.version).cmp(&(&b.name, b.version)));
    if dedicated(&placement) {
        // A shared database may have been migrated by another check first.
        assert_eq!(migrations, planned_migrations, "each migration once");
    }
    assert_eq!(seeds, planned_seeds, "each seed once");
    manager
        .drop_tenant(&placement, DropReason::Delete)
        .await
        .unwrap();
}

/// `manager` refuses `placement` (one it must not serve: a shard it does
/// not know, say) with a permanent error, and creates nothing for it. Not
/// part of [`schema_conformance`], since what a manager must refuse is its
/// own: a manager that serves every shard has nothing to refuse there.
pub async fn schema_bad_input_is_refused_and_writes_nothing(
    manager: &dyn TenantSchemaManager,
    placement: &Placement,
) {
    let error = manager
        .provision(placement)
        .await
        .expect_err("provisioning a placement the manager must refuse succeeded");
    assert!(!error.is_transient(), "a refusal is not transient: {error}");
    if let Ok(planned) = manager.preview(placement).await {
        assert!(
            !planned.exists,
            "the refused placement's database exists: {planned:?}"
        );
    }
}
