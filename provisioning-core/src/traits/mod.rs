//! The four extension points: placement policy, shard resolver, schema manager and
//! storage initializer. Each is object-safe, `Send + Sync`, usable as
//! `Arc<dyn Trait>`, and implemented for `Arc<T>` and `Box<T>`.

mod placement_policy;
mod schema;
mod shard_resolver;
mod storage;

pub use placement_policy::PlacementPolicy;
pub use schema::{
    DatabaseOutcome, DropReason, MigrationInfo, SchemaPreview, SeedInfo, TableComparison,
    TenantSchemaManager, Upgrade, seed_each, upgrade_one,
};
pub use shard_resolver::ShardResolver;
pub use storage::{RemovalMode, StorageInitializer, StoragePreview};
