//! Conformance suites and fault wrappers (feature `testing`), for the
//! implementers of the SDK's traits and for the tests of your own steps.
//!
//! - [`store_conformance`]: every check a [`TenantStore`](crate::TenantStore)
//!   must pass (with [`fleet_conformance`] for its
//!   [`FleetStore`](crate::FleetStore));
//! - [`schema_conformance`]: the contract of a
//!   [`TenantSchemaManager`](crate::TenantSchemaManager): dry run, provision,
//!   migrate, seed, idempotent repeats, concurrent repeats, drop, upgrade, bad
//!   input;
//! - [`storage_conformance`]: the contract of a
//!   [`StorageInitializer`](crate::StorageInitializer): dry run, initialize,
//!   suspend and resume, archive and purge, idempotent repeats, tenants that
//!   share a prefix, bad input;
//! - [`CrashingJournal`] and [`CrashingStore`]: a journal or a store that
//!   "dies" after its Nth journal write, to test that a run cut short there is
//!   finished or rolled back by [`recover`](crate::ProvisioningOrchestrator::recover);
//!   with [`StepFaults`](crate::StepFaults) (a step that fails once or for
//!   good), the faults the SDK's own tests use.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = std::sync::Arc::new(provisioning_core::InMemoryStore::new());
//! provisioning_core::testing::store_conformance(store).await;
//! # });
//! ```
//!
//! Every check uses fresh random tenant ids, so a suite can run against a
//! backend that already holds data, and twice in a row. A failed check panics
//! with what was expected, naming the check.

mod faults;
mod schema;
mod storage;
mod store;

pub use faults::{CrashingJournal, CrashingStore};
pub use schema::{
    schema_bad_input_is_refused_and_writes_nothing, schema_concurrent_runs_apply_each_step_once,
    schema_conformance, schema_drop_is_idempotent_and_leaves_nothing,
    schema_dry_run_changes_nothing, schema_provision_migrate_seed_then_nothing_again,
    schema_upgrade_brings_databases_to_the_release,
};
pub use storage::{
    storage_bad_input_is_refused_and_writes_nothing, storage_conformance,
    storage_dry_run_changes_nothing, storage_initialize_suspend_resume_are_idempotent,
    storage_remove_archives_or_purges_once, storage_tenants_sharing_a_prefix_stay_apart,
};
pub use store::*;
