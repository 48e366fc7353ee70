//! The SQLite floors: the seed rows of a tenant in the shared database in one
//! transaction plus its marker file; and a database file per tenant, created,
//! migrated with sqlx's migrator, seeded, plus its marker file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Connection, SqliteConnection};

use crate::floor::write_marker;
use crate::runner::Result;
use crate::sdk::{DEDICATED_SHARD, REGION, SHARED_SHARD};
use crate::workload::{self, SeedStatement};

/// The floor's connections to the shared database: one, as the SDK's schema
/// manager keeps (SQLite has one writer at a time; a second connection would
/// only wait in SQLite's busy handler).
pub(crate) const SHARED_POOL_SIZE: u32 = 1;

/// The connection settings of the SDK's schema manager for tenant databases:
/// WAL, `synchronous = NORMAL`, foreign keys, a 5 s busy timeout.
fn options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true)
}

/// Runs the seed statements on `conn`, binding the tenant where used.
async fn seed(
    conn: &mut SqliteConnection,
    statements: &[SeedStatement],
    tenant: &str,
) -> Result<()> {
    for stmt in statements {
        let mut query = sqlx::query(AssertSqlSafe(stmt.sql.as_str()));
        if stmt.binds_tenant {
            query = query.bind(tenant);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Shared tenants by hand: one pool on the shard's database, migrated once
/// before timing starts.
#[derive(Clone)]
pub(crate) struct SharedFloor {
    pool: SqlitePool,
    storage: PathBuf,
    statements: Arc<[SeedStatement]>,
}

impl SharedFloor {
    /// Opens (creating) the shard database under `dir` and migrates it.
    pub(crate) async fn open(dir: &Path) -> Result<Self> {
        let db_dir = dir.join("databases").join(REGION).join(SHARED_SHARD);
        std::fs::create_dir_all(&db_dir)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(SHARED_POOL_SIZE)
            // As the SDK's pools: no ping before each use.
            .test_before_acquire(false)
            .connect_with(options(&db_dir.join("_shared.sqlite")))
            .await?;
        workload::SHARED_MIGRATIONS.run(&pool).await?;
        Ok(SharedFloor {
            pool,
            storage: dir.join("storage"),
            statements: workload::seed_statements(workload::SHARED_SEED, "?1").into(),
        })
    }

    /// Seeds `tenant` in one transaction, then writes its marker.
    pub(crate) async fn create(&self, tenant: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        seed(&mut tx, &self.statements, tenant).await?;
        tx.commit().await?;
        write_marker(&self.storage, REGION, tenant, "free").await
    }

    /// `(roles, users, user_roles)` rows in the shared database.
    pub(crate) async fn counts(&self) -> Result<(i64, i64, i64)> {
        shared_counts(&self.pool).await
    }

    /// Closes the pool (checkpointing the WAL).
    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }
}

/// `(roles, users, user_roles)` rows in a shared workload database.
pub(crate) async fn shared_counts(pool: &SqlitePool) -> Result<(i64, i64, i64)> {
    Ok(sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM roles), (SELECT COUNT(*) FROM users), \
         (SELECT COUNT(*) FROM user_roles)",
    )
    .fetch_one(pool)
    .await?)
}

/// Opens a shared workload database read-only for counting.
pub(crate) async fn open_for_counts(path: &Path) -> Result<SqlitePool> {
    Ok(SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::new().filename(path).read_only(true))
        .await?)
}

/// Dedicated tenants by hand: a file per tenant, created in WAL mode,
/// migrated with sqlx's migrator (one transaction per migration, recorded in
/// `_sqlx_migrations`, as any sqlx application would), seeded in one
/// transaction, closed; then the marker.
#[derive(Clone)]
pub(crate) struct DedicatedFloor {
    databases: PathBuf,
    storage: PathBuf,
    statements: Arc<[SeedStatement]>,
}

impl DedicatedFloor {
    /// Prepares the shard's folder under `dir`.
    pub(crate) fn open(dir: &Path) -> Result<Self> {
        let databases = dir.join("databases").join(REGION).join(DEDICATED_SHARD);
        std::fs::create_dir_all(&databases)?;
        Ok(DedicatedFloor {
            databases,
            storage: dir.join("storage"),
            statements: workload::seed_statements(workload::DEDICATED_SEED, "?1").into(),
        })
    }

    /// Where `tenant`'s database file goes.
    pub(crate) fn database(&self, tenant: &str) -> PathBuf {
        self.databases.join(format!("{tenant}.sqlite"))
    }

    /// Creates, migrates and seeds `tenant`'s database, then writes its marker.
    pub(crate) async fn create(&self, tenant: &str) -> Result<()> {
        let mut conn = SqliteConnection::connect_with(&options(&self.database(tenant))).await?;
        workload::DEDICATED_MIGRATIONS
            .run_direct(None, &mut conn, false)
            .await?;
        let mut tx = conn.begin().await?;
        seed(&mut tx, &self.statements, tenant).await?;
        tx.commit().await?;
        conn.close().await?;
        write_marker(&self.storage, REGION, tenant, "premium").await
    }
}

/// Checks a dedicated tenant database: `(migrations, roles, users,
/// user_roles)`.
pub(crate) async fn dedicated_counts(path: &Path) -> Result<(i64, i64, i64, i64)> {
    let options = SqliteConnectOptions::new().filename(path).read_only(true);
    let mut conn = SqliteConnection::connect_with(&options).await?;
    let counts = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM _sqlx_migrations WHERE success), \
         (SELECT COUNT(*) FROM roles), (SELECT COUNT(*) FROM users), \
         (SELECT COUNT(*) FROM user_roles)",
    )
    .fetch_one(&mut conn)
    .await?;
    conn.close().await?;
    Ok(counts)
}
