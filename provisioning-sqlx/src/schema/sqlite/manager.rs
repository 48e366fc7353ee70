//! [`TenantSchemaManager`] for [`SqliteSchemaManager`].

use async_trait::async_trait;
use provisioning_core::Entity;
use provisioning_core::{
    DatabaseOutcome, Drift, DropReason, Error, Isolation, MigrationInfo, Placement, Repair, Result,
    SchemaPreview, SeedInfo, TableComparison, TenantId, TenantSchemaManager,
};

use super::SqliteSchemaManager;
use super::conn::{self, COMPONENT, Open, close, connect};
use super::dedicated::{owned, remove_database, staging_path};
use super::parked::{FileId, identity};
use crate::schema::conn::{delete_tenant_rows, plan_absent, plan_existing};
use crate::schema::migrate;

async fn exists(path: &std::path::Path) -> bool {
    tokio::fs::try_exists(path).await.unwrap_or(false)
}

#[async_trait]
impl TenantSchemaManager for SqliteSchemaManager {
    async fn copy_tenant(&self, source: &Placement, target: &Placement) -> Result<u64> {
        self.copy(source, target).await
    }

    async fn compare_tenant(
        &self,
        source: &Placement,
        target: &Placement,
    ) -> Result<Vec<TableComparison>> {
        self.compare(source, target).await
    }

    async fn check_drift(&self, placement: &Placement, tenants: &[TenantId]) -> Result<Vec<Drift>> {
        self.drift(placement, tenants).await
    }

    async fn repair_drift(&self, placement: &Placement, repairs: &[Repair]) -> Result<Vec<Repair>> {
        self.repair(placement, repairs).await
    }

    fn release(&self) -> Option<String> {
        Some(self.schemas.release())
    }

    fn locate(&self, placement: &Placement) -> Result<Option<String>> {
        self.check_template(placement)?;
        Ok(Some(self.resolve_path(placement).display().to_string()))
    }

    async fn preview(&self, placement: &Placement) -> Result<SchemaPreview> {
        let schema = self.schema(placement.isolation)?;
        let path = self.database_path(placement);
        let location = path.display().to_string();
        if !exists(&path).await {
            // Nothing to open: opening would create the file.
            return Ok(plan_absent(schema, location));
        }
        let mut conn = connect(&path, Open::Inspect, self.busy_timeout).await?;
        let result = plan_existing(&mut conn, schema, &placement.tenant_id, location).await;
        close(conn).await;
        result
    }

    async fn provision(&self, placement: &Placement) -> Result<DatabaseOutcome> {
        self.schema(placement.isolation)?;
        self.check_shard(placement)?;
        let path = self.database_path(placement);
        let _guard = self.locks.lock(&Self::lock_key(&path)).await;
        match placement.isolation {
            Isolation::Dedicated => {
                // What it finds may be another file than a parked connection's.
                self.parked.evict(&path).await;
                self.provision_dedicated(&placement.tenant_id, &path).await
            }
            Isolation::Shared => {
                // Reachable: opening (and creating on first use) is the check.
                self.pools.acquire(&path, self.busy_timeout, true).await?;
                Ok(DatabaseOutcome::Shared)
            }
        }
    }

    async fn migrate(&self, placement: &Placement) -> Result<Vec<MigrationInfo>> {
        let schema = self.schema(placement.isolation)?;
        let path = self.database_path(placement);
        let location = path.display().to_string();
        // One migration run per database at a time: tenants of one shard share it.
        let _guard = self.locks.lock(&Self::lock_key(&path)).await;
        let run = |conn| {
            migrate::run(
                conn,
                schema.migrator(),
                self.schemas.hook.as_ref(),
                placement,
                COMPONENT,
                &location,
            )
        };
        match placement.isolation {
            Isolation::Shared => {
                let (db, mut conn) = self.pools.acquire(&path, self.busy_timeout, false).await?;
                if db.migrated() {
                    return Ok(Vec::new());
                }
                let applied = run(&mut *conn).await?;
                db.set_migrated();
                Ok(applied)
            }
            Isolation::Dedicated => {
                let (mut conn, id) = self.open_dedicated(placement, &path).await?;
                let result = run(&mut conn).await;
                if result.is_ok() {
                    // For the seed that follows (see `parked`).
                    self.parked.park(&path, id, conn).await;
                } else {
                    close(conn).await;
                }
                result
            }
        }
    }

    async fn seed(&self, placement: &Placement) -> Result<Vec<SeedInfo>> {
        let schema = self.schema(placement.isolation)?;
        let path = self.database_path(placement);
        let _guard = self.locks.lock(&Self::lock_key(&path)).await;
        match placement.isolation {
            Isolation::Shared => {
                let (db, mut conn) = self.pools.acquire(&path, self.busy_timeout, false).await?;
                let applied = conn::apply(
                    &mut conn,
                    schema.seeds(),
                    &placement.tenant_id,
                    db.has_ledger(),
                )
                .await?;
                db.set_ledger();
                Ok(applied)
            }
            Isolation::Dedicated => {
                let (mut conn, _) = self.open_dedicated(placement, &path).await?;
                let result =
                    conn::apply(&mut conn, schema.seeds(), &placement.tenant_id, false).await;
                close(conn).await;
                result
            }
        }
    }

    async fn drop_tenant(&self, placement: &Placement, reason: DropReason) -> Result<()> {
        let schema = self.schema(placement.isolation)?;
        let path = self.database_path(placement);
        let _guard = self.locks.lock(&Self::lock_key(&path)).await;
        match placement.isolation {
            Isolation::Shared => {
                if !exists(&path).await {
                    return Ok(());
                }
                let (_, mut conn) = self.pools.acquire(&path, self.busy_timeout, false).await?;
                let removed =
                    delete_tenant_rows(&mut *conn, schema.tables(), &placement.tenant_id).await?;
                tracing::info!(tenant_id = %placement.tenant_id, ?reason, removed, "tenant rows removed");
                Ok(())
            }
            Isolation::Dedicated => {
                self.parked.evict(&path).await;
                remove_database(&staging_path(&path)).await?;
                if reason == DropReason::Compensation && exists(&path).await {
                    let ours = match connect(&path, Open::Inspect, self.busy_timeout).await {
                        Ok(mut conn) => {
                            let ours = owned(&mut conn, &placement.tenant_id).await;
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
                            tracing::info!(tenant_id = %placement.tenant_id, "compensation keeps an adopted database");
                            return Ok(());
                        }
                    }
                }
                remove_database(&path).await?;
                tracing::info!(tenant_id = %placement.tenant_id, ?reason, "tenant database removed");
                Ok(())
            }
        }
    }
}

impl SqliteSchemaManager {
    /// A connection for writing to a dedicated tenant's database, which must
    /// have been provisioned: the one parked for it if its file is the same,
    /// else a new one; with the file's identity, for parking it again.
    pub(super) async fn open_dedicated(
        &self,
        placement: &Placement,
        path: &std::path::Path,
    ) -> Result<(sqlx::SqliteConnection, Option<FileId>)> {
        let Ok(metadata) = tokio::fs::metadata(path).await else {
            return Err(Error::NotFound {
                kind: Entity::TenantDatabase,
                id: format!("{} ({})", placement.tenant_id, path.display()),
            });
        };
        let id = identity(&metadata);
        if let Some(id) = id
            && let Some(conn) = self.parked.take(path, id).await
        {
            return Ok((conn, Some(id)));
        }
        let conn = connect(path, Open::Write { create: false }, self.busy_timeout).await?;
        Ok((conn, id))
    }
}
