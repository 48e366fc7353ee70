//! A SQLite file per tenant: created with an ownership marker, or adopted.

use std::io;
use std::path::{Path, PathBuf};

use provisioning_core::{DatabaseOutcome, Entity, Error, Result, TenantId};
use sqlx::SqliteConnection;

use super::SqliteSchemaManager;
use super::conn::{COMPONENT, Open, close, connect, stage_wal, table_exists};

/// Marks a database this crate created, so that a re-run after a crash still
/// reports [`DatabaseOutcome::Created`] and a DBA's file (no marker) is adopted.
const OWNER_TABLE: &str = "_tenant_owner";

/// Where a database is built before it is renamed into place: the file and its
/// marker appear at the tenant's path together or not at all.
pub(super) fn staging_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".creating");
    PathBuf::from(name)
}

fn io_error(what: String, err: io::Error) -> Error {
    // Retrying cannot help where an operator must change the tree first.
    let transient = !matches!(
        err.kind(),
        io::ErrorKind::PermissionDenied
            | io::ErrorKind::InvalidInput
            | io::ErrorKind::NotADirectory
            | io::ErrorKind::IsADirectory
            | io::ErrorKind::ReadOnlyFilesystem
    );
    Error::backend(COMPONENT, what, transient, err)
}

/// Removes a file; one already gone is fine, as is one that cannot exist
/// because a parent is not a directory.
pub(super) async fn remove_file(path: &Path) -> Result<()> {
    match tokio::fs::remove_file(path).await {
        Err(e)
            if !matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Err(io_error(format!("removing {}", path.display()), e))
        }
        _ => Ok(()),
    }
}

/// Removes a database file with its WAL, shared-memory and rollback journal.
pub(super) async fn remove_database(path: &Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        remove_file(Path::new(&name)).await?;
    }
    Ok(())
}

/// Whether the database at `path` carries this tenant's ownership marker.
pub(super) async fn owned(conn: &mut SqliteConnection, tenant: &TenantId) -> Result<bool> {
    if !table_exists(conn, OWNER_TABLE).await? {
        return Ok(false);
    }
    let owner: Option<String> = sqlx::query_scalar("SELECT tenant_id FROM _tenant_owner LIMIT 1")
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| crate::error::db_error(COMPONENT, "reading the owner marker", e))?;
    match owner {
        Some(owner) if owner == tenant.as_str() => Ok(true),
        other => Err(Error::Conflict {
            kind: Entity::TenantDatabase,
            id: tenant.to_string(),
            reason: format!("its file is marked as created for {other:?}"),
        }),
    }
}

impl SqliteSchemaManager {
    /// Creates the tenant's file (staged, marked, renamed into place) or adopts
    /// the one that is there. The caller holds the file's lock.
    pub(super) async fn provision_dedicated(
        &self,
        tenant: &TenantId,
        path: &Path,
    ) -> Result<DatabaseOutcome> {
        let staging = staging_path(path);
        if tokio::fs::try_exists(path).await.unwrap_or(false) {
            // A crash after the rename may have left nothing to clean; a
            // staging file next to a finished database is stale either way.
            remove_database(&staging).await?;
            let mut conn = connect(path, Open::Write { create: false }, self.busy_timeout).await?;
            // Reachable and a database: a DBA's broken file fails here, early.
            let owned = owned(&mut conn, tenant).await;
            close(conn).await;
            return Ok(if owned? {
                DatabaseOutcome::Created
            } else {
                tracing::info!(tenant_id = %tenant, path = %path.display(), "adopting an existing tenant database");
                DatabaseOutcome::Adopted
            });
        }
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| io_error(format!("creating {}", dir.display()), e))?;
        }
        remove_database(&staging).await?;
        // The marker table and its row in one transaction, then WAL mode,
        // all before the rename: one fsync where a rollback journal per
        // statement and a conversion to WAL later cost several.
        let mut conn = connect(&staging, Open::Stage, self.busy_timeout).await?;
        let staged = async {
            sqlx::query(
                "BEGIN;
                CREATE TABLE _tenant_owner (
                    tenant_id  TEXT PRIMARY KEY,
                    created_by TEXT NOT NULL,
                    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
                );
                INSERT INTO _tenant_owner (tenant_id, created_by) VALUES (?1, ?2);
                COMMIT;",
            )
            .bind(tenant.as_str())
            .bind(concat!("provisioning-sqlx ", env!("CARGO_PKG_VERSION")))
            .execute(&mut conn)
            .await
            .map_err(|e| crate::error::db_error(COMPONENT, "writing the owner marker", e))?;
            stage_wal(&mut conn).await
        }
        .await;
        close(conn).await;
        staged?;
        tokio::fs::rename(&staging, path)
            .await
            .map_err(|e| io_error(format!("moving {} into place", path.display()), e))?;
        tracing::info!(tenant_id = %tenant, path = %path.display(), "tenant database created");
        Ok(DatabaseOutcome::Created)
    }
}
