//! Drift on SQLite: a database's shape from `sqlite_master` and
//! `pragma_table_info`, the release's from an in-memory database migrated
//! from nothing (once per manager and isolation), and the repairs.

use provisioning_core::{Drift, Entity, Error, Isolation, Placement, Repair, Result, TenantId};
use sqlx::migrate::Migrate;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, Row, SqliteConnection};

use super::SqliteSchemaManager;
use super::conn::{COMPONENT, Open, close, connect, table_exists};
use crate::error::{db_error, migrate_error};
use crate::schema::copy::INTERNAL_TABLES;
use crate::schema::drift::{
    Expected, Found, MigrationRow, RepairPlan, Shape, column_key, compare, index_key, normalize,
    seeds_of, table_key,
};
use crate::schema::migrate::{LEDGER_TABLE, up_migrations};
use crate::schema::{SEED_LEDGER_TABLE, TenantSchema};

/// The shape of the database on `conn`: its tables but the ledgers and
/// internal ones, their columns, and the indexes written in its schema
/// (those SQLite makes for keys and `UNIQUE` follow from the tables).
async fn shape(conn: &mut SqliteConnection) -> Result<Shape> {
    let err = |e| db_error(COMPONENT, "reading the schema", e);
    let columns = sqlx::query(
        "SELECT m.name AS tbl, p.name AS col, p.type, p.\"notnull\", p.dflt_value, p.pk \
         FROM sqlite_master m JOIN pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' \
         ORDER BY m.name, p.cid",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(err)?;
    let mut shape = Shape::new();
    for row in &columns {
        let table: String = row.get("tbl");
        if INTERNAL_TABLES.contains(&table.as_str()) || table == SEED_LEDGER_TABLE {
            continue;
        }
        let mut def = row.get::<String, _>("type").to_uppercase();
        if row.get::<i64, _>("notnull") != 0 {
            def.push_str(" NOT NULL");
        }
        if let Some(default) = row.get::<Option<String>, _>("dflt_value") {
            def.push_str(" DEFAULT ");
            def.push_str(&default);
        }
        if row.get::<i64, _>("pk") != 0 {
            def.push_str(" PRIMARY KEY");
        }
        shape.insert(column_key(&table, row.get("col")), def);
        shape.entry(table_key(&table)).or_default();
    }
    let indexes = sqlx::query(
        "SELECT name, tbl_name, sql FROM sqlite_master \
         WHERE type = 'index' AND sql IS NOT NULL",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(err)?;
    for row in &indexes {
        let table: String = row.get("tbl_name");
        if INTERNAL_TABLES.contains(&table.as_str()) || table == SEED_LEDGER_TABLE {
            continue;
        }
        shape.insert(index_key(row.get("name")), normalize(row.get("sql")));
    }
    Ok(shape)
}

/// The migration ledger (empty when there is none).
async fn ledger(conn: &mut SqliteConnection) -> Result<Vec<MigrationRow>> {
    if !table_exists(conn, LEDGER_TABLE).await? {
        return Ok(Vec::new());
    }
    let rows =
        sqlx::query("SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| db_error(COMPONENT, "reading the migration ledger", e))?;
    Ok(rows
        .iter()
        .map(|r| MigrationRow {
            version: r.get("version"),
            checksum: r.get("checksum"),
            success: r.get("success"),
        })
        .collect())
}

/// What the release of `schema` makes: each migration applied in turn to
/// an in-memory database, its shape read after each.
async fn expected(schema: &TenantSchema<SqliteConnection>) -> Result<Expected> {
    let err = |e| {
        db_error(
            COMPONENT,
            "migrating a scratch database for the drift check",
            e,
        )
    };
    let options: SqliteConnectOptions = "sqlite::memory:".parse().map_err(err)?;
    let mut conn = SqliteConnection::connect_with(&options.foreign_keys(true))
        .await
        .map_err(err)?;
    let mut steps = vec![shape(&mut conn).await?];
    for migration in up_migrations(schema.migrator()) {
        sqlx::raw_sql(migration.sql.clone())
            .execute(&mut conn)
            .await
            .map_err(|e| {
                db_error(
                    COMPONENT,
                    format!(
                        "applying migration {} to a scratch database",
                        migration.version
                    ),
                    e,
                )
            })?;
        steps.push(shape(&mut conn).await?);
    }
    close(conn).await;
    Ok(Expected::new(schema, steps))
}

impl SqliteSchemaManager {
    async fn expected(&self, isolation: Isolation) -> Result<&Expected> {
        let schema = self.schema(isolation)?;
        self.expected
            .of(isolation)
            .get_or_try_init(|| expected(schema))
            .await
    }

    /// See [`TenantSchemaManager::check_drift`](provisioning_core::TenantSchemaManager::check_drift).
    pub(super) async fn drift(
        &self,
        placement: &Placement,
        tenants: &[TenantId],
    ) -> Result<Vec<Drift>> {
        let expected = self.expected(placement.isolation).await?;
        let path = self.database_path(placement);
        if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Err(Error::NotFound {
                kind: Entity::TenantDatabase,
                id: format!("{} ({})", placement.tenant_id, path.display()),
            });
        }
        let mut conn = connect(&path, Open::Inspect, self.busy_timeout).await?;
        let found = read(&mut conn, tenants).await;
        close(conn).await;
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
        let path = self.database_path(placement);
        let mut done = Vec::new();
        if !plan.migrations.is_empty() {
            let _guard = self.locks.lock(&Self::lock_key(&path)).await;
            self.parked.evict(&path).await;
            let mut conn = connect(&path, Open::Write { create: false }, self.busy_timeout).await?;
            let result = async {
                conn.ensure_migrations_table(LEDGER_TABLE)
                    .await
                    .map_err(|e| migrate_error(COMPONENT, &path.display().to_string(), e))?;
                for (migration, apply, repair) in &plan.migrations {
                    let version = migration.version;
                    let err = |e| db_error(COMPONENT, format!("repairing migration {version}"), e);
                    let mut tx = conn.begin().await.map_err(err)?;
                    let there: Option<i64> =
                        sqlx::query_scalar("SELECT 1 FROM _sqlx_migrations WHERE version = ?1")
                            .bind(version)
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(err)?;
                    if there.is_some() {
                        continue; // repaired meanwhile
                    }
                    if *apply {
                        sqlx::raw_sql(migration.sql.clone())
                            .execute(&mut *tx)
                            .await
                            .map_err(err)?;
                    }
                    sqlx::query(
                        "INSERT INTO _sqlx_migrations \
                         (version, description, success, checksum, execution_time) \
                         VALUES (?1, ?2, TRUE, ?3, -1)",
                    )
                    .bind(version)
                    .bind(migration.description.as_ref())
                    .bind(migration.checksum.as_ref())
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                    tx.commit().await.map_err(err)?;
                    done.push(repair.clone());
                }
                Ok::<_, Error>(())
            }
            .await;
            close(conn).await;
            result?;
        }
        done.extend(plan.run_seeds(self, placement).await?);
        Ok(done)
    }
}

async fn read(conn: &mut SqliteConnection, tenants: &[TenantId]) -> Result<Found> {
    Ok(Found {
        shape: shape(conn).await?,
        ledger: ledger(conn).await?,
        seeds: seeds_of(conn, tenants).await?,
    })
}
