//! Dedicated databases and schemas: created with an ownership marker, adopted
//! when a DBA made them, dropped only when ours or when the tenant is deleted.

use provisioning_core::{DatabaseOutcome, Entity, Error, Result, TenantId};
use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, Executor, PgConnection};

use super::conn::COMPONENT;
use super::{Target, TargetKind};
use crate::error::db_error;
use crate::schema::sql::{hex, quote_ident};

const MARKER_PREFIX: &str = "created by provisioning-sqlx for tenant ";

fn marker(tenant: &TenantId) -> String {
    format!("{MARKER_PREFIX}{tenant}")
}

/// A database is created under this name, marked, then renamed into place: the
/// tenant's name never exists without the marker, even after a crash.
fn staging_name(name: &str) -> String {
    let digest = Sha256::digest(name.as_bytes());
    format!("_provisioning_staging_{}", hex(&digest[..8]))
}

async fn exec(conn: &mut PgConnection, sql: String, what: &str) -> Result<()> {
    sqlx::query(AssertSqlSafe(sql))
        .execute(&mut *conn)
        .await
        .map_err(|e| db_error(COMPONENT, what.to_owned(), e))?;
    Ok(())
}

/// Drops `staging` (quoted), left over if a crash came between creating a
/// database and renaming it into place.
async fn drop_staging(conn: &mut PgConnection, staging: &str) -> Result<()> {
    exec(
        conn,
        format!("DROP DATABASE IF EXISTS {staging} WITH (FORCE)"),
        "dropping a staging database",
    )
    .await
}

/// What is at the tenant's name: `None` if nothing, else its comment.
pub(super) async fn inspect(
    conn: &mut PgConnection,
    kind: &TargetKind,
) -> Result<Option<Option<String>>> {
    let (sql, name) = match kind {
        TargetKind::Database(name) => (
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
            name,
        ),
        TargetKind::Schema(name) => (
            "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = $1",
            name,
        ),
        TargetKind::Shared => return Ok(Some(None)),
    };
    sqlx::query_scalar(sql)
        .bind(name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| db_error(COMPONENT, format!("looking up {name}"), e))
}

/// `NotFound` unless `target`'s database or schema exists (looked up on any
/// connection to its server).
pub(super) async fn require(
    conn: &mut PgConnection,
    target: &Target,
    tenant: &TenantId,
) -> Result<()> {
    match inspect(conn, &target.kind).await? {
        Some(_) => Ok(()),
        None => Err(missing(target, tenant)),
    }
}

/// The error of a tenant whose database or schema does not exist.
pub(super) fn missing(target: &Target, tenant: &TenantId) -> Error {
    Error::NotFound {
        kind: Entity::TenantDatabase,
        id: format!("{tenant} ({})", target.location()),
    }
}

/// Whether a comment marks the object as created for `tenant`; a marker for
/// another tenant is a conflict, never silently taken over.
pub(super) fn owned(comment: Option<&str>, tenant: &TenantId) -> Result<bool> {
    match comment {
        Some(c) if c == marker(tenant) => Ok(true),
        Some(c) if c.starts_with(MARKER_PREFIX) => Err(Error::Conflict {
            kind: Entity::TenantDatabase,
            id: tenant.to_string(),
            reason: format!("it is marked {c:?}"),
        }),
        _ => Ok(false),
    }
}

/// Creates the tenant's database or schema, or adopts the one there, on a
/// connection to the server's database.
pub(super) async fn provision(
    conn: &mut PgConnection,
    target: &Target,
    tenant: &TenantId,
) -> Result<DatabaseOutcome> {
    let mark = marker(tenant).replace('\'', "''");
    match &target.kind {
        TargetKind::Shared => Ok(DatabaseOutcome::Shared),
        TargetKind::Database(name) => {
            let staging = quote_ident(&staging_name(name));
            drop_staging(conn, &staging).await?;
            if let Some(comment) = inspect(conn, &target.kind).await? {
                return adopted_or_created(comment.as_deref(), tenant, name);
            }
            exec(
                conn,
                format!("CREATE DATABASE {staging}"),
                "creating the tenant database",
            )
            .await?;
            exec(
                conn,
                format!("COMMENT ON DATABASE {staging} IS '{mark}'"),
                "marking the tenant database",
            )
            .await?;
            exec(
                conn,
                format!("ALTER DATABASE {staging} RENAME TO {}", quote_ident(name)),
                "naming the tenant database",
            )
            .await?;
            tracing::info!(tenant_id = %tenant, database = %name, "tenant database created");
            Ok(DatabaseOutcome::Created)
        }
        TargetKind::Schema(name) => {
            if let Some(comment) = inspect(conn, &target.kind).await? {
                return adopted_or_created(comment.as_deref(), tenant, name);
            }
            // One simple-protocol query of two statements runs as one
            // implicit transaction (transactional DDL): the schema and its
            // marker appear together, in one round trip.
            let quoted = quote_ident(name);
            conn.execute(sqlx::raw_sql(AssertSqlSafe(format!(
                "CREATE SCHEMA {quoted}; COMMENT ON SCHEMA {quoted} IS '{mark}'"
            ))))
            .await
            .map_err(|e| db_error(COMPONENT, "creating the tenant schema", e))?;
            tracing::info!(tenant_id = %tenant, schema = %name, "tenant schema created");
            Ok(DatabaseOutcome::Created)
        }
    }
}

fn adopted_or_created(
    comment: Option<&str>,
    tenant: &TenantId,
    name: &str,
) -> Result<DatabaseOutcome> {
    if owned(comment, tenant)? {
        return Ok(DatabaseOutcome::Created);
    }
    tracing::info!(tenant_id = %tenant, name, "adopting an existing tenant database");
    Ok(DatabaseOutcome::Adopted)
}

/// Drops the tenant's database or schema, on a connection to the server's
/// database; with `keep_adopted`, one without our marker stays.
pub(super) async fn drop(
    conn: &mut PgConnection,
    target: &Target,
    tenant: &TenantId,
    keep_adopted: bool,
) -> Result<()> {
    async {
        if let TargetKind::Database(name) = &target.kind {
            drop_staging(conn, &quote_ident(&staging_name(name))).await?;
        }
        let Some(comment) = inspect(conn, &target.kind).await? else {
            return Ok(());
        };
        if keep_adopted && !owned(comment.as_deref(), tenant)? {
            tracing::info!(tenant_id = %tenant, "compensation keeps an adopted database");
            return Ok(());
        }
        match &target.kind {
            TargetKind::Database(name) => {
                // FORCE ends the sessions still open on it (PostgreSQL 13+).
                exec(
                    conn,
                    format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name)),
                    "dropping the tenant database",
                )
                .await
            }
            TargetKind::Schema(name) => {
                exec(
                    conn,
                    format!("DROP SCHEMA IF EXISTS {} CASCADE", quote_ident(name)),
                    "dropping the tenant schema",
                )
                .await
            }
            TargetKind::Shared => Ok(()),
        }
    }
    .await
}
