//! Drift on PostgreSQL: a database's shape from `pg_catalog` (the tables,
//! columns and indexes of the tenant's schema, with types as `format_type`
//! and defaults and index definitions as the server prints them relative to
//! that schema), the release's from a scratch schema migrated from nothing
//! inside a transaction that is rolled back, and the repairs.

use provisioning_core::{Drift, Error, Placement, Repair, Result, TenantId};
use sqlx::migrate::Migrate;
use sqlx::{AssertSqlSafe, Executor, PgConnection, Row};

use super::PostgresSchemaManager;
use super::conn::{self, COMPONENT, xact_lock_sql};
use crate::error::{db_error, migrate_error};
use crate::schema::copy::INTERNAL_TABLES;
use crate::schema::drift::{
    Expected, Found, MigrationRow, RepairPlan, Shape, column_key, compare, index_key, normalize,
    seeds_of, table_key,
};
use crate::schema::migrate::{LEDGER_TABLE, up_migrations};
use crate::schema::{SEED_LEDGER_TABLE, TenantSchema};

/// The tables of the schema first on the connection's `search_path`, as
/// `rels (oid, relname)`: found through their dependency on the schema
/// (`pg_depend`'s index), not by scanning `pg_class`, whose size grows with
/// every schema of the server: a check costs the same with 10 tenants or
/// 10,000.
macro_rules! relations {
    () => {
        "WITH rels AS (SELECT c.oid, c.relname FROM pg_depend dep \
           JOIN pg_class c ON c.oid = dep.objid \
           WHERE dep.refclassid = 'pg_namespace'::regclass \
             AND dep.refobjid = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) \
             AND dep.classid = 'pg_class'::regclass AND c.relkind IN ('r', 'p')) "
    };
}

/// The shape of the schema first on the connection's `search_path`.
async fn shape(conn: &mut PgConnection) -> Result<Shape> {
    let err = |e| db_error(COMPONENT, "reading the schema", e);
    let columns = conn
        .fetch_all(concat!(
            relations!(),
            "SELECT r.relname::text AS tbl, a.attname::text AS col, \
                    format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS notnull, \
                    pg_get_expr(d.adbin, d.adrelid) AS dflt \
             FROM rels r \
             JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped \
             LEFT JOIN pg_attrdef d ON d.adrelid = r.oid AND d.adnum = a.attnum \
             ORDER BY r.relname, a.attnum"
        ))
        .await
        .map_err(err)?;
    let mut shape = Shape::new();
    let internal = |t: &str| INTERNAL_TABLES.contains(&t) || t == SEED_LEDGER_TABLE;
    for row in &columns {
        let table: String = row.get("tbl");
        if internal(&table) {
            continue;
        }
        let mut def = row.get::<String, _>("type");
        if row.get::<bool, _>("notnull") {
            def.push_str(" NOT NULL");
        }
        if let Some(default) = row.get::<Option<String>, _>("dflt") {
            def.push_str(" DEFAULT ");
            def.push_str(&default);
        }
        shape.insert(column_key(&table, row.get("col")), def);
        shape.entry(table_key(&table)).or_default();
    }
    // Indexes written as such; those of keys and constraints follow from the
    // tables (as SQLite's own do).
    let indexes = conn
        .fetch_all(concat!(
            relations!(),
            "SELECT ic.relname::text AS name, r.relname::text AS tbl, \
                    pg_get_indexdef(i.indexrelid) AS def \
             FROM rels r \
             JOIN pg_index i ON i.indrelid = r.oid \
             JOIN pg_class ic ON ic.oid = i.indexrelid \
             WHERE NOT EXISTS (SELECT 1 FROM pg_constraint k \
                               WHERE k.conrelid = i.indrelid AND k.conindid = i.indexrelid)"
        ))
        .await
        .map_err(err)?;
    for row in &indexes {
        let table: String = row.get("tbl");
        if internal(&table) {
            continue;
        }
        // The definition names the schema; the comparison must not.
        let def: String = row.get("def");
        let def = match def.split_once(" ON ") {
            Some((head, rest)) => {
                let rest = rest.strip_prefix("ONLY ").unwrap_or(rest);
                let rest = match rest.split_once('.') {
                    Some((_, unqualified)) if rest.find('.') < rest.find(' ') => unqualified,
                    _ => rest,
                };
                format!("{head} ON {rest}")
            }
            None => def,
        };
        shape.insert(index_key(row.get("name")), normalize(&def));
    }
    Ok(shape)
}

async fn ledger(conn: &mut PgConnection) -> Result<Vec<MigrationRow>> {
    let err = |e| db_error(COMPONENT, "reading the migration ledger", e);
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_tables \
         WHERE schemaname = current_schema() AND tablename = '_sqlx_migrations')",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(err)?;
    if !exists {
        return Ok(Vec::new());
    }
    let rows = conn
        .fetch_all("SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version")
        .await
        .map_err(err)?;
    Ok(rows
        .iter()
        .map(|r| MigrationRow {
            version: r.get("version"),
            checksum: r.get("checksum"),
            success: r.get("success"),
        })
        .collect())
}

/// What `schema`'s release makes: its migrations applied in turn in a
/// scratch schema, whose shape is read after each, all rolled back.
async fn expected(
    conn: &mut PgConnection,
    schema: &TenantSchema<PgConnection>,
) -> Result<Expected> {
    let scratch = format!("_drift_{}", uuid_suffix());
    let what = "migrating a scratch schema for the drift check";
    let mut tx = conn::begin(conn, None, what).await?;
    tx.execute(AssertSqlSafe(format!(
        "CREATE SCHEMA \"{scratch}\"; SET LOCAL search_path TO \"{scratch}\""
    )))
    .await
    .map_err(|e| db_error(COMPONENT, what, e))?;
    let mut steps = vec![shape(&mut tx).await?];
    for migration in up_migrations(schema.migrator()) {
        tx.execute(sqlx::raw_sql(migration.sql.clone()))
            .await
            .map_err(|e| {
                db_error(
                    COMPONENT,
                    format!(
                        "applying migration {} to a scratch schema",
                        migration.version
                    ),
                    e,
                )
            })?;
        steps.push(shape(&mut tx).await?);
    }
    tx.rollback()
        .await
        .map_err(|e| db_error(COMPONENT, what, e))?;
    Ok(Expected::new(schema, steps))
}

/// A random name part: the scratch schema is rolled back, but two checks
/// at once must not collide before that. (`RandomState` is seeded at random
/// per instance: no dependency for sixteen hex digits.)
fn uuid_suffix() -> String {
    use std::hash::BuildHasher;
    format!(
        "{:016x}",
        std::collections::hash_map::RandomState::new().hash_one(std::process::id())
    )
}

impl PostgresSchemaManager {
    async fn expected_for(&self, placement: &Placement) -> Result<&Expected> {
        let schema = self.schema(placement.isolation)?;
        self.expected
            .of(placement.isolation)
            .get_or_try_init(|| async {
                let target = self.target(placement)?;
                let mut server = self.server_conn(&target).await?;
                expected(&mut server, schema).await
            })
            .await
    }

    /// See [`TenantSchemaManager::check_drift`](provisioning_core::TenantSchemaManager::check_drift).
    pub(super) async fn drift(
        &self,
        placement: &Placement,
        tenants: &[TenantId],
    ) -> Result<Vec<Drift>> {
        let expected = self.expected_for(placement).await?;
        let target = self.target(placement)?;
        let mut conn = self.tenant_conn(&target, placement).await?;
        let found = async {
            let what = format!("checking {}", target.location());
            let mut tx = conn::begin(&mut conn, target.schema(), &what).await?;
            let shape = shape(&mut tx).await?;
            let ledger = ledger(&mut tx).await?;
            let seeds = seeds_of(&mut *tx, tenants).await?;
            tx.rollback()
                .await
                .map_err(|e| db_error(COMPONENT, what, e))?;
            Ok::<_, Error>(Found {
                shape,
                ledger,
                seeds,
            })
        }
        .await;
        conn.done(found.is_err()).await;
        Ok(compare(expected, &found?))
    }

    /// See [`TenantSchemaManager::repair_drift`](provisioning_core::TenantSchemaManager::repair_drift).
    pub(super) async fn repair(
        &self,
        placement: &Placement,
        repairs: &[Repair],
    ) -> Result<Vec<Repair>> {
        let schema = self.schema(placement.isolation)?;
        let plan = RepairPlan::new(schema.migrator(), repairs)?;
        let target = self.target(placement)?;
        let location = target.location();
        let mut done = Vec::new();
        if !plan.migrations.is_empty() {
            let _guard = self.locks.lock(&location).await;
            let mut conn = self.tenant_conn(&target, placement).await?;
            let result = async {
                let what = || format!("repairing {location}");
                let mut tx = conn::begin(&mut conn, target.schema(), &what()).await?;
                tx.execute(sqlx::raw_sql(AssertSqlSafe(xact_lock_sql(&location))))
                    .await
                    .map_err(|e| db_error(COMPONENT, what(), e))?;
                (*tx)
                    .ensure_migrations_table(LEDGER_TABLE)
                    .await
                    .map_err(|e| migrate_error(COMPONENT, &location, e))?;
                let mut applied = Vec::new();
                for (migration, apply, repair) in &plan.migrations {
                    let version = migration.version;
                    let err = |e| db_error(COMPONENT, format!("repairing migration {version}"), e);
                    let there: Option<i32> =
                        sqlx::query_scalar("SELECT 1 FROM _sqlx_migrations WHERE version = $1")
                            .bind(version)
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(err)?;
                    if there.is_some() {
                        continue; // repaired meanwhile
                    }
                    if *apply {
                        tx.execute(sqlx::raw_sql(migration.sql.clone()))
                            .await
                            .map_err(err)?;
                    }
                    sqlx::query(
                        "INSERT INTO _sqlx_migrations \
                         (version, description, success, checksum, execution_time) \
                         VALUES ($1, $2, TRUE, $3, -1)",
                    )
                    .bind(version)
                    .bind(migration.description.as_ref())
                    .bind(migration.checksum.as_ref())
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                    applied.push(repair.clone());
                }
                tx.commit()
                    .await
                    .map_err(|e| db_error(COMPONENT, what(), e))?;
                Ok::<_, Error>(applied)
            }
            .await;
            conn.done(result.is_err()).await;
            done.extend(result?);
        }
        done.extend(plan.run_seeds(self, placement).await?);
        Ok(done)
    }
}
