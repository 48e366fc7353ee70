//! SQLite connections and the seed ledger on them.

use std::path::Path;
use std::time::Duration;

use futures_util::future::BoxFuture;
use provisioning_core::{Result, SeedInfo, TenantId};
use sqlx::migrate::Migration;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Connection, SqliteConnection};

use crate::error::{check_writable, db_error, sqlite_open_error};
use crate::schema::conn::{impl_schema_conn, read_ledger};
use crate::schema::migrate::{self, ApplyAll};
use crate::schema::seed::{Seed, SeedBody, pending_seeds};
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
    /// A new file being staged: no rollback journal and no syncs while it is
    /// written (a staging file left half-written by a crash is deleted and
    /// made again, never used). The stager ends with [`stage_wal`], whose
    /// synced header write puts the whole file on disk before the rename, and
    /// leaves it in WAL mode: no `-wal` file has to follow the rename and
    /// later writers find nothing to convert.
    Stage,
}

/// The options of a connection opened `open` on `path`.
pub(super) fn options(path: &Path, open: Open, busy: Duration) -> SqliteConnectOptions {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(busy)
        .foreign_keys(true);
    match open {
        Open::Inspect => options.create_if_missing(false),
        Open::Write { create } => options
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal),
        Open::Stage => options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Off)
            .synchronous(SqliteSynchronous::Off),
    }
}

pub(super) async fn connect(path: &Path, open: Open, busy: Duration) -> Result<SqliteConnection> {
    if let Open::Write { .. } = open {
        check_writable(COMPONENT, path)?;
    }
    SqliteConnection::connect_with(&options(path, open, busy))
        .await
        .map_err(|e| sqlite_open_error(COMPONENT, path, e))
}

impl ApplyAll for SqliteConnection {
    /// `BEGIN`, the migrations and one multi-row ledger insert as one script,
    /// `COMMIT`: three round trips to the connection's thread for any number
    /// of migrations (the migrations' SQL takes no parameters, the ledger
    /// insert numbers its own from 1).
    fn apply_all<'e>(
        &'e mut self,
        table: &'e str,
        migrations: &'e [&'e Migration],
    ) -> BoxFuture<'e, std::result::Result<(), sqlx::Error>> {
        Box::pin(async move {
            let mut script = migrate::script(migrations);
            script.push_str(&format!(
                "INSERT INTO {table} (version, description, success, checksum, execution_time) \
                 VALUES {};",
                migrate::ledger_values(migrations.len(), 1, '?')
            ));
            let mut query = sqlx::query(AssertSqlSafe(script)).persistent(false);
            for m in migrations {
                query = query
                    .bind(m.version)
                    .bind(m.description.as_ref())
                    .bind(m.checksum.as_ref());
            }
            let mut tx = self.begin().await?;
            query.execute(&mut *tx).await?;
            tx.commit().await
        })
    }
}

/// Finishes a staged file: switches it to WAL mode with syncing on. The
/// switch rewrites the header and syncs the file, which puts everything
/// staged on disk (an fsync flushes the whole file) in one fsync; converting
/// the finished database to WAL later would cost a rollback journal and
/// several. The mode is stored in the file, so the renamed database opens in
/// WAL mode.
pub(super) async fn stage_wal(conn: &mut SqliteConnection) -> Result<()> {
    sqlx::query("PRAGMA synchronous = FULL; PRAGMA journal_mode = WAL")
        .execute(&mut *conn)
        .await
        .map_err(|e| db_error(COMPONENT, "switching a staged database to WAL", e))?;
    Ok(())
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

impl_schema_conn!(SqliteConnection, COMPONENT, "?1", table_exists, None);

/// Creates the seed ledger table if it is missing.
pub(super) async fn create_ledger(conn: &mut SqliteConnection) -> Result<()> {
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
    Ok(())
}

/// Applies the missing seeds, each in one transaction with its ledger row.
/// `ledger_exists` skips creating the ledger table (the caller knows it is
/// there).
///
/// An SQL seed costs four round trips to the connection's thread whatever
/// its length: `BEGIN`, the ledger row, the seed's statements as one script
/// (they share its one parameter, the tenant id), `COMMIT`.
pub(super) async fn apply(
    conn: &mut SqliteConnection,
    seeds: &[Seed<SqliteConnection>],
    tenant: &TenantId,
    ledger_exists: bool,
) -> Result<Vec<SeedInfo>> {
    if !ledger_exists {
        create_ledger(conn).await?;
    }
    let ledger = read_ledger(conn, tenant).await?;
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
                let statements = split_statements(sql, "?1");
                let binds = statements.iter().any(|s| s.binds_tenant);
                let script: Vec<&str> = statements.iter().map(|s| s.sql.as_str()).collect();
                let mut query = sqlx::query(AssertSqlSafe(script.join(";\n")));
                if binds {
                    query = query.bind(tenant.as_str());
                }
                query
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| db_error(COMPONENT, what(), e))?;
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
