//! [`PgSchemaManager`]: tenant databases on PostgreSQL shard servers.

use std::collections::HashMap;
use std::fmt;

use provisioning_core::{Error, Isolation, Placement, Result, ShardId};
use sqlx::PgConnection;

use crate::error::SqlxError;
use crate::schema::{KeyedLocks, MigrationHook, Schemas, TenantSchema};

mod conn;
mod dedicated;
mod manager;
pub(crate) mod url;

use url::PgServer;

/// Seeds and schemas whose Rust seeds run on PostgreSQL.
pub type PgTenantSchema = TenantSchema<PgConnection>;

/// Where a dedicated tenant's data lives on its shard's server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PgDedicatedMode {
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
/// A shard is one server, given as a URL in the shard map. Dedicated tenants
/// get a database (or, with [`PgDedicatedMode::Schema`], a schema) named
/// `{prefix}{tenant id with '-' as '_'}`, quoted everywhere, created with an
/// ownership marker in its comment: one without it (made by a DBA) is adopted
/// and never dropped by a compensation. Shared tenants are `tenant_id` rows in
/// the database the shard URL names. URLs are never printed with their
/// password.
///
/// Each shard has a connection pool to its URL's database
/// ([`pool_size`](PgSchemaManagerBuilder::pool_size) connections, default
/// [`DEFAULT_POOL_SIZE`](PgSchemaManager::DEFAULT_POOL_SIZE)), made on first
/// use: server-level statements, schema tenants (with `search_path` set to
/// the tenant's schema on each use) and shared tenants run on it; a tenant
/// database of its own is connected to when used. Migrations use sqlx's
/// `_sqlx_migrations` ledger: the pending ones are applied in one
/// transaction with their ledger rows, under a transaction-scoped advisory
/// lock per tenant database or schema; a failing one leaves the ones before
/// it applied.
///
/// ```no_run
/// use provisioning_sqlx::{PgDedicatedMode, PgSchemaManager, PgTenantSchema};
///
/// # async fn example() -> Result<(), provisioning_core::Error> {
/// let manager = PgSchemaManager::builder()
///     .shard("eu-1".parse()?, "postgres://app:secret@db-eu-1:5432/app")
///     .dedicated(PgTenantSchema::from_dir("migrations/tenant").await?)
///     .dedicated_mode(PgDedicatedMode::Schema)
///     .build()?;
/// assert!(!format!("{manager:?}").contains("secret"));
/// # Ok(()) }
/// ```
pub struct PgSchemaManager {
    shards: HashMap<ShardId, PgServer>,
    mode: PgDedicatedMode,
    prefix: String,
    schemas: Schemas<PgConnection>,
    locks: KeyedLocks,
    /// Shared databases whose seed ledger is known to exist: their seeding
    /// skips the ledger's DDL and its lock.
    seed_ledgers: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl fmt::Debug for PgSchemaManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgSchemaManager")
            .field("shards", &self.shards)
            .field("mode", &self.mode)
            .field("prefix", &self.prefix)
            .field("dedicated", &self.schemas.dedicated)
            .field("shared", &self.schemas.shared)
            .finish_non_exhaustive()
    }
}

/// Where one tenant's data is, resolved from its plan.
pub(crate) struct Target<'m> {
    server: &'m PgServer,
    kind: TargetKind,
}

pub(crate) enum TargetKind {
    Database(String),
    Schema(String),
    Shared,
}

impl Target<'_> {
    /// The schema a tenant's connection works in: its own, or the
    /// database's default.
    fn schema(&self) -> Option<&str> {
        match &self.kind {
            TargetKind::Schema(name) => Some(name),
            TargetKind::Database(_) | TargetKind::Shared => None,
        }
    }

    /// Where the data is, without credentials.
    fn location(&self) -> String {
        let (host, port) = (
            self.server.options.get_host(),
            self.server.options.get_port(),
        );
        match &self.kind {
            TargetKind::Database(name) => format!("{host}:{port}/{name}"),
            TargetKind::Schema(name) => format!("{} schema {name}", self.server.address()),
            TargetKind::Shared => format!("{} (shared)", self.server.address()),
        }
    }
}

impl PgSchemaManager {
    /// The connections of each shard's pool unless set.
    pub const DEFAULT_POOL_SIZE: u32 = 10;

    /// A builder; at least one shard and one schema are required.
    pub fn builder() -> PgSchemaManagerBuilder {
        PgSchemaManagerBuilder::default()
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

    fn schema(&self, isolation: Isolation) -> Result<&PgTenantSchema> {
        self.schemas.get(isolation, "PgSchemaManager")
    }

    fn target(&self, plan: &Placement) -> Result<Target<'_>> {
        let server = self
            .shards
            .get(&plan.shard)
            .ok_or_else(|| Error::NotFound {
                kind: "shard",
                id: plan.shard.to_string(),
            })?;
        let kind = match (plan.isolation, self.mode) {
            (Isolation::Shared, _) => TargetKind::Shared,
            (Isolation::Dedicated, PgDedicatedMode::Database) => {
                TargetKind::Database(self.dedicated_name(&plan.tenant_id)?)
            }
            (Isolation::Dedicated, PgDedicatedMode::Schema) => {
                TargetKind::Schema(self.dedicated_name(&plan.tenant_id)?)
            }
        };
        Ok(Target { server, kind })
    }
}

/// Builds a [`PgSchemaManager`].
#[derive(Default)]
#[must_use]
pub struct PgSchemaManagerBuilder {
    shards: Vec<(ShardId, String)>,
    mode: PgDedicatedMode,
    prefix: Option<String>,
    schemas: Schemas<PgConnection>,
    pool_size: Option<u32>,
}

impl fmt::Debug for PgSchemaManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shards: Vec<_> = self
            .shards
            .iter()
            .map(|(id, url)| (id, url::redact_url(url)))
            .collect();
        f.debug_struct("PgSchemaManagerBuilder")
            .field("shards", &shards)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl PgSchemaManagerBuilder {
    /// Maps a shard to its server's URL; the URL's database holds the shared
    /// tenants and the schemas of dedicated ones.
    pub fn shard(mut self, shard: ShardId, url: impl Into<String>) -> Self {
        self.shards.push((shard, url.into()));
        self
    }

    /// A database (default) or a schema per dedicated tenant.
    pub fn dedicated_mode(mut self, mode: PgDedicatedMode) -> Self {
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
    pub fn dedicated(mut self, schema: PgTenantSchema) -> Self {
        self.schemas.dedicated = Some(schema);
        self
    }

    /// The schema of shared databases; it must declare its tenant tables.
    pub fn shared(mut self, schema: PgTenantSchema) -> Self {
        self.schemas.shared = Some(schema);
        self
    }

    /// A hook called before each migration (see [`MigrationHook`]).
    pub fn before_migration(mut self, hook: MigrationHook) -> Self {
        self.schemas.hook = Some(hook);
        self
    }

    /// How many connections each shard's pool holds at most (default
    /// [`PgSchemaManager::DEFAULT_POOL_SIZE`]; 0 is taken as 1).
    pub fn pool_size(mut self, size: u32) -> Self {
        self.pool_size = Some(size.max(1));
        self
    }

    /// The manager.
    ///
    /// # Errors
    /// [`SqlxError::MissingPart`] without shards or schemas;
    /// [`SqlxError::Invalid`] for a URL that does not parse (shown without
    /// its password), a bad prefix, or an invalid schema.
    pub fn build(self) -> std::result::Result<PgSchemaManager, SqlxError> {
        if self.shards.is_empty() {
            return Err(SqlxError::MissingPart {
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
            return Err(SqlxError::Invalid {
                field: "name_prefix",
                rule: "must be 1 to 20 lowercase letters, digits or '_', starting with a letter"
                    .into(),
            });
        }
        self.schemas.validate()?;
        let mut shards = HashMap::new();
        for (id, url) in self.shards {
            let size = self.pool_size.unwrap_or(PgSchemaManager::DEFAULT_POOL_SIZE);
            shards.insert(id, PgServer::parse(&url, size)?);
        }
        Ok(PgSchemaManager {
            shards,
            mode: self.mode,
            prefix,
            schemas: self.schemas,
            locks: KeyedLocks::default(),
            seed_ledgers: Default::default(),
        })
    }
}
