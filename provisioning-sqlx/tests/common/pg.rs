//! PostgreSQL test helpers: the server from `PROVISIONING_TEST_POSTGRES_URL`,
//! uniquely named scratch databases.
#![allow(
    unreachable_pub,
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout
)]

use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// The server URL, or `None` after printing that the test is skipped.
pub fn url() -> Option<String> {
    match std::env::var("PROVISIONING_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!("skipped: PROVISIONING_TEST_POSTGRES_URL not set");
            None
        }
    }
}

/// The same server URL naming another database.
pub fn with_database(url: &str, db: &str) -> String {
    let without_query = url.split('?').next().unwrap();
    let slash = without_query.rfind('/').unwrap();
    if without_query[..slash].ends_with('/') {
        // postgres://host (no database in the URL)
        return format!("{without_query}/{db}");
    }
    format!("{}/{db}", &without_query[..slash])
}

pub async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url).await.unwrap()
}

pub async fn exec(url: &str, sql: String) {
    let mut conn = connect(url).await;
    sqlx::query(AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}

/// A new empty database with a unique name; returns its name and URL.
pub async fn scratch_database(url: &str, label: &str) -> (String, String) {
    let name = format!("prov_test_{label}_{:08x}", fastrand::u32(..));
    exec(url, format!("CREATE DATABASE \"{name}\"")).await;
    let db_url = with_database(url, &name);
    (name, db_url)
}

pub async fn drop_database(url: &str, name: &str) {
    exec(
        url,
        format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
    )
    .await;
}

pub async fn database_exists(url: &str, name: &str) -> bool {
    let mut conn = connect(url).await;
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut conn)
        .await
        .unwrap();
    found.is_some()
}

pub async fn schema_exists(url: &str, name: &str) -> bool {
    let mut conn = connect(url).await;
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_namespace WHERE nspname = $1")
        .bind(name)
        .fetch_optional(&mut conn)
        .await
        .unwrap();
    found.is_some()
}

/// A scalar query on a database.
pub async fn scalar_i64(url: &str, sql: &'static str) -> i64 {
    let mut conn = connect(url).await;
    sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
}

pub async fn ledger(url: &str, schema: Option<&str>) -> Vec<i64> {
    let mut conn = connect(url).await;
    let table = match schema {
        Some(s) => format!("\"{s}\"._sqlx_migrations"),
        None => "_sqlx_migrations".to_owned(),
    };
    sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT version FROM {table} ORDER BY version"
    )))
    .fetch_all(&mut conn)
    .await
    .unwrap()
}
