//! [`TenantSchemaManager`] for [`SqliteSchemaManager`].

use async_trait::async_trait;
use provisioning_core::{
    DatabaseOutcome, DropReason, Error, Isolation, MigrationInfo, Result, SchemaPlan, SeedInfo,
    TenantPlan, TenantSchemaManager,
};

use super::SqliteSchemaManager;
use super::conn::{self, COMPONENT, Open, close, connect, table_exists};
use super::dedicated::{owned, remove_database, staging_path};
use super::shared::delete_tenant_rows;
use crate::schema::migrate::{self, LEDGER_TABLE};

async fn exists(path: &std::path::Path) -> bool {
    tokio::fs::try_exists(path).await.unwrap_or(false)
}

#[async_trait]
impl TenantSchemaManager for SqliteSchemaManager {
    async fn plan(&self, plan: &TenantPlan) -> Result<SchemaPlan> {
        let schema = self.schema(plan.isolation)?;
        let path = self.database_path(plan);
        let location = path.display().to_string();
        if !exists(&path).await {
            // Nothing to open: opening would create the file.
            let migrations = migrate::all(schema.migrator());
            let seeds = schema.seeds().iter().map(|s| s.info()).collect();
            return Ok(SchemaPlan::new(location, false, true, migrations, seeds));
        }
        let mut conn = connect(&path, Open::Inspect, self.busy_timeout).await?;
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
        let path = self.database_path(plan);
        let _guard = self.locks.lock(&Self::lock_key(&path)).await;
        match plan.isolation {
            Isolation::Dedicated => self.provision_dedicated(&plan.tenant_id, &path).await,
            Isolation::Shared => {
                if let Some(dir) = path.parent() {
                    tokio::fs::create_dir_all(dir).await.map_err(|e| {
                        Error::backend(COMPONENT, format!("creating {}", dir.display()), true, e)
                    })?;
                }
                // Reachable: opening (and creating on first use) is the check.
                let conn = connect(&path, Open::Write { create: true }, self.busy_timeout).await?;
                close(conn).await;
                Ok(DatabaseOutcome::Shared)
            }
        }
    }

    async fn migrate(&self, plan: &TenantPlan) -> Result<Vec<MigrationInfo>> {
        let schema = self.schema(plan.isolation)?;
        let path = self.database_path(plan);
        let location = path.display().to_string();
        // One migration run per database at a time: tenants of one shard share it.
        let _guard = self.locks.lock(&Self::lock_key(&path)).await;
        let mut conn = self.open_existing(plan, &path).await?;
        let result = migrate::run(
            &mut conn,
            schema.migrator(),
            self.hook.as_ref(),
            plan,
            COMPONENT,
            &location,
        )
        .await;
        close(conn).await;
        result
    }

    async fn seed(&self, plan: &TenantPlan) -> Result<Vec<SeedInfo>> {
        let schema = self.schema(plan.isolation)?;
        let path = self.database_path(plan);
        let _guard = self.locks.lock(&Self::lock_key(&path)).await;
        let mut conn = self.open_existing(plan, &path).await?;
        let result = conn::apply(&mut conn, schema.seeds(), &plan.tenant_id).await;
        close(conn).await;
        result
    }

    async fn drop_tenant(&self, plan: &TenantPlan, reason: DropReason) -> Result<()> {
        let schema = self.schema(plan.isolation)?;
        let path = self.database_path(plan);
        let _guard = self.locks.lock(&Self::lock_key(&path)).await;
        match plan.isolation {
            Isolation::Shared => {
                if !exists(&path).await {
                    return Ok(());
                }
                let mut conn =
                    connect(&path, Open::Write { create: false }, self.busy_timeout).await?;
                let result = delete_tenant_rows(&mut conn, schema.tables(), &plan.tenant_id).await;
                close(conn).await;
                let removed = result?;
                tracing::info!(tenant_id = %plan.tenant_id, ?reason, removed, "tenant rows removed");
                Ok(())
            }
            Isolation::Dedicated => {
                remove_database(&staging_path(&path)).await?;
                if reason == DropReason::Compensation && exists(&path).await {
                    let ours = match connect(&path, Open::Inspect, self.busy_timeout).await {
                        Ok(mut conn) => {
                            let ours = owned(&mut conn, &plan.tenant_id).await;
                            close(conn).await;
                            ours
                        }
                        Err(e) => Err(e),
                    };
                    match ours {
                        Ok(true) => {}
                        Err(e) if e.is_transient() => return Err(e),
                        // Not provably ours: an adopted database stays.
                        Ok(false) | Err(_) => {
                            tracing::info!(tenant_id = %plan.tenant_id, "compensation keeps an adopted database");
                            return Ok(());
                        }
                    }
                }
                remove_database(&path).await?;
                tracing::info!(tenant_id = %plan.tenant_id, ?reason, "tenant database removed");
                Ok(())
            }
        }
    }
}

impl SqliteSchemaManager {
    /// Opens the tenant's database for writing; a dedicated one must have been
    /// provisioned, a shared one is created on first use.
    async fn open_existing(
        &self,
        plan: &TenantPlan,
        path: &std::path::Path,
    ) -> Result<sqlx::SqliteConnection> {
        let shared = plan.isolation == Isolation::Shared;
        if !shared && !exists(path).await {
            return Err(Error::NotFound {
                kind: "tenant database",
                id: format!("{} ({})", plan.tenant_id, path.display()),
            });
        }
        if let Some(dir) = path.parent().filter(|_| shared) {
            tokio::fs::create_dir_all(dir).await.map_err(|e| {
                Error::backend(COMPONENT, format!("creating {}", dir.display()), true, e)
            })?;
        }
        connect(path, Open::Write { create: shared }, self.busy_timeout).await
    }
}
