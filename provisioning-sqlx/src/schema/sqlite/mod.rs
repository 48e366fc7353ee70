//! [`SqliteSchemaManager`]: tenant databases as SQLite files, shared per shard
//! or dedicated per tenant.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use provisioning_core::model::fill_template;
use provisioning_core::{Entity, Error, Isolation, Placement, Result, ShardId};
use sqlx::SqliteConnection;

use crate::schema::{KeyedLocks, MigrationHook, Schemas, TenantSchema};

mod conn;
mod copy;
mod dedicated;
mod drift;
mod manager;
mod parked;
mod pools;

/// The file name of a shard's shared database. Tenant ids start with a letter,
/// so no tenant's file can take this name.
pub const SHARED_DATABASE_FILE: &str = "_shared.sqlite";

/// Seeds and schemas whose Rust seeds run on SQLite.
pub type SqliteTenantSchema = TenantSchema<SqliteConnection>;

/// Creates, migrates, seeds and removes tenant databases as SQLite files.
///
/// Where a tenant's file is comes from the shard map: each shard's
/// connection template, given with [`shard`](SqliteSchemaManagerBuilder::shard)
/// or [`shards`](SqliteSchemaManagerBuilder::shards) (`sqlite:` prefix
/// optional, `{tenant}`, `{shard}` and `{region}` filled in, relative paths
/// under `root`), or, for a shard without one, the default layout below.
/// [`locate`](provisioning_core::TenantSchemaManager::locate) resolves it when the tenant is placed,
/// the placement records it, and every later call opens the recorded file,
/// so an edited map moves no existing tenant.
///
/// - **Dedicated** tenants get `{root}/{region}/{shard}/{tenant}.sqlite` by
///   default; a shard's template for them must contain `{tenant}`. A file
///   this manager creates carries an ownership marker (a `_tenant_owner`
///   table); a file that was there without one (made by a DBA) is
///   [`Adopted`](provisioning_core::DatabaseOutcome::Adopted): migrated and
///   seeded, never removed by a compensation. Deleting removes the file with
///   its `-wal` and `-shm`.
/// - **Shared** tenants live in `{root}/{region}/{shard}/_shared.sqlite` by
///   default (or the file the shard's template names), rows
///   keyed by `tenant_id`. Migrations run once per shard database, one
///   provisioning at a time in this process (and guarded by the ledger across
///   processes); removing a tenant deletes its rows from the declared
///   [`tenant_tables`](TenantSchema::tenant_tables) and its seed-ledger rows in
///   one transaction.
///
/// Databases use WAL and a busy timeout. Closing the last connection of a
/// WAL database checkpoints it, which costs fsyncs, so the manager keeps one
/// connection open per shared database, and keeps a dedicated database's
/// connection from `migrate` to the `seed` that follows (a few at most).
/// Every method is idempotent.
///
/// ```
/// use provisioning_core::*;
/// use provisioning_sqlx::{Seed, SqliteSchemaManager, TenantSchema};
/// use provisioning_sqlx::sqlx::migrate::{Migration, MigrationType, Migrator};
/// use provisioning_sqlx::sqlx::SqlSafeStr;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let migrations = Migrator::with_migrations(vec![Migration::new(1, "roles".into(),
///     MigrationType::Simple, "CREATE TABLE roles (name TEXT NOT NULL)".into_sql_str(), false)]);
/// let manager = SqliteSchemaManager::builder()
///     .root(dir.path())
///     .dedicated(TenantSchema::new(migrations)
///         .seed(Seed::sql("roles", 1, "INSERT INTO roles (name) VALUES ('owner')")))
///     .build()?;
///
/// let placement = Placement::new("acme".parse()?,
///     PlacementDecision::new("premium".parse()?, Isolation::Dedicated, "eu-west".parse()?,
///         Residency::Strict, "premium is dedicated"),
///     ShardChoice::new("eu-1".parse()?, "eu-west".parse()?, "only shard"));
///
/// let dry_run = manager.preview(&placement).await?;
/// assert!(dry_run.will_create && dry_run.pending_migrations.len() == 1);
/// assert!(!manager.database_path(&placement).exists()); // the dry run created nothing
///
/// assert_eq!(manager.provision(&placement).await?, DatabaseOutcome::Created);
/// assert_eq!(manager.migrate(&placement).await?.len(), 1);
/// assert_eq!(manager.seed(&placement).await?.len(), 1);
/// assert!(manager.migrate(&placement).await?.is_empty()); // idempotent
///
/// manager.drop_tenant(&placement, DropReason::Delete).await?;
/// assert!(!manager.database_path(&placement).exists());
/// # Ok::<(), Error>(())
/// # }).unwrap();
/// ```
pub struct SqliteSchemaManager {
    root: PathBuf,
    templates: HashMap<ShardId, String>,
    schemas: Schemas<SqliteConnection>,
    busy_timeout: Duration,
    locks: KeyedLocks,
    pools: pools::SharedPools,
    parked: parked::ParkedConns,
    /// What each release makes, for drift checks: read once, on first use.
    expected: Arc<crate::schema::drift::ExpectedShapes>,
}

impl fmt::Debug for SqliteSchemaManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteSchemaManager")
            .field("root", &self.root)
            .field("templates", &self.templates)
            .field("dedicated", &self.schemas.dedicated)
            .field("shared", &self.schemas.shared)
            .field("hook", &self.schemas.hook.is_some())
            .field("busy_timeout", &self.busy_timeout)
            .finish_non_exhaustive()
    }
}

impl SqliteSchemaManager {
    /// A builder; `root` and at least one of `dedicated` and `shared` are required.
    pub fn builder() -> SqliteSchemaManagerBuilder {
        SqliteSchemaManagerBuilder::default()
    }

    /// The file holding the tenant's data: the one its placement records
    /// when it has been located, else where the shard map puts it (see
    /// [`resolve_path`](Self::resolve_path)).
    pub fn database_path(&self, placement: &Placement) -> PathBuf {
        match &placement.database {
            Some(recorded) => PathBuf::from(recorded),
            None => self.resolve_path(placement),
        }
    }

    /// Where the shard map puts the tenant's file, whatever its placement
    /// records: the shard's template filled in (under `root` when
    /// relative), or by default its own file in `{root}/{region}/{shard}/`
    /// when dedicated and the shard's `_shared.sqlite` when shared.
    /// Validated ids make these paths safe: a tenant id cannot contain a
    /// separator or `..`.
    pub fn resolve_path(&self, placement: &Placement) -> PathBuf {
        match self.templates.get(&placement.shard) {
            Some(template) => self.root.join(fill_template(
                template,
                &placement.tenant_id,
                &placement.shard,
                &placement.region,
            )),
            None => {
                let dir = self
                    .root
                    .join(placement.region.as_str())
                    .join(placement.shard.as_str());
                match placement.isolation {
                    Isolation::Dedicated => dir.join(format!("{}.sqlite", placement.tenant_id)),
                    Isolation::Shared => dir.join(SHARED_DATABASE_FILE),
                }
            }
        }
    }

    /// Checks the shard's template can hold this tenant: a dedicated tenant
    /// needs `{tenant}` in it (or every dedicated tenant of the shard would
    /// share one file), a shared one must not have it.
    pub(crate) fn check_template(&self, placement: &Placement) -> Result<()> {
        let Some(template) = self.templates.get(&placement.shard) else {
            return Ok(());
        };
        let per_tenant = template.contains("{tenant}");
        match (placement.isolation, per_tenant) {
            (Isolation::Dedicated, false) => Err(Error::invalid(
                "connection",
                format!(
                    "shard {} holds dedicated tenant {}, so its template {template:?} must contain {{tenant}}",
                    placement.shard, placement.tenant_id
                ),
            )),
            (Isolation::Shared, true) => Err(Error::invalid(
                "connection",
                format!(
                    "shard {} holds shared tenant {}, so its template {template:?} must name one file, without {{tenant}}",
                    placement.shard, placement.tenant_id
                ),
            )),
            _ => Ok(()),
        }
    }

    /// With a shard map, provisioning on a shard outside it is refused: a
    /// mistyped shard would otherwise get databases of its own under
    /// `root`. (A tenant placed before the map changed keeps working where
    /// its placement says: only provisioning checks.)
    pub(crate) fn check_shard(&self, placement: &Placement) -> Result<()> {
        if self.templates.is_empty() || self.templates.contains_key(&placement.shard) {
            return Ok(());
        }
        Err(Error::NotFound {
            kind: Entity::Shard,
            id: placement.shard.to_string(),
        })
    }

    fn schema(&self, isolation: Isolation) -> Result<&SqliteTenantSchema> {
        self.schemas.get(isolation, "SqliteSchemaManager")
    }

    /// Closes the connections kept open (to shared databases, and to
    /// dedicated ones between `migrate` and `seed`), checkpointing them.
    /// Optional: they close when the manager is dropped too, and a later call
    /// opens them again.
    pub async fn close(&self) {
        self.pools.close().await;
        self.parked.close_all().await;
    }

    fn lock_key(path: &Path) -> String {
        path.to_string_lossy().into_owned()
    }
}

/// Builds a [`SqliteSchemaManager`].
#[derive(Default)]
#[must_use]
pub struct SqliteSchemaManagerBuilder {
    root: Option<PathBuf>,
    templates: Vec<(ShardId, String)>,
    schemas: Schemas<SqliteConnection>,
    busy_timeout: Option<Duration>,
}

impl fmt::Debug for SqliteSchemaManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteSchemaManagerBuilder")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl SqliteSchemaManagerBuilder {
    /// The folder under which `{region}/{shard}/` folders hold the databases.
    pub fn root(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = Some(root.into());
        self
    }

    /// Where one shard's databases are: its connection template from the
    /// shard map, `sqlite:databases/{region}/{shard}/{tenant}.sqlite` for
    /// dedicated tenants or `sqlite:databases/eu-1/_shared.sqlite` for shared
    /// ones (`sqlite:` and `sqlite://` prefixes optional, a `?query` ignored,
    /// relative paths under `root`). Without any, every shard uses the
    /// default layout; once one is given, tenants are placed only on the
    /// shards given (one already located keeps its recorded file).
    pub fn shard(mut self, shard: ShardId, connection: impl Into<String>) -> Self {
        self.templates.push((shard, connection.into()));
        self
    }

    /// [`shard`](Self::shard) for each `(shard, connection)`, as
    /// `ShardDirectory::connections` gives them.
    pub fn shards<I, S>(mut self, shards: I) -> Self
    where
        I: IntoIterator<Item = (ShardId, S)>,
        S: Into<String>,
    {
        self.templates
            .extend(shards.into_iter().map(|(id, c)| (id, c.into())));
        self
    }

    /// The schema of dedicated tenants' databases.
    pub fn dedicated(mut self, schema: SqliteTenantSchema) -> Self {
        self.schemas.dedicated = Some(schema);
        self
    }

    /// The schema of shared databases; it must declare its tenant tables.
    pub fn shared(mut self, schema: SqliteTenantSchema) -> Self {
        self.schemas.shared = Some(schema);
        self
    }

    /// How long a statement waits for another writer (default 5 s).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = Some(timeout);
        self
    }

    /// A hook called before each migration (see [`MigrationHook`]).
    pub fn before_migration(mut self, hook: MigrationHook) -> Self {
        self.schemas.hook = Some(hook);
        self
    }

    /// The manager.
    ///
    /// # Errors
    /// [`crate::Error::MissingPart`] without a root or without any schema;
    /// [`crate::Error::Invalid`] for a shared schema without tenant tables or
    /// seeds declared twice.
    pub fn build(self) -> crate::Result<SqliteSchemaManager> {
        let root = self.root.ok_or(crate::Error::MissingPart {
            part: "root",
            setter: "root",
        })?;
        self.schemas.require_one()?;
        self.schemas.validate()?;
        // Recorded locations are absolute, so that they mean the same file
        // whatever the process's directory is later.
        let root = std::path::absolute(&root).map_err(|e| crate::Error::Invalid {
            field: "root",
            rule: format!("{} cannot be made absolute: {e}", root.display()),
        })?;
        let mut templates = HashMap::new();
        for (shard, connection) in self.templates {
            let template = sqlite_template(&connection).map_err(|rule| crate::Error::Invalid {
                field: "connection",
                rule: format!("shard {shard}: {rule}"),
            })?;
            templates.insert(shard, template);
        }
        Ok(SqliteSchemaManager {
            root,
            templates,
            schemas: self.schemas,
            busy_timeout: self.busy_timeout.unwrap_or(Duration::from_secs(5)),
            locks: KeyedLocks::default(),
            pools: pools::SharedPools::default(),
            parked: parked::ParkedConns::default(),
            expected: Arc::default(),
        })
    }
}

/// The path template in a SQLite connection: `sqlite:` or `sqlite://`
/// stripped, and a `?query` (sqlx's `mode=rwc`, say) dropped.
fn sqlite_template(connection: &str) -> std::result::Result<String, String> {
    let text = connection.trim();
    let path = if let Some(rest) = text.strip_prefix("sqlite://") {
        rest
    } else if let Some(rest) = text.strip_prefix("sqlite:") {
        rest
    } else if text.contains("://") {
        return Err(format!(
            "{} is not a SQLite path or sqlite: URL",
            provisioning_core::model::redact_secrets(text)
        ));
    } else {
        text
    };
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path.ends_with('/') {
        return Err(format!("{text:?} must name a file"));
    }
    Ok(path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::sqlite_template;

    #[test]
    fn templates_accept_sqlite_urls_and_paths() {
        for (given, path) in [
            (
                "sqlite:databases/{tenant}.sqlite",
                "databases/{tenant}.sqlite",
            ),
            ("sqlite:///data/{tenant}.db?mode=rwc", "/data/{tenant}.db"),
            (
                "/data/{shard}/_shared.sqlite",
                "/data/{shard}/_shared.sqlite",
            ),
        ] {
            assert_eq!(sqlite_template(given).unwrap(), path);
        }
        let err = sqlite_template("postgres://app:pw@db/t").unwrap_err();
        assert!(err.contains("app:***@db") && !err.contains("pw@"), "{err}");
        assert!(sqlite_template("sqlite:").is_err());
        assert!(sqlite_template("sqlite:data/").is_err());
    }
}
