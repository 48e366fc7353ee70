//! The migration runner shared by every backend: sqlx's [`Migrator`] values and
//! its `_sqlx_migrations` ledger. Pending migrations are applied together, in
//! one transaction with their ledger rows ([`ApplyAll`]), so that provisioning
//! a tenant costs one commit (one fsync on PostgreSQL) where one per migration
//! cost ten. Whatever goes wrong, the outcome is the one of applying them one
//! at a time: the caller learns what was applied, and a failure at migration k
//! leaves 1..k-1 recorded and k to be retried.

use futures_util::future::BoxFuture;
use provisioning_core::{Error, MigrationInfo, Placement, Result};
use sqlx::migrate::{AppliedMigration, Migrate, MigrateError, Migration, Migrator};

use crate::error::migrate_error;
use crate::schema::MigrationHook;

/// sqlx's ledger table, kept so that `sqlx migrate info` works on tenant
/// databases too.
pub(crate) const LEDGER_TABLE: &str = "_sqlx_migrations";

fn info(m: &Migration) -> MigrationInfo {
    MigrationInfo::new(m.version, m.description.to_string())
}

/// The migrations that apply a change (not the down ones), in order.
pub(crate) fn up_migrations(migrator: &Migrator) -> impl Iterator<Item = &Migration> {
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

/// What the ledger holds: the first version marked failed, if any, and every
/// applied migration.
pub(crate) struct Ledger {
    pub(crate) dirty: Option<i64>,
    pub(crate) applied: Vec<AppliedMigration>,
}

/// A connection that applies migrations in one transaction with their
/// ledger rows.
pub(crate) trait ApplyAll: Migrate + Send {
    /// Creates ledger `table` if missing and reads it. By default sqlx's
    /// three calls (three round trips); a backend may do it in one.
    fn ledger<'e>(
        &'e mut self,
        table: &'e str,
    ) -> BoxFuture<'e, std::result::Result<Ledger, MigrateError>> {
        Box::pin(async move {
            self.ensure_migrations_table(table).await?;
            let dirty = self.dirty_version(table).await?;
            let applied = self.list_applied_migrations(table).await?;
            Ok(Ledger { dirty, applied })
        })
    }

    /// Applies `migrations` in order with their rows in ledger `table`, in
    /// one transaction: all of them or none. None of them is `no_tx`. The
    /// rows' `execution_time` is -1, sqlx's "not measured": the migrations
    /// ran together.
    fn apply_all<'e>(
        &'e mut self,
        table: &'e str,
        migrations: &'e [&'e Migration],
    ) -> BoxFuture<'e, std::result::Result<(), sqlx::Error>>;
}

/// The SQL of `migrations` as one script. Each migration's text is followed
/// by a line break before the `;`, so one that ends in a `--` comment cannot
/// swallow the separator.
pub(crate) fn script(migrations: &[&Migration]) -> String {
    let mut script = String::new();
    for migration in migrations {
        script.push_str(migration.sql.as_str());
        script.push_str("\n;\n");
    }
    script
}

/// `VALUES` rows for the ledger rows of `count` migrations, three parameters
/// each (version, description, checksum) numbered from `first`, in the
/// placeholder style of the backend (`?` for SQLite, `$` for PostgreSQL).
#[cfg(feature = "sqlite")]
pub(crate) fn ledger_values(count: usize, first: usize, placeholder: char) -> String {
    (0..count)
        .map(|i| {
            let n = first + 3 * i;
            format!(
                "({placeholder}{n}, {placeholder}{}, TRUE, {placeholder}{}, -1)",
                n + 1,
                n + 2
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The migrations of `migrator` that `ledger` lacks, in order.
///
/// # Errors
/// A dirty ledger, or an applied migration whose SQL has since changed.
pub(crate) fn pending_in<'m>(
    ledger: &Ledger,
    migrator: &'m Migrator,
    component: &'static str,
    location: &str,
) -> Result<Vec<&'m Migration>> {
    if let Some(version) = ledger.dirty {
        return Err(Error::backend(
            component,
            format!("migration {version} on {location} is marked failed in {LEDGER_TABLE}"),
            false,
            sqlx::migrate::MigrateError::Dirty(version),
        ));
    }
    let mut pending = Vec::new();
    for migration in up_migrations(migrator) {
        match ledger
            .applied
            .iter()
            .find(|a| a.version == migration.version)
        {
            Some(a) if a.checksum != migration.checksum => {
                return Err(migrate_error(
                    component,
                    location,
                    sqlx::migrate::MigrateError::VersionMismatch(migration.version),
                ));
            }
            Some(_) => {}
            None => pending.push(migration),
        }
    }
    Ok(pending)
}

/// Applies the pending migrations in order, calling `hook` before each, and
/// returns the ones applied.
///
/// They are applied in one transaction with their ledger rows
/// ([`ApplyAll::apply_all`]). If that fails, nothing of it stays, and they
/// are applied again one at a time, each in its own transaction (sqlx's
/// `Migrate::apply`): the ones before the failing migration are recorded,
/// and the error names it. A hook error stops the run before its migration,
/// with the ones before it applied. Migrations marked `no_tx` are applied one
/// at a time, as sqlx does.
///
/// # Errors
/// A failed migration (its transaction rolled back: the next run resumes at it),
/// a dirty ledger, or an applied migration whose SQL has since changed.
pub(crate) async fn run<C: ApplyAll>(
    conn: &mut C,
    migrator: &Migrator,
    hook: Option<&MigrationHook>,
    placement: &Placement,
    component: &'static str,
    location: &str,
) -> Result<Vec<MigrationInfo>> {
    let err = |e| migrate_error(component, location, e);
    let ledger = conn.ledger(LEDGER_TABLE).await.map_err(err)?;
    let mut pending = pending_in(&ledger, migrator, component, location)?;
    // The hooks first, in order: a failing one ends the run before its
    // migration, as it would have one migration at a time.
    let mut stopped = None;
    if let Some(hook) = hook {
        for (i, migration) in pending.iter().enumerate() {
            if let Err(e) = hook(placement, &info(migration)) {
                stopped = Some(e);
                pending.truncate(i);
                break;
            }
        }
    }
    let together = !pending.is_empty() && pending.iter().all(|m| !m.no_tx);
    let applied_together = together
        && match conn.apply_all(LEDGER_TABLE, &pending).await {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(
                    tenant_id = %placement.tenant_id,
                    error = %e,
                    "migrations failed together; applying them one at a time"
                );
                false
            }
        };
    let mut done = Vec::new();
    for migration in pending {
        if !applied_together {
            if let Err(e) = conn.apply(LEDGER_TABLE, migration).await {
                // Another process migrating the same database (workers
                // sharing a shard) may have applied it meanwhile: a clean
                // ledger (no failed row, same checksums) that no longer has
                // it pending says so. Anything else, a ledger that cannot be
                // read included, is this failure.
                let still_pending = match conn.ledger(LEDGER_TABLE).await {
                    Ok(ledger) => pending_in(&ledger, migrator, component, location)
                        .map(|now| now.iter().any(|m| m.version == migration.version)),
                    Err(_) => Ok(true),
                };
                if let Ok(false) = still_pending {
                    tracing::debug!(version = migration.version, "applied by another process");
                    continue;
                }
                return Err(err(e));
            }
        }
        tracing::debug!(
            tenant_id = %placement.tenant_id,
            version = migration.version,
            "migration applied"
        );
        done.push(info(migration));
    }
    match stopped {
        Some(e) => Err(e),
        None => Ok(done),
    }
}
