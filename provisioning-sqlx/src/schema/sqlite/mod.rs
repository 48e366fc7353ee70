//! [`SqliteSchemaManager`]: tenant databases as SQLite files, shared per shard
//! or dedicated per tenant.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use provisioning_core::{Isolation, Result, ShardId, TenantPlan};
use sqlx::SqliteConnection;

use crate::error::SqlxError;
use crate::schema::{KeyedLocks, MigrationHook, Schemas, TenantSchema};

mod conn;
mod dedicated;
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
/// - **Dedicated** tenants get `{root}/{region}/{shard}/{tenant}.sqlite`. A file
///   this manager creates carries an ownership marker (a `_tenant_owner`
///   table); a file that was there without one (made by a DBA) is
///   [`Adopted`](provisioning_core::DatabaseOutcome::Adopted): migrated and
///   seeded, never removed by a compensation. Deleting removes the file with
///   its `-wal` and `-shm`.
/// - **Shared** tenants live in `{root}/{region}/{shard}/_shared.sqlite`, rows
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
/// use sqlx::migrate::{Migration, MigrationType, Migrator};
/// use sqlx::SqlSafeStr;
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
/// let plan = TenantPlan::new("acme".parse()?,
///     PlanDecision::new("premium".parse()?, Isolation::Dedicated, "eu-west".parse()?,
///         Residency::Strict, "premium is dedicated"),
///     ShardChoice::new("eu-1".parse()?, "eu-west".parse()?, "only shard"));
///
/// let dry_run = manager.plan(&plan).await?;
/// assert!(dry_run.will_create && dry_run.pending_migrations.len() == 1);
/// assert!(!manager.database_path(&plan).exists()); // the dry run created nothing
///
/// assert_eq!(manager.provision(&plan).await?, DatabaseOutcome::Created);
/// assert_eq!(manager.migrate(&plan).await?.len(), 1);
/// assert_eq!(manager.seed(&plan).await?.len(), 1);
/// assert!(manager.migrate(&plan).await?.is_empty()); // idempotent
///
/// manager.drop_tenant(&plan, DropReason::Delete).await?;
/// assert!(!manager.database_path(&plan).exists());
/// # Ok::<(), Error>(())
/// # }).unwrap();
/// ```
pub struct SqliteSchemaManager {
    root: PathBuf,
    shard_roots: HashMap<ShardId, PathBuf>,
    schemas: Schemas<SqliteConnection>,
    busy_timeout: Duration,
    locks: KeyedLocks,
    pools: pools::SharedPools,
    parked: parked::ParkedConns,
}

impl fmt::Debug for SqliteSchemaManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteSchemaManager")
            .field("root", &self.root)
            .field("shard_roots", &self.shard_roots)
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

    /// The folder of a shard's databases: its configured root, or
    /// `{root}/{region}/{shard}`.
    pub fn shard_dir(&self, plan: &TenantPlan) -> PathBuf {
        match self.shard_roots.get(&plan.shard) {
            Some(dir) => dir.clone(),
            None => self
                .root
                .join(plan.region.as_str())
                .join(plan.shard.as_str()),
        }
    }

    /// The file holding the tenant's data: its own file when dedicated, the
    /// shard's shared file when shared. Validated ids make these paths safe:
    /// a tenant id cannot contain a separator or `..`.
    pub fn database_path(&self, plan: &TenantPlan) -> PathBuf {
        let dir = self.shard_dir(plan);
        match plan.isolation {
            Isolation::Dedicated => dir.join(format!("{}.sqlite", plan.tenant_id)),
            Isolation::Shared => dir.join(SHARED_DATABASE_FILE),
        }
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
    shard_roots: HashMap<ShardId, PathBuf>,
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

    /// Puts one shard's databases in `dir` instead of `{root}/{region}/{shard}`.
    pub fn shard_root(mut self, shard: ShardId, dir: impl Into<PathBuf>) -> Self {
        self.shard_roots.insert(shard, dir.into());
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
    /// [`SqlxError::MissingPart`] without a root or without any schema;
    /// [`SqlxError::Invalid`] for a shared schema without tenant tables or
    /// seeds declared twice.
    pub fn build(self) -> std::result::Result<SqliteSchemaManager, SqlxError> {
        let root = self.root.ok_or(SqlxError::MissingPart {
            part: "root",
            setter: "root",
        })?;
        self.schemas.require_one()?;
        self.schemas.validate()?;
        Ok(SqliteSchemaManager {
            root,
            shard_roots: self.shard_roots,
            schemas: self.schemas,
            busy_timeout: self.busy_timeout.unwrap_or(Duration::from_secs(5)),
            locks: KeyedLocks::default(),
            pools: pools::SharedPools::default(),
            parked: parked::ParkedConns::default(),
        })
    }
}
