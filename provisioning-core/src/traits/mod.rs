//! The four extension points: plan builder, shard resolver, schema manager and
//! storage initializer. Each is object-safe, `Send + Sync`, usable as
//! `Arc<dyn Trait>`, and implemented for `Arc<T>` and `Box<T>`.

mod plan_builder;
mod schema;
mod shard_resolver;
mod storage;

pub use plan_builder::TenantPlanBuilder;
pub use schema::{
    DatabaseOutcome, DropReason, MigrationInfo, SchemaPlan, SeedInfo, TableComparison,
    TenantSchemaManager, Upgrade, seed_each, upgrade_one,
};
pub use shard_resolver::ShardResolver;
pub use storage::{RemovalMode, StorageInitializer, StoragePlan};
