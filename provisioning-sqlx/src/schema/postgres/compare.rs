//! [`compare_tenant`](provisioning_core::TenantSchemaManager::compare_tenant)
//! for [`PostgresSchemaManager`]: each table's rows counted and checksummed on
//! both sides, as [`crate::schema::copy`] defines them.

use provisioning_core::{Placement, Result, TableComparison, TenantId};
use sqlx::{AssertSqlSafe, PgConnection};

use super::PostgresSchemaManager;
use super::catalog::{self, qualified};
use super::conn::{Access, COMPONENT, TenantConn, begin_as};
use super::copy::{Conns, Sides, column_list, same_tenant, scope};
use super::dedicated::require;
use super::location::Target;
use crate::error::db_error;
use crate::schema::copy::{RowDigest, TablePlan};

impl PostgresSchemaManager {
    /// See [`compare_tenant`](provisioning_core::TenantSchemaManager::compare_tenant).
    pub(super) async fn compare(
        &self,
        source: &Placement,
        target: &Placement,
    ) -> Result<Vec<TableComparison>> {
        let tenant = same_tenant(source, target)?;
        let from = self.target(source)?;
        let to = self.target(target)?;
        if from.same_database(&to) {
            let mut conn = self.tenant_conn(&from, source).await?;
            let result = self.compare_within(&from, &to, &mut conn, tenant).await;
            conn.done(result.is_err()).await;
            return result;
        }
        let (mut from_conn, mut to_conn) = self.open_pair((&from, source), (&to, target)).await?;
        let result = self
            .compare_between(&from, &to, &mut from_conn, &mut to_conn, tenant)
            .await;
        from_conn.done(result.is_err()).await;
        to_conn.done(result.is_err()).await;
        result
    }

    /// Both sides (or the same placement twice) in one database: one
    /// snapshot on one connection.
    async fn compare_within(
        &self,
        from: &Target,
        to: &Target,
        conn: &mut TenantConn,
        tenant: &TenantId,
    ) -> Result<Vec<TableComparison>> {
        let what = format!("comparing {tenant} at {}", from.location());
        let mut tx = begin_as(conn, Access::Snapshot, None, &what).await?;
        require(&mut tx, to, tenant).await?;
        let sides = Sides::new(
            tenant,
            (from, catalog::schema_of(&mut tx, from, None).await?),
            (to, catalog::schema_of(&mut tx, to, None).await?),
        );
        let same = from.location() == to.location();
        let compared = self
            .compare_rows(&mut Conns::One(&mut tx), &sides, same)
            .await?;
        tx.commit()
            .await
            .map_err(|e| db_error(COMPONENT, what, e))?;
        Ok(compared)
    }

    /// Two databases: a snapshot of each.
    async fn compare_between(
        &self,
        from: &Target,
        to: &Target,
        from_conn: &mut PgConnection,
        to_conn: &mut PgConnection,
        tenant: &TenantId,
    ) -> Result<Vec<TableComparison>> {
        let reading = |t: &Target| format!("comparing {tenant} at {}", t.location());
        let mut source = begin_as(from_conn, Access::Snapshot, None, &reading(from)).await?;
        let mut target = begin_as(to_conn, Access::Snapshot, None, &reading(to)).await?;
        let sides = Sides::new(
            tenant,
            (from, catalog::schema_of(&mut source, from, None).await?),
            (to, catalog::schema_of(&mut target, to, None).await?),
        );
        let mut conns = Conns::Two {
            source: &mut source,
            target: &mut target,
        };
        let compared = self.compare_rows(&mut conns, &sides, false).await?;
        source
            .commit()
            .await
            .map_err(|e| db_error(COMPONENT, reading(from), e))?;
        target
            .commit()
            .await
            .map_err(|e| db_error(COMPONENT, reading(to), e))?;
        Ok(compared)
    }

    /// Each table's comparison; `same` when both sides are one placement,
    /// read once. Tables on neither side are left out.
    async fn compare_rows(
        &self,
        conns: &mut Conns<'_>,
        sides: &Sides<'_>,
        same: bool,
    ) -> Result<Vec<TableComparison>> {
        let mut compared = Vec::new();
        for table in self.move_tables(conns, sides).await? {
            let source = catalog::columns(conns.source(), &sides.source, &table).await?;
            let target = if same {
                source.clone()
            } else {
                catalog::columns(conns.target(), &sides.target, &table).await?
            };
            if !source.exist() && !target.exist() {
                continue;
            }
            let plan = TablePlan::new(&table, &source.names, &target.names);
            let source_digest = if source.exist() {
                let scoped = plan.source_scoped;
                digest(conns.source(), &sides.source, &plan, scoped, sides).await?
            } else {
                RowDigest::default().finish()
            };
            let target_digest = if same {
                source_digest.clone()
            } else if target.exist() {
                let scoped = plan.target_scoped;
                digest(conns.target(), &sides.target, &plan, scoped, sides).await?
            } else {
                RowDigest::default().finish()
            };
            compared.push(TableComparison::new(table, source_digest, target_digest));
        }
        Ok(compared)
    }
}

/// The count and checksum of the tenant's rows of `plan`'s table in
/// `schema`: each row as the text of its sorted common columns, in byte
/// order of that text (the `C` collation, the same on every server).
async fn digest(
    conn: &mut PgConnection,
    schema: &str,
    plan: &TablePlan,
    scoped: bool,
    sides: &Sides<'_>,
) -> Result<(u64, String)> {
    // Aggregated on the server: one value per side to fetch instead of a
    // message per row.
    let sql = format!(
        "SELECT COUNT(*), string_agg(r, E'\\n' ORDER BY r COLLATE \"C\") \
         FROM (SELECT ROW({})::text AS r FROM {}{}) x",
        column_list(&plan.compared()),
        qualified(schema, &plan.table),
        scope(scoped, &sides.literal())
    );
    let what = || {
        format!(
            "reading {} of {} in schema {schema}",
            plan.table, sides.tenant
        )
    };
    let (rows, joined): (i64, Option<String>) = sqlx::query_as(AssertSqlSafe(sql))
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| db_error(COMPONENT, what(), e))?;
    Ok(RowDigest::of_joined(
        u64::try_from(rows).unwrap_or_default(),
        joined.as_deref().unwrap_or_default(),
    ))
}
