//! [`copy_tenant`](provisioning_core::TenantSchemaManager::copy_tenant) for
//! [`PostgresSchemaManager`], following the rules of [`crate::schema::copy`]:
//! `INSERT ... SELECT` within one database, `COPY` between two.

use futures_util::StreamExt;
use provisioning_core::{Error, Placement, Result, TenantId};
use sqlx::{AssertSqlSafe, Executor, PgConnection};

use super::catalog::{self, qualified};
use super::conn::{Access, COMPONENT, TenantConn, begin_as, create_ledger_in, xact_lock_sql};
use super::keys::{advance, check_keys};
use super::location::{Target, TargetKind};
use super::{PostgresSchemaManager, dedicated};
use crate::error::db_error;
use crate::schema::SEED_LEDGER_TABLE;
use crate::schema::copy::{TENANT_COLUMN, TablePlan, declared_tables, seed_checksums, with_ledger};
use crate::schema::sql::{quote_ident, quote_literal};

/// The connections a copy or a comparison works on: one when both sides'
/// tables are in one database (told apart by their schemas), else one per
/// side.
pub(super) enum Conns<'a> {
    One(&'a mut PgConnection),
    Two {
        source: &'a mut PgConnection,
        target: &'a mut PgConnection,
    },
}

impl Conns<'_> {
    pub(super) fn source(&mut self) -> &mut PgConnection {
        match self {
            Conns::One(conn) => conn,
            Conns::Two { source, .. } => source,
        }
    }

    pub(super) fn target(&mut self) -> &mut PgConnection {
        match self {
            Conns::One(conn) => conn,
            Conns::Two { target, .. } => target,
        }
    }
}

/// A move's two sides once connected: the tenant, the schemas their tables
/// are in, and where the target is (for errors and locks).
pub(super) struct Sides<'t> {
    pub(super) tenant: &'t TenantId,
    pub(super) source: String,
    pub(super) target: String,
    pub(super) target_location: String,
    /// Whether each side's rows are shared with other tenants (`tenant_id`
    /// rows in a shard's database), source then target.
    pub(super) shares_rows: [bool; 2],
}

impl<'t> Sides<'t> {
    /// The sides of a move of `tenant` from `from` to `to`, whose tables
    /// are in the schemas `source` and `target`.
    pub(super) fn new(
        tenant: &'t TenantId,
        (from, source): (&Target, String),
        (to, target): (&Target, String),
    ) -> Self {
        Sides {
            tenant,
            source,
            target,
            target_location: to.location(),
            shares_rows: [from.shares_rows(), to.shares_rows()],
        }
    }

    /// The tenant's id as a quoted literal: a validated slug, safe inline.
    pub(super) fn literal(&self) -> String {
        quote_literal(self.tenant.as_str())
    }
}

/// The tenant both placements are of: a move never changes it.
pub(super) fn same_tenant<'p>(source: &'p Placement, target: &Placement) -> Result<&'p TenantId> {
    if source.tenant_id != target.tenant_id {
        return Err(Error::invalid(
            "move",
            format!(
                "the source is tenant {} and the target tenant {}: a move copies one tenant's data",
                source.tenant_id, target.tenant_id
            ),
        ));
    }
    Ok(&source.tenant_id)
}

/// `SELECT cols[, tenant literal] FROM source [WHERE tenant_id = literal]`'s
/// select list and source: the rows of one table a copy reads.
fn select(plan: &TablePlan, sides: &Sides<'_>) -> String {
    let literal = sides.literal();
    let mut list = column_list(&plan.columns);
    if plan.target_scoped {
        list.push_str(", ");
        list.push_str(&literal);
    }
    format!(
        "SELECT {list} FROM {}{}",
        qualified(&sides.source, &plan.table),
        scope(plan.source_scoped, &literal)
    )
}

/// The target's column list a copy writes.
fn insert_columns(plan: &TablePlan) -> String {
    let mut list = column_list(&plan.columns);
    if plan.target_scoped {
        list.push_str(", ");
        list.push_str(&quote_ident(TENANT_COLUMN));
    }
    list
}

pub(super) fn column_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// ` WHERE tenant_id = literal` when `scoped`.
pub(super) fn scope(scoped: bool, literal: &str) -> String {
    scope_in("", scoped, literal)
}

/// [`scope`] of the table named `alias` in the query.
pub(super) fn scope_in(alias: &str, scoped: bool, literal: &str) -> String {
    if !scoped {
        return String::new();
    }
    let dot = if alias.is_empty() { "" } else { "." };
    format!(
        " WHERE {alias}{dot}{} = {literal}",
        quote_ident(TENANT_COLUMN)
    )
}

pub(super) async fn exec(
    conn: &mut PgConnection,
    sql: String,
    what: impl Fn() -> String,
) -> Result<u64> {
    conn.execute(sqlx::raw_sql(AssertSqlSafe(sql)))
        .await
        .map(|done| done.rows_affected())
        .map_err(|e| db_error(COMPONENT, what(), e))
}

impl PostgresSchemaManager {
    /// See [`copy_tenant`](provisioning_core::TenantSchemaManager::copy_tenant).
    pub(super) async fn copy(&self, source: &Placement, target: &Placement) -> Result<u64> {
        let tenant = same_tenant(source, target)?;
        let from = self.target(source)?;
        let to = self.target(target)?;
        let location = to.location();
        if from.location() == location {
            return Err(Error::invalid(
                "move",
                format!(
                    "tenant {tenant}'s source and target are both {location}: copying it onto \
                     itself would clear its rows"
                ),
            ));
        }
        let seeds = seed_checksums(self.schema(target.isolation)?);
        let _guard = self.locks.lock(&location).await;
        let rows = if from.same_database(&to) {
            let mut conn = self.tenant_conn(&to, target).await?;
            let result = self
                .copy_within(&from, &to, &mut conn, tenant, &seeds)
                .await;
            conn.release(result.is_err()).await;
            result?
        } else {
            let (mut from_conn, mut to_conn) =
                self.open_pair((&from, source), (&to, target)).await?;
            let result = self
                .copy_between(&from, &to, &mut from_conn, &mut to_conn, tenant, &seeds)
                .await;
            from_conn.release(result.is_err()).await;
            to_conn.release(result.is_err()).await;
            result?
        };
        tracing::info!(
            tenant_id = %tenant,
            source = %from.location(),
            target = %location,
            rows,
            "tenant data copied"
        );
        Ok(rows)
    }

    /// Connections to two sides in different databases. A side in a
    /// database of its own is opened first: its existence check borrows a
    /// connection of its server's pool and gives it back before connecting,
    /// so it never waits on a pool (of one connection, say) whose connection
    /// the other side holds.
    pub(super) async fn open_pair(
        &self,
        (from, source): (&Target, &Placement),
        (to, target): (&Target, &Placement),
    ) -> Result<(TenantConn, TenantConn)> {
        if matches!(to.kind, TargetKind::Database(_)) {
            let to_conn = self.tenant_conn(to, target).await?;
            match self.tenant_conn(from, source).await {
                Ok(from_conn) => Ok((from_conn, to_conn)),
                Err(e) => {
                    to_conn.done(false).await;
                    Err(e)
                }
            }
        } else {
            let from_conn = self.tenant_conn(from, source).await?;
            match self.tenant_conn(to, target).await {
                Ok(to_conn) => Ok((from_conn, to_conn)),
                Err(e) => {
                    from_conn.done(false).await;
                    Err(e)
                }
            }
        }
    }

    /// Both sides in one database: one transaction, `INSERT ... SELECT`.
    async fn copy_within(
        &self,
        from: &Target,
        to: &Target,
        conn: &mut PgConnection,
        tenant: &TenantId,
        seeds: &[(String, i64, String)],
    ) -> Result<u64> {
        let location = to.location();
        let what = || format!("copying {tenant} to {location}");
        let mut tx = begin_as(conn, Access::Write, to.schema(), &what()).await?;
        exec(&mut tx, xact_lock_sql(&location), what).await?;
        dedicated::require(&mut tx, from, tenant).await?;
        let sides = Sides::new(
            tenant,
            (from, catalog::schema_of(&mut tx, from, to.schema()).await?),
            (to, catalog::schema_of(&mut tx, to, to.schema()).await?),
        );
        let rows = self
            .copy_rows(&mut Conns::One(&mut tx), &sides, seeds)
            .await?;
        tx.commit()
            .await
            .map_err(|e| db_error(COMPONENT, what(), e))?;
        Ok(rows)
    }

    /// Two databases: a snapshot of the source `COPY`'d out, into one
    /// transaction on the target.
    async fn copy_between(
        &self,
        from: &Target,
        to: &Target,
        from_conn: &mut PgConnection,
        to_conn: &mut PgConnection,
        tenant: &TenantId,
        seeds: &[(String, i64, String)],
    ) -> Result<u64> {
        let location = to.location();
        let what = || format!("copying {tenant} to {location}");
        let reading = format!("reading {tenant} at {}", from.location());
        let mut source = begin_as(from_conn, Access::Snapshot, from.schema(), &reading).await?;
        let mut target = begin_as(to_conn, Access::WriteCanonical, to.schema(), &what()).await?;
        exec(&mut target, xact_lock_sql(&location), what).await?;
        let sides = Sides::new(
            tenant,
            (
                from,
                catalog::schema_of(&mut source, from, from.schema()).await?,
            ),
            (to, catalog::schema_of(&mut target, to, to.schema()).await?),
        );
        let mut conns = Conns::Two {
            source: &mut source,
            target: &mut target,
        };
        let rows = self.copy_rows(&mut conns, &sides, seeds).await?;
        target
            .commit()
            .await
            .map_err(|e| db_error(COMPONENT, what(), e))?;
        source
            .commit()
            .await
            .map_err(|e| db_error(COMPONENT, reading, e))?;
        Ok(rows)
    }

    /// The tables a move copies and compares: the schemas' declared ones,
    /// else the source's own in creation order; the seed ledger last.
    pub(super) async fn move_tables(
        &self,
        conns: &mut Conns<'_>,
        sides: &Sides<'_>,
    ) -> Result<Vec<String>> {
        match declared_tables(&self.schemas, sides.shares_rows[0]) {
            Some(tables) => Ok(tables),
            None => Ok(with_ledger(
                catalog::tables(conns.source(), &sides.source).await?,
            )),
        }
    }

    /// Replaces the tenant's rows at the target with the source's, inside
    /// the caller's transaction(s); the rows copied.
    async fn copy_rows(
        &self,
        conns: &mut Conns<'_>,
        sides: &Sides<'_>,
        seeds: &[(String, i64, String)],
    ) -> Result<u64> {
        let mut work = Vec::new();
        for table in self.move_tables(conns, sides).await? {
            let source = catalog::columns(conns.source(), &sides.source, &table).await?;
            if !source.exist() {
                continue;
            }
            let mut target = catalog::columns(conns.target(), &sides.target, &table).await?;
            if !target.exist() && table == SEED_LEDGER_TABLE {
                // The ledger comes along, so that the target counts as seeded.
                exec(conns.target(), create_ledger_in(&sides.target), || {
                    format!("creating the seed ledger at {}", sides.target_location)
                })
                .await?;
                target = catalog::columns(conns.target(), &sides.target, &table).await?;
            }
            if !target.exist() {
                return Err(Error::invalid(
                    "move",
                    format!(
                        "table {table} is not at {}: provision and migrate the target before \
                         copying",
                        sides.target_location
                    ),
                ));
            }
            let plan = TablePlan::new(&table, &source.names, &target.names);
            let [source_shares, target_shares] = sides.shares_rows;
            plan.check(source_shares, target_shares)?;
            if !plan.columns.is_empty() {
                work.push((plan, target.sequences));
            }
        }
        for (plan, _) in &work {
            if plan.target_scoped {
                check_keys(conns, plan, sides).await?;
            }
        }
        let literal = sides.literal();
        for (plan, _) in work.iter().rev() {
            let sql = format!(
                "DELETE FROM {}{}",
                qualified(&sides.target, &plan.table),
                scope(plan.target_scoped, &literal)
            );
            exec(conns.target(), sql, || {
                format!("clearing {} at {}", plan.table, sides.target_location)
            })
            .await?;
        }
        let mut rows = 0;
        for (plan, sequences) in &work {
            rows += copy_table(conns, plan, sides).await?;
            for (column, sequence) in sequences {
                if plan.columns.contains(column) {
                    advance(conns.target(), plan, column, sequence, sides).await?;
                }
            }
        }
        if work.iter().any(|(plan, _)| plan.table == SEED_LEDGER_TABLE) {
            // The ledger says what the target's schema ran (see schema::copy).
            let literal = sides.literal();
            for (name, version, checksum) in seeds {
                let sql = format!(
                    "UPDATE {} SET checksum = {} WHERE tenant_id = {literal} AND name = {} \
                     AND version = {version}",
                    qualified(&sides.target, SEED_LEDGER_TABLE),
                    quote_literal(checksum),
                    quote_literal(name),
                );
                exec(conns.target(), sql, || {
                    format!("recording the seeds at {}", sides.target_location)
                })
                .await?;
            }
        }
        Ok(rows)
    }
}

/// How many bytes of `COPY` data are gathered before they are sent on.
const COPY_BATCH: usize = 64 * 1024;

/// Copies one table's rows; how many.
async fn copy_table(conns: &mut Conns<'_>, plan: &TablePlan, sides: &Sides<'_>) -> Result<u64> {
    let target = qualified(&sides.target, &plan.table);
    let what = || format!("copying {} to {}", plan.table, sides.target_location);
    match conns {
        Conns::One(conn) => {
            // OVERRIDING SYSTEM VALUE: keep the ids of `GENERATED ALWAYS`
            // identity columns too (COPY always does).
            let sql = format!(
                "INSERT INTO {target} ({}) OVERRIDING SYSTEM VALUE {}",
                insert_columns(plan),
                select(plan, sides)
            );
            exec(conn, sql, what).await
        }
        Conns::Two { source, target: to } => {
            let out = format!("COPY ({}) TO STDOUT", select(plan, sides));
            let into = format!("COPY {target} ({}) FROM STDIN", insert_columns(plan));
            let mut sink = to
                .copy_in_raw(&into)
                .await
                .map_err(|e| db_error(COMPONENT, what(), e))?;
            let mut failure = None;
            match source.copy_out_raw(&out).await {
                Ok(mut chunks) => {
                    // The server sends a row per chunk: sent on as they come,
                    // each would be a write of its own. Batched, a table of a
                    // thousand rows is one or two.
                    let mut batch = Vec::with_capacity(COPY_BATCH);
                    while let Some(chunk) = chunks.next().await {
                        let sent = match chunk {
                            Ok(bytes) => {
                                batch.extend_from_slice(&bytes);
                                if batch.len() >= COPY_BATCH {
                                    let full = std::mem::take(&mut batch);
                                    sink.send(full).await.map(|_| ())
                                } else {
                                    Ok(())
                                }
                            }
                            Err(e) => Err(e),
                        };
                        if let Err(e) = sent {
                            failure = Some(e);
                            break;
                        }
                    }
                    if failure.is_none()
                        && !batch.is_empty()
                        && let Err(e) = sink.send(batch).await
                    {
                        failure = Some(e);
                    }
                }
                Err(e) => failure = Some(e),
            }
            match failure {
                None => sink
                    .finish()
                    .await
                    .map_err(|e| db_error(COMPONENT, what(), e)),
                Some(e) => {
                    // The connection is closed by the caller either way.
                    let _ = sink.abort("the source of the copy failed").await;
                    Err(db_error(COMPONENT, what(), e))
                }
            }
        }
    }
}
