//! Removing a tenant's objects: purge (delete) or archive (move), both streamed
//! from the listing with a bound on what is in flight, never collected.
//!
//! Both leave the marker for last, so until a removal finishes the prefix still
//! says whose it is, and running the removal again finishes it.

use std::sync::Arc;

use chrono::Utc;
use futures_util::future::ready;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use provisioning_core::Placement;

use crate::error::{Error, Result};
use crate::marker::{self, TenantMarker};
use crate::paths::TenantPaths;

/// The tenant's objects except the marker, as a stream straight from `list`.
///
/// object_store lists by whole segments (`tenants/acme` lists `tenants/acme/...`
/// only); the trailing-slash check here keeps that promise for any store, so a
/// store that matched raw string prefixes still could not hand us `acme-eu`'s
/// objects.
pub(crate) fn tenant_objects(
    store: &dyn ObjectStore,
    paths: &TenantPaths,
) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
    let prefix = paths.prefix().to_owned();
    let marker = paths.marker();
    store
        .list(Some(paths.root()))
        .try_filter(move |meta| {
            let inside = meta.location.as_ref().starts_with(&prefix);
            if !inside {
                tracing::warn!(location = %meta.location, "store listed an object outside the tenant prefix; skipped");
            }
            ready(inside && meta.location != marker)
        })
        .boxed()
}

/// Deletes `location`; an object that is gone already counts as deleted.
async fn delete_if_exists(store: &dyn ObjectStore, location: &Path) -> Result<()> {
    match store.delete(location).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(Error::store("delete", location, e)),
    }
}

/// Deletes every object under the tenant's prefix, the marker last; returns how
/// many objects other than the marker were deleted.
///
/// The listing is handed as a stream to the store's `delete_stream`, which
/// deletes in bounded batches (S3: 1,000 keys per request; local: 10 files at
/// once), so memory does not grow with the number of objects.
pub(crate) async fn purge(store: &Arc<dyn ObjectStore>, paths: &TenantPaths) -> Result<u64> {
    let locations = tenant_objects(store.as_ref(), paths)
        .map_ok(|meta| meta.location)
        .boxed();
    let mut results = store.delete_stream(locations);
    let mut deleted = 0;
    while let Some(result) = results.next().await {
        match result {
            Ok(_) => deleted += 1,
            // Listed, then deleted by an earlier or concurrent run: the goal holds.
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(Error::store("purge", paths.prefix(), e)),
        }
    }
    // Looked up first so that purging a purged tenant writes nothing at all.
    let marker = paths.marker();
    match store.head(&marker).await {
        Ok(_) => delete_if_exists(store.as_ref(), &marker).await?,
        Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(Error::store("head", &marker, e)),
    }
    Ok(deleted)
}

/// Moves every object under the tenant's prefix to
/// `archive/{tenant_id}/{timestamp}/`, keeping relative paths, the marker last.
/// Returns the archive folder and how many objects other than the marker were
/// moved, or `None` when the tenant has no objects (removed already).
///
/// The timestamp is recorded in the marker before the first object moves
/// (a tenant without a marker gets one for this), so a retry after a crash reads
/// it back and finishes the same archive. Each object is copied, then its
/// original deleted, so no object exists nowhere: a crash between the two leaves
/// both, and the retry copies again (overwriting with the same bytes) and deletes.
pub(crate) async fn archive(
    store: &Arc<dyn ObjectStore>,
    placement: &Placement,
    paths: &TenantPaths,
    concurrency: usize,
) -> Result<Option<(Path, u64)>> {
    let store = store.as_ref();
    let started_at = match marker::read(store, paths).await? {
        Some(TenantMarker {
            archive_started_at: Some(started_at),
            ..
        }) => started_at,
        Some(mut marker) => {
            let now = Utc::now();
            marker.archive_started_at = Some(now);
            marker::write(store, paths, &marker).await?;
            now
        }
        None => {
            let first = tenant_objects(store, paths).try_next().await;
            match first.map_err(|e| Error::store("list", paths.prefix(), e))? {
                None => return Ok(None),
                Some(_) => {
                    // A half-initialized tenant: record the archive's timestamp
                    // so that a retry after a crash uses the same folder.
                    let now = Utc::now();
                    let mut marker = TenantMarker::new(placement, &[], now);
                    marker.archive_started_at = Some(now);
                    marker::write(store, paths, &marker).await?;
                    now
                }
            }
        }
    };
    let archive = paths.archive_root(started_at);

    let moved = tenant_objects(store, paths)
        .map_err(|e| Error::store("list", paths.prefix(), e))
        .map_ok(|meta| move_object(store, paths, &archive, meta.location))
        .try_buffer_unordered(concurrency)
        .try_fold(0_u64, |moved, ()| ready(Ok(moved + 1)))
        .await?;

    move_object(store, paths, &archive, paths.marker()).await?;
    Ok(Some((archive, moved)))
}

/// Copies `location` into the archive, then deletes the original.
async fn move_object(
    store: &dyn ObjectStore,
    paths: &TenantPaths,
    archive: &Path,
    location: Path,
) -> Result<()> {
    let Some(target) = paths.archived(archive, &location) else {
        // tenant_objects only yields locations under the prefix.
        return Ok(());
    };
    match store.copy(&location, &target).await {
        Ok(()) => {}
        // Moved by an earlier or concurrent run after it was listed.
        Err(object_store::Error::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(Error::store("copy", &location, e)),
    }
    delete_if_exists(store, &location).await
}
