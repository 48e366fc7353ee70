//! The migration runner shared by every backend: sqlx's [`Migrator`] values and
//! its `_sqlx_migrations` ledger, applied one migration at a time so that the
//! caller learns what was applied and a failure at migration k leaves 1..k-1
//! recorded and k to be retried.

use provisioning_core::{Error, MigrationInfo, Result, TenantPlan};
use sqlx::migrate::{Migrate, Migration, Migrator};

use crate::error::migrate_error;
use crate::schema::MigrationHook;

/// sqlx's ledger table, kept so that `sqlx migrate info` works on tenant
/// databases too.
pub(crate) const LEDGER_TABLE: &str = "_sqlx_migrations";

fn info(m: &Migration) -> MigrationInfo {
    MigrationInfo::new(m.version, m.description.to_string())
}

fn up_migrations(migrator: &Migrator) -> impl Iterator<Item = &Migration> {
    migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
}

/// Every migration, as pending on a database that does not exist yet.
pub(crate) fn all(migrator: &Migrator) -> Vec<MigrationInfo> {
    up_migrations(migrator).map(info).collect()
}

/// The migrations not in the ledger. `ledger_exists` is false for a database
/// never migrated: the ledger is then not read, and not created, so that a dry
/// run stays read-only.
pub(crate) async fn pending<C: Migrate>(
    conn: &mut C,
    migrator: &Migrator,
    ledger_exists: bool,
    component: &'static str,
    location: &str,
) -> Result<Vec<MigrationInfo>> {
    if !ledger_exists {
        return Ok(all(migrator));
    }
    let applied = conn
        .list_applied_migrations(LEDGER_TABLE)
        .await
        .map_err(|e| migrate_error(component, location, e))?;
    Ok(up_migrations(migrator)
        .filter(|m| !applied.iter().any(|a| a.version == m.version))
        .map(info)
        .collect())
}

/// Applies the pending migrations in order, each in its own transaction with its
/// ledger row (sqlx's `Migrate::apply`), calling `hook` before each. Returns the
/// ones applied.
///
/// # Errors
/// A failed migration (its transaction rolled back: the next run resumes at it),
/// a dirty ledger, or an applied migration whose SQL has since changed.
pub(crate) async fn run<C: Migrate>(
    conn: &mut C,
    migrator: &Migrator,
    hook: Option<&MigrationHook>,
    plan: &TenantPlan,
    component: &'static str,
    location: &str,
) -> Result<Vec<MigrationInfo>> {
    let err = |e| migrate_error(component, location, e);
    conn.ensure_migrations_table(LEDGER_TABLE)
        .await
        .map_err(err)?;
    if let Some(version) = conn.dirty_version(LEDGER_TABLE).await.map_err(err)? {
        return Err(Error::backend(
            component,
            format!("migration {version} on {location} is marked failed in {LEDGER_TABLE}"),
            false,
            sqlx::migrate::MigrateError::Dirty(version),
        ));
    }
    let applied = conn
        .list_applied_migrations(LEDGER_TABLE)
        .await
        .map_err(err)?;
    let mut done = Vec::new();
    for migration in up_migrations(migrator) {
        match applied.iter().find(|a| a.version == migration.version) {
            Some(a) if a.checksum != migration.checksum => {
                return Err(err(sqlx::migrate::MigrateError::VersionMismatch(
                    migration.version,
                )));
            }
            Some(_) => {}
            None => {
                let info = info(migration);
                if let Some(hook) = hook {
                    hook(plan, &info)?;
                }
                conn.apply(LEDGER_TABLE, migration).await.map_err(err)?;
                tracing::debug!(
                    tenant_id = %plan.tenant_id,
                    version = migration.version,
                    "migration applied"
                );
                done.push(info);
            }
        }
    }
    Ok(done)
}
