//! A step's way into the tenant's database, on whichever backend the shard
//! map puts it: a SQLite file, or a PostgreSQL database, schema or shared
//! database. The steps' SQL is written once: `$N` placeholders (SQLite reads
//! them as PostgreSQL does), the tenant id always bound as `$1` (a dedicated
//! database's statements leave it unused), and what differs (the tenant
//! scope of a shared database, JSON columns) spliced in by [`Scope`]. Only
//! those constant fragments are spliced into the SQL (hence
//! `AssertSqlSafe`); every value is bound.

use std::sync::Arc;
use std::time::Duration;

use provisioning_core::{
    Error, Isolation, Placement, RequestId, StepError, TenantId, TenantSchemaManager,
    WorkflowContext,
};
use provisioning_sqlx::{PostgresSchemaManager, SqliteSchemaManager};
use serde_json::Value;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{AssertSqlSafe, Connection};

/// A sqlx failure as a step's error: transient when a retry may cure it.
pub(super) use provisioning_sqlx::step_error;

/// How long a step waits for a shared SQLite database another writer holds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the tenants' databases are: the schema manager of the shard map's
/// backend, which the orchestrator provisions through and the steps open
/// tenant databases through. Cheap to clone.
#[derive(Clone)]
pub(crate) enum TenantData {
    /// SQLite files under the data directory.
    Sqlite(Arc<SqliteSchemaManager>),
    /// PostgreSQL shard servers.
    Postgres(Arc<PostgresSchemaManager>),
}

impl TenantData {
    /// The schema manager, for the orchestrator.
    pub(crate) fn manager(&self) -> Arc<dyn TenantSchemaManager> {
        match self {
            TenantData::Sqlite(manager) => manager.clone(),
            TenantData::Postgres(manager) => manager.clone(),
        }
    }
}

/// An open connection to a tenant's database. Every statement binds the
/// tenant id first, as `$1`; in a dedicated database, where no statement
/// uses it, it is left out and the placeholders after it are renumbered
/// (PostgreSQL refuses a parameter the statement does not use).
pub(super) struct Conn {
    driver: Driver,
    /// The SQL fragments of this database.
    pub(super) scope: Scope,
}

enum Driver {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

/// Runs `$body` with `$c` bound to the connection, whichever it is: the
/// body reads the same for both, but each arm is typed for its driver.
macro_rules! on_conn {
    ($driver:expr, $c:ident => $body:expr) => {
        match $driver {
            Driver::Sqlite($c) => $body,
            Driver::Postgres($c) => $body,
        }
    };
}

/// `$make(sql)` (`sqlx::query` or `sqlx::query_scalar`) with `binds` bound
/// in order.
macro_rules! bound {
    ($make:path, $sql:expr, $binds:expr) => {{
        let mut query = $make(AssertSqlSafe($sql));
        for value in $binds {
            query = query.bind(*value);
        }
        query
    }};
}

/// `sql` with every placeholder `$N` made `$N-1`.
fn shift_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<u32>() {
            Ok(n) if n > 1 => out.push_str(&(n - 1).to_string()),
            _ => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

impl Conn {
    /// The statement and its parameters as this database takes them.
    fn prepare<'a>(&self, sql: String, binds: &'a [&'a str]) -> (String, &'a [&'a str]) {
        match binds.split_first() {
            Some((_, after_tenant)) if !self.scope.shared => {
                (shift_placeholders(&sql), after_tenant)
            }
            _ => (sql, binds),
        }
    }

    /// Runs `sql` with `binds` as `$1`, `$2`...; the rows it changed.
    pub(super) async fn execute(&mut self, sql: String, binds: &[&str]) -> Result<u64, StepError> {
        let (sql, binds) = self.prepare(sql, binds);
        on_conn!(&mut self.driver, c => {
            bound!(sqlx::query, sql, binds).execute(&mut *c).await.map(|done| done.rows_affected())
        })
        .map_err(step_error)
    }

    /// The first column of the first row `sql` selects, as text.
    pub(super) async fn text(
        &mut self,
        sql: String,
        binds: &[&str],
    ) -> Result<Option<String>, StepError> {
        let (sql, binds) = self.prepare(sql, binds);
        on_conn!(&mut self.driver, c => {
            bound!(sqlx::query_scalar, sql, binds).fetch_optional(&mut *c).await
        })
        .map_err(step_error)
    }

    /// Whether `sql` selects a row.
    pub(super) async fn exists(&mut self, sql: String, binds: &[&str]) -> Result<bool, StepError> {
        let (sql, binds) = self.prepare(sql, binds);
        on_conn!(&mut self.driver, c => {
            bound!(sqlx::query, sql, binds).fetch_optional(&mut *c).await.map(|row| row.is_some())
        })
        .map_err(step_error)
    }

    /// The count `sql` selects (`SELECT COUNT(*) ...`).
    pub(super) async fn count(&mut self, sql: String, binds: &[&str]) -> Result<i64, StepError> {
        let (sql, binds) = self.prepare(sql, binds);
        on_conn!(&mut self.driver, c => {
            bound!(sqlx::query_scalar, sql, binds).fetch_one(&mut *c).await
        })
        .map_err(step_error)
    }

    /// Runs a statement without parameters (`BEGIN`, `COMMIT`).
    async fn raw(&mut self, sql: &'static str) -> Result<(), StepError> {
        on_conn!(&mut self.driver, c => sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *c).await.map(drop))
            .map_err(step_error)
    }

    async fn close(self) {
        let closed = on_conn!(self.driver, c => c.close().await);
        if let Err(error) = closed {
            tracing::debug!(%error, "closing a tenant database connection failed");
        }
    }
}

/// The SQL that differs between the tenant databases: the tenant scope of a
/// shared one (its tables carry `tenant_id`, a dedicated one's do not), and
/// JSON columns (text on SQLite, `jsonb` on PostgreSQL).
#[derive(Clone, Copy)]
pub(super) struct Scope {
    shared: bool,
    postgres: bool,
}

impl Scope {
    /// The leading column of an insert: `tenant_id, `.
    pub(super) fn column(self) -> &'static str {
        if self.shared { "tenant_id, " } else { "" }
    }
    /// The leading value of an insert: `$1, `.
    pub(super) fn value(self) -> &'static str {
        if self.shared { "$1, " } else { "" }
    }
    /// The leading condition of a `WHERE`, for table alias `alias` (or none).
    pub(super) fn filter(self, alias: &str) -> String {
        match (self.shared, alias) {
            (false, _) => String::new(),
            (true, "") => "tenant_id = $1 AND ".to_owned(),
            (true, alias) => format!("{alias}.tenant_id = $1 AND "),
        }
    }
    /// Parameter `param` (`$3`), bound as text, as a JSON column's value.
    pub(super) fn json(self, param: &str) -> String {
        if self.postgres {
            format!("{param}::jsonb")
        } else {
            param.to_owned()
        }
    }
    /// JSON column `column` read as text.
    pub(super) fn text(self, column: &str) -> String {
        if self.postgres {
            format!("{column}::text")
        } else {
            column.to_owned()
        }
    }
    /// The text of the top-level `field` of JSON column `column`.
    pub(super) fn json_field(self, column: &str, field: &str) -> String {
        if self.postgres {
            format!("({column} ->> '{field}')")
        } else {
            format!("json_extract({column}, '$.{field}')")
        }
    }
}

/// A step's view of the tenant's database, for one request.
pub(super) struct TenantDb {
    pub(super) conn: Conn,
    pub(super) tenant: String,
    request: String,
    placement: Placement,
    data: TenantData,
}

impl TenantDb {
    /// Opens the database of the run's tenant, where the orchestrator says it
    /// is, or `None` when it is gone (the tenant was deleted meanwhile).
    pub(super) async fn open<I>(
        data: &TenantData,
        ctx: &WorkflowContext<I>,
    ) -> Result<Option<Self>, StepError> {
        Self::open_at(data, ctx.placement(), ctx.request_id()).await
    }

    /// Opens the database at `placement`, for `request`.
    pub(super) async fn open_at(
        data: &TenantData,
        placement: &Placement,
        request: RequestId,
    ) -> Result<Option<Self>, StepError> {
        let driver = match data {
            TenantData::Sqlite(manager) => {
                let path = manager.database_path(placement);
                if !path.exists() {
                    return Ok(None);
                }
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(false)
                    .busy_timeout(BUSY_TIMEOUT)
                    .foreign_keys(true);
                let conn = SqliteConnection::connect_with(&options)
                    .await
                    .map_err(step_error)?;
                Driver::Sqlite(conn)
            }
            TenantData::Postgres(manager) => match manager.connect(placement).await {
                Ok(conn) => Driver::Postgres(conn),
                Err(Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(StepError::from(e)),
            },
        };
        let scope = Scope {
            shared: placement.isolation == Isolation::Shared,
            postgres: matches!(driver, Driver::Postgres(_)),
        };
        Ok(Some(TenantDb {
            conn: Conn { driver, scope },
            tenant: placement.tenant_id.as_str().to_owned(),
            request: request.to_string(),
            placement: placement.clone(),
            data: data.clone(),
        }))
    }

    /// The permanent failure of a step whose tenant's data is gone.
    pub(super) fn gone(tenant: &TenantId) -> StepError {
        StepError::permanent(format!(
            "tenant {tenant}'s data is gone (deleted meanwhile?)"
        ))
    }

    /// The value of the tenant's setting `key`, if it has one.
    pub(super) async fn setting(&mut self, key: &str) -> Result<Option<String>, StepError> {
        let select = format!(
            "SELECT {} FROM settings WHERE {}key = $2",
            self.conn.scope.text("value"),
            self.conn.scope.filter("")
        );
        self.conn.text(select, &[&self.tenant, key]).await
    }

    /// Starts the write transaction of [`once`](Self::once) and
    /// [`undo`](Self::undo). On SQLite, `BEGIN IMMEDIATE` makes two writers
    /// of a shared database queue on the busy timeout instead of failing to
    /// upgrade a read lock; on PostgreSQL the tenant's lock does the same
    /// for two runs of one tenant. Either way a concurrent delete of the
    /// tenant cannot slip between the check that its seed is there and the
    /// writes.
    async fn begin(&mut self) -> Result<(), StepError> {
        match (&self.data, &mut self.conn.driver) {
            (TenantData::Postgres(manager), Driver::Postgres(conn)) => {
                sqlx::raw_sql(AssertSqlSafe("BEGIN"))
                    .execute(&mut *conn)
                    .await
                    .map_err(step_error)?;
                manager
                    .lock_tenant(conn, &self.placement)
                    .await
                    .map_err(StepError::from)
            }
            _ => self.conn.raw("BEGIN IMMEDIATE").await,
        }
    }

    /// Commits what `work` wrote when it succeeded; otherwise the
    /// transaction ends with the connection, written nothing.
    async fn finish(mut self, work: Result<(), StepError>) -> Result<(), StepError> {
        let result = match work {
            Ok(()) => self.conn.raw("COMMIT").await,
            Err(e) => {
                let _ = self.conn.raw("ROLLBACK").await;
                Err(e)
            }
        };
        self.conn.close().await;
        result
    }

    /// The marker row's payload, if this request's step already wrote it.
    async fn marker(&mut self, action: &str) -> Result<Option<Value>, StepError> {
        let sql = format!(
            "SELECT {} FROM audit_log WHERE {}action = $2 AND target_type = 'request' AND target_id = $3",
            self.conn.scope.text("payload"),
            self.conn.scope.filter("")
        );
        let binds = [self.tenant.as_str(), action, self.request.as_str()];
        match self.conn.text(sql, &binds).await? {
            Some(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(StepError::permanent),
            None => Ok(None),
        }
    }

    /// Writes the marker row.
    async fn mark(&mut self, action: &str, payload: &Value) -> Result<(), StepError> {
        let sql = format!(
            "INSERT INTO audit_log ({}action, target_type, target_id, payload) VALUES ({}$2, 'request', $3, {})",
            self.conn.scope.column(),
            self.conn.scope.value(),
            self.conn.scope.json("$4")
        );
        let payload = payload.to_string();
        let binds = [self.tenant.as_str(), action, &self.request, &payload];
        self.conn.execute(sql, &binds).await.map(drop)
    }

    /// Removes the marker row (the compensation's last write).
    async fn unmark(&mut self, action: &str) -> Result<(), StepError> {
        let sql = format!(
            "DELETE FROM audit_log WHERE {}action = $2 AND target_type = 'request' AND target_id = $3",
            self.conn.scope.filter("")
        );
        let binds = [self.tenant.as_str(), action, self.request.as_str()];
        self.conn.execute(sql, &binds).await.map(drop)
    }

    /// Runs `work` once per request and `action`: in one write transaction
    /// with the marker row that records it (its payload is what `work`
    /// returns), or not at all when the marker is there already. A tenant
    /// whose seed is not there (deleted meanwhile) gets nothing written.
    pub(super) async fn once<I>(
        data: &TenantData,
        ctx: &WorkflowContext<I>,
        action: &str,
        work: impl AsyncFnOnce(&mut Conn, Scope, &str) -> Result<Value, StepError>,
    ) -> Result<(), StepError> {
        let gone = || Self::gone(ctx.tenant_id());
        let mut db = Self::open(data, ctx).await?.ok_or_else(gone)?;
        db.begin().await?;
        let written = async {
            if db.marker(action).await?.is_some() {
                return Ok(());
            }
            let seeded = format!(
                "SELECT 1 FROM roles WHERE {}1 = 1 LIMIT 1",
                db.conn.scope.filter("")
            );
            if !db.conn.exists(seeded, &[&db.tenant]).await? {
                return Err(gone());
            }
            let scope = db.conn.scope;
            let payload = work(&mut db.conn, scope, &db.tenant).await?;
            db.mark(action, &payload).await
        }
        .await;
        db.finish(written).await
    }

    /// Undoes what `action` wrote for this request, if it did: `work` gets the
    /// marker's payload, and the marker goes in the same transaction. A
    /// database that is gone holds nothing to undo.
    pub(super) async fn undo<I>(
        data: &TenantData,
        ctx: &WorkflowContext<I>,
        action: &str,
        work: impl AsyncFnOnce(&mut Conn, Scope, &str, Value) -> Result<(), StepError>,
    ) -> Result<(), StepError> {
        let Some(mut db) = Self::open(data, ctx).await? else {
            return Ok(());
        };
        db.begin().await?;
        let undone = async {
            if let Some(payload) = db.marker(action).await? {
                let scope = db.conn.scope;
                work(&mut db.conn, scope, &db.tenant, payload).await?;
                db.unmark(action).await?;
            }
            Ok(())
        }
        .await;
        db.finish(undone).await
    }
}

#[cfg(test)]
mod tests {
    use super::shift_placeholders;

    #[test]
    fn placeholders_shift_down_by_one_and_nothing_else_moves() {
        assert_eq!(
            shift_placeholders("SELECT value FROM settings WHERE key = $2 AND v = $3::jsonb"),
            "SELECT value FROM settings WHERE key = $1 AND v = $2::jsonb"
        );
        assert_eq!(shift_placeholders("x = $12, y = $10"), "x = $11, y = $9");
        assert_eq!(
            shift_placeholders("json_extract(value, '$.service') = $2"),
            "json_extract(value, '$.service') = $1"
        );
        assert_eq!(shift_placeholders("cost $"), "cost $");
    }
}
