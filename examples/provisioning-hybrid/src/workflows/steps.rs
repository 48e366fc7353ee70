//! The generic workflows' steps. Each writes in one transaction its rows and a
//! marker row in `audit_log` (`target_type = 'request'`, `target_id` = the
//! request id), and its compensation undoes exactly what the marker records.
//!
//! The same SQL serves shared and dedicated databases: a shared database's
//! tables carry `tenant_id`, a dedicated one's do not, so the tenant scope is
//! spliced in or left out ([`Scope`]), and the tenant id is always bound as
//! `?1` (SQLite counts parameters by their highest index, so an unused `?1`
//! is fine). Only those constant fragments are spliced into the SQL (hence
//! `AssertSqlSafe`); every value is bound.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use provisioning_core::{
    Isolation, Placement, RequestId, Step, StepError, TenantId, WorkflowContext,
};
use provisioning_sqlx::SqliteSchemaManager;
use serde_json::{Value, json};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{AssertSqlSafe, Connection, Row, SqliteExecutor};

use super::{ServiceContext, UserContext};

/// How long a step waits for a shared database another writer holds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A sqlx failure as a step's error: transient when a retry may cure it.
pub(super) use provisioning_sqlx::step_error;

/// The tenant scope of a statement: `tenant_id` in a shared database, nothing
/// in a dedicated one.
#[derive(Clone, Copy)]
pub(super) struct Scope {
    shared: bool,
}

impl Scope {
    /// The leading column of an insert: `tenant_id, `.
    pub(super) fn column(self) -> &'static str {
        if self.shared { "tenant_id, " } else { "" }
    }
    /// The leading value of an insert: `?1, `.
    pub(super) fn value(self) -> &'static str {
        if self.shared { "?1, " } else { "" }
    }
    /// The leading condition of a `WHERE`, for table alias `alias` (or none).
    pub(super) fn filter(self, alias: &str) -> String {
        match (self.shared, alias) {
            (false, _) => String::new(),
            (true, "") => "tenant_id = ?1 AND ".to_owned(),
            (true, alias) => format!("{alias}.tenant_id = ?1 AND "),
        }
    }
}

/// The marker row's payload, if this request's step already wrote it.
async fn marker(
    conn: &mut SqliteConnection,
    scope: Scope,
    tenant: &str,
    action: &str,
    request: &str,
) -> Result<Option<serde_json::Value>, StepError> {
    let sql = format!(
        "SELECT payload FROM audit_log WHERE {}action = ?2 AND target_type = 'request' AND target_id = ?3",
        scope.filter("")
    );
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(tenant)
        .bind(action)
        .bind(request)
        .fetch_optional(&mut *conn)
        .await
        .map_err(step_error)?;
    match row {
        Some(row) => {
            let text: String = row.try_get(0).map_err(step_error)?;
            serde_json::from_str(&text)
                .map(Some)
                .map_err(StepError::permanent)
        }
        None => Ok(None),
    }
}

/// Writes the marker row.
async fn mark(
    conn: impl SqliteExecutor<'_>,
    scope: Scope,
    tenant: &str,
    action: &str,
    request: &str,
    payload: &serde_json::Value,
) -> Result<(), StepError> {
    let sql = format!(
        "INSERT INTO audit_log ({}action, target_type, target_id, payload) VALUES ({}?2, 'request', ?3, ?4)",
        scope.column(),
        scope.value()
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(tenant)
        .bind(action)
        .bind(request)
        .bind(payload.to_string())
        .execute(conn)
        .await
        .map_err(step_error)?;
    Ok(())
}

/// Removes the marker row (the compensation's last write).
async fn unmark(
    conn: impl SqliteExecutor<'_>,
    scope: Scope,
    tenant: &str,
    action: &str,
    request: &str,
) -> Result<(), StepError> {
    let sql = format!(
        "DELETE FROM audit_log WHERE {}action = ?2 AND target_type = 'request' AND target_id = ?3",
        scope.filter("")
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(tenant)
        .bind(action)
        .bind(request)
        .execute(conn)
        .await
        .map_err(step_error)?;
    Ok(())
}

/// A step's view of the tenant's database, for one request.
pub(super) struct TenantDb {
    pub(super) conn: SqliteConnection,
    pub(super) scope: Scope,
    pub(super) tenant: String,
    request: String,
}

impl TenantDb {
    /// Opens the database of the run's tenant, where the orchestrator says it
    /// is, or `None` when its file is gone (the tenant was deleted meanwhile).
    pub(super) async fn open<I>(
        schema: &SqliteSchemaManager,
        ctx: &WorkflowContext<I>,
    ) -> Result<Option<Self>, StepError> {
        Self::open_at(schema, ctx.placement(), ctx.request_id()).await
    }

    /// Opens the database at `placement`, for `request`.
    pub(super) async fn open_at(
        schema: &SqliteSchemaManager,
        placement: &Placement,
        request: RequestId,
    ) -> Result<Option<Self>, StepError> {
        let path = schema.database_path(placement);
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
        Ok(Some(TenantDb {
            conn,
            scope: Scope {
                shared: placement.isolation == Isolation::Shared,
            },
            tenant: placement.tenant_id.as_str().to_owned(),
            request: request.to_string(),
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
            "SELECT value FROM settings WHERE {}key = ?2",
            self.scope.filter("")
        );
        sqlx::query_scalar(AssertSqlSafe(select))
            .bind(&self.tenant)
            .bind(key)
            .fetch_optional(&mut self.conn)
            .await
            .map_err(step_error)
    }

    /// Runs `work` once per request and `action`: in one write transaction
    /// with the marker row that records it (its payload is what `work`
    /// returns), or not at all when the marker is there already. `BEGIN
    /// IMMEDIATE` makes two writers of a shared database queue on the busy
    /// timeout instead of failing to upgrade a read lock, and keeps a
    /// concurrent delete of the tenant from slipping between the check that
    /// the tenant's seed is there and the writes.
    pub(super) async fn once<I>(
        schema: &SqliteSchemaManager,
        ctx: &WorkflowContext<I>,
        action: &str,
        work: impl AsyncFnOnce(&mut SqliteConnection, Scope, &str) -> Result<Value, StepError>,
    ) -> Result<(), StepError> {
        let gone = || Self::gone(ctx.tenant_id());
        let mut db = Self::open(schema, ctx).await?.ok_or_else(gone)?;
        let (scope, tenant, request) = (db.scope, db.tenant.as_str(), db.request.as_str());
        let mut tx = db
            .conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(step_error)?;
        if marker(&mut tx, scope, tenant, action, request)
            .await?
            .is_none()
        {
            let seeded = format!(
                "SELECT 1 FROM roles WHERE {}1 = 1 LIMIT 1",
                scope.filter("")
            );
            let seeded: Option<i64> = sqlx::query_scalar(AssertSqlSafe(seeded))
                .bind(tenant)
                .fetch_optional(&mut *tx)
                .await
                .map_err(step_error)?;
            if seeded.is_none() {
                return Err(gone());
            }
            let payload = work(&mut tx, scope, tenant).await?;
            mark(&mut *tx, scope, tenant, action, request, &payload).await?;
        }
        tx.commit().await.map_err(step_error)
    }

    /// Undoes what `action` wrote for this request, if it did: `work` gets the
    /// marker's payload, and the marker goes in the same transaction. A
    /// database that is gone holds nothing to undo.
    pub(super) async fn undo<I>(
        schema: &SqliteSchemaManager,
        ctx: &WorkflowContext<I>,
        action: &str,
        work: impl AsyncFnOnce(&mut SqliteConnection, Scope, &str, Value) -> Result<(), StepError>,
    ) -> Result<(), StepError> {
        let Some(mut db) = Self::open(schema, ctx).await? else {
            return Ok(());
        };
        let (scope, tenant, request) = (db.scope, db.tenant.as_str(), db.request.as_str());
        let mut tx = db
            .conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(step_error)?;
        if let Some(payload) = marker(&mut tx, scope, tenant, action, request).await? {
            work(&mut tx, scope, tenant, payload).await?;
            unmark(&mut *tx, scope, tenant, action, request).await?;
        }
        tx.commit().await.map_err(step_error)
    }
}

/// `subscribe` and `rate-limits`: one `settings` row each, replacing (and
/// on compensation restoring) any value the key had.
pub(super) struct WriteSetting {
    schema: Arc<SqliteSchemaManager>,
    name: &'static str,
    action: &'static str,
    /// The key and the value to write.
    row: fn(&ServiceContext) -> (String, serde_json::Value),
}

impl WriteSetting {
    /// The subscription: `service.{name}` = `{"tier": ..., "status": "enabled"}`.
    pub(super) fn subscription(schema: Arc<SqliteSchemaManager>) -> Self {
        WriteSetting {
            schema,
            name: "subscribe",
            action: "service.subscribed",
            row: |ctx| {
                (
                    format!("service.{}", ctx.input.service),
                    json!({ "tier": ctx.input.tier.as_str(), "status": "enabled" }),
                )
            },
        }
    }

    /// Its rate limits: `rate_limits.{name}` = `{"requests_per_minute": ..., "burst": ...}`.
    pub(super) fn rate_limits(schema: Arc<SqliteSchemaManager>) -> Self {
        WriteSetting {
            schema,
            name: "rate-limits",
            action: "service.rate_limits_set",
            row: |ctx| {
                let (per_minute, burst) = ctx.input.tier.rate_limits();
                (
                    format!("rate_limits.{}", ctx.input.service),
                    json!({ "requests_per_minute": per_minute, "burst": burst }),
                )
            },
        }
    }
}

#[async_trait]
impl Step<ServiceContext> for WriteSetting {
    fn name(&self) -> &str {
        self.name
    }

    async fn execute(&self, ctx: &mut ServiceContext) -> Result<(), StepError> {
        let (key, value) = (self.row)(ctx);
        TenantDb::once(&self.schema, ctx, self.action, async |conn, scope, tenant| {
            let select = format!(
                "SELECT value FROM settings WHERE {}key = ?2",
                scope.filter("")
            );
            let previous: Option<String> = sqlx::query_scalar(AssertSqlSafe(select))
                .bind(tenant)
                .bind(&key)
                .fetch_optional(&mut *conn)
                .await
                .map_err(step_error)?;
            let upsert = format!(
                "INSERT INTO settings ({c}key, value) VALUES ({v}?2, ?3) \
                 ON CONFLICT ({c}key) DO UPDATE SET value = excluded.value, updated_at = CURRENT_TIMESTAMP",
                c = scope.column(),
                v = scope.value()
            );
            sqlx::query(AssertSqlSafe(upsert))
                .bind(tenant)
                .bind(&key)
                .bind(value.to_string())
                .execute(&mut *conn)
                .await
                .map_err(step_error)?;
            Ok(json!({ "key": key, "previous": previous, "written": value.to_string() }))
        })
        .await
    }

    async fn compensate(&self, ctx: &mut ServiceContext) -> Result<(), StepError> {
        let (key, _) = (self.row)(ctx);
        TenantDb::undo(
            &self.schema,
            ctx,
            self.action,
            async |conn, scope, tenant, payload| {
                // Only if the value is still the one this request wrote: a later
                // request that changed it since keeps its change.
                let written = payload.get("written").and_then(Value::as_str).unwrap_or("");
                let restore = match payload.get("previous").and_then(Value::as_str) {
                    Some(previous) => sqlx::query(AssertSqlSafe(format!(
                        "UPDATE settings SET value = ?4, updated_at = CURRENT_TIMESTAMP \
                     WHERE {}key = ?2 AND value = ?3",
                        scope.filter("")
                    )))
                    .bind(tenant)
                    .bind(&key)
                    .bind(written.to_owned())
                    .bind(previous.to_owned()),
                    None => sqlx::query(AssertSqlSafe(format!(
                        "DELETE FROM settings WHERE {}key = ?2 AND value = ?3",
                        scope.filter("")
                    )))
                    .bind(tenant)
                    .bind(&key)
                    .bind(written.to_owned()),
                };
                restore.execute(&mut *conn).await.map_err(step_error)?;
                Ok(())
            },
        )
        .await
    }
}

/// `create-user`: the `users` row. An address already taken is a permanent
/// failure: the run is compensated and nobody else's user is touched.
pub(super) struct CreateUser {
    schema: Arc<SqliteSchemaManager>,
}

impl CreateUser {
    const ACTION: &'static str = "user.created";

    pub(super) fn new(schema: Arc<SqliteSchemaManager>) -> Self {
        CreateUser { schema }
    }
}

#[async_trait]
impl Step<UserContext> for CreateUser {
    fn name(&self) -> &str {
        "create-user"
    }

    async fn execute(&self, ctx: &mut UserContext) -> Result<(), StepError> {
        let email = ctx.input.email.as_str();
        TenantDb::once(
            &self.schema,
            ctx,
            Self::ACTION,
            async |conn, scope, tenant| {
                let exists = format!("SELECT 1 FROM users WHERE {}email = ?2", scope.filter(""));
                let taken: Option<i64> = sqlx::query_scalar(AssertSqlSafe(exists))
                    .bind(tenant)
                    .bind(email)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(step_error)?;
                if taken.is_some() {
                    return Err(StepError::permanent(format!(
                        "a user with email {email} already exists"
                    )));
                }
                let display_name = email.split('@').next().unwrap_or(email);
                let insert = format!(
                    "INSERT INTO users ({}email, display_name) VALUES ({}?2, ?3)",
                    scope.column(),
                    scope.value()
                );
                sqlx::query(AssertSqlSafe(insert))
                    .bind(tenant)
                    .bind(email)
                    .bind(display_name)
                    .execute(&mut *conn)
                    .await
                    .map_err(step_error)?;
                Ok(json!({ "email": email }))
            },
        )
        .await
    }

    async fn compensate(&self, ctx: &mut UserContext) -> Result<(), StepError> {
        let email = ctx.input.email.as_str();
        TenantDb::undo(
            &self.schema,
            ctx,
            Self::ACTION,
            async |conn, scope, tenant, _| {
                // Its role grants go with it (ON DELETE CASCADE).
                let delete = format!("DELETE FROM users WHERE {}email = ?2", scope.filter(""));
                sqlx::query(AssertSqlSafe(delete))
                    .bind(tenant)
                    .bind(email)
                    .execute(&mut *conn)
                    .await
                    .map_err(step_error)?;
                Ok(())
            },
        )
        .await
    }
}

/// `grant-role`: the `user_roles` row giving the new user its role.
pub(super) struct GrantRole {
    schema: Arc<SqliteSchemaManager>,
}

impl GrantRole {
    const ACTION: &'static str = "user.role_granted";

    pub(super) fn new(schema: Arc<SqliteSchemaManager>) -> Self {
        GrantRole { schema }
    }
}

#[async_trait]
impl Step<UserContext> for GrantRole {
    fn name(&self) -> &str {
        "grant-role"
    }

    async fn execute(&self, ctx: &mut UserContext) -> Result<(), StepError> {
        let (email, role) = (ctx.input.email.as_str(), ctx.input.role.as_str());
        TenantDb::once(&self.schema, ctx, Self::ACTION, async |conn, scope, tenant| {
            let grant = format!(
                "INSERT INTO user_roles ({}user_id, role_id) SELECT {}u.id, r.id FROM users u, roles r \
                 WHERE {}{}u.email = ?2 AND r.name = ?3",
                scope.column(),
                scope.value(),
                scope.filter("u"),
                scope.filter("r"),
            );
            let granted = sqlx::query(AssertSqlSafe(grant))
                .bind(tenant)
                .bind(email)
                .bind(role)
                .execute(&mut *conn)
                .await
                .map_err(step_error)?;
            if granted.rows_affected() != 1 {
                return Err(StepError::permanent(format!(
                    "role {role} or user {email} not found in the tenant's database"
                )));
            }
            Ok(json!({ "email": email, "role": role }))
        })
        .await
    }

    async fn compensate(&self, ctx: &mut UserContext) -> Result<(), StepError> {
        let (email, role) = (ctx.input.email.as_str(), ctx.input.role.as_str());
        TenantDb::undo(&self.schema, ctx, Self::ACTION, async |conn, scope, tenant, _| {
            let revoke = format!(
                "DELETE FROM user_roles WHERE {f}user_id = (SELECT id FROM users WHERE {f}email = ?2) \
                 AND role_id = (SELECT id FROM roles WHERE {f}name = ?3)",
                f = scope.filter("")
            );
            sqlx::query(AssertSqlSafe(revoke))
                .bind(tenant)
                .bind(email)
                .bind(role)
                .execute(&mut *conn)
                .await
                .map_err(step_error)?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflows::ServiceInput;
    use crate::workflows::input::Tier;
    use provisioning_core::{RemovalMode, RequestId, TenantRequest};

    /// A Hybrid with one active tenant of `plan`, and a service context for it.
    async fn setup(dir: &std::path::Path, plan: &str) -> (crate::wiring::Hybrid, ServiceContext) {
        let hybrid = crate::wiring::hybrid(dir, crate::wiring::Release::Current, None)
            .await
            .unwrap();
        let request = TenantRequest::new(
            "acme".parse().unwrap(),
            plan.parse().unwrap(),
            "eu-west".parse().unwrap(),
        );
        hybrid.orchestrator.create(request).await.unwrap();
        let record = hybrid
            .orchestrator
            .tenant(&"acme".parse().unwrap())
            .await
            .unwrap();
        let input = ServiceInput {
            service: "billing".to_owned(),
            tier: Tier::Basic,
        };
        let ctx = ServiceContext::new(record, RequestId::new(), input).unwrap();
        (hybrid, ctx)
    }

    async fn setting(hybrid: &crate::wiring::Hybrid, ctx: &ServiceContext) -> Option<String> {
        let mut conn = SqliteConnection::connect_with(
            &SqliteConnectOptions::new().filename(hybrid.schema.database_path(ctx.placement())),
        )
        .await
        .unwrap();
        sqlx::query_scalar("SELECT value FROM settings WHERE key = 'service.billing'")
            .fetch_optional(&mut conn)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_rollback_keeps_what_a_later_request_wrote() {
        for plan in ["standard", "premium"] {
            let dir = tempfile::tempdir().unwrap();
            let (hybrid, mut first) = setup(dir.path(), plan).await;
            let step = WriteSetting::subscription(hybrid.schema.clone());
            step.execute(&mut first).await.unwrap();
            // A retried execute finds its marker and writes nothing again.
            step.execute(&mut first).await.unwrap();
            let input = ServiceInput {
                tier: Tier::Enterprise,
                ..first.input.clone()
            };
            let mut later =
                ServiceContext::new(first.tenant().clone(), RequestId::new(), input).unwrap();
            step.execute(&mut later).await.unwrap();
            let enterprise = setting(&hybrid, &later).await;
            assert!(enterprise.as_deref().unwrap().contains("enterprise"));
            // The first request's rollback leaves the later value alone...
            step.compensate(&mut first).await.unwrap();
            assert_eq!(setting(&hybrid, &first).await, enterprise, "{plan}");
            // ...and the later one's puts back what it replaced.
            step.compensate(&mut later).await.unwrap();
            let basic = setting(&hybrid, &later).await;
            assert!(basic.as_deref().unwrap().contains("basic"), "{plan}");
        }
    }

    #[tokio::test]
    async fn a_tenant_deleted_meanwhile_gets_nothing_written() {
        for plan in ["standard", "premium"] {
            let dir = tempfile::tempdir().unwrap();
            let (hybrid, mut ctx) = setup(dir.path(), plan).await;
            hybrid
                .orchestrator
                .delete(
                    &"acme".parse().unwrap(),
                    RemovalMode::Purge,
                    RequestId::new(),
                )
                .await
                .unwrap();
            let step = WriteSetting::subscription(hybrid.schema.clone());
            let error = step.execute(&mut ctx).await.unwrap_err();
            assert!(!error.is_transient());
            assert!(error.to_string().contains("gone"), "{error}");
            step.compensate(&mut ctx).await.unwrap();
            if plan == "standard" {
                assert_eq!(setting(&hybrid, &ctx).await, None);
            }
        }
    }
}
