//! # provisioning-sqlx
//!
//! Tenant databases for the provisioning SDK on [sqlx]: schema managers that
//! create a tenant's database (or find its shared one), run its migrations and
//! seeds idempotently and resumably, show what they would do (dry run), remove
//! it again, and roll new migrations out to a whole fleet of tenants.
//!
//! - [`SqliteSchemaManager`] (feature `sqlite`, default): a SQLite file per
//!   shared shard, or per dedicated tenant.
//! - `PgSchemaManager` (feature `postgres`): a database or a schema per
//!   dedicated tenant on the shard's server, or `tenant_id` rows in a shared
//!   database.
//! - [`TenantSchema`]: what a tenant database holds: a sqlx
//!   [`Migrator`](sqlx::migrate::Migrator), [`Seed`]s (SQL or Rust, recorded in
//!   a `_tenant_seeds` ledger with their checksum) and the tenant-scoped tables
//!   of a shared database.
//! - [`migrate_fleet`]: applies new migrations to every tenant database, each
//!   shared database once, with bounded concurrency, progress, failure
//!   isolation and a dry-run mode.
//!
//! ## Quick start
//!
//! ```
//! use provisioning_core::*;
//! use provisioning_sqlx::{Seed, SqliteSchemaManager, TenantSchema};
//! use provisioning_sqlx::sqlx::SqlSafeStr;
//! use provisioning_sqlx::sqlx::migrate::{Migration, MigrationType, Migrator};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! # let dir = tempfile::tempdir().unwrap();
//! // Usually `TenantSchema::from_dir(..)`, or `sqlx::migrate!("./migrations")`
//! // (sqlx's macros name `::sqlx`: they need sqlx as a dependency of your own).
//! let migrations = Migrator::with_migrations(vec![Migration::new(
//!     1, "roles".into(), MigrationType::Simple,
//!     "CREATE TABLE roles (tenant_id TEXT NOT NULL, name TEXT NOT NULL)".into_sql_str(), false)]);
//! let schema = TenantSchema::new(migrations)
//!     .seed(Seed::sql("roles", 1, "INSERT INTO roles (tenant_id, name) VALUES (?1, 'owner')"))
//!     .tenant_tables(["roles"]);
//! let manager = SqliteSchemaManager::builder()
//!     .root(dir.path())
//!     .shared(schema)
//!     .build()?;
//!
//! let plan = Placement::new("acme".parse()?,
//!     PlanDecision::new("free".parse()?, Isolation::Shared, "eu-west".parse()?,
//!         Residency::Flexible, "free is shared"),
//!     ShardChoice::new("eu-shared-1".parse()?, "eu-west".parse()?, "least loaded"));
//!
//! assert_eq!(manager.provision(&plan).await?, DatabaseOutcome::Shared);
//! manager.migrate(&plan).await?;
//! manager.seed(&plan).await?;
//! assert!(manager.plan(&plan).await?.pending_seeds.is_empty());
//! # Ok::<(), Error>(())
//! # }).unwrap();
//! ```
//!
//! ## Features
//!
//! - `sqlite` (default): [`SqliteSchemaManager`].
//! - `postgres`: `PgSchemaManager`.
//! - `sharding`: the stores as `provisioning_sharding::LoadSource` (each
//!   shard's tenant count, from the catalog), for `LeastLoadedResolver` or
//!   a resolver of your own.

mod error;
pub mod fleet;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod pool;
pub mod schema;
pub mod store;

pub use error::SqlxError;
pub use fleet::{
    FleetOptions, FleetProgress, FleetReport, FleetUnit, UnitOutcome, migrate_fleet,
    migrate_fleet_stream,
};
#[cfg(feature = "postgres")]
pub use schema::postgres::{
    PgDedicatedMode, PgSchemaManager, PgSchemaManagerBuilder, PgTenantSchema,
};
#[cfg(feature = "sqlite")]
pub use schema::sqlite::{
    SHARED_DATABASE_FILE, SqliteSchemaManager, SqliteSchemaManagerBuilder, SqliteTenantSchema,
};
pub use schema::{
    MigrationHook, SEED_LEDGER_TABLE, SEED_NAME_MAX_LEN, Seed, SeedBody, SeedFn, TenantSchema,
};
pub use store::*;

/// The sqlx this crate is built on, re-exported so that callers name
/// exactly its types (`provisioning_sqlx::sqlx::SqliteConnection` in a Rust
/// seed, `provisioning_sqlx::sqlx::migrate::Migrator` for a schema) without
/// pinning a version of their own. sqlx's macros (`migrate!`, `query!`)
/// expand to paths under `::sqlx`, so code that uses them depends on sqlx
/// itself, at this crate's version.
pub use sqlx;
