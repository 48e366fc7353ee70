//! Moving a tenant's objects to another region's store: every object under
//! its prefix copied, bounded in flight, the marker last so that its presence
//! at the target means the copy is whole. The source is left as it is; the
//! move purges it once the tenant lives at the target.

use futures_util::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use provisioning_core::Placement;

use crate::error::{Result, StorageError};
use crate::marker::{self, TenantMarker};
use crate::paths::TenantPaths;
use crate::removal::tenant_objects;

/// Copies the tenant's objects from `source` (where `from` keeps them) to
/// `target` (where `to` does), then its marker, rewritten for `to`'s region
/// and plan. Returns how many objects other than the marker were copied.
///
/// A source without a marker (storage never initialized) copies what
/// objects there are and writes no marker, mirroring the source. A target
/// marker of another tenant, or an archive in progress at the source, is a
/// [`StorageError::MarkerConflict`] and nothing is copied.
pub(crate) async fn relocate(
    (source, from): (&dyn ObjectStore, &Placement),
    (target, to): (&dyn ObjectStore, &Placement),
    concurrency: usize,
) -> Result<u64> {
    let paths = TenantPaths::new(&from.tenant_id);
    let marker = marker::read(source, &paths).await?;
    if let Some(marker) = &marker {
        marker.check_usable(from)?;
    }
    if let Some(existing) = marker::read(target, &paths).await?
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
    let copied = tenant_objects(source, &paths)
        .map_err(|e| StorageError::store("list", paths.root(), e))
        .map_ok(|meta| copy_object(source, target, meta.location))
        .try_buffer_unordered(concurrency)
        .try_fold(0u64, |n, ()| async move { Ok(n + 1) })
        .await?;
    if let Some(marker) = marker {
        marker::write(target, &paths, &relocated(marker, to)).await?;
    }
    Ok(copied)
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
