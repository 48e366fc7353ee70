//! Copying a tenant's data between two SQLite files, and comparing the two
//! sides: the target connection attaches the source (`ATTACH ... AS src`),
//! so each table is one `INSERT ... SELECT` and the copy is one transaction.
//! The rules (tables, columns, scoping, checksums) are
//! [`copy`](crate::schema::copy)'s.

use std::path::{Path, PathBuf};

use provisioning_core::sync::KeyedGuard;
use provisioning_core::{Entity, Error, Isolation, Placement, Result, TableComparison, TenantId};
use sqlx::{AssertSqlSafe, SqliteConnection};

use super::SqliteSchemaManager;
use super::conn::{COMPONENT, close, create_ledger};
use super::parked::FileId;
use super::pools::SharedConn;
use crate::error::db_error;
use crate::schema::SEED_LEDGER_TABLE;
use crate::schema::copy::{
    RowDigest, TENANT_COLUMN, TablePlan, declared_tables, seed_checksums, with_ledger,
};
use crate::schema::sql::quote_ident;

/// The schema name the source is attached under.
const SRC: &str = "src";

/// A connection to the target with the source attached (or the same file
/// as both), holding the target's lock.
struct Attached<'m> {
    conn: Conn,
    /// The target file and its identity, to park a dedicated connection
    /// again for the next step (see `parked`).
    file: (PathBuf, Option<FileId>),
    /// `src`, or `main` when source and target are one file.
    source: &'static str,
    _guard: KeyedGuard<'m, String>,
}

enum Conn {
    /// The kept connection of a shared database.
    Shared(SharedConn),
    /// A connection of its own to a dedicated database.
    Own(SqliteConnection),
}

impl Attached<'_> {
    fn conn(&mut self) -> &mut SqliteConnection {
        match &mut self.conn {
            Conn::Shared(conn) => conn,
            Conn::Own(conn) => conn,
        }
    }

    /// Detaches the source and gives the connection back (a kept one stays
    /// kept; one of its own is parked for the next step when `park`, else
    /// closed). Runs after success and failure alike.
    async fn done(mut self, manager: &SqliteSchemaManager, park: bool) {
        if self.source == SRC {
            let detached = sqlx::query("DETACH DATABASE src")
                .execute(self.conn())
                .await;
            if let Err(error) = detached {
                // A connection still holding the source must not be kept.
                tracing::warn!(%error, "detaching a move's source failed; closing the connection");
                match self.conn {
                    Conn::Shared(shared) => {
                        if let Some(conn) = shared.discard() {
                            close(conn).await;
                        }
                    }
                    Conn::Own(conn) => close(conn).await,
                }
                return;
            }
        }
        if let Conn::Own(conn) = self.conn {
            match self.file {
                (path, Some(id)) if park => manager.parked.park(&path, Some(id), conn).await,
                _ => close(conn).await,
            }
        }
    }
}

impl SqliteSchemaManager {
    /// Opens `target`'s file with `source`'s attached.
    async fn attach(&self, source: &Placement, target: &Placement) -> Result<Attached<'_>> {
        let (from, to) = (self.database_path(source), self.database_path(target));
        if !tokio::fs::try_exists(&from).await.unwrap_or(false) {
            return Err(missing(&source.tenant_id, &from));
        }
        let guard = self.locks.lock(&Self::lock_key(&to)).await;
        let (conn, id) = match target.isolation {
            Isolation::Shared => (
                Conn::Shared(self.pools.acquire(&to, self.busy_timeout, true).await?.1),
                None,
            ),
            Isolation::Dedicated => {
                // The connection `migrate` parked, if any: opening and
                // closing another would checkpoint the file once more.
                let (conn, id) = self.open_dedicated(target, &to).await?;
                (Conn::Own(conn), id)
            }
        };
        let mut attached = Attached {
            conn,
            file: (to.clone(), id),
            source: if same_file(&from, &to) { "main" } else { SRC },
            _guard: guard,
        };
        if attached.source == SRC {
            let result = sqlx::query("ATTACH DATABASE ?1 AS src")
                .bind(from.display().to_string())
                .execute(attached.conn())
                .await;
            if let Err(e) = result {
                attached.source = "main"; // nothing to detach
                attached.done(self, false).await;
                return Err(db_error(
                    COMPONENT,
                    format!("attaching {}", from.display()),
                    e,
                ));
            }
        }
        Ok(attached)
    }

    /// The copy plan of every table both sides have; tables the source
    /// lacks (a ledger never made) are skipped, a table only the source
    /// has is an error (the target's schema is older).
    async fn table_plans(
        &self,
        conn: &mut SqliteConnection,
        source: &str,
        source_shares_rows: bool,
    ) -> Result<Vec<Planned>> {
        let tables = match declared_tables(&self.schemas, source_shares_rows) {
            Some(tables) => tables,
            None => with_ledger(
                sqlx::query_scalar(AssertSqlSafe(format!(
                    "SELECT name FROM {source}.sqlite_master \
                     WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
                )))
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| db_error(COMPONENT, "listing the source's tables", e))?,
            ),
        };
        let mut from = all_columns(conn, source).await?;
        let mut to = all_columns(conn, "main").await?;
        let mut plans = Vec::with_capacity(tables.len());
        for table in tables {
            let Some(source_columns) = from.remove(&table) else {
                continue;
            };
            if !to.contains_key(&table) && table == SEED_LEDGER_TABLE {
                // A target never seeded has no ledger yet: the copy brings its rows.
                create_ledger(conn).await?;
                to = all_columns(conn, "main").await?;
            }
            let Some(target_columns) = to.get(&table) else {
                return Err(Error::invalid(
                    "move",
                    format!("table {table} exists at the source but not at the target"),
                ));
            };
            let plan = TablePlan::new(&table, &source_columns.names, &target_columns.names);
            // Both sides in one order: by key where both sides have the same
            // primary key among the compared columns (a copy keeps keys, so
            // both sides order alike without sorting), else by their text.
            let keys = &source_columns.keys;
            let compared = plan.compared();
            let order = (*keys == target_columns.keys
                && !keys.is_empty()
                && keys.iter().all(|k| compared.contains(k)))
            .then(|| keys.clone());
            plans.push(Planned {
                plan,
                order,
                target_keys: target_columns.keys.clone(),
            });
        }
        Ok(plans)
    }

    /// See [`TenantSchemaManager::copy_tenant`](provisioning_core::TenantSchemaManager::copy_tenant).
    pub(super) async fn copy(&self, source: &Placement, target: &Placement) -> Result<u64> {
        let (from, to) = (self.database_path(source), self.database_path(target));
        if same_file(&from, &to) {
            return Err(Error::invalid(
                "move",
                format!("source and target are the same file {}", to.display()),
            ));
        }
        let seeds = seed_checksums(self.schema(target.isolation)?);
        let mut attached = self.attach(source, target).await?;
        let shares_rows = [source, target].map(|p| p.isolation == Isolation::Shared);
        let result = copy_rows(
            attached.conn(),
            self,
            &source.tenant_id,
            &seeds,
            shares_rows,
        )
        .await;
        // Kept for the verification that follows.
        attached.done(self, result.is_ok()).await;
        result
    }

    /// See [`TenantSchemaManager::compare_tenant`](provisioning_core::TenantSchemaManager::compare_tenant).
    pub(super) async fn compare(
        &self,
        source: &Placement,
        target: &Placement,
    ) -> Result<Vec<TableComparison>> {
        let mut attached = self.attach(source, target).await?;
        let from = attached.source;
        let result = async {
            let conn = attached.conn();
            let shared = source.isolation == Isolation::Shared;
            let plans = self.table_plans(conn, from, shared).await?;
            compare_tables(conn, &plans, from, &source.tenant_id).await
        }
        .await;
        attached.done(self, false).await;
        result
    }
}

/// Refuses a copy that would lose or leak rows (see `TablePlan::check`),
/// clears the tenant's rows at the target, checks for collisions, copies,
/// all in one transaction; the rows copied.
async fn copy_rows(
    conn: &mut SqliteConnection,
    manager: &SqliteSchemaManager,
    tenant: &TenantId,
    seeds: &[(String, i64, String)],
    [source_shares_rows, target_shares_rows]: [bool; 2],
) -> Result<u64> {
    let planned = manager.table_plans(conn, SRC, source_shares_rows).await?;
    for p in &planned {
        p.plan.check(source_shares_rows, target_shares_rows)?;
    }
    let what = || format!("copying tenant {tenant}");
    // Deferred, and the target written first: `BEGIN IMMEDIATE` would take
    // the write lock of every attached database, the source's too, and so
    // hold up every other writer of a shared source (its release deletes,
    // other moves) for the whole copy. The first delete takes the target's
    // write lock before anything is read; the source is only read.
    sqlx::query("BEGIN")
        .execute(&mut *conn)
        .await
        .map_err(|e| db_error(COMPONENT, what(), e))?;
    let result = async {
        let plans: Vec<&TablePlan> = planned.iter().map(|p| &p.plan).collect();
        for plan in plans.iter().rev() {
            let table = quote_ident(&plan.table);
            let sql = if plan.target_scoped {
                format!("DELETE FROM main.{table} WHERE {TENANT_COLUMN} = ?1")
            } else {
                format!("DELETE FROM main.{table}")
            };
            sqlx::query(AssertSqlSafe(sql))
                .bind(tenant.as_str())
                .execute(&mut *conn)
                .await
                .map_err(|e| {
                    db_error(
                        COMPONENT,
                        format!("clearing {} at the target", plan.table),
                        e,
                    )
                })?;
        }
        // After the clearing: a collision is with another tenant's rows.
        for p in &planned {
            check_collisions(conn, &p.plan, &p.target_keys, tenant).await?;
        }
        let mut rows = 0;
        for plan in &plans {
            let table = quote_ident(&plan.table);
            let mut columns: Vec<String> = plan.columns.iter().map(|c| quote_ident(c)).collect();
            let mut values = columns.clone();
            if plan.target_scoped {
                columns.push(TENANT_COLUMN.to_owned());
                values.push("?1".to_owned());
            }
            let filter = if plan.source_scoped {
                format!(" WHERE {TENANT_COLUMN} = ?1")
            } else {
                String::new()
            };
            let sql = format!(
                "INSERT INTO main.{table} ({}) SELECT {} FROM src.{table}{filter}",
                columns.join(", "),
                values.join(", ")
            );
            rows += sqlx::query(AssertSqlSafe(sql))
                .bind(tenant.as_str())
                .execute(&mut *conn)
                .await
                .map_err(|e| db_error(COMPONENT, format!("copying {}", plan.table), e))?
                .rows_affected();
        }
        if plans.iter().any(|p| p.table == SEED_LEDGER_TABLE) {
            for (name, version, checksum) in seeds {
                sqlx::query(
                    "UPDATE main._tenant_seeds SET checksum = ?2 \
                     WHERE tenant_id = ?1 AND name = ?3 AND version = ?4",
                )
                .bind(tenant.as_str())
                .bind(checksum)
                .bind(name)
                .bind(version)
                .execute(&mut *conn)
                .await
                .map_err(|e| db_error(COMPONENT, "recording the target's seeds", e))?;
            }
        }
        Ok(rows)
    }
    .await;
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = sqlx::query(end).execute(&mut *conn).await;
    match (result, ended) {
        (Ok(rows), Ok(_)) => Ok(rows),
        (Ok(_), Err(e)) => Err(db_error(COMPONENT, what(), e)),
        (Err(e), _) => Err(e),
    }
}

/// Refuses a copy into a shared database whose rows already use one of the
/// tenant's primary-key values: row ids there are not scoped by tenant, and
/// an insert would fail half-way or, worse, be mistaken for the tenant's.
async fn check_collisions(
    conn: &mut SqliteConnection,
    plan: &TablePlan,
    keys: &[String],
    tenant: &TenantId,
) -> Result<()> {
    if !plan.target_scoped {
        return Ok(());
    }
    if keys.is_empty()
        || keys
            .iter()
            .any(|k| k == TENANT_COLUMN || !plan.columns.contains(k))
    {
        return Ok(()); // keys scoped by tenant, or not copied: nothing can collide
    }
    let table = quote_ident(&plan.table);
    let on: Vec<String> = keys
        .iter()
        .map(|k| format!("d.{0} = s.{0}", quote_ident(k)))
        .collect();
    let filter = if plan.source_scoped {
        format!(" AND s.{TENANT_COLUMN} = ?1")
    } else {
        String::new()
    };
    let taken: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM main.{table} d JOIN src.{table} s ON {} \
         WHERE d.{TENANT_COLUMN} <> ?1{filter}",
        on.join(" AND ")
    )))
    .bind(tenant.as_str())
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| db_error(COMPONENT, format!("checking the keys of {}", plan.table), e))?;
    if taken > 0 {
        return Err(Error::Conflict {
            kind: Entity::TenantData,
            id: tenant.to_string(),
            reason: format!(
                "{taken} of its rows in table {} use a key ({}) another tenant of the target \
                 shared database already uses; nothing was copied",
                plan.table,
                keys.join(", ")
            ),
        });
    }
    Ok(())
}

/// The rows of a table that the tables' comparison aggregates in one
/// statement (SQLite's compound-select limit is 500 terms).
const TABLES_PER_COMPARISON: usize = 100;

/// A table's index in the statement, then each side's count and joined rows.
type ComparedRow = (i64, i64, Option<String>, i64, Option<String>);

/// Each table's count and checksum on both sides, as [`TableComparison`]s.
/// Aggregated in SQLite, every table in one statement: one value per side
/// to fetch, not a round trip per row or per table.
async fn compare_tables(
    conn: &mut SqliteConnection,
    plans: &[Planned],
    source: &str,
    tenant: &TenantId,
) -> Result<Vec<TableComparison>> {
    let mut tables = Vec::with_capacity(plans.len());
    for chunk in plans.chunks(TABLES_PER_COMPARISON) {
        let terms: Vec<String> = chunk
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let keys = p.order.as_deref();
                format!(
                    "SELECT {i}, a.n, a.j, b.n, b.j FROM ({}) a, ({}) b",
                    side_sql(&p.plan, source, p.plan.source_scoped, keys),
                    side_sql(&p.plan, "main", p.plan.target_scoped, keys),
                )
            })
            .collect();
        let rows: Vec<ComparedRow> = sqlx::query_as(AssertSqlSafe(terms.join(" UNION ALL ")))
            .bind(tenant.as_str())
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| db_error(COMPONENT, "comparing the tenant's tables", e))?;
        let mut sides = vec![None; chunk.len()];
        for (i, src_rows, src, dst_rows, dst) in rows {
            let side = |rows: i64, joined: Option<String>| {
                RowDigest::of_joined(
                    u64::try_from(rows).unwrap_or_default(),
                    joined.as_deref().unwrap_or_default(),
                )
            };
            if let Some(slot) = usize::try_from(i).ok().and_then(|i| sides.get_mut(i)) {
                *slot = Some((side(src_rows, src), side(dst_rows, dst)));
            }
        }
        for (p, side) in chunk.iter().zip(sides) {
            let (source_side, target_side) = side.ok_or_else(|| {
                Error::backend(
                    COMPONENT,
                    format!("comparing {}: no result for the table", p.plan.table),
                    false,
                    std::io::Error::other("missing row"),
                )
            })?;
            tables.push(TableComparison::new(
                &p.plan.table,
                source_side,
                target_side,
            ));
        }
    }
    Ok(tables)
}

/// One side of a table: the count and the text of the tenant's rows'
/// compared columns joined by newlines, in key order (`keys`) or by text.
fn side_sql(plan: &TablePlan, schema: &str, scoped: bool, keys: Option<&[String]>) -> String {
    let compared = plan.compared();
    let row = if compared.is_empty() {
        "''".to_owned()
    } else {
        compared
            .iter()
            .map(|c| format!("quote({})", quote_ident(c)))
            .collect::<Vec<_>>()
            .join(" || ',' || ")
    };
    let filter = if scoped {
        format!(" WHERE {TENANT_COLUMN} = ?1")
    } else {
        String::new()
    };
    let (extra, order) = match keys {
        Some(keys) => {
            let aliases: Vec<String> = (0..keys.len()).map(|i| format!("k{i}")).collect();
            let extra: String = keys
                .iter()
                .zip(&aliases)
                .map(|(k, a)| format!(", {} AS {a}", quote_ident(k)))
                .collect();
            (extra, aliases.join(", "))
        }
        None => (String::new(), "r".to_owned()),
    };
    format!(
        "SELECT COUNT(*) AS n, group_concat(r, char(10) ORDER BY {order}) AS j \
         FROM (SELECT {row} AS r{extra} FROM {schema}.{}{filter})",
        quote_ident(&plan.table)
    )
}

/// A table's plan with what the copy and the comparison need of its keys.
struct Planned {
    plan: TablePlan,
    /// The key both sides order the compared rows by, when they share one
    /// among the compared columns.
    order: Option<Vec<String>>,
    /// The target table's primary key, in key order.
    target_keys: Vec<String>,
}

/// One table's column names in column order, and its primary key in key order.
#[derive(Default)]
struct Columns {
    names: Vec<String>,
    keys: Vec<String>,
}

/// Every table of `schema` with its columns and primary key, in one query.
async fn all_columns(
    conn: &mut SqliteConnection,
    schema: &str,
) -> Result<std::collections::HashMap<String, Columns>> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT m.name, p.name, p.pk FROM {schema}.sqlite_master m \
         JOIN pragma_table_info(m.name, '{schema}') p \
         WHERE m.type = 'table' ORDER BY m.name, p.cid"
    )))
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| db_error(COMPONENT, format!("reading the columns of {schema}"), e))?;
    let mut tables = std::collections::HashMap::<String, Columns>::new();
    let mut keyed: Vec<(String, i64, String)> = Vec::new();
    for (table, column, pk) in rows {
        if pk > 0 {
            keyed.push((table.clone(), pk, column.clone()));
        }
        tables.entry(table).or_default().names.push(column);
    }
    keyed.sort();
    for (table, _, column) in keyed {
        if let Some(columns) = tables.get_mut(&table) {
            columns.keys.push(column);
        }
    }
    Ok(tables)
}

fn same_file(a: &Path, b: &Path) -> bool {
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| PathBuf::from(p));
    a == b || canonical(a) == canonical(b)
}

fn missing(tenant: &TenantId, path: &Path) -> Error {
    Error::NotFound {
        kind: Entity::TenantDatabase,
        id: format!("{tenant} ({})", path.display()),
    }
}
