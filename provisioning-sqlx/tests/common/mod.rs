//! Shared helpers for the integration tests: the reference workload, plans, counts.
#![allow(unreachable_pub, dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use provisioning_core::{
    Error, Isolation, MigrationInfo, Placement, PlacementDecision, Residency, ShardChoice,
};
#[cfg(feature = "sharding")]
use provisioning_core::{RequestId, ShardId, TenantId, TenantState};
use provisioning_sqlx::{MigrationHook, Seed, TenantSchema};

#[cfg(feature = "postgres")]
pub mod pg;
pub mod pg_url;
use sqlx::migrate::Migrator;

/// The tables of the shared workload, parents first.
pub fn tenant_tables() -> Vec<&'static str> {
    include_str!("../../../workload/tenant-tables.txt")
        .lines()
        .collect()
}

pub fn workload(variant: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../workload")
        .join(variant)
}

pub fn seed_sql(variant: &str) -> String {
    std::fs::read_to_string(workload(variant).join("seed.sql")).unwrap()
}

/// The workload's migrations, plus the fleet release when `fleet` is set.
pub async fn migrator(variant: &str, fleet: bool) -> Migrator {
    let mut all: Vec<_> = Migrator::new(workload(variant).join("migrations"))
        .await
        .unwrap()
        .iter()
        .cloned()
        .collect();
    if fleet {
        let next = Migrator::new(workload(variant).join("fleet"))
            .await
            .unwrap();
        all.extend(next.iter().cloned());
    }
    Migrator::with_migrations(all)
}

/// The workload schema: migrations, its seed as `workload-seed@1`, and for the
/// shared variant its tenant tables.
pub async fn schema<C>(variant: &str, fleet: bool) -> TenantSchema<C> {
    TenantSchema::new(migrator(variant, fleet).await)
        .seed(Seed::sql("workload-seed", 1, seed_sql(variant)))
        .tenant_tables(tenant_tables())
}

/// The first `n` migrations of a variant.
pub async fn first_migrations(variant: &str, n: usize) -> Migrator {
    let all = migrator(variant, false).await;
    Migrator::with_migrations(all.iter().take(n).cloned().collect())
}

pub fn plan(tenant: &str, isolation: Isolation, shard: &str) -> Placement {
    Placement::new(
        tenant.parse().unwrap(),
        PlacementDecision::new(
            "premium".parse().unwrap(),
            isolation,
            "eu-west".parse().unwrap(),
            Residency::Strict,
            "test",
        ),
        ShardChoice::new(shard.parse().unwrap(), "eu-west".parse().unwrap(), "test"),
    )
}

/// A unique tenant id for tests that share a server.
pub fn unique_tenant(prefix: &str) -> String {
    format!("{prefix}-{:08x}", fastrand::u32(..))
}

/// A hook that fails before migration `version` while armed; disarm by
/// storing 0.
pub fn fail_at(version: i64) -> (MigrationHook, Arc<AtomicI64>) {
    let armed = Arc::new(AtomicI64::new(version));
    let flag = Arc::clone(&armed);
    let hook: MigrationHook = Arc::new(move |_plan: &Placement, m: &MigrationInfo| {
        if m.version == flag.load(Ordering::SeqCst) {
            return Err(Error::backend(
                "test",
                format!("injected failure at migration {}", m.version),
                false,
                std::io::Error::other("injected"),
            ));
        }
        Ok(())
    });
    (hook, armed)
}

pub fn versions(migrations: &[MigrationInfo]) -> Vec<i64> {
    migrations.iter().map(|m| m.version).collect()
}

/// Opens an existing SQLite file as a plain connection, to look inside.
pub async fn open_sqlite(path: &std::path::Path) -> sqlx::SqliteConnection {
    use sqlx::Connection;
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false);
    sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap()
}

/// `SELECT COUNT(*)` of a query on a SQLite connection.
pub async fn count(conn: &mut sqlx::SqliteConnection, sql: &'static str, tenant: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(tenant)
        .fetch_one(&mut *conn)
        .await
        .unwrap()
}

/// The versions in sqlx's migration ledger of a SQLite file.
pub async fn ledger_versions(path: &std::path::Path) -> Vec<i64> {
    let mut conn = open_sqlite(path).await;
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

/// A storage that keeps nothing: for tests about databases only.
pub struct NoStorage;

#[async_trait::async_trait]
impl provisioning_core::StorageInitializer for NoStorage {
    async fn preview(
        &self,
        _: &Placement,
    ) -> provisioning_core::Result<provisioning_core::StoragePreview> {
        Ok(provisioning_core::StoragePreview::new(vec![], false))
    }
    async fn initialize(&self, _: &Placement) -> provisioning_core::Result<()> {
        Ok(())
    }
    async fn remove(
        &self,
        _: &Placement,
        _: provisioning_core::RemovalMode,
    ) -> provisioning_core::Result<()> {
        Ok(())
    }
}

/// Submits the creation of a new tenant (Requested, not placed); its id.
#[cfg(feature = "sharding")]
async fn submit_new(store: &dyn provisioning_core::TenantStore) -> TenantId {
    let id = provisioning_core::testing::unique_tenant("load");
    let submission = provisioning_core::testing::create(&id, RequestId::new());
    store.submit(submission).await.unwrap();
    id
}

/// A catalog's shard counts follow its tenants' placements: placed tenants
/// count on their shard; Requested (unplaced), Deleted and Failed ones do
/// not. Shards named uniquely, so other tenants in the store do not matter.
#[cfg(feature = "sharding")]
pub async fn shard_counts_follow_placements<S>(store: &S)
where
    S: provisioning_core::TenantStore + provisioning_sharding::LoadSource,
{
    let a: ShardId = unique_tenant("load-a").parse().unwrap();
    let b: ShardId = unique_tenant("load-b").parse().unwrap();
    let placed = [
        (&a, TenantState::Active),
        (&a, TenantState::Suspended),
        (&a, TenantState::Moving),
        (&a, TenantState::Deleted),
        (&b, TenantState::Active),
        (&b, TenantState::Failed),
    ];
    for (shard, state) in placed {
        let id = submit_new(store).await;
        let mut record = store.tenant(&id).await.unwrap().unwrap();
        let mut placement = plan(id.as_str(), Isolation::Dedicated, "pg-1");
        placement.shard = shard.clone();
        record.placement = Some(placement);
        record.state = state;
        let version = record.version;
        store.update_tenant(record, version, vec![]).await.unwrap();
    }
    // One more, never placed.
    submit_new(store).await;

    let counts = store.tenant_counts().await.unwrap();
    assert_eq!(
        counts.get(&a),
        Some(&3),
        "active, suspended and moving: {counts:?}"
    );
    assert_eq!(
        counts.get(&b),
        Some(&1),
        "the failed one is not counted: {counts:?}"
    );
}
