//! PostgreSQL, tenants as rows in a shared database, against the real server.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::pg::{self, ledger};
use common::*;
use provisioning_core::{DatabaseOutcome, DropReason, Isolation, TenantSchemaManager};
use provisioning_sqlx::PostgresSchemaManager;
use sqlx::PgConnection;

async fn count(url: &str, table: &str, tenant: &str) -> i64 {
    let mut conn = pg::connect(url).await;
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM {table} WHERE tenant_id = $1"
    )))
    .bind(tenant)
    .fetch_one(&mut conn)
    .await
    .unwrap()
}

/// A small shared schema: the workload ships no shared PostgreSQL variant, so
/// this one keys three of its tables by `tenant_id`, as shared mode needs.
async fn shared_schema() -> provisioning_sqlx::PostgresTenantSchema {
    use sqlx::SqlSafeStr;
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    let m = |v, d: &'static str, sql: &'static str| {
        Migration::new(
            v,
            d.into(),
            MigrationType::Simple,
            sql.into_sql_str(),
            false,
        )
    };
    let migrator = Migrator::with_migrations(vec![
        m(
            1,
            "roles",
            "CREATE TABLE roles (id BIGSERIAL PRIMARY KEY, tenant_id TEXT NOT NULL, name TEXT NOT NULL, UNIQUE (tenant_id, name))",
        ),
        m(
            2,
            "users",
            "CREATE TABLE users (id BIGSERIAL PRIMARY KEY, tenant_id TEXT NOT NULL, email TEXT NOT NULL, UNIQUE (tenant_id, email))",
        ),
        m(
            3,
            "user_roles",
            "CREATE TABLE user_roles (tenant_id TEXT NOT NULL, user_id BIGINT NOT NULL REFERENCES users (id), role_id BIGINT NOT NULL REFERENCES roles (id))",
        ),
    ]);
    provisioning_sqlx::TenantSchema::<PgConnection>::new(migrator)
        .seed(provisioning_sqlx::Seed::sql(
            "base",
            1,
            "INSERT INTO roles (tenant_id, name) VALUES ($1, 'owner'), ($1, 'member');
             INSERT INTO users (tenant_id, email) VALUES ($1, 'admin@' || $1 || '.example');
             INSERT INTO user_roles (tenant_id, user_id, role_id)
                 SELECT $1, u.id, r.id FROM users u, roles r
                 WHERE u.tenant_id = $1 AND r.tenant_id = $1 AND r.name = 'owner'",
        ))
        .tenant_tables(["roles", "users", "user_roles"])
}

/// A manager with the shared schema on shard `pg-s` at `db_url`.
async fn shared_manager(db_url: &str) -> Arc<PostgresSchemaManager> {
    Arc::new(
        PostgresSchemaManager::builder()
            .shard("pg-s".parse().unwrap(), db_url)
            .shared(shared_schema().await)
            .build()
            .unwrap(),
    )
}

#[tokio::test]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn shared_rows_migrated_once_and_removed_per_tenant() {
    let url = pg::url();
    let (db, db_url) = pg::scratch_database(&url, "shared").await;
    let m = shared_manager(&db_url).await;
    let dry = m
        .preview(&plan("acme", Isolation::Shared, "pg-s"))
        .await
        .unwrap();
    assert!(dry.exists && dry.pending_migrations.len() == 3);

    let tasks: Vec<_> = ["acme", "globex", "initech", "umbrella"]
        .into_iter()
        .map(|t| {
            let m = Arc::clone(&m);
            tokio::spawn(async move {
                let p = plan(t, Isolation::Shared, "pg-s");
                assert_eq!(m.provision(&p).await.unwrap(), DatabaseOutcome::Shared);
                let n = m.migrate(&p).await.unwrap().len();
                assert_eq!(m.seed(&p).await.unwrap().len(), 1);
                n
            })
        })
        .collect();
    let mut applied = 0;
    for t in tasks {
        applied += t.await.unwrap();
    }
    assert_eq!(applied, 3, "the shared database was migrated once");
    assert_eq!(ledger(&db_url, None).await, [1, 2, 3]);

    m.drop_tenant(&plan("acme", Isolation::Shared, "pg-s"), DropReason::Delete)
        .await
        .unwrap();
    m.drop_tenant(
        &plan("globex", Isolation::Shared, "pg-s"),
        DropReason::Compensation,
    )
    .await
    .unwrap();
    for table in ["roles", "users", "user_roles", "_tenant_seeds"] {
        assert_eq!(count(&db_url, table, "acme").await, 0, "{table}");
        assert_eq!(count(&db_url, table, "globex").await, 0, "{table}");
    }
    assert_eq!(count(&db_url, "roles", "initech").await, 2);
    assert_eq!(count(&db_url, "user_roles", "umbrella").await, 1);
    assert_eq!(count(&db_url, "_tenant_seeds", "umbrella").await, 1);

    pg::drop_database(&url, &db).await;
}

/// Once the shared ledger is known, seeding takes no lock: two seeders of one
/// tenant at once still apply its seed once (the second fails on the ledger's
/// key and leaves it to the first).
#[tokio::test]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn concurrent_seeders_of_one_shared_tenant_apply_its_seed_once() {
    let url = pg::url();
    let (db, db_url) = pg::scratch_database(&url, "shared_seed_race").await;
    let m = shared_manager(&db_url).await;
    let first = plan("acme", Isolation::Shared, "pg-s");
    m.migrate(&first).await.unwrap();
    assert_eq!(m.seed(&first).await.unwrap().len(), 1);

    for round in 0..5 {
        let tenant = format!("race-{round}");
        let seeders: Vec<_> = (0..4)
            .map(|_| {
                let m = Arc::clone(&m);
                let p = plan(&tenant, Isolation::Shared, "pg-s");
                tokio::spawn(async move { m.seed(&p).await.unwrap().len() })
            })
            .collect();
        let mut applied = 0;
        for s in seeders {
            applied += s.await.unwrap();
        }
        assert_eq!(applied, 1, "round {round}: one seeder applied the seed");
        assert_eq!(count(&db_url, "roles", &tenant).await, 2);
        assert_eq!(count(&db_url, "user_roles", &tenant).await, 1);
        assert_eq!(count(&db_url, "_tenant_seeds", &tenant).await, 1);
    }
    // The pooled connections that lost a race were rolled back and still work.
    let late = plan("late", Isolation::Shared, "pg-s");
    assert_eq!(m.seed(&late).await.unwrap().len(), 1);
    assert_eq!(count(&db_url, "users", "late").await, 1);

    pg::drop_database(&url, &db).await;
}

/// `connect` opens the shared database for the application's own writes, and
/// `lock_tenant` holds off the tenant's removal until they commit: the
/// removal then takes what they wrote too, and leaves no row behind.
#[tokio::test]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn writes_under_the_tenant_lock_never_outlive_its_removal() {
    let url = pg::url();
    let (name, db_url) = pg::scratch_database(&url, "lock").await;
    let manager = shared_manager(&db_url).await;
    let placement = plan("acme", Isolation::Shared, "pg-s");
    manager.provision(&placement).await.unwrap();
    manager.migrate(&placement).await.unwrap();
    manager.seed(&placement).await.unwrap();

    let mut conn = manager.connect(&placement).await.unwrap();
    sqlx::raw_sql("BEGIN").execute(&mut conn).await.unwrap();
    manager.lock_tenant(&mut conn, &placement).await.unwrap();
    let removal = tokio::spawn({
        let (manager, placement) = (manager.clone(), placement.clone());
        async move {
            manager
                .drop_tenant(&placement, DropReason::Delete)
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!removal.is_finished(), "the removal waits for the lock");
    sqlx::query("INSERT INTO users (tenant_id, email) VALUES ($1, 'late@acme.example')")
        .bind("acme")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::raw_sql("COMMIT").execute(&mut conn).await.unwrap();
    removal.await.unwrap();
    assert_eq!(
        count(&db_url, "users", "acme").await,
        0,
        "nothing left behind"
    );
    assert_eq!(count(&db_url, "roles", "acme").await, 0);
    pg::drop_database(&url, &name).await;
}
