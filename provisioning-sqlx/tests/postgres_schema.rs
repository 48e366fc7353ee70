//! PostgreSQL, a schema per dedicated tenant, against the real server.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::pg::{self, ledger, schema_exists};
use common::*;
use provisioning_core::{DatabaseOutcome, DropReason, Isolation, TenantSchemaManager};
use provisioning_sqlx::{PgDedicatedMode, PgSchemaManager};

#[tokio::test]
async fn schema_per_tenant_lifecycle() {
    let Some(url) = pg::url() else { return };
    let (db, db_url) = pg::scratch_database(&url, "schemas").await;
    let m = PgSchemaManager::builder()
        .shard("pg-1".parse().unwrap(), &db_url)
        .dedicated(schema("postgres", false).await)
        .dedicated_mode(PgDedicatedMode::Schema)
        .build()
        .unwrap();
    let a = plan("acme", Isolation::Dedicated, "pg-1");
    let b = plan("globex-eu", Isolation::Dedicated, "pg-1");

    let dry = m.plan(&a).await.unwrap();
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
    assert!(m.plan(&a).await.unwrap().pending_seeds.is_empty());

    m.drop_tenant(&a, DropReason::Delete).await.unwrap();
    assert!(!schema_exists(&db_url, "tenant_acme").await);
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
