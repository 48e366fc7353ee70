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

#[allow(unused_imports)] // each test binary uses its own share
pub use super::pg_url::{URL_VAR, url};

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

/// The same URL with `password` in its user info (`postgres` as the user
/// when it names none). The test server trusts its clients, so any password
/// connects: enough to check that none is ever shown.
pub fn with_password(url: &str, password: &str) -> String {
    let start = url.find("://").unwrap() + 3;
    let rest = &url[start..];
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap();
            format!("{}{user}:{password}{}", &url[..start], &rest[at..])
        }
        None => format!("{}postgres:{password}@{rest}", &url[..start]),
    }
}

/// A scalar query built at run time, on a database.
pub async fn scalar(url: &str, sql: String) -> i64 {
    let mut conn = connect(url).await;
    sqlx::query_scalar(AssertSqlSafe(sql))
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

/// The text of each row of a query built at run time, in order.
pub async fn texts(url: &str, sql: String) -> Vec<String> {
    let mut conn = connect(url).await;
    sqlx::query_scalar(AssertSqlSafe(sql))
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

/// Runs a script of several statements in one simple query.
pub async fn exec_script(url: &str, sql: &str) {
    let mut conn = connect(url).await;
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}

/// A name prefix for tenant databases and schemas no other test run uses
/// (at most 20 characters, as `name_prefix` requires).
pub fn unique_prefix(label: &str) -> String {
    format!("{label}{:08x}_", fastrand::u32(..))
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

/// The small shared schema of `postgres_shared.rs` (the workload ships no
/// shared PostgreSQL variant): three tables keyed by `tenant_id`, row ids
/// from the database's sequences, a seed of two roles and an admin.
pub fn shared_schema() -> provisioning_sqlx::PostgresTenantSchema {
    let migrator = sqlx::migrate::Migrator::with_migrations(vec![
        migration(
            1,
            "CREATE TABLE roles (id BIGSERIAL PRIMARY KEY, tenant_id TEXT NOT NULL, name TEXT NOT NULL, UNIQUE (tenant_id, name))",
        ),
        migration(
            2,
            "CREATE TABLE users (id BIGSERIAL PRIMARY KEY, tenant_id TEXT NOT NULL, email TEXT NOT NULL, UNIQUE (tenant_id, email))",
        ),
        migration(
            3,
            "CREATE TABLE user_roles (tenant_id TEXT NOT NULL, user_id BIGINT NOT NULL REFERENCES users (id), role_id BIGINT NOT NULL REFERENCES roles (id))",
        ),
    ]);
    provisioning_sqlx::TenantSchema::new(migrator)
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

/// [`shared_schema`] as a dedicated tenant has it: the same tables without
/// `tenant_id`, no seed (a move brings the seed ledger along).
pub fn dedicated_twin() -> provisioning_sqlx::PostgresTenantSchema {
    let migrator = sqlx::migrate::Migrator::with_migrations(vec![
        migration(
            1,
            "CREATE TABLE roles (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
        ),
        migration(
            2,
            "CREATE TABLE users (id BIGSERIAL PRIMARY KEY, email TEXT NOT NULL UNIQUE)",
        ),
        migration(
            3,
            "CREATE TABLE user_roles (user_id BIGINT NOT NULL REFERENCES users (id), role_id BIGINT NOT NULL REFERENCES roles (id))",
        ),
    ]);
    provisioning_sqlx::TenantSchema::new(migrator).tenant_tables(["roles", "users", "user_roles"])
}

/// A tenant's rows in each table of the reference workload and its seed
/// ledger at `url`, in `schema` (`None`: the database's default one).
pub async fn workload_counts(url: &str, schema: Option<&str>) -> Vec<i64> {
    let prefix = schema.map(|s| format!("\"{s}\".")).unwrap_or_default();
    let mut counts = Vec::new();
    for table in super::tenant_tables().iter().chain(&["_tenant_seeds"]) {
        counts.push(scalar(url, format!("SELECT COUNT(*) FROM {prefix}{table}")).await);
    }
    counts
}
