//! PostgreSQL connections and the seed ledger on them.

use provisioning_core::{Result, SeedInfo, TenantId};
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::error::db_error;
use crate::schema::seed::{LedgerRow, Seed, SeedBody, pending_seeds};
use crate::schema::sql::{quote_ident, split_statements};

pub(super) const COMPONENT: &str = "postgres schema";

/// Connects; with `schema`, every unqualified name (tables, ledgers) resolves
/// in that schema only.
pub(super) async fn connect(
    options: &PgConnectOptions,
    schema: Option<&str>,
    what: &str,
) -> Result<PgConnection> {
    let mut conn = PgConnection::connect_with(options)
        .await
        .map_err(|e| db_error(COMPONENT, format!("connecting to {what}"), e))?;
    if let Some(schema) = schema {
        sqlx::query(AssertSqlSafe(format!(
            "SET search_path TO {}",
            quote_ident(schema)
        )))
        .execute(&mut conn)
        .await
        .map_err(|e| db_error(COMPONENT, format!("selecting schema {schema}"), e))?;
    }
    Ok(conn)
}

/// Closes a connection; every write was committed, so a failure is only logged.
pub(super) async fn close(conn: PgConnection) {
    if let Err(error) = conn.close().await {
        tracing::warn!(%error, "closing a postgres connection failed");
    }
}

/// Whether a table is visible on the connection's search path.
pub(super) async fn table_exists(conn: &mut PgConnection, table: &str) -> Result<bool> {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(quote_ident(table))
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| db_error(COMPONENT, format!("looking up table {table}"), e))
}

async fn ledger_rows(conn: &mut PgConnection, tenant: &TenantId) -> Result<Vec<LedgerRow>> {
    if !table_exists(conn, "_tenant_seeds").await? {
        return Ok(Vec::new());
    }
    sqlx::query_as("SELECT name, version, checksum FROM _tenant_seeds WHERE tenant_id = $1")
        .bind(tenant.as_str())
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| db_error(COMPONENT, "reading the seed ledger", e))
}

/// The seeds this tenant has not got yet (read-only).
pub(super) async fn pending(
    conn: &mut PgConnection,
    seeds: &[Seed<PgConnection>],
    tenant: &TenantId,
) -> Result<Vec<SeedInfo>> {
    let ledger = ledger_rows(conn, tenant).await?;
    Ok(pending_seeds(seeds, &ledger, tenant)?
        .into_iter()
        .map(Seed::info)
        .collect())
}

/// Creates the seed ledger if missing. Concurrent `CREATE TABLE IF NOT
/// EXISTS` races on PostgreSQL's catalog, so callers hold the database's
/// migration lock.
pub(super) async fn ensure_ledger(conn: &mut PgConnection) -> Result<()> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS _tenant_seeds (
            tenant_id  TEXT NOT NULL,
            name       TEXT NOT NULL,
            version    BIGINT NOT NULL,
            checksum   TEXT NOT NULL,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, name, version)
        )",
    )
    .execute(&mut *conn)
    .await
    .map_err(|e| db_error(COMPONENT, "creating the seed ledger", e))?;
    Ok(())
}

/// Applies the missing seeds, each in one transaction with its ledger row;
/// the ledger must exist ([`ensure_ledger`]).
pub(super) async fn apply(
    conn: &mut PgConnection,
    seeds: &[Seed<PgConnection>],
    tenant: &TenantId,
) -> Result<Vec<SeedInfo>> {
    let ledger = ledger_rows(conn, tenant).await?;
    let mut applied = Vec::new();
    for seed in pending_seeds(seeds, &ledger, tenant)? {
        let what = || format!("seed {}@{} for {tenant}", seed.name(), seed.version());
        let mut tx = conn
            .begin()
            .await
            .map_err(|e| db_error(COMPONENT, what(), e))?;
        // The ledger row first: a concurrent seeder of the same tenant waits on
        // it, then inserts nothing and leaves the seed to the first.
        let claimed = sqlx::query(
            "INSERT INTO _tenant_seeds (tenant_id, name, version, checksum)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(seed.name())
        .bind(seed.version())
        .bind(seed.checksum())
        .execute(&mut *tx)
        .await
        .map_err(|e| db_error(COMPONENT, what(), e))?
        .rows_affected();
        if claimed == 0 {
            continue;
        }
        match seed.body() {
            SeedBody::Sql(sql) => {
                for stmt in split_statements(sql, "$1") {
                    let mut query = sqlx::query(AssertSqlSafe(stmt.sql));
                    if stmt.binds_tenant {
                        query = query.bind(tenant.as_str());
                    }
                    query
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| db_error(COMPONENT, what(), e))?;
                }
            }
            SeedBody::Rust { run, .. } => run(&mut tx, tenant).await?,
        }
        tx.commit()
            .await
            .map_err(|e| db_error(COMPONENT, what(), e))?;
        applied.push(seed.info());
    }
    Ok(applied)
}

/// Deletes the tenant's rows from `tables` in reverse order and its
/// seed-ledger rows, in one transaction; tables not created yet are skipped.
pub(super) async fn delete_tenant_rows(
    conn: &mut PgConnection,
    tables: &[String],
    tenant: &TenantId,
) -> Result<u64> {
    let err = |e| db_error(COMPONENT, format!("removing the rows of {tenant}"), e);
    let mut tx = conn.begin().await.map_err(err)?;
    let mut removed = 0;
    for table in tables
        .iter()
        .rev()
        .map(String::as_str)
        .chain(["_tenant_seeds"])
    {
        if !table_exists(&mut tx, table).await? {
            continue;
        }
        let sql = format!("DELETE FROM {} WHERE tenant_id = $1", quote_ident(table));
        removed += sqlx::query(AssertSqlSafe(sql))
            .bind(tenant.as_str())
            .execute(&mut *tx)
            .await
            .map_err(err)?
            .rows_affected();
    }
    tx.commit().await.map_err(err)?;
    Ok(removed)
}
