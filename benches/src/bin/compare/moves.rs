//! Moves mode: shared tenants (the reference seed plus extra rows each)
//! upgraded to a SQLite file of their own, through the orchestrator's move
//! saga (`change_plan`), against a hand-written mover doing the same
//! database work with no saga: create and migrate the file, copy the
//! tenant's rows from the attached shared database in one transaction,
//! delete them from the shared database.
//!
//! Both sides start from the same state, made the same way before timing
//! (the tenants created through the SDK, the extra rows inserted by hand).
//! Besides moves per second, the SDK side reports the held-write window per
//! tenant: from the journal, the time from the `hold-writes` step's end to
//! the `cut-over` step's end, in which the tenant is `Moving`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Connection, SqliteConnection, SqlitePool};

use crate::report::{Mode, Run};
use crate::runner::{self, PREFIX, Result, Rounds, check, tenant_id};
use crate::sdk::{DEDICATED_SHARD, REGION, SHARED_SHARD, SqliteSdk, print_steps};
use crate::workload::{DEDICATED_MIGRATIONS, tenant_tables};

/// The held-write window of the SDK's moves at one concurrency, over every
/// round.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct HeldWrites {
    /// Moves in flight at once.
    pub(crate) concurrency: usize,
    /// Moves measured.
    pub(crate) moves: usize,
    /// Median window, ms.
    pub(crate) p50_ms: f64,
    /// 95th percentile, ms.
    pub(crate) p95_ms: f64,
    /// Longest, ms.
    pub(crate) max_ms: f64,
}

/// Measures both sides at each concurrency, `rounds` times in ABBA order.
pub(crate) async fn run(
    root: &Path,
    tenants: usize,
    extra_rows: usize,
    concurrencies: &[usize],
    rounds: Rounds,
) -> Result<Mode> {
    let mut runs = Vec::new();
    let mut held = Vec::new();
    for &concurrency in concurrencies {
        let mut windows = Vec::new();
        let samples = runner::alternate(
            rounds,
            async |_| floor_run(root, tenants, extra_rows, concurrency).await,
            async |_| {
                let (per_sec, mut w) = sdk_run(root, tenants, extra_rows, concurrency).await?;
                windows.append(&mut w);
                Ok(per_sec)
            },
        )
        .await?;
        let run = Run::new(concurrency, samples);
        eprintln!("{}", run.line("moves"));
        runs.push(run);
        if let Some(figures) = held_writes(concurrency, windows) {
            held.push(figures);
        }
    }
    Ok(Mode {
        tenants,
        runs,
        fleet: None,
        peak_rss_mib: None,
        held_writes: held,
        extra_rows: Some(extra_rows),
    })
}

/// The percentiles of `windows` (ms), printed; none without windows.
pub(crate) fn held_writes(concurrency: usize, mut windows: Vec<f64>) -> Option<HeldWrites> {
    if windows.is_empty() {
        return None;
    }
    windows.sort_by(f64::total_cmp);
    let at = |q: f64| windows[((windows.len() - 1) as f64 * q).round() as usize];
    let figures = HeldWrites {
        concurrency,
        moves: windows.len(),
        p50_ms: at(0.5),
        p95_ms: at(0.95),
        max_ms: at(1.0),
    };
    eprintln!(
        "moves c={concurrency}: held writes p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms over {} moves",
        figures.p50_ms, figures.p95_ms, figures.max_ms, figures.moves
    );
    Some(figures)
}

/// Storage that holds nothing: the PostgreSQL moves measure databases only.
pub(crate) struct NoStorage;

#[async_trait::async_trait]
impl provisioning_core::StorageInitializer for NoStorage {
    async fn preview(
        &self,
        _: &provisioning_core::Placement,
    ) -> provisioning_core::Result<provisioning_core::StoragePreview> {
        Ok(provisioning_core::StoragePreview::new(vec![], false))
    }
    async fn initialize(&self, _: &provisioning_core::Placement) -> provisioning_core::Result<()> {
        Ok(())
    }
    async fn remove(
        &self,
        _: &provisioning_core::Placement,
        _: provisioning_core::RemovalMode,
    ) -> provisioning_core::Result<()> {
        Ok(())
    }
}

/// A fresh directory with `tenants` shared tenants, each with `extra` rows
/// beyond its seed; the SDK over it.
async fn setup(
    root: &Path,
    name: &str,
    tenants: usize,
    extra: usize,
) -> Result<(PathBuf, SqliteSdk)> {
    let dir = runner::fresh_dir(root, name)?;
    let sdk = SqliteSdk::open(&dir).await?;
    runner::provision(&sdk, tenants, 8, async |sdk, tenant| {
        sdk.create(&tenant, false).await
    })
    .await?;
    let mut conn = SqliteConnection::connect_with(&options(&shared_db(&dir), false)).await?;
    let mut tx = conn.begin().await?;
    for i in 0..tenants {
        let tenant = tenant_id(PREFIX, i);
        let project: i64 = sqlx::query_scalar(
            "INSERT INTO projects (tenant_id, name, slug) VALUES (?1, 'Bench', 'bench') RETURNING id",
        )
        .bind(&tenant)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?3) \
             INSERT INTO tasks (tenant_id, project_id, title) SELECT ?1, ?2, 'task ' || i FROM n",
        )
        .bind(&tenant)
        .bind(project)
        .bind(i64::try_from(extra / 2)?)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO comments (tenant_id, task_id, body) \
             SELECT ?1, id, 'a comment on ' || title FROM tasks WHERE tenant_id = ?1",
        )
        .bind(&tenant)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    conn.close().await?;
    runner::settle_disk();
    Ok((dir, sdk))
}

async fn sdk_run(
    root: &Path,
    tenants: usize,
    extra: usize,
    concurrency: usize,
) -> Result<(f64, Vec<f64>)> {
    let (dir, sdk) = setup(root, &format!("moves-sdk-c{concurrency}"), tenants, extra).await?;
    let elapsed = runner::provision(&sdk, tenants, concurrency, async |sdk, tenant| {
        sdk.upgrade(&tenant).await
    })
    .await?;
    print_steps(sdk.step_profile()).await?;
    let windows = sdk.held_write_windows().await?;
    check(windows.len() == tenants, || {
        format!(
            "moves SDK: {} held-write windows for {tenants} moves",
            windows.len()
        )
    })?;
    sdk.close().await;
    verify("SDK", &dir, tenants, extra).await?;
    runner::remove_dir(&dir);
    Ok((runner::per_second(tenants, elapsed), windows))
}

async fn floor_run(root: &Path, tenants: usize, extra: usize, concurrency: usize) -> Result<f64> {
    let (dir, sdk) = setup(root, &format!("moves-floor-c{concurrency}"), tenants, extra).await?;
    sdk.close().await;
    let floor = MoveFloor::open(&dir).await?;
    let elapsed = runner::provision(&floor, tenants, concurrency, async |floor, tenant| {
        floor.upgrade(&tenant).await
    })
    .await?;
    floor.shared.close().await;
    verify("floor", &dir, tenants, extra).await?;
    runner::remove_dir(&dir);
    Ok(runner::per_second(tenants, elapsed))
}

fn shared_db(dir: &Path) -> PathBuf {
    dir.join("databases")
        .join(REGION)
        .join(SHARED_SHARD)
        .join("_shared.sqlite")
}

fn dedicated_db(dir: &Path, tenant: &str) -> PathBuf {
    dir.join("databases")
        .join(REGION)
        .join(DEDICATED_SHARD)
        .join(format!("{tenant}.sqlite"))
}

/// The schema manager's settings: WAL, `synchronous = NORMAL`, foreign keys.
fn options(path: &Path, create: bool) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(create)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true)
}

/// The hand-written mover: the column lists read once, one connection to
/// the shared database for the deletes (SQLite has one writer).
#[derive(Clone)]
struct MoveFloor {
    dir: PathBuf,
    shared: SqlitePool,
    /// Per table, parents first: its columns without `tenant_id`.
    tables: Arc<Vec<(String, String)>>,
}

impl MoveFloor {
    async fn open(dir: &Path) -> Result<Self> {
        let shared = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options(&shared_db(dir), false))
            .await?;
        let mut tables = Vec::new();
        for table in tenant_tables() {
            let columns: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM pragma_table_info(?1) WHERE name <> 'tenant_id' ORDER BY cid",
            )
            .bind(table)
            .fetch_all(&shared)
            .await?;
            tables.push((table.to_owned(), columns.join(", ")));
        }
        Ok(MoveFloor {
            dir: dir.to_owned(),
            shared,
            tables: Arc::new(tables),
        })
    }

    /// Creates and migrates the tenant's file, copies its rows in, deletes
    /// them from the shared database.
    async fn upgrade(&self, tenant: &str) -> Result<()> {
        let path = dedicated_db(&self.dir, tenant);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut conn = SqliteConnection::connect_with(&options(&path, true)).await?;
        DEDICATED_MIGRATIONS
            .run_direct(None, &mut conn, false)
            .await?;
        sqlx::query("ATTACH DATABASE ?1 AS src")
            .bind(shared_db(&self.dir).display().to_string())
            .execute(&mut conn)
            .await?;
        let mut tx = conn.begin().await?;
        for (table, columns) in self.tables.iter() {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO main.{table} ({columns}) SELECT {columns} FROM src.{table} WHERE tenant_id = ?1"
            )))
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        sqlx::query("DETACH DATABASE src")
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let mut tx = self.shared.begin().await?;
        for (table, _) in self.tables.iter().rev() {
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE tenant_id = ?1"
            )))
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Every tenant has its own file with its seed and extra rows, and nothing
/// left in the shared database.
async fn verify(side: &str, dir: &Path, tenants: usize, extra: usize) -> Result<()> {
    for i in 0..tenants {
        let tenant = tenant_id(PREFIX, i);
        let options = SqliteConnectOptions::new()
            .filename(dedicated_db(dir, &tenant))
            .read_only(true);
        let mut conn = SqliteConnection::connect_with(&options).await?;
        let counts: (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM roles), (SELECT COUNT(*) FROM tasks), \
             (SELECT COUNT(*) FROM comments)",
        )
        .fetch_one(&mut conn)
        .await?;
        conn.close().await?;
        let half = i64::try_from(extra / 2)?;
        check(counts == (3, half, half), || {
            format!("moves {side}: tenant {tenant} has (roles, tasks, comments) = {counts:?}")
        })?;
    }
    let options = SqliteConnectOptions::new()
        .filename(shared_db(dir))
        .read_only(true);
    let mut conn = SqliteConnection::connect_with(&options).await?;
    let left: i64 =
        sqlx::query_scalar("SELECT (SELECT COUNT(*) FROM tasks) + (SELECT COUNT(*) FROM roles)")
            .fetch_one(&mut conn)
            .await?;
    conn.close().await?;
    check(left == 0, || {
        format!("moves {side}: {left} rows left in the shared database")
    })
}
