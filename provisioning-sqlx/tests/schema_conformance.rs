//! The schema manager conformance kit (`provisioning_core::testing`) on
//! every manager of this crate: SQLite shared and dedicated, PostgreSQL
//! shared rows, a schema and a database per dedicated tenant.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use provisioning_core::testing::{
    schema_bad_input_is_refused_and_writes_nothing, schema_conformance,
};
use provisioning_core::{Isolation, TenantId};
use provisioning_sqlx::SqliteSchemaManager;

/// Places each tenant on `shard` with `isolation`.
fn place(
    isolation: Isolation,
    shard: &'static str,
) -> impl Fn(&TenantId) -> provisioning_core::Placement {
    move |tenant| plan(tenant.as_str(), isolation, shard)
}

async fn sqlite(root: &std::path::Path) -> Arc<SqliteSchemaManager> {
    Arc::new(
        SqliteSchemaManager::builder()
            .root(root)
            .shard(
                "eu-shared-1".parse().unwrap(),
                "sqlite:eu-west/eu-shared-1/_shared.sqlite",
            )
            .shard(
                "eu-dedicated-1".parse().unwrap(),
                "sqlite:eu-west/eu-dedicated-1/{tenant}.sqlite",
            )
            .shared(schema("sqlite-shared", false).await)
            .dedicated(schema("sqlite", false).await)
            .build()
            .unwrap(),
    )
}

/// What a manager with a shard map must refuse: a shard outside it.
async fn refuses_an_unknown_shard(manager: &dyn provisioning_core::TenantSchemaManager) {
    let tenant = provisioning_core::testing::unique_tenant("refused");
    let placement = plan(tenant.as_str(), Isolation::Dedicated, "no-such-shard");
    schema_bad_input_is_refused_and_writes_nothing(manager, &placement).await;
}

#[tokio::test]
async fn sqlite_dedicated_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let manager = sqlite(dir.path()).await;
    schema_conformance(
        manager.clone(),
        place(Isolation::Dedicated, "eu-dedicated-1"),
    )
    .await;
    refuses_an_unknown_shard(&*manager).await;
}

#[tokio::test]
async fn sqlite_shared_conforms_twice_in_a_row() {
    let dir = tempfile::tempdir().unwrap();
    let manager = sqlite(dir.path()).await;
    // The second time, the shared database is migrated already.
    for _ in 0..2 {
        schema_conformance(manager.clone(), place(Isolation::Shared, "eu-shared-1")).await;
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use common::pg;
    use provisioning_sqlx::{
        PostgresDedicatedMode, PostgresSchemaManager, PostgresSchemaManagerBuilder,
    };

    /// Runs the kit on a manager whose shard `pg-1` is a scratch database,
    /// configured by `with`, then drops the database.
    async fn on_scratch(
        label: &str,
        isolation: Isolation,
        with: impl FnOnce(PostgresSchemaManagerBuilder) -> PostgresSchemaManagerBuilder,
    ) {
        let url = pg::url();
        let (db, db_url) = pg::scratch_database(&url, label).await;
        let builder = PostgresSchemaManager::builder().shard("pg-1".parse().unwrap(), db_url);
        let manager = Arc::new(with(builder).build().unwrap());
        schema_conformance(manager.clone(), place(isolation, "pg-1")).await;
        refuses_an_unknown_shard(&*manager).await;
        pg::drop_database(&url, &db).await;
    }

    #[tokio::test]
    #[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
    async fn postgres_schema_per_tenant_conforms() {
        let dedicated = schema("postgres", false).await;
        on_scratch("conform_schema", Isolation::Dedicated, |b| {
            b.dedicated(dedicated)
                .dedicated_mode(PostgresDedicatedMode::Schema)
        })
        .await;
    }

    #[tokio::test]
    #[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
    async fn postgres_database_per_tenant_conforms() {
        let dedicated = schema("postgres", false).await;
        on_scratch("conform_database", Isolation::Dedicated, |b| {
            b.dedicated(dedicated).name_prefix(pg::unique_prefix("cf"))
        })
        .await;
    }

    #[tokio::test]
    #[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
    async fn postgres_shared_rows_conform() {
        on_scratch("conform_shared", Isolation::Shared, |b| {
            b.shared(pg::shared_schema())
        })
        .await;
    }
}
