//! [`SqliteStore`]: the catalog, saga journal and outbox in one SQLite file.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use provisioning_core::{
    Error, FailureInfo, JournalRecord, NewEvent, RequestId, RequestRecord, RequestStatus, Result,
    RunId, SagaJournal, Submission, SubmitOutcome, TenantEvent, TenantFilter, TenantId,
    TenantRecord, TenantStore,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};
use sqlx::{Row, Sqlite, Transaction};

use crate::error::db_error;
use crate::store::codec::{from_json, name_of, timestamp, to_json};

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
/// of one process (writes are serialized by SQLite; each write is one short
/// transaction that takes the write lock with its first statement).
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
        let pool = crate::pool::pool_options::<Sqlite>()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(|e| db_error(COMPONENT, format!("opening {}", path.display()), e))?;
        migrate(&pool, &path).await?;
        Ok(SqliteStore { pool, path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection pool, for queries of your own.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn begin(&self) -> Result<Transaction<'static, Sqlite>> {
        self.pool
            .begin()
            .await
            .map_err(|e| db_error(COMPONENT, "beginning a transaction", e))
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

fn err(what: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| db_error(COMPONENT, what, e)
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

async fn commit(tx: Transaction<'static, Sqlite>) -> Result<()> {
    tx.commit().await.map_err(err("committing"))
}

#[async_trait]
impl SagaJournal for SqliteStore {
    async fn append(&self, record: JournalRecord) -> Result<()> {
        let run_id = record.run_id.to_string();
        let status = record.entry.status_after().map(name_of).transpose()?;
        let body = to_json(&record)?;
        let conflict = |reason: String| Error::Conflict {
            kind: "run",
            id: run_id.clone(),
            reason,
        };
        let mut tx = self.begin().await?;
        if record.seq == 0 {
            let inserted = sqlx::query(
                "INSERT INTO runs (run_id, status, next_seq, started) \
                 VALUES (?1, ?2, 1, (SELECT COALESCE(MAX(started), 0) + 1 FROM runs))",
            )
            .bind(&run_id)
            .bind(status.as_deref().unwrap_or("running"))
            .execute(&mut *tx)
            .await;
            match inserted {
                Err(e) if is_unique_violation(&e) => {
                    return Err(conflict("journal position 0 is taken".into()));
                }
                other => other.map_err(err("starting a run"))?,
            };
        } else {
            let seq =
                i64::try_from(record.seq).map_err(|_| conflict("position overflow".into()))?;
            let updated = sqlx::query(
                "UPDATE runs SET next_seq = next_seq + 1, status = COALESCE(?2, status) \
                 WHERE run_id = ?1 AND next_seq = ?3",
            )
            .bind(&run_id)
            .bind(status.as_deref())
            .bind(seq)
            .execute(&mut *tx)
            .await
            .map_err(err("advancing a run"))?;
            if updated.rows_affected() == 0 {
                return Err(conflict(format!(
                    "journal position {} is not the run's next one",
                    record.seq
                )));
            }
        }
        sqlx::query("INSERT INTO journal (run_id, seq, record) VALUES (?1, ?2, ?3)")
            .bind(&run_id)
            .bind(record.seq as i64)
            .bind(body)
            .execute(&mut *tx)
            .await
            .map_err(err("appending to the journal"))?;
        commit(tx).await
    }

    async fn load(&self, run_id: RunId) -> Result<Vec<JournalRecord>> {
        let rows = sqlx::query("SELECT record FROM journal WHERE run_id = ?1 ORDER BY seq")
            .bind(run_id.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(err("loading a run"))?;
        rows.iter().map(|r| from_json(r.get("record"))).collect()
    }

    async fn unfinished_runs(&self) -> Result<Vec<RunId>> {
        let rows = sqlx::query(
            "SELECT run_id FROM runs WHERE status IN ('running', 'compensating') ORDER BY started",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(err("listing unfinished runs"))?;
        rows.iter()
            .map(|r| RunId::from_str(r.get::<&str, _>("run_id")))
            .collect()
    }
}

#[async_trait]
impl TenantStore for SqliteStore {
    async fn submit(&self, submission: Submission) -> Result<SubmitOutcome> {
        let request = &submission.request;
        let mut tx = self.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO requests (request_id, tenant_id, status, submitted_at, record) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(request.request_id.to_string())
        .bind(request.tenant_id.as_str())
        .bind(name_of(request.status)?)
        .bind(timestamp(&request.submitted_at))
        .bind(to_json(request)?)
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                drop(tx);
                let existing = self.request(request.request_id).await?.ok_or_else(|| {
                    Error::backend(COMPONENT, "a duplicate request vanished", true, e)
                })?;
                return Ok(SubmitOutcome::Duplicate(existing));
            }
            other => other.map_err(err("recording a request"))?,
        };
        if let Some((tenant, event)) = &submission.new_tenant {
            let inserted = sqlx::query(
                "INSERT INTO tenants (tenant_id, state, plan, region, version, record) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .bind(tenant.tenant_id.as_str())
            .bind(tenant.state.as_str())
            .bind(tenant.plan.as_str())
            .bind(tenant.region.as_str())
            .bind(tenant.version as i64)
            .bind(to_json(tenant)?)
            .execute(&mut *tx)
            .await;
            match inserted {
                Err(e) if is_unique_violation(&e) => {
                    drop(tx);
                    let state = self
                        .tenant(&tenant.tenant_id)
                        .await?
                        .map_or("unknown".to_owned(), |t| t.state.to_string());
                    return Err(Error::Conflict {
                        kind: "tenant",
                        id: tenant.tenant_id.to_string(),
                        reason: format!("tenant exists (state {state})"),
                    });
                }
                other => other.map_err(err("recording a tenant"))?,
            };
            insert_events(&mut tx, &tenant.tenant_id, 0, vec![event.clone()]).await?;
        }
        commit(tx).await?;
        Ok(SubmitOutcome::Accepted)
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
        let finished_at = status.is_finished().then(Utc::now);
        let failure = failure.as_ref().map(to_json).transpose()?;
        // One write statement: the JSON record is patched in place, so no read
        // precedes the write inside the transaction.
        let updated = sqlx::query(
            "UPDATE requests SET status = ?2, record = json_set(record, \
               '$.status', ?2, '$.failure', json(?3), '$.finished_at', ?4) \
             WHERE request_id = ?1",
        )
        .bind(request_id.to_string())
        .bind(name_of(status)?)
        .bind(failure)
        .bind(finished_at.map(|t| to_json_string_value(&t)).transpose()?)
        .execute(&self.pool)
        .await
        .map_err(err("finishing a request"))?;
        if updated.rows_affected() == 0 {
            return Err(Error::NotFound {
                kind: "request",
                id: request_id.to_string(),
            });
        }
        Ok(())
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

    async fn update_tenant(
        &self,
        mut record: TenantRecord,
        expected_version: u64,
        events: Vec<NewEvent>,
    ) -> Result<TenantRecord> {
        record.version = expected_version + 1;
        record.updated_at = Utc::now();
        let mut tx = self.begin().await?;
        let updated = sqlx::query(
            "UPDATE tenants SET state = ?2, plan = ?3, region = ?4, version = ?5, record = ?6 \
             WHERE tenant_id = ?1 AND version = ?7",
        )
        .bind(record.tenant_id.as_str())
        .bind(record.state.as_str())
        .bind(record.plan.as_str())
        .bind(record.region.as_str())
        .bind(record.version as i64)
        .bind(to_json(&record)?)
        .bind(expected_version as i64)
        .execute(&mut *tx)
        .await
        .map_err(err("updating a tenant"))?;
        if updated.rows_affected() == 0 {
            drop(tx);
            return Err(match self.tenant(&record.tenant_id).await? {
                None => Error::NotFound {
                    kind: "tenant",
                    id: record.tenant_id.to_string(),
                },
                Some(stored) => Error::Conflict {
                    kind: "tenant",
                    id: record.tenant_id.to_string(),
                    reason: format!(
                        "version {expected_version} expected, {} stored",
                        stored.version
                    ),
                },
            });
        }
        let last: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(sequence), 0) FROM events WHERE tenant_id = ?1",
        )
        .bind(record.tenant_id.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(err("numbering events"))?;
        insert_events(&mut tx, &record.tenant_id, last as u64, events).await?;
        commit(tx).await?;
        Ok(record)
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
        let now = Utc::now().timestamp_millis();
        // One write statement: the claim is atomic, the write lock taken at once.
        let rows = sqlx::query(
            "UPDATE requests SET lease_owner = ?1, lease_until = ?2              WHERE request_id IN (                SELECT request_id FROM requests                WHERE status IN ('running', 'compensation_failed')                  AND (lease_until IS NULL OR lease_until <= ?3)                ORDER BY submitted_at, request_id LIMIT ?4)              RETURNING record, submitted_at, request_id",
        )
        .bind(worker)
        .bind(now + millis(lease))
        .bind(now)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
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
        let now = Utc::now().timestamp_millis();
        let updated = sqlx::query(
            "UPDATE requests SET lease_until = ?3              WHERE request_id = ?1 AND lease_owner = ?2 AND lease_until > ?4",
        )
        .bind(request_id.to_string())
        .bind(worker)
        .bind(now + millis(lease))
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(err("renewing a lease"))?;
        Ok(updated.rows_affected() == 1)
    }

    async fn release_lease(&self, worker: &str, request_id: RequestId) -> Result<()> {
        sqlx::query(
            "UPDATE requests SET lease_owner = NULL, lease_until = NULL              WHERE request_id = ?1 AND lease_owner = ?2",
        )
        .bind(request_id.to_string())
        .bind(worker)
        .execute(&self.pool)
        .await
        .map_err(err("releasing a lease"))?;
        Ok(())
    }

    async fn ack_event(&self, subscriber: &str, tenant: &TenantId, sequence: u64) -> Result<()> {
        sqlx::query(
            "INSERT INTO event_cursors (subscriber, tenant_id, sequence) VALUES (?1, ?2, ?3) \
             ON CONFLICT (subscriber, tenant_id) DO UPDATE \
             SET sequence = MAX(sequence, excluded.sequence)",
        )
        .bind(subscriber)
        .bind(tenant.as_str())
        .bind(sequence as i64)
        .execute(&self.pool)
        .await
        .map_err(err("acknowledging an event"))?;
        Ok(())
    }
}

/// Appends `events` after sequence `last`, stamped now.
async fn insert_events(
    tx: &mut Transaction<'static, Sqlite>,
    tenant: &TenantId,
    last: u64,
    events: Vec<NewEvent>,
) -> Result<()> {
    let now = Utc::now();
    for (i, event) in events.into_iter().enumerate() {
        let sequence = last + 1 + i as u64;
        let stored = TenantEvent::stored(tenant.clone(), sequence, now, event);
        sqlx::query("INSERT INTO events (tenant_id, sequence, event) VALUES (?1, ?2, ?3)")
            .bind(tenant.as_str())
            .bind(sequence as i64)
            .bind(to_json(&stored)?)
            .execute(&mut **tx)
            .await
            .map_err(err("writing an event"))?;
    }
    Ok(())
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A value as the JSON text of a string (for `json_set` of a timestamp).
fn to_json_string_value<T: serde::Serialize>(value: &T) -> Result<String> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        Ok(other) => Ok(other.to_string()),
        Err(source) => Err(Error::Serialization {
            what: "timestamp",
            source,
        }),
    }
}
