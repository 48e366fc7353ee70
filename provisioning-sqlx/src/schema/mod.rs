//! Tenant schema management: the pieces every backend shares (a tenant schema
//! as migrations + seeds + tenant-scoped tables, the migration runner, the seed
//! ledger) and one schema manager per backend.

// Without a backend feature the shared pieces have no user; the crate still
// builds (for `cargo check --no-default-features`), without warnings.
#![cfg_attr(
    not(any(feature = "sqlite", feature = "postgres")),
    allow(dead_code, unused_imports)
)]

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use provisioning_core::{MigrationInfo, Placement, Result};
use sqlx::migrate::Migrator;

mod conn;
pub(crate) mod copy;
pub(crate) mod drift;
mod migrate;
mod schemas;
mod seed;
mod sql;

#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use seed::{SEED_NAME_MAX_LEN, Seed, SeedBody, SeedFn};

pub(crate) type KeyedLocks = provisioning_core::sync::KeyedLocks<String>;
pub(crate) use schemas::Schemas;

/// Called for each pending migration, in order, before any of them is applied,
/// with the tenant and the migration; an error stops the run there (the
/// migrations before it are applied, that one is not, and the next run
/// resumes at it). For fault drills and tests; leave unset in production.
pub type MigrationHook = Arc<dyn Fn(&Placement, &MigrationInfo) -> Result<()> + Send + Sync>;

/// The name of the seed ledger table in every tenant database.
pub const SEED_LEDGER_TABLE: &str = "_tenant_seeds";

/// What a tenant's database holds: its migrations, its seeds and, for shared
/// databases, the tables keyed by `tenant_id`.
///
/// Migrations are a sqlx [`Migrator`], embedded with `sqlx::migrate!` or loaded
/// with [`TenantSchema::from_dir`]. `C` is the connection type Rust seeds are
/// given ([`SqliteConnection`](sqlx::SqliteConnection) or `PgConnection`).
///
/// ```
/// use provisioning_sqlx::{Seed, TenantSchema};
/// use provisioning_sqlx::sqlx::SqliteConnection;
/// use provisioning_sqlx::sqlx::migrate::Migrator;
///
/// let schema = TenantSchema::<SqliteConnection>::new(Migrator::DEFAULT)
///     .seed(Seed::sql("roles", 1, "INSERT INTO roles (tenant_id, name) VALUES (?1, 'owner')"))
///     .tenant_tables(["roles", "users", "user_roles"]);
/// assert_eq!(schema.seeds().len(), 1);
/// ```
pub struct TenantSchema<C> {
    migrator: Arc<Migrator>,
    seeds: Vec<Seed<C>>,
    tenant_tables: Vec<String>,
}

impl<C> Clone for TenantSchema<C> {
    fn clone(&self) -> Self {
        TenantSchema {
            migrator: Arc::clone(&self.migrator),
            seeds: self.seeds.clone(),
            tenant_tables: self.tenant_tables.clone(),
        }
    }
}

impl<C> fmt::Debug for TenantSchema<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantSchema")
            .field("migrations", &self.migrator.iter().count())
            .field("seeds", &self.seeds)
            .field("tenant_tables", &self.tenant_tables)
            .finish()
    }
}

impl<C> TenantSchema<C> {
    /// A schema of these migrations, with no seeds yet.
    pub fn new(migrator: impl Into<Arc<Migrator>>) -> Self {
        TenantSchema {
            migrator: migrator.into(),
            seeds: Vec::new(),
            tenant_tables: Vec::new(),
        }
    }

    /// A schema of the migrations in a folder (`<version>_<description>.sql`
    /// files, as `sqlx migrate` names them).
    ///
    /// # Errors
    /// [`crate::Error::Migrations`] if the folder cannot be read.
    pub async fn from_dir(path: impl AsRef<Path>) -> crate::Result<Self> {
        let path = path.as_ref();
        let migrator = Migrator::new(path)
            .await
            .map_err(|source| crate::Error::Migrations {
                path: path.to_owned(),
                source,
            })?;
        Ok(TenantSchema::new(migrator))
    }

    /// Adds a seed; seeds run in the order added.
    #[must_use]
    pub fn seed(mut self, seed: Seed<C>) -> Self {
        self.seeds.push(seed);
        self
    }

    /// Declares the tables holding tenant rows in a shared database, parents
    /// first (the order they are created in): removing a tenant deletes its
    /// rows from them in reverse order. Ignored for dedicated databases, which
    /// are removed whole.
    #[must_use]
    pub fn tenant_tables<I, S>(mut self, tables: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tenant_tables = tables.into_iter().map(Into::into).collect();
        self
    }

    /// Its migrations.
    pub fn migrator(&self) -> &Migrator {
        &self.migrator
    }

    /// Its seeds, in order.
    pub fn seeds(&self) -> &[Seed<C>] {
        &self.seeds
    }

    /// Its tenant-scoped tables, parents first.
    pub fn tables(&self) -> &[String] {
        &self.tenant_tables
    }

    /// Checks the parts fit together; `shared` also requires tenant tables.
    pub(crate) fn validate(&self, field: &'static str, shared: bool) -> Result<(), crate::Error> {
        seed::check_unique(&self.seeds).map_err(|rule| crate::Error::Invalid { field, rule })?;
        if shared && self.tenant_tables.is_empty() {
            return Err(crate::Error::Invalid {
                field,
                rule: "a shared schema must declare its tenant_tables, or deleting a tenant \
                       would leave its rows behind"
                    .into(),
            });
        }
        if let Some(t) = self.tenant_tables.iter().find(|t| t.is_empty()) {
            return Err(crate::Error::Invalid {
                field,
                rule: format!("tenant table name {t:?} must not be empty"),
            });
        }
        Ok(())
    }
}
