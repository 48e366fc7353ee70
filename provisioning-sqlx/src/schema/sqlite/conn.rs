//! SQLite connections and the seed ledger on them.

use std::path::Path;
use std::time::Duration;

use provisioning_core::{Result, SeedInfo, TenantId};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Connection, SqliteConnection};

use crate::error::db_error;
use crate::schema::seed::{LedgerRow, Seed, SeedBody, pending_seeds};
use crate::schema::sql::split_statements;

pub(super) const COMPONENT: &str = "sqlite schema";

/// How a connection is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Open {
    /// Read what is there: no file is created, no pragma is persisted.
    Inspect,
    /// For writing: WAL, `synchronous = NORMAL` (safe with WAL), foreign keys,
    /// busy timeout. `create` makes the file if missing.
    Write { create: bool },
    /// A new file with a rollback journal, so that no `-wal` file has to follow
    /// it when it is renamed into place.
    Stage,
}

pub(super) async fn connect(path: &Path, open: Open, busy: Duration) -> Result<SqliteConnection> {
    let mut options = SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(busy)
        .foreign_keys(true);
    options = match open {
        Open::Inspect => options.create_if_missing(false),
        Open::Write { create } => options
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal),
        Open::Stage => options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Delete),
    };
    SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| db_error(COMPONENT, format!("opening {}", path.display()), e))
}

/// Closes a connection, so that its file can be removed or renamed; a failed
/// close loses nothing (every write was committed), so it is only logged.
pub(super) async fn close(conn: SqliteConnection) {
    if let Err(error) = conn.close().await {
        tracing::warn!(%error, "closing a sqlite connection failed");
    }
}

pub(super) async fn table_exists(conn: &mut SqliteConnection, table: &str) -> Result<bool> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1")
            .bind(table)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| db_error(COMPONENT, format!("looking up table {table}"), e))?;
    Ok(found.is_some())
}

async fn ledger_rows(conn: &mut SqliteConnection, tenant: &TenantId) -> Result<Vec<LedgerRow>> {
    if !table_exists(conn, "_tenant_seeds").await? {
        return Ok(Vec::new());
    }
    sqlx::query_as("SELECT name, version, checksum FROM _tenant_seeds WHERE tenant_id = ?1")
        .bind(tenant.as_str())
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| db_error(COMPONENT, "reading the seed ledger", e))
}

/// The seeds this tenant has not got yet (read-only).
pub(super) async fn pending(
    conn: &mut SqliteConnection,
    seeds: &[Seed<SqliteConnection>],
    tenant: &TenantId,
) -> Result<Vec<SeedInfo>> {
    let ledger = ledger_rows(conn, tenant).await?;
    Ok(pending_seeds(seeds, &ledger, tenant)?
        .into_iter()
        .map(Seed::info)
        .collect())
}

/// Applies the missing seeds, each in one transaction with its ledger row.
pub(super) async fn apply(
    conn: &mut SqliteConnection,
    seeds: &[Seed<SqliteConnection>],
    tenant: &TenantId,
) -> Result<Vec<SeedInfo>> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS _tenant_seeds (
            tenant_id  TEXT NOT NULL,
            name       TEXT NOT NULL,
            version    INTEGER NOT NULL,
            checksum   TEXT NOT NULL,
            applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
            PRIMARY KEY (tenant_id, name, version)
        )",
    )
    .execute(&mut *conn)
    .await
    .map_err(|e| db_error(COMPONENT, "creating the seed ledger", e))?;
    let ledger = ledger_rows(conn, tenant).await?;
    let mut applied = Vec::new();
    for seed in pending_seeds(seeds, &ledger, tenant)? {
        let what = || format!("seed {}@{} for {tenant}", seed.name(), seed.version());
        let mut tx = conn
            .begin()
            .await
            .map_err(|e| db_error(COMPONENT, what(), e))?;
        // The ledger row first: a concurrent seeder of the same tenant inserts
        // nothing and leaves the seed to the one that got the row.
        let claimed = sqlx::query(
            "INSERT INTO _tenant_seeds (tenant_id, name, version, checksum)
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
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
                for stmt in split_statements(sql, "?1") {
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
