//! Your application's own way into a tenant's data: a connection to where
//! its placement says it is, and the lock that keeps your writes and the
//! tenant's removal from interleaving.

use provisioning_core::{Placement, Result};
use sqlx::{AssertSqlSafe, PgConnection};

use super::conn::{COMPONENT, close, connect, tenant_lock_sql};
use super::dedicated::missing;
use super::{PostgresSchemaManager, TargetKind};
use crate::error::db_error;
use crate::schema::sql::quote_ident;

impl PostgresSchemaManager {
    /// A connection of its own to `placement`'s tenant data, for your
    /// application's reads and writes: to the tenant's database, to the
    /// server database with `search_path` set to the tenant's schema, or to
    /// the shared database (where the tenant's rows carry `tenant_id`).
    /// Opened where the placement records, with the password of the shard
    /// map, as every method of the manager opens it.
    ///
    /// ```no_run
    /// # async fn example(
    /// #     manager: &provisioning_sqlx::PostgresSchemaManager,
    /// #     placement: &provisioning_core::Placement,
    /// # ) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut conn = manager.connect(placement).await?;
    /// let users: i64 = provisioning_sqlx::sqlx::query_scalar("SELECT count(*) FROM users")
    ///     .fetch_one(&mut conn)
    ///     .await?;
    /// println!("{users} users");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::NotFound`](provisioning_core::Error::NotFound) (kind `tenant database`) when the tenant's database
    /// or schema does not exist (it was removed);
    /// [`Error::Backend`](provisioning_core::Error::Backend) when the
    /// server cannot be reached.
    pub async fn connect(&self, placement: &Placement) -> Result<PgConnection> {
        let target = self.target(placement)?;
        match &target.kind {
            TargetKind::Database(_) => self.own_database_conn(&target, placement).await,
            TargetKind::Schema(name) => {
                let mut conn = connect(&target.data_options(), &target.location()).await?;
                // One round trip: the schema chosen, and whether it exists.
                let found: Option<bool> = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $2) \
                     FROM set_config('search_path', $1, false)",
                )
                .bind(quote_ident(name))
                .bind(name)
                .fetch_optional(&mut conn)
                .await
                .map_err(|e| db_error(COMPONENT, format!("selecting schema {name}"), e))?;
                if found != Some(true) {
                    close(conn).await;
                    return Err(missing(&target, &placement.tenant_id));
                }
                Ok(conn)
            }
            TargetKind::Shared => connect(&target.data_options(), &target.location()).await,
        }
    }

    /// Takes, until the transaction `conn` is in ends, the lock under which
    /// the manager removes a shared tenant's rows. Writes of yours that
    /// first check the tenant's rows are there (its seed, say) and take this
    /// lock at the start of their transaction cannot interleave with its
    /// removal: either the removal comes first and the check finds nothing,
    /// or it waits and removes what you wrote too. (A tenant's schema or
    /// database is dropped under the server's own table locks.)
    ///
    /// # Errors
    /// [`Error::Backend`](provisioning_core::Error::Backend) when the statement fails (outside a transaction
    /// the lock is released at once, and this is not an error).
    pub async fn lock_tenant(&self, conn: &mut PgConnection, placement: &Placement) -> Result<()> {
        sqlx::query(AssertSqlSafe(tenant_lock_sql()))
            .bind(placement.tenant_id.as_str())
            .execute(conn)
            .await
            .map_err(|e| {
                db_error(
                    COMPONENT,
                    format!("locking the data of {}", placement.tenant_id),
                    e,
                )
            })?;
        Ok(())
    }
}
