//! [`TenantSchemaManager`] for [`PostgresSchemaManager`].

use async_trait::async_trait;
use provisioning_core::{
    DatabaseOutcome, Drift, DropReason, Error, MigrationInfo, Placement, Repair, Result,
    SchemaPreview, SeedInfo, TableComparison, TenantId, TenantSchemaManager, Upgrade,
};
use sqlx::pool::PoolConnection;
use sqlx::{AssertSqlSafe, Executor, PgConnection, Postgres};

use super::conn::{self, COMPONENT, TenantConn, close, connect, search_path, xact_lock_sql};
use super::{PostgresSchemaManager, Target, TargetKind, dedicated};
use crate::error::db_error;
use crate::schema::conn::{delete_tenant_rows, plan_absent, plan_existing};
use crate::schema::migrate;

impl PostgresSchemaManager {
    /// A connection to the shard server's database, from its pool.
    pub(super) async fn server_conn(&self, target: &Target) -> Result<PoolConnection<Postgres>> {
        target.server.pool().acquire().await.map_err(|e| {
            db_error(
                COMPONENT,
                format!("connecting to {}", target.server.address()),
                e,
            )
        })
    }

    /// A connection to the tenant's data, which must exist when dedicated: a
    /// pooled one with `search_path` set for a schema or shared tenant (the
    /// schema looked up on the same connection), one of its own for a
    /// database.
    pub(super) async fn tenant_conn(
        &self,
        target: &Target,
        placement: &Placement,
    ) -> Result<TenantConn> {
        match &target.kind {
            TargetKind::Database(_) => Ok(TenantConn::Own(
                self.own_database_conn(target, placement).await?,
            )),
            TargetKind::Schema(name) => {
                let mut conn = self.server_conn(target).await?;
                dedicated::require(&mut conn, target, &placement.tenant_id).await?;
                search_path(&mut conn, Some(name)).await?;
                Ok(TenantConn::Pooled(conn))
            }
            TargetKind::Shared => {
                let mut conn = self.server_conn(target).await?;
                search_path(&mut conn, None).await?;
                Ok(TenantConn::Pooled(conn))
            }
        }
    }
}

impl PostgresSchemaManager {
    /// A connection of its own to a tenant's database of its own, looked up
    /// on the server first: `NotFound` when it does not exist.
    pub(super) async fn own_database_conn(
        &self,
        target: &Target,
        placement: &Placement,
    ) -> Result<PgConnection> {
        let mut server = self.server_conn(target).await?;
        dedicated::require(&mut server, target, &placement.tenant_id).await?;
        drop(server);
        connect(&target.data_options(), &target.location()).await
    }

    /// A connection for migrating or seeding: a schema or shared tenant's
    /// straight from the pool (each transaction sets its `search_path`; a
    /// missing schema is found by its first statement, see
    /// [`missing_or`](Self::missing_or)), a database's of its own.
    async fn work_conn(&self, target: &Target, placement: &Placement) -> Result<TenantConn> {
        match target.kind {
            TargetKind::Database(_) => self.tenant_conn(target, placement).await,
            TargetKind::Schema(_) | TargetKind::Shared => {
                Ok(TenantConn::Pooled(self.server_conn(target).await?))
            }
        }
    }

    /// `error`, or [`Error::NotFound`] when it came from the tenant's schema
    /// not existing: looked up only after a failure, so that the usual path
    /// pays no round trip for it.
    async fn missing_or(&self, target: &Target, placement: &Placement, error: Error) -> Error {
        if !matches!(target.kind, TargetKind::Schema(_)) {
            return error;
        }
        let Ok(mut server) = self.server_conn(target).await else {
            return error;
        };
        match dedicated::inspect(&mut server, &target.kind).await {
            Ok(None) => dedicated::missing(target, &placement.tenant_id),
            _ => error,
        }
    }

    /// The shared databases whose seed ledger is known to exist.
    fn seed_ledgers(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.seed_ledgers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl TenantSchemaManager for PostgresSchemaManager {
    async fn check_drift(&self, placement: &Placement, tenants: &[TenantId]) -> Result<Vec<Drift>> {
        self.drift(placement, tenants).await
    }

    async fn repair_drift(&self, placement: &Placement, repairs: &[Repair]) -> Result<Vec<Repair>> {
        self.repair(placement, repairs).await
    }

    fn release(&self) -> Option<String> {
        Some(self.schemas.release())
    }

    /// The tenant's own database's URL, the server database's URL with
    /// `?schema=` for a schema of its own, or the shared database's URL;
    /// the password redacted.
    fn locate(&self, placement: &Placement) -> Result<Option<String>> {
        self.located(placement).map(Some)
    }

    async fn preview(&self, placement: &Placement) -> Result<SchemaPreview> {
        let schema = self.schema(placement.isolation)?;
        let target = self.target(placement)?;
        let location = target.location();
        let mut conn = match self.tenant_conn(&target, placement).await {
            Ok(conn) => conn,
            Err(Error::NotFound { .. }) => return Ok(plan_absent(schema, location)),
            Err(e) => return Err(e),
        };
        let result = plan_existing(&mut *conn, schema, &placement.tenant_id, location).await;
        conn.done(result.is_err()).await;
        result
    }

    async fn provision(&self, placement: &Placement) -> Result<DatabaseOutcome> {
        self.schema(placement.isolation)?;
        let target = self.target(placement)?;
        let _guard = self.locks.lock(&target.location()).await;
        let mut server = self.server_conn(&target).await?;
        let outcome = dedicated::provision(&mut server, &target, &placement.tenant_id).await?;
        drop(server);
        // Reachable: a database of its own is connected to once. A schema or
        // the shared database is reached through the connection just used.
        if let TargetKind::Database(_) = &target.kind {
            close(connect(&target.data_options(), &target.location()).await?).await;
        }
        Ok(outcome)
    }

    /// One transaction in five round trips: `BEGIN` (with `search_path`), the
    /// advisory lock, the ledger made if missing and read, the pending
    /// migrations with their ledger rows, `COMMIT`.
    async fn migrate(&self, placement: &Placement) -> Result<Vec<MigrationInfo>> {
        let schema = self.schema(placement.isolation)?;
        let target = self.target(placement)?;
        let location = target.location();
        let _guard = self.locks.lock(&location).await;
        let mut conn = self.work_conn(&target, placement).await?;
        let result = async {
            let what = || format!("migrating {location}");
            let mut tx = conn::begin(&mut conn, target.schema(), &what()).await?;
            // The lock inside the transaction sqlx tracks (see `conn::begin`).
            tx.execute(sqlx::raw_sql(AssertSqlSafe(xact_lock_sql(&location))))
                .await
                .map_err(|e| db_error(COMPONENT, what(), e))?;
            let run = migrate::run(
                &mut *tx,
                schema.migrator(),
                self.schemas.hook.as_ref(),
                placement,
                COMPONENT,
                &location,
            )
            .await;
            // Committed also after a failure: what was applied before it stays
            // (a statement that failed outside a savepoint aborted the
            // transaction, and its commit rolls back instead).
            tx.commit()
                .await
                .map_err(|e| db_error(COMPONENT, what(), e))?;
            run
        }
        .await;
        conn.done(result.is_err()).await;
        match result {
            Ok(applied) => Ok(applied),
            Err(e) => Err(self.missing_or(&target, placement, e).await),
        }
    }

    async fn seed(&self, placement: &Placement) -> Result<Vec<SeedInfo>> {
        let schema = self.schema(placement.isolation)?;
        let target = self.target(placement)?;
        let location = target.location();
        let mut known = self.seed_ledgers().contains(&location);
        let mut conn = self.work_conn(&target, placement).await?;
        let result = loop {
            let result = conn::apply(
                &mut conn,
                schema.seeds(),
                &placement.tenant_id,
                target.schema(),
                &location,
                known,
            )
            .await;
            if known && result.is_err() {
                // The ledger remembered may be gone (the database was reset
                // meanwhile): once more, making it if missing.
                self.seed_ledgers().remove(&location);
                known = false;
                continue;
            }
            break result;
        };
        conn.done(result.is_err()).await;
        match result {
            Ok(applied) => {
                if matches!(target.kind, TargetKind::Shared) && !known {
                    self.seed_ledgers().insert(location);
                }
                Ok(applied)
            }
            Err(e) => Err(self.missing_or(&target, placement, e).await),
        }
    }

    async fn upgrade(&self, databases: &[(Placement, Vec<TenantId>)]) -> Vec<Result<Upgrade>> {
        self.upgrade_databases(databases).await
    }

    async fn drop_tenant(&self, placement: &Placement, reason: DropReason) -> Result<()> {
        let schema = self.schema(placement.isolation)?;
        let target = self.target(placement)?;
        let _guard = self.locks.lock(&target.location()).await;
        if let TargetKind::Shared = target.kind {
            let mut conn = self.tenant_conn(&target, placement).await?;
            let result =
                delete_tenant_rows(&mut *conn, schema.tables(), &placement.tenant_id).await;
            conn.done(result.is_err()).await;
            let removed = result?;
            tracing::info!(tenant_id = %placement.tenant_id, ?reason, removed, "tenant rows removed");
            return Ok(());
        }
        let mut server = self.server_conn(&target).await?;
        dedicated::drop(
            &mut server,
            &target,
            &placement.tenant_id,
            reason == DropReason::Compensation,
        )
        .await
    }

    /// Within one database (two schemas, or a schema and the shared
    /// tables), `INSERT ... SELECT` per table; between databases, `COPY` out
    /// of the source and into the target. All in one transaction on the
    /// target, under its lock. Refused before anything is written when a
    /// copied primary key is used by another tenant of a shared target.
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
}
