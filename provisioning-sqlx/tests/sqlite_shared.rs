//! Shared SQLite: one database per shard, migrated once, tenants as rows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use provisioning_core::{DatabaseOutcome, DropReason, Isolation, TenantSchemaManager};
use provisioning_sqlx::{SHARED_DATABASE_FILE, SqliteSchemaManager};

async fn manager(root: &std::path::Path) -> SqliteSchemaManager {
    SqliteSchemaManager::builder()
        .root(root)
        .shared(schema("sqlite-shared", false).await)
        .build()
        .unwrap()
}

const ROLES: &str = "SELECT COUNT(*) FROM roles WHERE tenant_id = ?1";
const USERS: &str = "SELECT COUNT(*) FROM users WHERE tenant_id = ?1";
const GRANTS: &str = "SELECT COUNT(*) FROM user_roles WHERE tenant_id = ?1";
const SEEDS: &str = "SELECT COUNT(*) FROM _tenant_seeds WHERE tenant_id = ?1";

#[tokio::test]
async fn tenants_share_one_database_migrated_once() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path()).await;
    let acme = plan("acme", Isolation::Shared, "eu-shared-1");
    let globex = plan("globex", Isolation::Shared, "eu-shared-1");

    assert_eq!(m.provision(&acme).await.unwrap(), DatabaseOutcome::Shared);
    assert_eq!(
        versions(&m.migrate(&acme).await.unwrap()),
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(m.seed(&acme).await.unwrap().len(), 1);

    assert_eq!(m.provision(&globex).await.unwrap(), DatabaseOutcome::Shared);
    assert!(
        m.migrate(&globex).await.unwrap().is_empty(),
        "shard already migrated"
    );
    assert_eq!(m.seed(&globex).await.unwrap().len(), 1);

    let path = dir
        .path()
        .join("eu-west/eu-shared-1")
        .join(SHARED_DATABASE_FILE);
    assert_eq!(m.database_path(&acme), path);
    let mut conn = open_sqlite(&path).await;
    for tenant in ["acme", "globex"] {
        assert_eq!(count(&mut conn, ROLES, tenant).await, 3);
        assert_eq!(count(&mut conn, USERS, tenant).await, 1);
        assert_eq!(count(&mut conn, GRANTS, tenant).await, 1);
        assert_eq!(count(&mut conn, SEEDS, tenant).await, 1);
    }
    let files: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".sqlite"))
        .collect();
    assert_eq!(
        files,
        [SHARED_DATABASE_FILE],
        "no per-tenant file in shared mode"
    );
}

#[tokio::test]
async fn concurrent_provisionings_on_one_shard_do_not_race() {
    let dir = tempfile::tempdir().unwrap();
    let m = Arc::new(manager(dir.path()).await);
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let m = Arc::clone(&m);
            tokio::spawn(async move {
                let p = plan(&format!("tenant-{i}"), Isolation::Shared, "eu-shared-1");
                m.provision(&p).await.unwrap();
                let applied = m.migrate(&p).await.unwrap();
                m.seed(&p).await.unwrap();
                applied.len()
            })
        })
        .collect();
    let mut applied = Vec::new();
    for t in tasks {
        applied.push(t.await.unwrap());
    }
    // Exactly one provisioning ran the ten migrations; the others found them done.
    assert_eq!(
        applied.iter().filter(|&&n| n == 10).count(),
        1,
        "{applied:?}"
    );
    assert_eq!(applied.iter().sum::<usize>(), 10);
    let path = m.database_path(&plan("tenant-0", Isolation::Shared, "eu-shared-1"));
    assert_eq!(ledger_versions(&path).await, (1..=10).collect::<Vec<_>>());
    let mut conn = open_sqlite(&path).await;
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM roles")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(total, 36, "3 roles for each of 12 tenants");
}

#[tokio::test]
async fn delete_and_compensation_remove_exactly_that_tenants_rows() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path()).await;
    let tenants = ["acme", "globex", "initech"].map(|t| plan(t, Isolation::Shared, "eu-shared-1"));
    for p in &tenants {
        m.provision(p).await.unwrap();
        m.migrate(p).await.unwrap();
        m.seed(p).await.unwrap();
    }
    let path = m.database_path(&tenants[0]);
    // Rows in every declared table, not only the seeded ones.
    let mut conn = open_sqlite(&path).await;
    for tenant in ["acme", "globex"] {
        sqlx::query("INSERT INTO settings (tenant_id, key) VALUES (?1, 'theme')")
            .bind(tenant)
            .execute(&mut conn)
            .await
            .unwrap();
    }

    m.drop_tenant(&tenants[0], DropReason::Delete)
        .await
        .unwrap();
    m.drop_tenant(&tenants[1], DropReason::Compensation)
        .await
        .unwrap();
    m.drop_tenant(&tenants[1], DropReason::Compensation)
        .await
        .unwrap(); // idempotent

    for gone in ["acme", "globex"] {
        for sql in [
            ROLES,
            USERS,
            GRANTS,
            SEEDS,
            "SELECT COUNT(*) FROM settings WHERE tenant_id = ?1",
        ] {
            assert_eq!(count(&mut conn, sql, gone).await, 0, "{gone}: {sql}");
        }
    }
    assert_eq!(count(&mut conn, ROLES, "initech").await, 3);
    assert_eq!(count(&mut conn, GRANTS, "initech").await, 1);
    assert_eq!(count(&mut conn, SEEDS, "initech").await, 1);
    assert!(path.exists(), "the shared database stays");

    // A removed tenant provisions again cleanly: its seed is not in the ledger.
    assert_eq!(m.seed(&tenants[0]).await.unwrap().len(), 1);
    assert_eq!(count(&mut conn, ROLES, "acme").await, 3);
}

#[tokio::test]
async fn compensation_before_any_migration_is_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path()).await;
    let p = plan("acme", Isolation::Shared, "eu-shared-1");
    // Nothing exists yet: nothing to do, no error, nothing created.
    m.drop_tenant(&p, DropReason::Compensation).await.unwrap();
    assert!(!m.database_path(&p).exists());
    // Provisioned but not migrated: tables are missing, still fine.
    m.provision(&p).await.unwrap();
    m.drop_tenant(&p, DropReason::Compensation).await.unwrap();
}

#[tokio::test]
async fn a_dedicated_plan_without_a_dedicated_schema_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path()).await;
    let err = m
        .provision(&plan("acme", Isolation::Dedicated, "eu-1"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            provisioning_core::Error::InvalidInput {
                field: "isolation",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing written"
    );
}
