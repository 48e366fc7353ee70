//! Helpers for the PostgresStore tests: the server from
//! `PROVISIONING_TEST_POSTGRES_URL`, a uniquely named schema per test that is
//! dropped afterwards (even when the test fails), and submissions to fill it.
#![allow(
    unreachable_pub,
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout
)]

use std::future::Future;

use provisioning_core::{RequestId, Submission, TenantId};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

// Also loaded by `common`, in the test binaries that use both.
#[allow(clippy::duplicate_mod)]
#[path = "../common/pg_url.rs"]
mod pg_url;

pub use pg_url::url;

/// A schema name no other test (or earlier run) uses.
pub fn unique_schema(label: &str) -> String {
    format!("prov_test_{label}_{:016x}", fastrand::u64(..))
}

/// Runs `body(url, schema)` with a fresh schema name, then drops the schema,
/// whether `body` passed or panicked; fails without a server.
pub async fn with_schema<F, Fut>(label: &str, body: F)
where
    F: FnOnce(String, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    with_schemas(label, 1, |url, mut schemas| body(url, schemas.remove(0))).await;
}

/// As [`with_schema`], with a store opened on the schema.
#[allow(dead_code)] // Each test binary uses its own share of this module.
pub async fn with_store<F, Fut>(label: &str, body: F)
where
    F: FnOnce(String, String, provisioning_sqlx::PostgresStore) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    with_schema(label, |url, schema| async move {
        let store = provisioning_sqlx::PostgresStore::connect_to_schema(&url, &schema)
            .await
            .unwrap();
        body(url, schema, store).await;
    })
    .await;
}

/// As [`with_schema`], with `n` schemas.
pub async fn with_schemas<F, Fut>(label: &str, n: usize, body: F)
where
    F: FnOnce(String, Vec<String>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let url = url();
    let schemas: Vec<String> = (0..n).map(|_| unique_schema(label)).collect();
    // On a task of its own, so that a failed assertion comes back here as an
    // error and the schemas are still dropped.
    let outcome = tokio::spawn(body(url.clone(), schemas.clone())).await;
    for schema in &schemas {
        drop_schema(&url, schema).await;
    }
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

pub async fn drop_schema(url: &str, schema: &str) {
    let mut conn = PgConnection::connect(url).await.unwrap();
    sqlx::query(AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
}

/// Whether `schema` holds a table named `table`.
pub async fn table_exists(url: &str, schema: &str, table: &str) -> bool {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let found: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2",
    )
    .bind(schema)
    .bind(table)
    .fetch_optional(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    found.is_some()
}

/// The submission of a request creating `tenant`.
pub fn create(tenant: &TenantId) -> Submission {
    provisioning_core::testing::create(tenant, RequestId::new())
}
