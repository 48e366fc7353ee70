//! Moving a tenant's objects to another region's store: every object under
//! its prefix copied, bounded in flight, the marker last so that its presence
//! at the target means the copy is whole. The source is left as it is; the
//! move removes it once the tenant lives at the target.
//!
//! Two region stores may be one store under two names (two clients of one
//! bucket): copying would then copy each object onto itself, and removing
//! "the other side" would delete the only copy. Every step that deletes
//! checks first, with a probe object, that the two stores are distinct.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use provisioning_core::Placement;

use crate::error::{Result, StorageError};
use crate::marker::{self, TenantMarker};
use crate::paths::TenantPaths;
use crate::removal::{self, tenant_objects};

/// Copies the tenant's objects from `source` (where `from` keeps them) to
/// `target` (where `to` does), then its marker, rewritten for `to`'s region
/// and plan. Whatever the tenant had at the target before (left by an
/// earlier move) is purged first, so the target holds exactly the source's
/// objects. Returns how many objects other than the marker were copied.
///
/// A source without a marker (storage never initialized) copies what
/// objects there are and writes no marker, mirroring the source. Refused
/// with [`StorageError::MarkerConflict`], nothing written: two stores that
/// are one, a target marker of another tenant, an archive in progress at
/// the source.
pub(crate) async fn relocate(
    (source, from): (&Arc<dyn ObjectStore>, &Placement),
    (target, to): (&Arc<dyn ObjectStore>, &Placement),
    concurrency: usize,
) -> Result<u64> {
    let paths = TenantPaths::new(&from.tenant_id);
    let marker = marker::read(source.as_ref(), &paths).await?;
    if let Some(marker) = &marker {
        marker.check_usable(from)?;
    }
    if let Some(existing) = marker::read(target.as_ref(), &paths).await?
        && existing.tenant_id != to.tenant_id
    {
        return Err(StorageError::MarkerConflict {
            tenant: to.tenant_id.clone(),
            reason: format!(
                "the target region {} holds a marker of tenant {} under this tenant's prefix",
                to.region, existing.tenant_id
            ),
        });
    }
    if aliased(source.as_ref(), target.as_ref(), &paths).await? {
        return Err(StorageError::MarkerConflict {
            tenant: from.tenant_id.clone(),
            reason: format!(
                "the stores of regions {} and {} hold the same objects: the tenant's objects \
                 cannot move between them",
                from.region, to.region
            ),
        });
    }
    removal::purge(target, &paths).await?;
    let copied = tenant_objects(source.as_ref(), &paths)
        .map_err(|e| StorageError::store("list", paths.root(), e))
        .map_ok(|meta| copy_object(source.as_ref(), target.as_ref(), meta.location))
        .try_buffer_unordered(concurrency)
        .try_fold(0u64, |n, ()| async move { Ok(n + 1) })
        .await?;
    if let Some(marker) = marker {
        marker::write(target.as_ref(), &paths, &relocated(marker, to)).await?;
    }
    Ok(copied)
}

/// Purges the tenant's objects from `doomed`, unless `doomed` and `kept`
/// turn out to be one store; how many were deleted (`None`: one store,
/// nothing deleted).
pub(crate) async fn purge_other(
    doomed: &Arc<dyn ObjectStore>,
    kept: &Arc<dyn ObjectStore>,
    paths: &TenantPaths,
) -> Result<Option<u64>> {
    if Arc::ptr_eq(doomed, kept) || aliased(kept.as_ref(), doomed.as_ref(), paths).await? {
        return Ok(None);
    }
    removal::purge(doomed, paths).await.map(Some)
}

/// Whether an object written to `target` under the tenant's prefix can be
/// read from `source`: the two are one store. The probe is deleted again.
async fn aliased(
    source: &dyn ObjectStore,
    target: &dyn ObjectStore,
    paths: &TenantPaths,
) -> Result<bool> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // A name no layout folder or tenant object can have (they never start with `.`).
    let probe = paths
        .root()
        .clone()
        .join(format!(".relocation-probe-{}-{nanos}", std::process::id()));
    target
        .put(&probe, PutPayload::from_static(b"probe"))
        .await
        .map_err(|e| StorageError::store("put", &probe, e))?;
    let seen = match source.head(&probe).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(StorageError::store("head", &probe, e)),
    };
    match target.delete(&probe).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(StorageError::store("delete", &probe, e)),
    }
    seen
}

/// The marker as the target records it: the new region and plan; when it
/// was created and whether it is suspended come along.
fn relocated(mut marker: TenantMarker, to: &Placement) -> TenantMarker {
    marker.region = to.region.clone();
    marker.plan = to.plan.clone();
    marker
}

/// Copies one object, whole: objects are read into memory one per slot of
/// the bound in flight.
async fn copy_object(
    source: &dyn ObjectStore,
    target: &dyn ObjectStore,
    location: Path,
) -> Result<()> {
    let bytes = match source.get(&location).await {
        Ok(result) => result.bytes().await,
        Err(e) => Err(e),
    };
    let bytes = match bytes {
        Ok(bytes) => bytes,
        // Listed, then deleted: nothing left to copy.
        Err(object_store::Error::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(StorageError::store("get", &location, e)),
    };
    target
        .put(&location, PutPayload::from(bytes))
        .await
        .map_err(|e| StorageError::store("put", &location, e))?;
    Ok(())
}
