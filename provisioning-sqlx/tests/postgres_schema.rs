//! PostgreSQL, a schema per dedicated tenant, against the real server.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::pg::{self, ledger, schema_exists};
use common::*;
use provisioning_core::{DatabaseOutcome, DropReason, Entity, Isolation, TenantSchemaManager};
use provisioning_sqlx::{PostgresDedicatedMode, PostgresSchemaManager};

#[tokio::test]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn schema_per_tenant_lifecycle() {
    let url = pg::url();
    let (db, db_url) = pg::scratch_database(&url, "schemas").await;
    let m = PostgresSchemaManager::builder()
        .shard("pg-1".parse().unwrap(), &db_url)
        .dedicated(schema("postgres", false).await)
        .dedicated_mode(PostgresDedicatedMode::Schema)
        .build()
        .unwrap();
    let a = plan("acme", Isolation::Dedicated, "pg-1");
    let b = plan("globex-eu", Isolation::Dedicated, "pg-1");

    let dry = m.preview(&a).await.unwrap();
    assert!(dry.will_create && dry.location.ends_with("schema tenant_acme"));
    assert!(
        !schema_exists(&db_url, "tenant_acme").await,
        "the dry run created nothing"
    );

    for p in [&a, &b] {
        assert_eq!(m.provision(p).await.unwrap(), DatabaseOutcome::Created);
        assert_eq!(m.migrate(p).await.unwrap().len(), 10);
        assert_eq!(m.seed(p).await.unwrap().len(), 1);
    }
    assert_eq!(m.provision(&a).await.unwrap(), DatabaseOutcome::Created);
    // Each tenant's tables and ledgers live in its own schema, none in public.
    assert_eq!(ledger(&db_url, Some("tenant_acme")).await.len(), 10);
    assert_eq!(ledger(&db_url, Some("tenant_globex_eu")).await.len(), 10);
    let emails = {
        let mut conn = pg::connect(&db_url).await;
        let a: String = sqlx::query_scalar("SELECT email FROM tenant_acme.users")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let b: String = sqlx::query_scalar("SELECT email FROM tenant_globex_eu.users")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let public: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!(public, 0);
        (a, b)
    };
    assert_eq!(
        emails,
        (
            "admin@acme.example".into(),
            "admin@globex-eu.example".into()
        )
    );
    assert!(m.preview(&a).await.unwrap().pending_seeds.is_empty());
    // The application's own connection works in the tenant's schema.
    let mut own = m.connect(&a).await.unwrap();
    let email: String = sqlx::query_scalar("SELECT email FROM users")
        .fetch_one(&mut own)
        .await
        .unwrap();
    assert_eq!(email, "admin@acme.example");
    drop(own);

    m.drop_tenant(&a, DropReason::Delete).await.unwrap();
    assert!(!schema_exists(&db_url, "tenant_acme").await);
    assert!(matches!(
        m.connect(&a).await,
        Err(provisioning_core::Error::NotFound {
            kind: Entity::TenantDatabase,
            ..
        })
    ));
    assert!(schema_exists(&db_url, "tenant_globex_eu").await);

    // A schema a DBA made is adopted, and a compensation keeps it.
    pg::exec(&db_url, "CREATE SCHEMA tenant_initech".into()).await;
    let c = plan("initech", Isolation::Dedicated, "pg-1");
    assert_eq!(m.provision(&c).await.unwrap(), DatabaseOutcome::Adopted);
    m.migrate(&c).await.unwrap();
    m.drop_tenant(&c, DropReason::Compensation).await.unwrap();
    assert!(schema_exists(&db_url, "tenant_initech").await);

    pg::drop_database(&url, &db).await;
}

fn migration(version: i64, sql: &'static str) -> sqlx::migrate::Migration {
    use sqlx::SqlSafeStr;
    sqlx::migrate::Migration::new(
        version,
        format!("step {version}").into(),
        sqlx::migrate::MigrationType::Simple,
        sql.into_sql_str(),
        false,
    )
}

/// Migration 3 fails in SQL (not in a hook) while `public.gate` is empty: the
/// migrations applied together fail, and the retry one at a time records 1
/// and 2, on a pool of one connection, which stays usable. Once the gate
/// opens, the next run applies 3 and 4. A schema that does not exist is
/// `NotFound` for migrate and seed, and the seed ledger gets no TOAST table.
#[tokio::test]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn a_failing_migration_keeps_those_before_it_and_the_connection_usable() {
    let url = pg::url();
    let (db, db_url) = pg::scratch_database(&url, "schema_fail").await;
    pg::exec(&db_url, "CREATE TABLE public.gate (x INT)".into()).await;
    let migrations = sqlx::migrate::Migrator::with_migrations(vec![
        migration(1, "CREATE TABLE a (x INT)"),
        migration(2, "CREATE TABLE b (x INT)"),
        migration(
            3,
            "CREATE TABLE c AS SELECT 1 / (SELECT COUNT(*)::int FROM public.gate) AS x",
        ),
        migration(4, "CREATE TABLE d (x INT)"),
    ]);
    let m = PostgresSchemaManager::builder()
        .shard("pg-1".parse().unwrap(), &db_url)
        .dedicated(
            provisioning_sqlx::PostgresTenantSchema::new(migrations).seed(
                provisioning_sqlx::Seed::sql(
                    "gate-seed",
                    1,
                    "INSERT INTO a (x) VALUES (length($1))",
                ),
            ),
        )
        .dedicated_mode(PostgresDedicatedMode::Schema)
        .pool_size(1)
        .build()
        .unwrap();
    let p = plan("gated", Isolation::Dedicated, "pg-1");

    let ghost = plan("ghost", Isolation::Dedicated, "pg-1");
    for err in [
        m.migrate(&ghost).await.unwrap_err(),
        m.seed(&ghost).await.map(|_| ()).unwrap_err(),
    ] {
        assert!(
            matches!(
                err,
                provisioning_core::Error::NotFound {
                    kind: Entity::TenantDatabase,
                    ..
                }
            ),
            "{err:?}"
        );
    }
    assert!(!schema_exists(&db_url, "tenant_ghost").await);

    m.provision(&p).await.unwrap();
    let err = m.migrate(&p).await.unwrap_err();
    assert!(err.to_string().contains("migration 3"), "{err}");
    assert_eq!(ledger(&db_url, Some("tenant_gated")).await, [1, 2]);
    assert_eq!(
        pg::scalar_i64(
            &db_url,
            "SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'tenant_gated' \
             AND tablename IN ('a', 'b', 'c', 'd')"
        )
        .await,
        2
    );

    pg::exec(&db_url, "INSERT INTO public.gate VALUES (1)".into()).await;
    assert_eq!(versions(&m.migrate(&p).await.unwrap()), [3, 4]);
    assert_eq!(ledger(&db_url, Some("tenant_gated")).await, [1, 2, 3, 4]);
    assert_eq!(m.seed(&p).await.unwrap().len(), 1);
    assert!(m.seed(&p).await.unwrap().is_empty(), "seeded once");
    assert_eq!(
        pg::scalar_i64(
            &db_url,
            "SELECT COALESCE(SUM(x), 0)::bigint FROM tenant_gated.a"
        )
        .await,
        "gated".len() as i64,
        "the tenant reached the seed as a literal"
    );
    let toast = pg::scalar_i64(
        &db_url,
        "SELECT c.reltoastrelid::bigint FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'tenant_gated' AND c.relname = '_tenant_seeds'",
    )
    .await;
    assert_eq!(toast, 0, "the seed ledger has no TOAST table");

    pg::drop_database(&url, &db).await;
}

/// A migrate cancelled while it waits for the schema's advisory lock (held
/// here on a connection of the test's own) leaves no pooled connection
/// inside a transaction: once the lock is free its transaction is rolled
/// back, and the next migrate on the same one-connection pool works.
#[tokio::test]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn a_migrate_cancelled_while_waiting_for_the_lock_leaves_no_open_transaction() {
    let url = pg::url();
    let (db, db_url) = pg::scratch_database(&url, "schema_cancel").await;
    let m = PostgresSchemaManager::builder()
        .shard("pg-1".parse().unwrap(), &db_url)
        .dedicated(provisioning_sqlx::PostgresTenantSchema::new(
            sqlx::migrate::Migrator::with_migrations(vec![migration(1, "CREATE TABLE a (x INT)")]),
        ))
        .dedicated_mode(PostgresDedicatedMode::Schema)
        .pool_size(1)
        .build()
        .unwrap();
    let p = plan("locked", Isolation::Dedicated, "pg-1");
    m.provision(&p).await.unwrap();
    let key = format!(
        "provisioning-sqlx:{}",
        m.preview(&p).await.unwrap().location
    );

    let mut holder = pg::connect(&db_url).await;
    sqlx::query("SELECT pg_advisory_lock(hashtextextended($1, 0))")
        .bind(&key)
        .execute(&mut holder)
        .await
        .unwrap();
    let waited = tokio::time::timeout(std::time::Duration::from_millis(300), m.migrate(&p)).await;
    assert!(waited.is_err(), "migrate waited for the lock: {waited:?}");
    sqlx::query("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
        .bind(&key)
        .execute(&mut holder)
        .await
        .unwrap();

    // The cancelled migrate's connection gets the lock now; wait until no
    // backend of the database is busy, then look.
    for _ in 0..100 {
        let busy = pg::scalar_i64(
            &url,
            "SELECT COUNT(*) FROM pg_stat_activity \
             WHERE datname LIKE 'prov_test_schema_cancel%' AND state = 'active'",
        )
        .await;
        if busy == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let idle_in_tx = pg::scalar_i64(
        &url,
        "SELECT COUNT(*) FROM pg_stat_activity \
         WHERE datname LIKE 'prov_test_schema_cancel%' \
         AND state LIKE 'idle in transaction%'",
    )
    .await;
    assert_eq!(idle_in_tx, 0, "no connection left inside a transaction");
    assert_eq!(versions(&m.migrate(&p).await.unwrap()), [1]);
    assert_eq!(ledger(&db_url, Some("tenant_locked")).await, [1]);

    drop(holder);
    drop(m);
    pg::drop_database(&url, &db).await;
}
