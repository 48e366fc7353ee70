//! [`SqliteStore`]: the catalog, saga journal and outbox in one SQLite file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use provisioning_core::{
    Error, FailureInfo, NewEvent, RequestId, RequestRecord, RequestStatus, Result, Submission,
    SubmitOutcome, TenantEvent, TenantFilter, TenantId, TenantRecord, TenantStore,
};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};

use crate::error::{check_writable, db_error, sqlite_open_error};
use crate::store::codec::{from_json, to_json};

mod fleet;
mod group;
mod journal;
#[cfg(feature = "sharding")]
mod load;
mod requests;
mod script;
mod tenants;

const COMPONENT: &str = "sqlite store";

/// The store's own schema, embedded.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/store/sqlite");

/// How much a commit survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// `synchronous=NORMAL` in WAL mode: a committed write survives the
    /// process crashing at any instant; a power loss may lose the last
    /// commits (never corrupt the file). The default: the journal's many small
    /// commits stay cheap.
    #[default]
    ProcessCrash,
    /// `synchronous=FULL`: every commit is on disk before it returns, so it
    /// survives a power loss too, at the cost of an fsync per commit.
    PowerLoss,
}

/// The embedded default store: tenants, requests, the saga journal and the
/// event outbox in one SQLite file, in WAL mode, safe for many concurrent tasks
/// of one process, and for several processes (SQLite serializes their writes).
///
/// Within a process, writes go in turn through one connection (its page cache
/// stays warm) under one lock, and those of one kind that queue up meanwhile
/// (journal appends, tenant updates, submissions, request settlements) are
/// written together in one transaction, each keeping its own outcome (group
/// commit): under load a write costs a fraction of one transaction. Each call
/// returns once its write is committed. Reads use a pool of their own.
///
/// ```
/// use std::sync::Arc;
/// use provisioning_core::{TenantFilter, TenantStore};
/// use provisioning_sqlx::SqliteStore;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// # let dir = tempfile::tempdir().unwrap();
/// let store = Arc::new(SqliteStore::open(dir.path().join("catalog.sqlite")).await?);
/// assert!(store.list_tenants(&TenantFilter::all()).await?.is_empty());
/// # Ok::<(), provisioning_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    path: PathBuf,
    /// Taken by every write of this store, before its connection: SQLite
    /// runs one writer at a time, and a writer that finds the database locked
    /// sleeps in SQLite's busy handler (milliseconds, growing), so concurrent
    /// writers of one process queue here instead and go in turn.
    writer: Arc<tokio::sync::Mutex<()>>,
    /// Journal appends waiting for the writer lock, written together by
    /// whichever of them gets it (see `journal`).
    journal: Arc<group::Group<crate::store::codec::EncodedBatch>>,
    /// Tenant updates waiting for the writer lock, likewise (see `tenants`).
    updates: Arc<group::Group<tenants::Update>>,
    /// Submissions and settlements of requests, likewise (see `requests`).
    submits: Arc<group::Group<requests::Submit>>,
    finishes: Arc<group::Group<requests::Finish>>,
    /// The one connection writes use. In WAL mode a connection drops its
    /// whole page cache when another one has written since its last
    /// transaction; with every write on this connection, its cache stays warm
    /// and a write reads its B-tree pages from memory, not from the file.
    writes: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` with
    /// [`Durability::ProcessCrash`], and brings its schema up to date.
    ///
    /// # Errors
    /// [`Error::Backend`] when the file cannot be opened or migrated.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, Durability::default()).await
    }

    /// As [`open`](Self::open), with the given durability.
    ///
    /// # Errors
    /// [`Error::Backend`] when the file cannot be opened or migrated.
    pub async fn open_with(path: impl AsRef<Path>, durability: Durability) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        check_writable(COMPONENT, &path)?;
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match durability {
                Durability::ProcessCrash => SqliteSynchronous::Normal,
                Durability::PowerLoss => SqliteSynchronous::Full,
            })
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        let pool = crate::pool::pool_options::<sqlx::Sqlite>()
            .max_connections(8)
            .connect_with(options.clone())
            .await
            .map_err(|e| sqlite_open_error(COMPONENT, &path, e))?;
        migrate(&pool, &path).await?;
        let writes = crate::pool::pool_options::<sqlx::Sqlite>()
            .max_connections(1)
            // A local file does not drop connections as a server does.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(|e| sqlite_open_error(COMPONENT, &path, e))?;
        Ok(SqliteStore::with_pools(pool, writes, path))
    }

    /// Opens the store at `path` for reading only: nothing is created,
    /// migrated or written, so listing and inspecting work on a read-only file
    /// system, a read-only mount of a backup, or a catalog this user may only
    /// read. Every write returns [`Error::Backend`].
    ///
    /// A catalog in WAL mode needs its shared-memory index beside it; where
    /// that cannot be created (read-only media), the file is opened as
    /// immutable, which is sound because nothing can change it there.
    ///
    /// ```
    /// use provisioning_core::{TenantFilter, TenantStore};
    /// use provisioning_sqlx::SqliteStore;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("catalog.sqlite");
    /// SqliteStore::open(&path).await?.close().await;
    /// let reader = SqliteStore::open_read_only(&path).await?;
    /// assert!(reader.list_tenants(&TenantFilter::all()).await?.is_empty());
    /// # Ok::<(), provisioning_core::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`Error::Backend`] when the file does not exist or cannot be read, or
    /// when its schema is older than this build's (open it once with
    /// [`open`](Self::open) to migrate it).
    pub async fn open_read_only(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .read_only(true)
            .busy_timeout(Duration::from_secs(30));
        let opening = || format!("opening {} for reading", path.display());
        let pool = match read_only_pool(options.clone()).await {
            Ok(pool) => pool,
            // Immutable ignores a WAL and a rollback journal: only sound when
            // neither holds anything, i.e. the last writer closed cleanly.
            Err(first) if !has_pending_writes(&path) => {
                tracing::debug!(error = %first, "read-only open failed; opening it as immutable");
                read_only_pool(options.clone().immutable(true))
                    .await
                    .map_err(|_| db_error(COMPONENT, opening(), first))?
            }
            Err(first) => {
                return Err(db_error(
                    COMPONENT,
                    format!(
                        "{}: its write-ahead log or journal holds writes that only \
                         a writable open can read",
                        opening()
                    ),
                    first,
                ));
            }
        };
        check_schema(&pool, &path).await?;
        // Writes go to the same read-only pool, and fail there.
        Ok(SqliteStore::with_pools(pool.clone(), pool, path))
    }

    /// A store on its read pool and its one-connection write pool.
    fn with_pools(pool: SqlitePool, writes: SqlitePool, path: PathBuf) -> Self {
        SqliteStore {
            pool,
            path,
            writer: Arc::default(),
            journal: Arc::default(),
            updates: Arc::default(),
            submits: Arc::default(),
            finishes: Arc::default(),
            writes,
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection pool of reads, for queries of your own.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes both pools (the last close checkpoints the WAL).
    pub async fn close(&self) {
        self.writes.close().await;
        self.pool.close().await;
    }
}

/// Brings the schema up to date. SQLite gives sqlx's migrator no lock, so two
/// processes opening a new catalog at once can collide; each migration commits
/// with its ledger row, so trying again is safe and sees the other's work.
async fn migrate(pool: &SqlitePool, path: &Path) -> Result<()> {
    let mut attempt = 0;
    loop {
        match MIGRATOR.run(pool).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 5 => {
                attempt += 1;
                tracing::debug!(error = %e, attempt, "catalog migration collided; retrying");
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(e) => {
                return Err(Error::backend(
                    COMPONENT,
                    format!("migrating {}", path.display()),
                    false,
                    e,
                ));
            }
        }
    }
}

/// A pool of read-only connections, tried once (a WAL catalog whose index
/// cannot be created fails at its first read, not at connect).
async fn read_only_pool(
    options: SqliteConnectOptions,
) -> std::result::Result<SqlitePool, sqlx::Error> {
    let pool = crate::pool::pool_options::<sqlx::Sqlite>()
        .max_connections(4)
        .test_before_acquire(false)
        .connect_with(options)
        .await?;
    sqlx::query("SELECT count(*) FROM sqlite_master")
        .fetch_one(&pool)
        .await?;
    Ok(pool)
}

/// Whether the database at `path` has a non-empty `-wal` or `-journal`
/// beside it: writes not yet in the main file.
fn has_pending_writes(path: &Path) -> bool {
    ["-wal", "-journal"].iter().any(|suffix| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        std::fs::metadata(PathBuf::from(name)).is_ok_and(|m| m.len() > 0)
    })
}

/// Refuses a catalog this build cannot read as it is: one never migrated, or
/// migrated by an older build.
async fn check_schema(pool: &SqlitePool, path: &Path) -> Result<()> {
    let wanted = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let ledger: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_one(pool)
    .await
    .map_err(err("reading the catalog's schema"))?;
    let applied: Option<i64> = if ledger == 0 {
        None
    } else {
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await
            .map_err(err("reading the catalog's migration ledger"))?
    };
    match applied {
        Some(version) if version >= wanted => Ok(()),
        applied => Err(Error::Backend {
            component: COMPONENT,
            message: format!(
                "{} holds catalog schema version {}, this build reads {wanted}: \
                 open it once for writing to migrate it",
                path.display(),
                applied.map_or_else(|| "none".to_owned(), |v| v.to_string()),
            ),
            transient: false,
            source: None,
        }),
    }
}

fn err(what: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| db_error(COMPONENT, what, e)
}

#[async_trait]
impl TenantStore for SqliteStore {
    fn fleet(&self) -> Option<&dyn provisioning_core::FleetStore> {
        Some(self)
    }

    async fn submit(&self, submission: Submission) -> Result<SubmitOutcome> {
        self.submit_grouped(submission).await
    }

    async fn request(&self, request_id: RequestId) -> Result<Option<RequestRecord>> {
        let row = sqlx::query("SELECT record FROM requests WHERE request_id = ?1")
            .bind(request_id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(err("reading a request"))?;
        row.map(|r| from_json(r.get("record"))).transpose()
    }

    async fn finish_request(
        &self,
        request_id: RequestId,
        status: RequestStatus,
        failure: Option<FailureInfo>,
    ) -> Result<()> {
        self.finish_grouped(request_id, status, failure).await
    }

    async fn unfinished_requests(&self) -> Result<Vec<RequestRecord>> {
        let rows = sqlx::query(
            "SELECT record FROM requests WHERE status IN ('running', 'compensation_failed') \
             ORDER BY submitted_at, request_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(err("listing unfinished requests"))?;
        rows.iter().map(|r| from_json(r.get("record"))).collect()
    }

    async fn tenant(&self, tenant_id: &TenantId) -> Result<Option<TenantRecord>> {
        let row = sqlx::query("SELECT record FROM tenants WHERE tenant_id = ?1")
            .bind(tenant_id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(err("reading a tenant"))?;
        row.map(|r| from_json(r.get("record"))).transpose()
    }

    async fn tenants(&self, tenant_ids: &[TenantId]) -> Result<Vec<TenantRecord>> {
        if tenant_ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = tenant_ids.iter().map(TenantId::as_str).collect();
        let rows = sqlx::query(
            "SELECT record FROM tenants WHERE tenant_id IN (SELECT value FROM json_each(?1))",
        )
        .bind(to_json(&ids)?)
        .fetch_all(&self.pool)
        .await
        .map_err(err("reading tenants"))?;
        rows.iter().map(|r| from_json(r.get("record"))).collect()
    }

    async fn update_tenant(
        &self,
        record: TenantRecord,
        expected_version: u64,
        events: Vec<NewEvent>,
    ) -> Result<TenantRecord> {
        self.update_grouped(record, expected_version, events).await
    }

    async fn list_tenants(&self, filter: &TenantFilter) -> Result<Vec<TenantRecord>> {
        let rows = sqlx::query(
            "SELECT record FROM tenants \
             WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR region = ?2) \
               AND (?3 IS NULL OR plan = ?3) AND (?4 IS NULL OR tenant_id > ?4) \
             ORDER BY tenant_id LIMIT ?5",
        )
        .bind(filter.state.map(|s| s.as_str()))
        .bind(filter.region.as_ref().map(|r| r.as_str()))
        .bind(filter.plan.as_ref().map(|p| p.as_str()))
        .bind(filter.after.as_ref().map(|a| a.as_str()))
        .bind(filter.effective_limit() as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(err("listing tenants"))?;
        rows.iter().map(|r| from_json(r.get("record"))).collect()
    }

    async fn tenant_events(&self, tenant_id: &TenantId) -> Result<Vec<TenantEvent>> {
        let rows = sqlx::query("SELECT event FROM events WHERE tenant_id = ?1 ORDER BY sequence")
            .bind(tenant_id.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(err("reading events"))?;
        rows.iter().map(|r| from_json(r.get("event"))).collect()
    }

    async fn undelivered_events(&self, subscriber: &str, limit: usize) -> Result<Vec<TenantEvent>> {
        let rows = sqlx::query(
            "SELECT e.event FROM events e \
             LEFT JOIN event_cursors c ON c.subscriber = ?1 AND c.tenant_id = e.tenant_id \
             WHERE e.sequence > COALESCE(c.sequence, 0) \
             ORDER BY e.tenant_id, e.sequence LIMIT ?2",
        )
        .bind(subscriber)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(err("reading the outbox"))?;
        rows.iter().map(|r| from_json(r.get("event"))).collect()
    }

    async fn claim_requests(
        &self,
        worker: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<RequestRecord>> {
        // One write statement: the claim is atomic, the write lock taken at
        // once. The clock after the lock: a wait for it must not shorten leases.
        let _writer = self.writer.lock().await;
        let now = Utc::now().timestamp_millis();
        let rows = sqlx::query(
            "UPDATE requests SET lease_owner = ?1, lease_until = ?2              WHERE request_id IN (                SELECT request_id FROM requests                WHERE status IN ('running', 'compensation_failed')                  AND (lease_until IS NULL OR lease_until <= ?3)                ORDER BY submitted_at, request_id LIMIT ?4)              RETURNING record, submitted_at, request_id",
        )
        .bind(worker)
        .bind(now.saturating_add(millis(lease)))
        .bind(now)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.writes)
        .await
        .map_err(err("claiming requests"))?;
        let mut claimed: Vec<(String, String, RequestRecord)> = rows
            .iter()
            .map(|r| {
                Ok((
                    r.get::<String, _>("submitted_at"),
                    r.get::<String, _>("request_id"),
                    from_json(r.get("record"))?,
                ))
            })
            .collect::<Result<_>>()?;
        // RETURNING gives no order; claims are handed out oldest first.
        claimed.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        Ok(claimed.into_iter().map(|(_, _, r)| r).collect())
    }

    async fn renew_lease(
        &self,
        worker: &str,
        request_id: RequestId,
        lease: Duration,
    ) -> Result<bool> {
        let _writer = self.writer.lock().await;
        let now = Utc::now().timestamp_millis();
        let updated = sqlx::query(
            "UPDATE requests SET lease_until = ?3              WHERE request_id = ?1 AND lease_owner = ?2 AND lease_until > ?4",
        )
        .bind(request_id.to_string())
        .bind(worker)
        .bind(now.saturating_add(millis(lease)))
        .bind(now)
        .execute(&self.writes)
        .await
        .map_err(err("renewing a lease"))?;
        Ok(updated.rows_affected() == 1)
    }

    async fn release_lease(&self, worker: &str, request_id: RequestId) -> Result<()> {
        let _writer = self.writer.lock().await;
        sqlx::query(
            "UPDATE requests SET lease_owner = NULL, lease_until = NULL              WHERE request_id = ?1 AND lease_owner = ?2",
        )
        .bind(request_id.to_string())
        .bind(worker)
        .execute(&self.writes)
        .await
        .map_err(err("releasing a lease"))?;
        Ok(())
    }

    async fn ack_event(&self, subscriber: &str, tenant: &TenantId, sequence: u64) -> Result<()> {
        let _writer = self.writer.lock().await;
        sqlx::query(
            "INSERT INTO event_cursors (subscriber, tenant_id, sequence) VALUES (?1, ?2, ?3) \
             ON CONFLICT (subscriber, tenant_id) DO UPDATE \
             SET sequence = MAX(sequence, excluded.sequence)",
        )
        .bind(subscriber)
        .bind(tenant.as_str())
        .bind(sequence as i64)
        .execute(&self.writes)
        .await
        .map_err(err("acknowledging an event"))?;
        Ok(())
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
