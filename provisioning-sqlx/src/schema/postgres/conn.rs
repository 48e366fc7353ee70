//! PostgreSQL connections and the seed ledger on them.

use provisioning_core::{Result, SeedInfo, TenantId};
use std::ops::{Deref, DerefMut};

use futures_util::future::BoxFuture;
use sqlx::Postgres;
use sqlx::migrate::Migration;
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

use crate::error::db_error;
use crate::schema::migrate::{self, ApplyAll};
use crate::schema::seed::{LedgerRow, Seed, SeedBody, pending_seeds};
use crate::schema::sql::{quote_ident, split_statements};

pub(super) const COMPONENT: &str = "postgres schema";

/// Connects a connection of its own (to a tenant's own database).
pub(super) async fn connect(options: &PgConnectOptions, what: &str) -> Result<PgConnection> {
    PgConnection::connect_with(options)
        .await
        .map_err(|e| db_error(COMPONENT, format!("connecting to {what}"), e))
}

/// A connection to one tenant's data: from the shard's pool (a schema of the
/// URL's database, or its shared tenants), or of its own (a database of its
/// own).
pub(super) enum TenantConn {
    Pooled(PoolConnection<Postgres>),
    Own(PgConnection),
}

impl Deref for TenantConn {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        match self {
            TenantConn::Pooled(conn) => conn,
            TenantConn::Own(conn) => conn,
        }
    }
}

impl DerefMut for TenantConn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match self {
            TenantConn::Pooled(conn) => conn,
            TenantConn::Own(conn) => conn,
        }
    }
}

impl TenantConn {
    /// Gives the connection back: to the pool, or closed.
    pub(super) async fn done(self) {
        if let TenantConn::Own(conn) = self {
            close(conn).await;
        }
    }
}

/// Points a pooled connection's unqualified names at `schema`, or back at
/// the database's default with `None`. Pooled connections keep whatever a
/// previous user set, so every tenant-level use sets it first.
pub(super) async fn search_path(conn: &mut PgConnection, schema: Option<&str>) -> Result<()> {
    let sql = match schema {
        Some(schema) => format!("SET search_path TO {}", quote_ident(schema)),
        None => "SET search_path TO DEFAULT".to_owned(),
    };
    sqlx::query(AssertSqlSafe(sql))
        .execute(&mut *conn)
        .await
        .map_err(|e| db_error(COMPONENT, format!("selecting schema {schema:?}"), e))?;
    Ok(())
}

/// Takes the advisory lock of `key` until the transaction `conn` is in ends:
/// workers in other processes (or on other connections) working on the same
/// database or schema take turns, and a lock can never outlive its
/// transaction, even on a pooled connection whose user was dropped.
pub(super) async fn xact_lock(conn: &mut PgConnection, key: &str) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("provisioning-sqlx:{key}"))
        .execute(&mut *conn)
        .await
        .map_err(|e| db_error(COMPONENT, "taking the migration lock", e))?;
    Ok(())
}

impl ApplyAll for PgConnection {
    /// `BEGIN`, the migrations as one simple-protocol script, one multi-row
    /// ledger insert, `COMMIT`: four round trips and one commit (one WAL
    /// flush) for any number of migrations, where one transaction each cost
    /// two commits each (sqlx records the execution time after committing).
    fn apply_all<'e>(
        &'e mut self,
        table: &'e str,
        migrations: &'e [&'e Migration],
    ) -> BoxFuture<'e, std::result::Result<(), sqlx::Error>> {
        Box::pin(async move {
            let mut tx = self.begin().await?;
            tx.execute(sqlx::raw_sql(AssertSqlSafe(migrate::script(migrations))))
                .await?;
            let insert = format!(
                "INSERT INTO {table} (version, description, success, checksum, execution_time) \
                 VALUES {}",
                migrate::ledger_values(migrations.len(), 1, '$')
            );
            let mut query = sqlx::query(AssertSqlSafe(insert));
            for m in migrations {
                query = query
                    .bind(m.version)
                    .bind(m.description.as_ref())
                    .bind(m.checksum.as_ref());
            }
            query.execute(&mut *tx).await?;
            tx.commit().await
        })
    }
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
async fn ensure_ledger(conn: &mut PgConnection) -> Result<()> {
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

/// Applies the missing seeds, each in one transaction with its ledger row.
/// A missing ledger table is created in the first seed's transaction, under
/// the advisory lock of `lock_key` (see [`ensure_ledger`]): one commit per
/// seed, the ledger's creation included.
pub(super) async fn apply(
    conn: &mut PgConnection,
    seeds: &[Seed<PgConnection>],
    tenant: &TenantId,
    lock_key: &str,
) -> Result<Vec<SeedInfo>> {
    let mut ledger_exists = table_exists(conn, "_tenant_seeds").await?;
    let ledger: Vec<LedgerRow> = if ledger_exists {
        sqlx::query_as("SELECT name, version, checksum FROM _tenant_seeds WHERE tenant_id = $1")
            .bind(tenant.as_str())
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| db_error(COMPONENT, "reading the seed ledger", e))?
    } else {
        Vec::new()
    };
    let mut applied = Vec::new();
    for seed in pending_seeds(seeds, &ledger, tenant)? {
        let what = || format!("seed {}@{} for {tenant}", seed.name(), seed.version());
        let mut tx = conn
            .begin()
            .await
            .map_err(|e| db_error(COMPONENT, what(), e))?;
        if !ledger_exists {
            xact_lock(&mut tx, lock_key).await?;
            ensure_ledger(&mut tx).await?;
        }
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
        ledger_exists = true;
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
