//! [`TenantSchemaManager`] for [`PgSchemaManager`].

use async_trait::async_trait;
use provisioning_core::{
    DatabaseOutcome, DropReason, Error, MigrationInfo, Result, SchemaPlan, SeedInfo, TenantPlan,
    TenantSchemaManager,
};
use sqlx::pool::PoolConnection;
use sqlx::{Connection, Postgres};

use super::conn::{
    self, COMPONENT, TenantConn, close, connect, search_path, table_exists, xact_lock,
};
use super::{PgSchemaManager, Target, TargetKind, dedicated};
use crate::error::db_error;
use crate::schema::migrate::{self, LEDGER_TABLE};

impl PgSchemaManager {
    /// A connection to the shard server's database, from its pool.
    async fn server_conn(&self, target: &Target<'_>) -> Result<PoolConnection<Postgres>> {
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
    async fn tenant_conn(&self, target: &Target<'_>, plan: &TenantPlan) -> Result<TenantConn> {
        let missing = || Error::NotFound {
            kind: "tenant database",
            id: format!("{} ({})", plan.tenant_id, target.location()),
        };
        match &target.kind {
            TargetKind::Database(name) => {
                let mut server = self.server_conn(target).await?;
                if dedicated::inspect(&mut server, &target.kind)
                    .await?
                    .is_none()
                {
                    return Err(missing());
                }
                drop(server);
                let options = target.server.options.clone().database(name);
                Ok(TenantConn::Own(
                    connect(&options, &target.location()).await?,
                ))
            }
            TargetKind::Schema(name) => {
                let mut conn = self.server_conn(target).await?;
                if dedicated::inspect(&mut conn, &target.kind).await?.is_none() {
                    return Err(missing());
                }
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

#[async_trait]
impl TenantSchemaManager for PgSchemaManager {
    async fn plan(&self, plan: &TenantPlan) -> Result<SchemaPlan> {
        let schema = self.schema(plan.isolation)?;
        let target = self.target(plan)?;
        let location = target.location();
        let mut conn = match self.tenant_conn(&target, plan).await {
            Ok(conn) => conn,
            Err(Error::NotFound { .. }) => {
                let seeds = schema.seeds().iter().map(|s| s.info()).collect();
                return Ok(SchemaPlan::new(
                    location,
                    false,
                    true,
                    migrate::all(schema.migrator()),
                    seeds,
                ));
            }
            Err(e) => return Err(e),
        };
        // Only reads: the ledgers are looked up, never created.
        let result = async {
            let ledger = table_exists(&mut conn, LEDGER_TABLE).await?;
            let migrations =
                migrate::pending(&mut *conn, schema.migrator(), ledger, COMPONENT, &location)
                    .await?;
            let seeds = conn::pending(&mut conn, schema.seeds(), &plan.tenant_id).await?;
            Ok::<_, Error>((migrations, seeds))
        }
        .await;
        conn.done().await;
        let (migrations, seeds) = result?;
        Ok(SchemaPlan::new(location, true, false, migrations, seeds))
    }

    async fn provision(&self, plan: &TenantPlan) -> Result<DatabaseOutcome> {
        self.schema(plan.isolation)?;
        let target = self.target(plan)?;
        let _guard = self.locks.lock(&target.location()).await;
        let mut server = self.server_conn(&target).await?;
        let outcome = dedicated::provision(&mut server, &target, &plan.tenant_id).await?;
        drop(server);
        // Reachable: a database of its own is connected to once. A schema or
        // the shared database is reached through the connection just used.
        if let TargetKind::Database(name) = &target.kind {
            let options = target.server.options.clone().database(name);
            close(connect(&options, &target.location()).await?).await;
        }
        Ok(outcome)
    }

    /// One transaction: the advisory lock, the ledger made if missing and
    /// read, the pending migrations and their ledger rows, one commit.
    async fn migrate(&self, plan: &TenantPlan) -> Result<Vec<MigrationInfo>> {
        let schema = self.schema(plan.isolation)?;
        let target = self.target(plan)?;
        let location = target.location();
        let _guard = self.locks.lock(&location).await;
        let mut conn = self.tenant_conn(&target, plan).await?;
        let result = async {
            let mut tx = conn
                .begin()
                .await
                .map_err(|e| db_error(COMPONENT, format!("migrating {location}"), e))?;
            xact_lock(&mut tx, &location).await?;
            let run = migrate::run(
                &mut *tx,
                schema.migrator(),
                self.hook.as_ref(),
                plan,
                COMPONENT,
                &location,
            )
            .await;
            // Committed also after a failure: what was applied before it stays
            // (a statement that failed outside a savepoint aborted the
            // transaction, and its commit rolls back instead).
            tx.commit()
                .await
                .map_err(|e| db_error(COMPONENT, format!("migrating {location}"), e))?;
            run
        }
        .await;
        conn.done().await;
        result
    }

    async fn seed(&self, plan: &TenantPlan) -> Result<Vec<SeedInfo>> {
        let schema = self.schema(plan.isolation)?;
        let target = self.target(plan)?;
        let location = target.location();
        let mut conn = self.tenant_conn(&target, plan).await?;
        let result = conn::apply(&mut conn, schema.seeds(), &plan.tenant_id, &location).await;
        conn.done().await;
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
            conn.done().await;
            let removed = result?;
            tracing::info!(tenant_id = %plan.tenant_id, ?reason, removed, "tenant rows removed");
            return Ok(());
        }
        let mut server = self.server_conn(&target).await?;
        dedicated::drop(
            &mut server,
            &target,
            &plan.tenant_id,
            reason == DropReason::Compensation,
        )
        .await
    }
}
