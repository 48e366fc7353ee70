//! [`PostgresSchemaManager`]: tenant databases on PostgreSQL shard servers.

use std::collections::HashMap;
use std::fmt;

use std::collections::HashSet;
use std::sync::Mutex;

use provisioning_core::{Error, Isolation, Result, ShardId};
use sqlx::PgConnection;

use crate::schema::{KeyedLocks, MigrationHook, Schemas, TenantSchema};

mod access;
mod catalog;
mod compare;
mod conn;
mod copy;
mod dedicated;
mod drift;
mod keys;
mod location;
mod manager;
mod template;
mod upgrade;
pub(crate) mod url;

pub(crate) use location::{Target, TargetKind};
use template::ShardConn;
use url::PgServer;

/// Seeds and schemas whose Rust seeds run on PostgreSQL.
pub type PostgresTenantSchema = TenantSchema<PgConnection>;

/// Where a dedicated tenant's data lives on its shard's server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PostgresDedicatedMode {
    /// A database of its own: `CREATE DATABASE "tenant_<id>"` (the default).
    #[default]
    Database,
    /// A schema of its own in the shard URL's database:
    /// `CREATE SCHEMA "tenant_<id>"`, with `search_path` set to it on the
    /// tenant's connections.
    Schema,
}

/// Creates, migrates, seeds and removes tenant databases on PostgreSQL.
///
/// A shard is one server, given as a URL (its connection in the shard map,
/// see [`shard`](PostgresSchemaManagerBuilder::shard)). Dedicated tenants get a
/// database or a schema named `{prefix}{tenant id with '-' as '_'}`, quoted
/// everywhere, created with an ownership marker in its comment: one without
/// it (made by a DBA) is adopted and never dropped by a compensation. Shared
/// tenants are `tenant_id` rows in the database the shard URL names. URLs are
/// never printed with their password.
///
/// Where a tenant's data is has one truth:
/// [`locate`](provisioning_core::TenantSchemaManager::locate) resolves it
/// from the shard map when the tenant is placed, as a URL without password
/// (`postgres://app:***@db:5432/tenant_acme`, or the server database with
/// `?schema=tenant_acme`), the placement records it, and every method opens
/// what [`Placement::database`](provisioning_core::Placement::database)
/// records from then on, so an edited map moves no existing tenant. The
/// password (and TLS options) for a recorded URL come from a configured shard
/// on the same host and port as the same user. A placement recording nothing
/// (placed before locations were recorded) is found through the map.
///
/// [`copy_tenant`](provisioning_core::TenantSchemaManager::copy_tenant) and
/// [`compare_tenant`](provisioning_core::TenantSchemaManager::compare_tenant)
/// move a tenant's rows between any two of its locations, shared or
/// dedicated, on one server or two: with `INSERT ... SELECT` within one
/// database, with `COPY` between databases.
///
/// Each server database has a connection pool
/// ([`pool_size`](PostgresSchemaManagerBuilder::pool_size) connections, default
/// [`DEFAULT_POOL_SIZE`](PostgresSchemaManager::DEFAULT_POOL_SIZE)), made on first
/// use: server-level statements, schema tenants (with `search_path` set to
/// the tenant's schema on each use) and shared tenants run on it; a tenant
/// database of its own is connected to when used. Migrations use sqlx's
/// `_sqlx_migrations` ledger: the pending ones are applied in one
/// transaction with their ledger rows, under a transaction-scoped advisory
/// lock per tenant database or schema; a failing one leaves the ones before
/// it applied.
///
/// ```no_run
/// use provisioning_sqlx::{PostgresDedicatedMode, PostgresSchemaManager, PostgresTenantSchema};
///
/// # async fn example() -> Result<(), provisioning_core::Error> {
/// let manager = PostgresSchemaManager::builder()
///     .shard("eu-1".parse()?, "postgres://app:secret@db-eu-1:5432/app")
///     .dedicated(PostgresTenantSchema::from_dir("migrations/tenant").await?)
///     .dedicated_mode(PostgresDedicatedMode::Schema)
///     .build()?;
/// assert!(!format!("{manager:?}").contains("secret"));
/// # Ok(()) }
/// ```
pub struct PostgresSchemaManager {
    shards: HashMap<ShardId, ShardConn>,
    /// The server databases used so far, by URL (password included), each
    /// with its pool.
    servers: Mutex<HashMap<String, PgServer>>,
    pool_size: u32,
    mode: PostgresDedicatedMode,
    prefix: String,
    schemas: Schemas<PgConnection>,
    locks: KeyedLocks,
    /// Shared databases whose seed ledger is known to exist: their seeding
    /// skips the ledger's DDL and its lock.
    seed_ledgers: Mutex<HashSet<String>>,
    /// What each release makes, for drift checks: read once, on first use.
    expected: crate::schema::drift::ExpectedShapes,
    /// The most schemas one `upgrade` transaction takes.
    upgrade_batch: usize,
}

impl fmt::Debug for PostgresSchemaManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresSchemaManager")
            .field("shards", &self.shards)
            .field("mode", &self.mode)
            .field("prefix", &self.prefix)
            .field("dedicated", &self.schemas.dedicated)
            .field("shared", &self.schemas.shared)
            .finish_non_exhaustive()
    }
}

impl PostgresSchemaManager {
    /// The connections of each shard's pool unless set.
    pub const DEFAULT_POOL_SIZE: u32 = 10;

    /// The schemas [`upgrade`](provisioning_core::TenantSchemaManager::upgrade)
    /// brings to the release in one transaction unless set.
    pub const DEFAULT_UPGRADE_BATCH: usize = 32;

    /// A builder; at least one shard and one schema are required.
    pub fn builder() -> PostgresSchemaManagerBuilder {
        PostgresSchemaManagerBuilder::default()
    }

    /// The name of a dedicated tenant's database or schema.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `tenant_id` if the name would pass
    /// PostgreSQL's 63-byte limit (it would be silently truncated, and two
    /// tenants could meet in one name).
    pub fn dedicated_name(&self, tenant: &provisioning_core::TenantId) -> Result<String> {
        let name = format!("{}{}", self.prefix, tenant.to_sql_identifier());
        if name.len() > 63 {
            return Err(Error::invalid(
                "tenant_id",
                format!(
                    "with the prefix {:?} it makes a {}-byte name; PostgreSQL allows 63",
                    self.prefix,
                    name.len()
                ),
            ));
        }
        Ok(name)
    }

    fn schema(&self, isolation: Isolation) -> Result<&PostgresTenantSchema> {
        self.schemas.get(isolation, "PostgresSchemaManager")
    }
}

/// Builds a [`PostgresSchemaManager`].
#[derive(Default)]
#[must_use]
pub struct PostgresSchemaManagerBuilder {
    shards: Vec<(ShardId, String)>,
    mode: PostgresDedicatedMode,
    prefix: Option<String>,
    schemas: Schemas<PgConnection>,
    pool_size: Option<u32>,
    upgrade_batch: Option<usize>,
}

impl fmt::Debug for PostgresSchemaManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shards: Vec<_> = self
            .shards
            .iter()
            .map(|(id, url)| (id, url::redact_url(url)))
            .collect();
        f.debug_struct("PostgresSchemaManagerBuilder")
            .field("shards", &shards)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl PostgresSchemaManagerBuilder {
    /// Maps a shard to its connection in the shard map: a server's URL, or
    /// a template naming where each dedicated tenant goes.
    ///
    /// - `postgres://app:pw@db:5432/app`: shared tenants are rows in `app`;
    ///   dedicated ones get a database or a schema in `app`, as
    ///   [`dedicated_mode`](Self::dedicated_mode) says.
    /// - `postgres://app:pw@db:5432/{tenant}`: a database per dedicated
    ///   tenant, named with [`PostgresSchemaManager::dedicated_name`];
    ///   server-level statements run on the server's `postgres` database.
    /// - `postgres://app:pw@db:5432/app?schema={tenant}`: a schema per
    ///   dedicated tenant in `app`.
    ///
    /// `{shard}` and `{region}` anywhere are filled with the placement's.
    /// A shard whose connection names a database or schema per tenant holds
    /// no shared tenants.
    pub fn shard(mut self, shard: ShardId, url: impl Into<String>) -> Self {
        self.shards.push((shard, url.into()));
        self
    }

    /// [`shard`](Self::shard) for each `(shard, connection)`, as
    /// `ShardDirectory::connections` gives them.
    pub fn shards<I, S>(mut self, shards: I) -> Self
    where
        I: IntoIterator<Item = (ShardId, S)>,
        S: Into<String>,
    {
        self.shards
            .extend(shards.into_iter().map(|(id, c)| (id, c.into())));
        self
    }

    /// A database (default) or a schema per dedicated tenant, on shards
    /// whose connection has no `{tenant}`.
    pub fn dedicated_mode(mut self, mode: PostgresDedicatedMode) -> Self {
        self.mode = mode;
        self
    }

    /// The prefix of dedicated databases and schemas (default `tenant_`):
    /// lowercase letters, digits and `_`, starting with a letter, at most 20.
    pub fn name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// The schema of dedicated tenants.
    pub fn dedicated(mut self, schema: PostgresTenantSchema) -> Self {
        self.schemas.dedicated = Some(schema);
        self
    }

    /// The schema of shared databases; it must declare its tenant tables.
    pub fn shared(mut self, schema: PostgresTenantSchema) -> Self {
        self.schemas.shared = Some(schema);
        self
    }

    /// A hook called before each migration (see [`MigrationHook`]).
    pub fn before_migration(mut self, hook: MigrationHook) -> Self {
        self.schemas.hook = Some(hook);
        self
    }

    /// How many connections each shard's pool holds at most (default
    /// [`PostgresSchemaManager::DEFAULT_POOL_SIZE`]; 0 is taken as 1).
    pub fn pool_size(mut self, size: u32) -> Self {
        self.pool_size = Some(size.max(1));
        self
    }

    /// How many dedicated schemas of one database
    /// [`upgrade`](provisioning_core::TenantSchemaManager::upgrade) (what a
    /// fleet roll-out runs) brings to the release in one transaction
    /// (default [`PostgresSchemaManager::DEFAULT_UPGRADE_BATCH`]; 0 is taken as 1,
    /// which upgrades each schema in a transaction of its own).
    ///
    /// One transaction costs one commit for all, which makes a release of
    /// quick DDL several times faster over many schemas; but every schema's
    /// table locks are held until the last one is done. For a release with a
    /// long data migration (a table rewritten, an index built without
    /// `CONCURRENTLY`), set 1, so that a schema's tables are locked only
    /// while its own migrations run.
    pub fn upgrade_batch(mut self, schemas: usize) -> Self {
        self.upgrade_batch = Some(schemas.max(1));
        self
    }

    /// The manager.
    ///
    /// # Errors
    /// [`crate::Error::MissingPart`] without shards or schemas;
    /// [`crate::Error::Invalid`] on `connection` for a shard's URL that does not
    /// parse or puts `{tenant}` anywhere but the database or `schema=`
    /// (naming the shard, showing the URL without its password), a bad
    /// prefix, or an invalid schema.
    pub fn build(self) -> crate::Result<PostgresSchemaManager> {
        if self.shards.is_empty() {
            return Err(crate::Error::MissingPart {
                part: "shard",
                setter: "shard",
            });
        }
        self.schemas.require_one()?;
        let prefix = self.prefix.unwrap_or_else(|| "tenant_".to_owned());
        let valid = prefix.len() <= 20
            && prefix.starts_with(|c: char| c.is_ascii_lowercase())
            && prefix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(crate::Error::Invalid {
                field: "name_prefix",
                rule: "must be 1 to 20 lowercase letters, digits or '_', starting with a letter"
                    .into(),
            });
        }
        self.schemas.validate()?;
        let mut shards = HashMap::new();
        for (id, url) in self.shards {
            let conn = ShardConn::parse(&id, &url)?;
            shards.insert(id, conn);
        }
        Ok(PostgresSchemaManager {
            shards,
            servers: Mutex::default(),
            pool_size: self
                .pool_size
                .unwrap_or(PostgresSchemaManager::DEFAULT_POOL_SIZE),
            mode: self.mode,
            prefix,
            schemas: self.schemas,
            locks: KeyedLocks::default(),
            seed_ledgers: Default::default(),
            expected: Default::default(),
            upgrade_batch: self
                .upgrade_batch
                .unwrap_or(PostgresSchemaManager::DEFAULT_UPGRADE_BATCH),
        })
    }
}
