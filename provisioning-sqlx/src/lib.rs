#![cfg_attr(feature = "sqlite", doc = include_str!("../README.md"))]
#![cfg_attr(not(feature = "sqlite"), doc = "# provisioning-sqlx")]
//!
//! ## What is where
//!
//! - [`SqliteSchemaManager`] (feature `sqlite`, default): a SQLite file per
//!   shared shard, or per dedicated tenant.
//! - `PostgresSchemaManager` (feature `postgres`): a database or a schema per
//!   dedicated tenant on the shard's server, or `tenant_id` rows in a shared
//!   database.
//! - [`TenantSchema`]: what a tenant database holds: a sqlx
//!   [`Migrator`](sqlx::migrate::Migrator), [`Seed`]s (SQL or Rust, recorded in
//!   a `_tenant_seeds` ledger with their checksum) and the tenant-scoped tables
//!   of a shared database.
//! - [`migrate_fleet`]: applies new migrations to every tenant database, each
//!   shared database once, with bounded concurrency, progress, failure
//!   isolation and a dry-run mode.
//! - `SqliteStore` (feature `sqlite`) and `PostgresStore` (feature
//!   `postgres`): the orchestrator's durable catalog and saga journal.

mod error;
pub mod fleet;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod pool;
pub mod schema;
pub mod store;

pub use error::{Error, Result, step_error};
pub use fleet::{
    FleetOptions, FleetProgress, FleetReport, FleetUnit, UnitOutcome, migrate_fleet,
    migrate_fleet_stream,
};
/// The trait the SQL stores implement with feature `sharding` (each shard's
/// tenant count, from the catalog), re-exported so that a resolver of yours
/// names it without a dependency of its own on provisioning-sharding.
#[cfg(feature = "sharding")]
pub use provisioning_sharding::LoadSource;
#[cfg(feature = "postgres")]
pub use schema::postgres::{
    PostgresDedicatedMode, PostgresSchemaManager, PostgresSchemaManagerBuilder,
    PostgresTenantSchema,
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
