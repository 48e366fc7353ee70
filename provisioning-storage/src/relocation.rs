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

use crate::error::{Error, Result};
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
/// with [`Error::MarkerConflict`], nothing written: two stores that
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
        && (existing.tenant_id != to.tenant_id || existing.archive_started_at.is_some())
    {
        return Err(Error::MarkerConflict {
            tenant: to.tenant_id.clone(),
            reason: format!(
                "the target region {} holds a marker of tenant {} under this tenant's prefix \
                 (or an archive in progress)",
                to.region, existing.tenant_id
            ),
        });
    }
    if aliased(source.as_ref(), target.as_ref(), &paths).await? {
        return Err(Error::MarkerConflict {
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
        .map_err(|e| Error::store("list", paths.root(), e))
        .map_ok(|meta| copy_object(source.as_ref(), target.as_ref(), meta.location))
        .try_buffer_unordered(concurrency)
        .try_fold(0u64, |n, ()| async move { Ok(n + 1) })
        .await?;
    if let Some(marker) = marker {
        marker::write(target.as_ref(), &paths, &relocated(marker, to)).await?;
    }
    Ok(copied)
}

/// Purges the tenant's objects from `doomed`'s store after a relocation
/// between it and `kept`'s; how many were deleted, or `None` when they are
/// not the relocation's to remove: the two stores are one (the same store,
/// or a probe written to one is read from the other), or a marker says
/// otherwise (at `doomed`: another tenant's, another region's, or an archive
/// in progress; at `kept`: another region's, which is what a copy onto
/// itself through two names leaves).
pub(crate) async fn purge_other(
    (doomed, doomed_at): (&Arc<dyn ObjectStore>, &Placement),
    (kept, kept_at): (&Arc<dyn ObjectStore>, &Placement),
    paths: &TenantPaths,
) -> Result<Option<u64>> {
    if Arc::ptr_eq(doomed, kept) || aliased(kept.as_ref(), doomed.as_ref(), paths).await? {
        return Ok(None);
    }
    if let Some(marker) = marker::read(doomed.as_ref(), paths).await?
        && (marker.check_usable(doomed_at).is_err())
    {
        return Ok(None);
    }
    if let Some(marker) = marker::read(kept.as_ref(), paths).await?
        && marker.region != kept_at.region
    {
        return Ok(None);
    }
    removal::purge(doomed, paths).await.map(Some)
}

/// Whether an object written to `target` can be read from `source`: the two
/// are one store. The probe lives outside every tenant's prefix, so one
/// left behind by a crash is in no tenant's listing, copy or archive.
async fn aliased(
    source: &dyn ObjectStore,
    target: &dyn ObjectStore,
    paths: &TenantPaths,
) -> Result<bool> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let probe = Path::from_iter([
        PROBES_ROOT.to_owned(),
        format!("{}-{}-{nanos}", paths.tenant(), std::process::id()),
    ]);
    target
        .put(&probe, PutPayload::from_static(b"probe"))
        .await
        .map_err(|e| Error::store("put", &probe, e))?;
    let seen = match source.head(&probe).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(Error::store("head", &probe, e)),
    };
    match target.delete(&probe).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(Error::store("delete", &probe, e)),
    }
    seen
}

/// Where the probes of [`aliased`] are written, beside `tenants/`.
const PROBES_ROOT: &str = "_relocation-probes";

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
        Err(e) => return Err(Error::store("get", &location, e)),
    };
    target
        .put(&location, PutPayload::from(bytes))
        .await
        .map_err(|e| Error::store("put", &location, e))?;
    Ok(())
}
