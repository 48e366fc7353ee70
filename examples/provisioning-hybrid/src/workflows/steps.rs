//! The generic workflows' steps. Each writes in one transaction its rows and a
//! marker row in `audit_log` (`target_type = 'request'`, `target_id` = the
//! request id), and its compensation undoes exactly what the marker records
//! ([`TenantDb::once`] and [`TenantDb::undo`]). The same SQL serves SQLite and
//! PostgreSQL, shared and dedicated databases (see [`super::tenant_db`]).

use async_trait::async_trait;
use provisioning_core::{Step, StepError};
use serde_json::{Value, json};

use super::tenant_db::{TenantData, TenantDb};
use super::{ServiceContext, UserContext};

/// `subscribe` and `rate-limits`: one `settings` row each, replacing (and
/// on compensation restoring) any value the key had.
pub(super) struct WriteSetting {
    data: TenantData,
    name: &'static str,
    action: &'static str,
    /// The key and the value to write.
    row: fn(&ServiceContext) -> (String, serde_json::Value),
}

impl WriteSetting {
    /// The subscription: `service.{name}` = `{"tier": ..., "status": "enabled"}`.
    pub(super) fn subscription(data: TenantData) -> Self {
        WriteSetting {
            data,
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
    pub(super) fn rate_limits(data: TenantData) -> Self {
        WriteSetting {
            data,
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
        let value = value.to_string();
        TenantDb::once(&self.data, ctx, self.action, async |conn, scope, tenant| {
            let select = format!(
                "SELECT {} FROM settings WHERE {}key = $2",
                scope.text("value"),
                scope.filter("")
            );
            let previous = conn.text(select, &[tenant, &key]).await?;
            let upsert = format!(
                "INSERT INTO settings ({c}key, value) VALUES ({v}$2, {json}) \
                 ON CONFLICT ({c}key) DO UPDATE SET value = excluded.value, updated_at = CURRENT_TIMESTAMP",
                c = scope.column(),
                v = scope.value(),
                json = scope.json("$3"),
            );
            conn.execute(upsert, &[tenant, &key, &value]).await?;
            Ok(json!({ "key": key, "previous": previous, "written": value }))
        })
        .await
    }

    async fn compensate(&self, ctx: &mut ServiceContext) -> Result<(), StepError> {
        let (key, _) = (self.row)(ctx);
        TenantDb::undo(
            &self.data,
            ctx,
            self.action,
            async |conn, scope, tenant, payload| {
                // Only if the value is still the one this request wrote: a later
                // request that changed it since keeps its change.
                let written = payload.get("written").and_then(Value::as_str).unwrap_or("");
                match payload.get("previous").and_then(Value::as_str) {
                    Some(previous) => {
                        let restore = format!(
                            "UPDATE settings SET value = {}, updated_at = CURRENT_TIMESTAMP \
                             WHERE {}key = $2 AND value = {}",
                            scope.json("$4"),
                            scope.filter(""),
                            scope.json("$3"),
                        );
                        conn.execute(restore, &[tenant, &key, written, previous])
                            .await?
                    }
                    None => {
                        let delete = format!(
                            "DELETE FROM settings WHERE {}key = $2 AND value = {}",
                            scope.filter(""),
                            scope.json("$3"),
                        );
                        conn.execute(delete, &[tenant, &key, written]).await?
                    }
                };
                Ok(())
            },
        )
        .await
    }
}

/// `create-user`: the `users` row. An address already taken is a permanent
/// failure: the run is compensated and nobody else's user is touched.
pub(super) struct CreateUser {
    data: TenantData,
}

impl CreateUser {
    const ACTION: &'static str = "user.created";

    pub(super) fn new(data: TenantData) -> Self {
        CreateUser { data }
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
            &self.data,
            ctx,
            Self::ACTION,
            async |conn, scope, tenant| {
                let exists = format!("SELECT 1 FROM users WHERE {}email = $2", scope.filter(""));
                if conn.exists(exists, &[tenant, email]).await? {
                    return Err(StepError::permanent(format!(
                        "a user with email {email} already exists"
                    )));
                }
                let display_name = email.split('@').next().unwrap_or(email);
                let insert = format!(
                    "INSERT INTO users ({}email, display_name) VALUES ({}$2, $3)",
                    scope.column(),
                    scope.value()
                );
                conn.execute(insert, &[tenant, email, display_name]).await?;
                Ok(json!({ "email": email }))
            },
        )
        .await
    }

    async fn compensate(&self, ctx: &mut UserContext) -> Result<(), StepError> {
        let email = ctx.input.email.as_str();
        TenantDb::undo(
            &self.data,
            ctx,
            Self::ACTION,
            async |conn, scope, tenant, _| {
                // Its role grants go with it (ON DELETE CASCADE).
                let delete = format!("DELETE FROM users WHERE {}email = $2", scope.filter(""));
                conn.execute(delete, &[tenant, email]).await?;
                Ok(())
            },
        )
        .await
    }
}

/// `grant-role`: the `user_roles` row giving the new user its role.
pub(super) struct GrantRole {
    data: TenantData,
}

impl GrantRole {
    const ACTION: &'static str = "user.role_granted";

    pub(super) fn new(data: TenantData) -> Self {
        GrantRole { data }
    }
}

#[async_trait]
impl Step<UserContext> for GrantRole {
    fn name(&self) -> &str {
        "grant-role"
    }

    async fn execute(&self, ctx: &mut UserContext) -> Result<(), StepError> {
        let (email, role) = (ctx.input.email.as_str(), ctx.input.role.as_str());
        TenantDb::once(&self.data, ctx, Self::ACTION, async |conn, scope, tenant| {
            let grant = format!(
                "INSERT INTO user_roles ({}user_id, role_id) SELECT {}u.id, r.id FROM users u, roles r \
                 WHERE {}{}u.email = $2 AND r.name = $3",
                scope.column(),
                scope.value(),
                scope.filter("u"),
                scope.filter("r"),
            );
            let granted = conn.execute(grant, &[tenant, email, role]).await?;
            if granted != 1 {
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
        TenantDb::undo(&self.data, ctx, Self::ACTION, async |conn, scope, tenant, _| {
            let revoke = format!(
                "DELETE FROM user_roles WHERE {f}user_id = (SELECT id FROM users WHERE {f}email = $2) \
                 AND role_id = (SELECT id FROM roles WHERE {f}name = $3)",
                f = scope.filter("")
            );
            conn.execute(revoke, &[tenant, email, role]).await?;
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

    /// A scratch database on the server `PROVISIONING_TEST_POSTGRES_URL`
    /// names, holding the catalog and every tenant (dedicated ones as
    /// schemas); dropped with the guard.
    struct PgScratch {
        server: String,
        url: String,
        name: String,
    }

    impl Drop for PgScratch {
        fn drop(&mut self) {
            let (server, name) = (self.server.clone(), self.name.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    use sqlx::Connection;
                    let mut conn = sqlx::PgConnection::connect(&server).await.unwrap();
                    let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
                        .execute(&mut conn)
                        .await
                        .unwrap();
                });
            })
            .join()
            .unwrap();
        }
    }

    /// The backends to run on: SQLite files, and PostgreSQL when the
    /// variable names a server (else it says it skipped it).
    fn backends() -> Vec<Option<PgScratch>> {
        match std::env::var("PROVISIONING_TEST_POSTGRES_URL") {
            Ok(server) if !server.is_empty() => {
                let base = server.split('?').next().unwrap();
                let name = format!("hybrid_steps_{:016x}", rand_id());
                let url = format!("{}/{name}", &base[..base.rfind('/').unwrap()]);
                vec![None, Some(PgScratch { server, url, name })]
            }
            _ => {
                eprintln!("PROVISIONING_TEST_POSTGRES_URL unset: PostgreSQL skipped");
                vec![None]
            }
        }
    }

    fn rand_id() -> u64 {
        use std::hash::{BuildHasher, RandomState};
        RandomState::new().hash_one(std::time::SystemTime::now())
    }

    /// A Hybrid with one active tenant of `plan` on `backend`, and a
    /// service context for it.
    async fn setup(
        dir: &std::path::Path,
        plan: &str,
        backend: Option<&PgScratch>,
    ) -> (crate::wiring::Hybrid, ServiceContext) {
        let release = crate::wiring::Release::Current;
        let hybrid = match backend {
            None => crate::wiring::hybrid(dir, release, None).await.unwrap(),
            Some(pg) => {
                crate::postgres::ensure_database(&pg.url).await.unwrap();
                let server = "postgres://postgres@127.0.0.1:5432";
                let text = crate::config::POSTGRES
                    .replace(
                        &format!("{server}/{{tenant}}"),
                        &format!("{}?schema={{tenant}}", pg.url),
                    )
                    .replace(&format!("{server}/hybrid_eu_west"), &pg.url)
                    .replace(&format!("{server}/hybrid_us_east"), &pg.url)
                    .replace(&format!("{server}/hybrid\""), &format!("{}\"", pg.url));
                let placement = crate::config::parse(&text).unwrap();
                let access = crate::wiring::Access::ReadWrite;
                crate::wiring::build_with(dir, release, None, access, placement)
                    .await
                    .unwrap()
            }
        };
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
        let mut db = TenantDb::open(&hybrid.data, ctx).await.unwrap()?;
        db.setting("service.billing").await.unwrap()
    }

    #[tokio::test]
    async fn a_rollback_keeps_what_a_later_request_wrote() {
        for plan in ["standard", "premium"] {
            for backend in backends() {
                let dir = tempfile::tempdir().unwrap();
                let (hybrid, mut first) = setup(dir.path(), plan, backend.as_ref()).await;
                let step = WriteSetting::subscription(hybrid.data.clone());
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
    }

    #[tokio::test]
    async fn a_tenant_deleted_meanwhile_gets_nothing_written() {
        for plan in ["standard", "premium"] {
            for backend in backends() {
                let dir = tempfile::tempdir().unwrap();
                let (hybrid, mut ctx) = setup(dir.path(), plan, backend.as_ref()).await;
                hybrid
                    .orchestrator
                    .delete(
                        &"acme".parse().unwrap(),
                        RemovalMode::Purge,
                        RequestId::new(),
                    )
                    .await
                    .unwrap();
                let step = WriteSetting::subscription(hybrid.data.clone());
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
}
