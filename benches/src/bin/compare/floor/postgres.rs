//! The PostgreSQL floor: a schema per tenant made by hand, with the same DDL
//! and seed statements as the SDK runs, in one transaction per schema, on a
//! pool as large as the SDK's; and the fleet release the same way.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Executor};

use crate::floor::write_marker;
use crate::runner::Result;
use crate::sdk::REGION;
use crate::workload::{self, SeedStatement};

/// The pool size of the SDK's PostgreSQL connections (the catalog's pool and
/// the schema manager's per server), which the floor uses too.
pub(crate) const PG_POOL_SIZE: u32 = 10;

/// A validated identifier as SQL text. Names here are made of a fixed
/// lowercase prefix and a benchmark tenant id, so quoting is all they need.
pub(crate) fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The schema name of `tenant` under `prefix`, as the SDK's manager names it
/// (`-` becomes `_`).
pub(crate) fn schema_name(prefix: &str, tenant: &str) -> String {
    format!("{prefix}{}", tenant.replace('-', "_"))
}

/// Tenants as schemas, by hand.
#[derive(Clone)]
pub(crate) struct PgFloor {
    pool: PgPool,
    prefix: String,
    storage: PathBuf,
    statements: Arc<[SeedStatement]>,
}

impl PgFloor {
    /// Connects a pool to `url`; schemas are named `{prefix}{tenant}`, markers
    /// go under `storage`.
    pub(crate) async fn open(url: &str, prefix: &str, storage: &Path) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(PG_POOL_SIZE)
            // As the SDK's pools: no ping before each use.
            .test_before_acquire(false)
            .connect_with(PgConnectOptions::from_str(url)?)
            .await?;
        Ok(PgFloor {
            pool,
            prefix: prefix.to_owned(),
            storage: storage.to_owned(),
            statements: workload::seed_statements(workload::PG_SEED, "$1").into(),
        })
    }

    /// The prefix of its schemas' names.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The pool, for checks and clean-up.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates `tenant`'s schema, its tables and its seed rows in one
    /// transaction, then writes its marker.
    pub(crate) async fn create(&self, tenant: &str) -> Result<()> {
        let schema = quoted(&schema_name(&self.prefix, tenant));
        let mut tx = self.pool.begin().await?;
        tx.execute(AssertSqlSafe(format!(
            "CREATE SCHEMA {schema}; SET LOCAL search_path TO {schema}"
        )))
        .await?;
        for migration in workload::PG_MIGRATIONS.iter() {
            tx.execute(sqlx::raw_sql(migration.sql.clone())).await?;
        }
        for stmt in self.statements.iter() {
            let mut query = sqlx::query(AssertSqlSafe(stmt.sql.as_str()));
            if stmt.binds_tenant {
                query = query.bind(tenant);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        write_marker(&self.storage, REGION, tenant, "premium").await
    }

    /// Applies the fleet release to `tenant`'s schema in one transaction.
    pub(crate) async fn upgrade(&self, tenant: &str) -> Result<()> {
        let schema = quoted(&schema_name(&self.prefix, tenant));
        let mut tx = self.pool.begin().await?;
        tx.execute(AssertSqlSafe(format!("SET LOCAL search_path TO {schema}")))
            .await?;
        for migration in workload::PG_FLEET.iter() {
            tx.execute(sqlx::raw_sql(migration.sql.clone())).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// What a set of tenant schemas holds, for the checks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SchemaCounts {
    /// Schemas whose name starts with the prefix.
    pub(crate) schemas: usize,
    /// Of those, how many hold exactly the seed: 3 roles, 1 user, 1 grant.
    pub(crate) seeded: usize,
    /// Of those, how many have the fleet release's two columns.
    pub(crate) upgraded: usize,
}

/// Counts the schemas named `{prefix}...` and what they hold.
pub(crate) async fn schema_counts(pool: &PgPool, prefix: &str) -> Result<SchemaCounts> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, $1) ORDER BY 1",
    )
    .bind(prefix)
    .fetch_all(pool)
    .await?;
    let mut counts = SchemaCounts {
        schemas: names.len(),
        ..SchemaCounts::default()
    };
    for name in &names {
        let s = quoted(name);
        let (roles, users, grants): (i64, i64, i64) = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT (SELECT COUNT(*) FROM {s}.roles), (SELECT COUNT(*) FROM {s}.users), \
             (SELECT COUNT(*) FROM {s}.user_roles)"
        )))
        .fetch_one(pool)
        .await?;
        if (roles, users, grants) == (3, 1, 1) {
            counts.seeded += 1;
        }
    }
    // Schemas holding both of the fleet release's columns.
    let upgraded: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT table_schema FROM information_schema.columns \
           WHERE starts_with(table_schema, $1) \
             AND ((table_name = 'tasks' AND column_name = 'estimate_hours') \
               OR (table_name = 'comments' AND column_name = 'edited_at')) \
           GROUP BY table_schema HAVING COUNT(*) = 2) upgraded",
    )
    .bind(prefix)
    .fetch_one(pool)
    .await?;
    counts.upgraded = usize::try_from(upgraded)?;
    Ok(counts)
}

/// Drops every schema named `{prefix}...`; returns how many.
pub(crate) async fn drop_schemas(pool: &PgPool, prefix: &str) -> Result<usize> {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, $1)")
            .bind(prefix)
            .fetch_all(pool)
            .await?;
    for name in &names {
        sqlx::query(AssertSqlSafe(format!(
            "DROP SCHEMA {} CASCADE",
            quoted(name)
        )))
        .execute(pool)
        .await?;
    }
    Ok(names.len())
}
