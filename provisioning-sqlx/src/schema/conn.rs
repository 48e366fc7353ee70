//! The tenant-level work both backends do alike on a connection (reading a
//! tenant's pending migrations and seeds, removing a shared tenant's rows),
//! written once over [`SchemaConn`], which holds what differs.

use futures_util::future::BoxFuture;
use provisioning_core::{Result, SchemaPreview, TenantId};
use sqlx::Connection;
use sqlx::migrate::Migrate;

use crate::error::db_error;
use crate::schema::migrate::{self, LEDGER_TABLE};
use crate::schema::seed::{LedgerRow, Seed, pending_seeds};
use crate::schema::sql::quote_ident;
use crate::schema::{SEED_LEDGER_TABLE, TenantSchema};

/// A backend's connection as the shared schema code uses it: the tenant
/// placeholder and the table lookup differ between backends, the queries
/// built from them do not.
pub(crate) trait SchemaConn: Connection {
    /// Names the backend in errors.
    const COMPONENT: &'static str;
    /// The tenant id's placeholder in SQL text (`?1` on SQLite, `$1` on
    /// PostgreSQL).
    const TENANT_PARAM: &'static str;

    /// The statement, with the tenant id bound to its placeholder, that
    /// takes the tenant's lock until the transaction ends, on a backend
    /// where the removal of its rows needs one (SQLite's write transaction
    /// locks the whole file already).
    fn tenant_lock() -> Option<&'static str>;

    /// Whether `table` exists (on PostgreSQL: is visible on the search path).
    fn table_exists<'e>(&'e mut self, table: &'e str) -> BoxFuture<'e, Result<bool>>;

    /// Runs `sql` with `tenant` bound to its placeholder; the rows it changed.
    fn execute_for<'e>(
        &'e mut self,
        sql: String,
        tenant: &'e TenantId,
    ) -> BoxFuture<'e, sqlx::Result<u64>>;

    /// The seed-ledger rows `sql` selects, with `tenant` bound.
    fn fetch_ledger<'e>(
        &'e mut self,
        sql: String,
        tenant: &'e TenantId,
    ) -> BoxFuture<'e, sqlx::Result<Vec<LedgerRow>>>;
}

/// Implements [`SchemaConn`] for a backend's connection type. The method
/// bodies read the same for both backends, but written generically they
/// would need sqlx's executor and encoding bounds on every caller.
macro_rules! impl_schema_conn {
    ($conn:ty, $component:expr, $param:literal, $table_exists:path, $tenant_lock:expr) => {
        impl $crate::schema::conn::SchemaConn for $conn {
            const COMPONENT: &'static str = $component;
            const TENANT_PARAM: &'static str = $param;

            fn tenant_lock() -> Option<&'static str> {
                $tenant_lock
            }

            fn table_exists<'e>(
                &'e mut self,
                table: &'e str,
            ) -> ::futures_util::future::BoxFuture<'e, ::provisioning_core::Result<bool>> {
                Box::pin($table_exists(self, table))
            }

            fn execute_for<'e>(
                &'e mut self,
                sql: String,
                tenant: &'e ::provisioning_core::TenantId,
            ) -> ::futures_util::future::BoxFuture<'e, ::sqlx::Result<u64>> {
                Box::pin(async move {
                    let done = ::sqlx::query(::sqlx::AssertSqlSafe(sql))
                        .bind(tenant.as_str())
                        .execute(self)
                        .await?;
                    Ok(done.rows_affected())
                })
            }

            fn fetch_ledger<'e>(
                &'e mut self,
                sql: String,
                tenant: &'e ::provisioning_core::TenantId,
            ) -> ::futures_util::future::BoxFuture<
                'e,
                ::sqlx::Result<Vec<$crate::schema::seed::LedgerRow>>,
            > {
                Box::pin(
                    ::sqlx::query_as(::sqlx::AssertSqlSafe(sql))
                        .bind(tenant.as_str())
                        .fetch_all(self),
                )
            }
        }
    };
}
pub(crate) use impl_schema_conn;

/// The plan of a database that does not exist yet: everything pending.
pub(crate) fn plan_absent<C>(schema: &TenantSchema<C>, location: String) -> SchemaPreview {
    let migrations = migrate::all(schema.migrator());
    let seeds = schema.seeds().iter().map(Seed::info).collect();
    SchemaPreview::new(location, false, true, migrations, seeds)
}

/// The plan of an existing database: the migrations and seeds not in its
/// ledgers. Only reads: a ledger not there yet is not created.
pub(crate) async fn plan_existing<C: SchemaConn + Migrate>(
    conn: &mut C,
    schema: &TenantSchema<C>,
    tenant: &TenantId,
    location: String,
) -> Result<SchemaPreview> {
    let ledger = conn.table_exists(LEDGER_TABLE).await?;
    let migrations =
        migrate::pending(conn, schema.migrator(), ledger, C::COMPONENT, &location).await?;
    let applied = if conn.table_exists(SEED_LEDGER_TABLE).await? {
        read_ledger(conn, tenant).await?
    } else {
        Vec::new()
    };
    let seeds = pending_seeds(schema.seeds(), &applied, tenant)?
        .into_iter()
        .map(Seed::info)
        .collect();
    Ok(SchemaPreview::new(location, true, false, migrations, seeds))
}

/// The tenant's rows in the seed ledger, which must exist.
pub(crate) async fn read_ledger<C: SchemaConn>(
    conn: &mut C,
    tenant: &TenantId,
) -> Result<Vec<LedgerRow>> {
    let sql = format!(
        "SELECT name, version, checksum FROM {SEED_LEDGER_TABLE} WHERE tenant_id = {}",
        C::TENANT_PARAM
    );
    conn.fetch_ledger(sql, tenant)
        .await
        .map_err(|e| db_error(C::COMPONENT, "reading the seed ledger", e))
}

/// Deletes the tenant's rows from `tables` in reverse order (children before
/// parents) and its seed-ledger rows, in one transaction. Tables not created
/// yet (a provisioning that failed early) are skipped, so this is idempotent.
/// Returns the number of rows removed.
pub(crate) async fn delete_tenant_rows<C: SchemaConn>(
    conn: &mut C,
    tables: &[String],
    tenant: &TenantId,
) -> Result<u64> {
    let err = |e| db_error(C::COMPONENT, format!("removing the rows of {tenant}"), e);
    let mut tx = conn.begin().await.map_err(err)?;
    if let Some(lock) = C::tenant_lock() {
        tx.execute_for(lock.to_owned(), tenant).await.map_err(err)?;
    }
    let mut removed = 0;
    for table in tables
        .iter()
        .rev()
        .map(String::as_str)
        .chain([SEED_LEDGER_TABLE])
    {
        if !tx.table_exists(table).await? {
            continue;
        }
        let sql = format!(
            "DELETE FROM {} WHERE tenant_id = {}",
            quote_ident(table),
            C::TENANT_PARAM
        );
        removed += tx.execute_for(sql, tenant).await.map_err(err)?;
    }
    tx.commit().await.map_err(err)?;
    Ok(removed)
}
