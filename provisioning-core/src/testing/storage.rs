//! The storage initializer conformance suite.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use crate::model::{Placement, TenantId};
use crate::testing::unique_tenant;
use crate::traits::{RemovalMode, StorageInitializer, StoragePreview};

/// Runs every check against `storage`, placing each fresh tenant with
/// `place` (in a region the storage has a store for). The checks purge what
/// they initialize, but the archive checks leave their archives
/// (`archive/{tenant}/...` in the SDK's storage): run the suite against a
/// scratch folder, bucket or prefix. Refusals of bad input are checked
/// apart, with a placement of your choosing:
/// [`storage_bad_input_is_refused_and_writes_nothing`].
///
/// ```
/// # use std::sync::Arc;
/// # use provisioning_core::*;
/// # async fn check(storage: Arc<dyn StorageInitializer>) {
/// let place = |tenant: &TenantId| {
///     Placement::new(
///         tenant.clone(),
///         PlacementDecision::new("free".parse().unwrap(), Isolation::Shared,
///             "eu-west".parse().unwrap(), Residency::Flexible, "conformance"),
///         ShardChoice::new("eu-shared-1".parse().unwrap(), "eu-west".parse().unwrap(), "conformance"),
///     )
/// };
/// provisioning_core::testing::storage_conformance(storage, place).await;
/// # }
/// ```
pub async fn storage_conformance<F>(storage: Arc<dyn StorageInitializer>, place: F)
where
    F: Fn(&TenantId) -> Placement + Send + Sync,
{
    let s = &*storage;
    storage_dry_run_changes_nothing(s, &place).await;
    storage_initialize_suspend_resume_are_idempotent(s, &place).await;
    storage_remove_archives_or_purges_once(s, &place, RemovalMode::Archive).await;
    storage_remove_archives_or_purges_once(s, &place, RemovalMode::Purge).await;
    storage_tenants_sharing_a_prefix_stay_apart(s, &place).await;
}

async fn preview(storage: &dyn StorageInitializer, placement: &Placement) -> StoragePreview {
    storage
        .preview(placement)
        .await
        .unwrap_or_else(|e| panic!("preview({}) failed: {e}", placement.tenant_id))
}

/// The dry run lists the paths initialization creates, none of them
/// existing, and says the same when run again.
pub async fn storage_dry_run_changes_nothing(
    storage: &dyn StorageInitializer,
    place: &dyn Fn(&TenantId) -> Placement,
) {
    let placement = place(&unique_tenant("conform"));
    let first = preview(storage, &placement).await;
    assert!(!first.exists, "a new tenant's storage exists: {first:?}");
    assert!(
        !first.paths.is_empty(),
        "the dry run lists no path: {first:?}"
    );
    for path in &first.paths {
        assert!(
            path.contains(placement.tenant_id.as_str()),
            "path {path} does not name the tenant"
        );
    }
    assert_eq!(
        preview(storage, &placement).await,
        first,
        "a dry run changed something"
    );
}

/// Initialize creates what the dry run listed; initialize, suspend and
/// resume again change nothing and fail nothing.
pub async fn storage_initialize_suspend_resume_are_idempotent(
    storage: &dyn StorageInitializer,
    place: &dyn Fn(&TenantId) -> Placement,
) {
    let placement = place(&unique_tenant("conform"));
    let planned = preview(storage, &placement).await;
    storage.initialize(&placement).await.unwrap();
    let after = preview(storage, &placement).await;
    assert!(
        after.exists,
        "initialized, yet the dry run says missing: {after:?}"
    );
    assert_eq!(
        after.paths, planned.paths,
        "initialize created other paths than planned"
    );
    storage.initialize(&placement).await.unwrap();
    for _ in 0..2 {
        storage.suspend(&placement).await.unwrap();
    }
    assert!(
        preview(storage, &placement).await.exists,
        "suspend removed the storage"
    );
    for _ in 0..2 {
        storage.resume(&placement).await.unwrap();
    }
    assert!(
        preview(storage, &placement).await.exists,
        "resume removed the storage"
    );
    storage
        .remove(&placement, RemovalMode::Purge)
        .await
        .unwrap();
}

/// Remove (archive or purge) leaves the tenant's storage gone; removing
/// again, or removing a tenant never initialized, succeeds; the tenant can
/// be initialized anew afterwards.
pub async fn storage_remove_archives_or_purges_once(
    storage: &dyn StorageInitializer,
    place: &dyn Fn(&TenantId) -> Placement,
    mode: RemovalMode,
) {
    let placement = place(&unique_tenant("conform"));
    storage.initialize(&placement).await.unwrap();
    storage.remove(&placement, mode).await.unwrap();
    let after = preview(storage, &placement).await;
    assert!(
        !after.exists,
        "{mode:?}: the storage is still there: {after:?}"
    );
    storage
        .remove(&placement, mode)
        .await
        .unwrap_or_else(|e| panic!("{mode:?}: removing again failed: {e}"));
    let never = place(&unique_tenant("conform"));
    storage
        .remove(&never, mode)
        .await
        .unwrap_or_else(|e| panic!("{mode:?}: removing a tenant never initialized failed: {e}"));
    storage.initialize(&placement).await.unwrap();
    assert!(
        preview(storage, &placement).await.exists,
        "{mode:?}: re-initialize"
    );
    storage
        .remove(&placement, RemovalMode::Purge)
        .await
        .unwrap();
}

/// Removing `t` leaves `t-eu` (whose paths start with `t`'s) whole.
pub async fn storage_tenants_sharing_a_prefix_stay_apart(
    storage: &dyn StorageInitializer,
    place: &dyn Fn(&TenantId) -> Placement,
) {
    let short = unique_tenant("conform");
    let long: TenantId = format!("{short}-eu").parse().unwrap();
    let (a, b) = (place(&short), place(&long));
    storage.initialize(&a).await.unwrap();
    storage.initialize(&b).await.unwrap();
    for mode in [RemovalMode::Archive, RemovalMode::Purge] {
        storage.remove(&a, mode).await.unwrap();
        let other = preview(storage, &b).await;
        assert!(
            other.exists,
            "{mode:?} of {short} removed {long}: {other:?}"
        );
    }
    storage.remove(&b, RemovalMode::Purge).await.unwrap();
}

/// `storage` refuses `placement` (one it must not serve: a region it has
/// no store for, say) with a permanent error, and writes nothing for it.
/// Not part of [`storage_conformance`], since what a storage must refuse is
/// its own: one bucket for every region has nothing to refuse there.
pub async fn storage_bad_input_is_refused_and_writes_nothing(
    storage: &dyn StorageInitializer,
    placement: &Placement,
) {
    let error = storage
        .initialize(placement)
        .await
        .expect_err("initializing a placement the storage must refuse succeeded");
    assert!(!error.is_transient(), "a refusal is not transient: {error}");
    if let Ok(planned) = storage.preview(placement).await {
        assert!(!planned.exists, "{planned:?}");
    }
}
