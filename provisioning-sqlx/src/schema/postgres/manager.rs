//! [`TenantSchemaManager`] for [`PgSchemaManager`].

use async_trait::async_trait;
use provisioning_core::{
    DatabaseOutcome, DropReason, Error, MigrationInfo, Result, SchemaPlan, SeedInfo, TenantPlan,
    TenantSchemaManager,
};
use sqlx::PgConnection;

use super::conn::{self, COMPONENT, close, connect, table_exists};
use super::{PgSchemaManager, Target, TargetKind, dedicated};
use crate::error::db_error;
use crate::schema::migrate::{self, LEDGER_TABLE};

impl PgSchemaManager {
    /// Connects to the tenant's database or schema, which must exist.
    async fn tenant_conn(&self, target: &Target<'_>, plan: &TenantPlan) -> Result<PgConnection> {
        if !matches!(target.kind, TargetKind::Shared) && !self.exists(target).await? {
            return Err(Error::NotFound {
                kind: "tenant database",
                id: format!("{} ({})", plan.tenant_id, target.location()),
            });
        }
        let (options, schema) = target.tenant_options();
        connect(&options, schema, &target.location()).await
    }

    async fn exists(&self, target: &Target<'_>) -> Result<bool> {
        let mut conn = connect(&target.server.options, None, &target.server.address()).await?;
        let found = dedicated::inspect(&mut conn, &target.kind).await;
        close(conn).await;
        Ok(found?.is_some())
    }
}

/// Holds a session advisory lock on `key` for a migration run, so that workers
/// in other processes migrating the same database or schema take turns.
async fn advisory(conn: &mut PgConnection, key: &str, lock: bool) -> Result<()> {
    let sql = if lock {
        "SELECT pg_advisory_lock(hashtextextended($1, 0))::text"
    } else {
        "SELECT pg_advisory_unlock(hashtextextended($1, 0))::text"
    };
    sqlx::query_scalar::<_, String>(sql)
        .bind(format!("provisioning-sqlx:{key}"))
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| db_error(COMPONENT, "taking the migration lock", e))?;
    Ok(())
}

#[async_trait]
impl TenantSchemaManager for PgSchemaManager {
    async fn plan(&self, plan: &TenantPlan) -> Result<SchemaPlan> {
        let schema = self.schema(plan.isolation)?;
        let target = self.target(plan)?;
        let location = target.location();
        let shared = matches!(target.kind, TargetKind::Shared);
        if !shared && !self.exists(&target).await? {
            let seeds = schema.seeds().iter().map(|s| s.info()).collect();
            return Ok(SchemaPlan::new(
                location,
                false,
                true,
                migrate::all(schema.migrator()),
                seeds,
            ));
        }
        let (options, search_path) = target.tenant_options();
        let mut conn = connect(&options, search_path, &location).await?;
        // Only reads: the ledgers are looked up, never created.
        let result = async {
            let ledger = table_exists(&mut conn, LEDGER_TABLE).await?;
            let migrations =
                migrate::pending(&mut conn, schema.migrator(), ledger, COMPONENT, &location)
                    .await?;
            let seeds = conn::pending(&mut conn, schema.seeds(), &plan.tenant_id).await?;
            Ok::<_, Error>((migrations, seeds))
        }
        .await;
        close(conn).await;
        let (migrations, seeds) = result?;
        Ok(SchemaPlan::new(location, true, false, migrations, seeds))
    }

    async fn provision(&self, plan: &TenantPlan) -> Result<DatabaseOutcome> {
        self.schema(plan.isolation)?;
        let target = self.target(plan)?;
        let _guard = self.locks.lock(&target.location()).await;
        let outcome = dedicated::provision(&target, &plan.tenant_id).await?;
        // Reachable: a tenant connection works (and a shared database exists).
        let (options, schema) = target.tenant_options();
        close(connect(&options, schema, &target.location()).await?).await;
        Ok(outcome)
    }

    async fn migrate(&self, plan: &TenantPlan) -> Result<Vec<MigrationInfo>> {
        let schema = self.schema(plan.isolation)?;
        let target = self.target(plan)?;
        let location = target.location();
        let _guard = self.locks.lock(&location).await;
        let mut conn = self.tenant_conn(&target, plan).await?;
        let result = async {
            advisory(&mut conn, &location, true).await?;
            let run = migrate::run(
                &mut conn,
                schema.migrator(),
                self.hook.as_ref(),
                plan,
                COMPONENT,
                &location,
            )
            .await;
            advisory(&mut conn, &location, false).await?;
            run
        }
        .await;
        close(conn).await;
        result
    }

    async fn seed(&self, plan: &TenantPlan) -> Result<Vec<SeedInfo>> {
        let schema = self.schema(plan.isolation)?;
        let target = self.target(plan)?;
        let location = target.location();
        let mut conn = self.tenant_conn(&target, plan).await?;
        let result = async {
            if !table_exists(&mut conn, "_tenant_seeds").await? {
                let _guard = self.locks.lock(&location).await;
                advisory(&mut conn, &location, true).await?;
                let created = conn::ensure_ledger(&mut conn).await;
                advisory(&mut conn, &location, false).await?;
                created?;
            }
            conn::apply(&mut conn, schema.seeds(), &plan.tenant_id).await
        }
        .await;
        close(conn).await;
        result
    }

    async fn drop_tenant(&self, plan: &TenantPlan, reason: DropReason) -> Result<()> {
        let schema = self.schema(plan.isolation)?;
        let target = self.target(plan)?;
        let _guard = self.locks.lock(&target.location()).await;
        if let TargetKind::Shared = target.kind {
            let mut conn = self.tenant_conn(&target, plan).await?;
            let result =
                conn::delete_tenant_rows(&mut conn, schema.tables(), &plan.tenant_id).await;
            close(conn).await;
            let removed = result?;
            tracing::info!(tenant_id = %plan.tenant_id, ?reason, removed, "tenant rows removed");
            return Ok(());
        }
        dedicated::drop(&target, &plan.tenant_id, reason == DropReason::Compensation).await
    }
}
