//! Removing one tenant's rows from a shared SQLite database.

use provisioning_core::{Result, TenantId};
use sqlx::{AssertSqlSafe, Connection, SqliteConnection};

use super::conn::{COMPONENT, table_exists};
use crate::error::db_error;
use crate::schema::sql::quote_ident;

/// Deletes the tenant's rows from `tables` in reverse order (children before
/// parents) and its seed-ledger rows, in one transaction. Tables not created
/// yet (a provisioning that failed early) are skipped, so this is idempotent.
/// Returns the number of rows removed.
pub(super) async fn delete_tenant_rows(
    conn: &mut SqliteConnection,
    tables: &[String],
    tenant: &TenantId,
) -> Result<u64> {
    let err = |e| db_error(COMPONENT, format!("removing the rows of {tenant}"), e);
    let mut tx = conn.begin().await.map_err(err)?;
    let mut removed = 0;
    for table in tables
        .iter()
        .rev()
        .map(String::as_str)
        .chain(["_tenant_seeds"])
    {
        if !table_exists(&mut tx, table).await? {
            continue;
        }
        let sql = format!("DELETE FROM {} WHERE tenant_id = ?1", quote_ident(table));
        removed += sqlx::query(AssertSqlSafe(sql))
            .bind(tenant.as_str())
            .execute(&mut *tx)
            .await
            .map_err(err)?
            .rows_affected();
    }
    tx.commit().await.map_err(err)?;
    Ok(removed)
}
