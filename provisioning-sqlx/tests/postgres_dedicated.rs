//! PostgreSQL, a database per dedicated tenant, against the real server.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;

use common::pg::{self, database_exists, ledger, scalar_i64, with_database};
use common::*;
use provisioning_core::{
    DatabaseOutcome, DropReason, Entity, Error, Isolation, TenantSchemaManager,
};
use provisioning_sqlx::{MigrationHook, PostgresSchemaManager, PostgresTenantSchema, Seed};

async fn manager(
    url: &str,
    schema: PostgresTenantSchema,
    hook: Option<MigrationHook>,
) -> PostgresSchemaManager {
    let mut b = PostgresSchemaManager::builder()
        .shard("pg-1".parse().unwrap(), url)
        .dedicated(schema);
    if let Some(hook) = hook {
        b = b.before_migration(hook);
    }
    b.build().unwrap()
}

#[tokio::test]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn database_per_tenant_lifecycle() {
    let url = pg::url();
    let m = manager(&url, schema("postgres", false).await, None).await;
    let tenant = unique_tenant("acme");
    let p = plan(&tenant, Isolation::Dedicated, "pg-1");
    let db = m.dedicated_name(&p.tenant_id).unwrap();
    assert_eq!(db, format!("tenant_{}", tenant.replace('-', "_")));

    let dry = m.preview(&p).await.unwrap();
    assert!(!dry.exists && dry.will_create && dry.pending_migrations.len() == 10);
    assert!(dry.location.ends_with(&db) && !dry.location.contains("postgres://"));
    assert!(
        !database_exists(&url, &db).await,
        "the dry run created nothing"
    );

    assert_eq!(m.provision(&p).await.unwrap(), DatabaseOutcome::Created);
    assert_eq!(m.provision(&p).await.unwrap(), DatabaseOutcome::Created);
    assert_eq!(m.migrate(&p).await.unwrap().len(), 10);
    assert_eq!(m.seed(&p).await.unwrap().len(), 1);
    assert!(m.migrate(&p).await.unwrap().is_empty());
    assert!(m.seed(&p).await.unwrap().is_empty());
    let tenant_url = with_database(&url, &db);
    assert_eq!(
        scalar_i64(&tenant_url, "SELECT COUNT(*) FROM roles").await,
        3
    );
    assert_eq!(
        scalar_i64(&tenant_url, "SELECT COUNT(*) FROM user_roles").await,
        1
    );
    assert_eq!(
        ledger(&tenant_url, None).await,
        (1..=10).collect::<Vec<_>>()
    );
    let dry = m.preview(&p).await.unwrap();
    assert!(dry.exists && dry.pending_migrations.is_empty() && dry.pending_seeds.is_empty());

    // A changed seed body under the same version is refused.
    let m2 = PostgresSchemaManager::builder()
        .shard("pg-1".parse().unwrap(), &url)
        .dedicated(
            PostgresTenantSchema::new(migrator("postgres", false).await).seed(Seed::sql(
                "workload-seed",
                1,
                "SELECT 1",
            )),
        )
        .build()
        .unwrap();
    assert!(matches!(
        m2.seed(&p).await.unwrap_err(),
        Error::Conflict {
            kind: Entity::Seed,
            ..
        }
    ));

    m.drop_tenant(&p, DropReason::Delete).await.unwrap();
    assert!(!database_exists(&url, &db).await);
    m.drop_tenant(&p, DropReason::Delete).await.unwrap();
}

#[tokio::test]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn failure_at_3_of_5_is_compensated_and_a_retry_comes_up_clean() {
    let url = pg::url();
    let (hook, armed) = fail_at(3);
    let five = PostgresTenantSchema::new(first_migrations("postgres", 5).await).seed(Seed::sql(
        "workload-seed",
        1,
        seed_sql("postgres"),
    ));
    let m = manager(&url, five, Some(hook)).await;
    let p = plan(&unique_tenant("retry"), Isolation::Dedicated, "pg-1");
    let db = m.dedicated_name(&p.tenant_id).unwrap();
    let tenant_url = with_database(&url, &db);

    assert_eq!(m.provision(&p).await.unwrap(), DatabaseOutcome::Created);
    let err = m.migrate(&p).await.unwrap_err();
    assert!(err.to_string().contains("migration 3"), "{err}");
    assert_eq!(ledger(&tenant_url, None).await, [1, 2]);
    assert_eq!(
        versions(&m.preview(&p).await.unwrap().pending_migrations),
        [3, 4, 5]
    );

    m.drop_tenant(&p, DropReason::Compensation).await.unwrap();
    assert!(!database_exists(&url, &db).await);

    armed.store(0, Ordering::SeqCst);
    assert_eq!(m.provision(&p).await.unwrap(), DatabaseOutcome::Created);
    assert_eq!(versions(&m.migrate(&p).await.unwrap()), [1, 2, 3, 4, 5]);
    assert_eq!(m.seed(&p).await.unwrap().len(), 1);
    assert_eq!(
        scalar_i64(&tenant_url, "SELECT COUNT(*) FROM roles").await,
        3
    );
    m.drop_tenant(&p, DropReason::Delete).await.unwrap();
    assert!(!database_exists(&url, &db).await);
}

#[tokio::test]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn resumes_at_the_failed_migration() {
    let url = pg::url();
    let (hook, armed) = fail_at(3);
    let m = manager(
        &url,
        PostgresTenantSchema::new(first_migrations("postgres", 5).await),
        Some(hook),
    )
    .await;
    let p = plan(&unique_tenant("resume"), Isolation::Dedicated, "pg-1");
    m.provision(&p).await.unwrap();
    m.migrate(&p).await.unwrap_err();
    armed.store(0, Ordering::SeqCst);
    assert_eq!(versions(&m.migrate(&p).await.unwrap()), [3, 4, 5]);
    m.drop_tenant(&p, DropReason::Delete).await.unwrap();
}

#[tokio::test]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn a_database_made_by_a_dba_is_adopted_and_kept_on_compensation() {
    let url = pg::url();
    let m = manager(&url, schema("postgres", false).await, None).await;
    let p = plan(&unique_tenant("cold"), Isolation::Dedicated, "pg-1");
    let db = m.dedicated_name(&p.tenant_id).unwrap();
    pg::exec(&url, format!("CREATE DATABASE \"{db}\"")).await;

    let dry = m.preview(&p).await.unwrap();
    assert!(dry.exists && !dry.will_create);
    assert_eq!(m.provision(&p).await.unwrap(), DatabaseOutcome::Adopted);
    assert_eq!(m.migrate(&p).await.unwrap().len(), 10);
    assert_eq!(m.seed(&p).await.unwrap().len(), 1);
    m.drop_tenant(&p, DropReason::Compensation).await.unwrap();
    assert!(database_exists(&url, &db).await, "not ours to drop");
    m.drop_tenant(&p, DropReason::Delete).await.unwrap();
    assert!(!database_exists(&url, &db).await);
}

#[tokio::test]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn an_unknown_shard_or_a_too_long_name_is_refused_before_anything_is_written() {
    let url = pg::url();
    let m = manager(&url, schema("postgres", false).await, None).await;
    let err = m
        .provision(&plan("acme", Isolation::Dedicated, "nowhere"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotFound {
                kind: Entity::Shard,
                ..
            }
        ),
        "{err}"
    );
    let long = format!("a{}", "b".repeat(60));
    let err = m
        .provision(&plan(&long, Isolation::Dedicated, "pg-1"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidInput {
                field: "tenant_id",
                ..
            }
        ),
        "{err}"
    );
}
