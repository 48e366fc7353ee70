//! [`ObjectStoreInitializer`]: the [`StorageInitializer`] on any `ObjectStore`.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use futures_util::{StreamExt, TryStreamExt, stream};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use provisioning_core::{Placement, Region, RemovalMode, StorageInitializer, StoragePreview};

use crate::builder::ObjectStoreInitializerBuilder;
use crate::error::{Error, Result};
use crate::marker::{self, MARKER_VERSION, TenantMarker};
use crate::paths::TenantPaths;
use crate::{relocation, removal};

/// Creates each tenant's folders in its region's object store on activation, and
/// archives or purges them on delete.
///
/// Every tenant's objects live under `tenants/{tenant_id}/` (see [`TenantPaths`])
/// in the store configured for the tenant's region: one zero-byte `.keep` object
/// per layout folder, and the marker `.tenant.json` ([`TenantMarker`]) written
/// last, so a prefix without a marker is a half-initialized tenant.
///
/// - [`initialize`](StorageInitializer::initialize) is idempotent: when the marker
///   already matches the plan and layout it writes nothing at all; otherwise it
///   creates only the missing `.keep` objects, then (re)writes the marker.
/// - [`suspend`](StorageInitializer::suspend) and
///   [`resume`](StorageInitializer::resume) record the state in the marker; doing
///   either twice changes nothing the second time.
/// - [`remove`](StorageInitializer::remove) with [`RemovalMode::Purge`] streams
///   the listing into the store's bounded batch delete; with
///   [`RemovalMode::Archive`] it moves every object to
///   `archive/{tenant_id}/{timestamp}/` with bounded concurrency. Both delete the
///   marker last, and a retry after a crash finishes the job (an archive records
///   its timestamp in the marker first, so a retry uses the same folder).
///   Removing a removed tenant succeeds and writes nothing.
///
/// Paths are built only from the validated [`TenantId`](provisioning_core::TenantId)
/// and compared with the trailing slash, so tenant `acme` never reaches
/// `acme-eu`'s objects. A tenant whose region has no store fails with a
/// `NotFound` error on `object store for region` (see
/// [`Error::UnknownRegion`]) before anything is written.
///
/// ```
/// use provisioning_core::{Isolation, PlacementDecision, RemovalMode, Residency, ShardChoice,
///     StorageInitializer, Placement};
/// use provisioning_storage::ObjectStoreInitializer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let eu = "eu-west".parse()?;
/// let storage = ObjectStoreInitializer::builder()
///     .with_in_memory(eu)
///     .layout(["uploads", "exports"])
///     .build()?;
///
/// let plan = Placement::new(
///     "acme".parse()?,
///     PlacementDecision::new("free".parse()?, Isolation::Shared, "eu-west".parse()?,
///         Residency::Strict, "free plans share"),
///     ShardChoice::new("eu-1".parse()?, "eu-west".parse()?, "only shard"),
/// );
///
/// let dry_run = storage.preview(&plan).await?;
/// assert_eq!(dry_run.paths, ["tenants/acme/uploads/", "tenants/acme/exports/",
///     "tenants/acme/.tenant.json"]);
/// assert!(!dry_run.exists);
///
/// storage.initialize(&plan).await?;
/// storage.initialize(&plan).await?; // idempotent: writes nothing
/// let marker = storage.read_marker(&plan).await?.expect("initialized");
/// assert_eq!(marker.layout, ["uploads", "exports"]);
///
/// storage.suspend(&plan).await?;
/// assert!(storage.read_marker(&plan).await?.expect("initialized").suspended);
///
/// storage.remove(&plan, RemovalMode::Purge).await?;
/// assert!(storage.read_marker(&plan).await?.is_none());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ObjectStoreInitializer {
    stores: BTreeMap<Region, Arc<dyn ObjectStore>>,
    layout: Vec<String>,
    concurrency: usize,
}

impl ObjectStoreInitializer {
    /// A builder: add regions and their stores, then the layout.
    pub fn builder() -> ObjectStoreInitializerBuilder {
        ObjectStoreInitializerBuilder::new()
    }

    pub(crate) fn new(
        stores: BTreeMap<Region, Arc<dyn ObjectStore>>,
        layout: Vec<String>,
        concurrency: usize,
    ) -> Self {
        ObjectStoreInitializer {
            stores,
            layout,
            concurrency,
        }
    }

    /// The configured regions, in order.
    pub fn regions(&self) -> impl Iterator<Item = &Region> {
        self.stores.keys()
    }

    /// The layout folders, normalized (no leading or trailing `/`).
    pub fn layout(&self) -> &[String] {
        &self.layout
    }

    /// How many object store calls run at once while initializing and archiving.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// The store that holds the objects of tenants in `region`.
    ///
    /// # Errors
    /// [`Error::UnknownRegion`] naming `region` and the configured ones.
    pub fn store(&self, region: &Region) -> Result<&Arc<dyn ObjectStore>> {
        self.stores.get(region).ok_or_else(|| Error::UnknownRegion {
            region: region.clone(),
            configured: self.stores.keys().cloned().collect(),
        })
    }

    /// The tenant's marker in its region's store; `None` before initialization or
    /// after removal.
    ///
    /// # Errors
    /// [`Error::UnknownRegion`], [`Error::CorruptMarker`], or
    /// [`Error::ObjectStore`] when the store fails.
    pub async fn read_marker(&self, placement: &Placement) -> Result<Option<TenantMarker>> {
        let store = self.store(&placement.region)?;
        marker::read(store.as_ref(), &TenantPaths::new(&placement.tenant_id)).await
    }

    /// The marker of a tenant that must be initialized, checked against `plan`.
    async fn existing_marker(
        &self,
        store: &dyn ObjectStore,
        placement: &Placement,
        paths: &TenantPaths,
    ) -> Result<TenantMarker> {
        let marker = marker::read(store, paths)
            .await?
            .ok_or_else(|| Error::NotInitialized {
                tenant: placement.tenant_id.clone(),
            })?;
        match marker.conflict(placement) {
            Some(conflict) => Err(conflict),
            None => Ok(marker),
        }
    }

    async fn initialize_tenant(&self, placement: &Placement) -> Result<()> {
        let store = self.store(&placement.region)?.as_ref();
        let paths = TenantPaths::new(&placement.tenant_id);
        let existing = marker::read(store, &paths).await?;
        if let Some(marker) = &existing {
            marker.check_usable(placement)?;
            if marker.is_current(placement, &self.layout) {
                tracing::debug!("tenant storage already initialized");
                return Ok(());
            }
        }

        // Collected first (a layout is a handful of folders) because a borrowing
        // closure over `self.layout` is not general enough for an `async_trait`
        // future to be `Send`.
        let keeps: Vec<Path> = self.layout.iter().map(|f| paths.keep(f)).collect();
        stream::iter(keeps)
            .map(|keep| ensure_keep(store, keep))
            .buffer_unordered(self.concurrency)
            .try_collect::<()>()
            .await?;

        // The marker goes last: its presence means every folder exists.
        let marker = match existing {
            Some(mut marker) => {
                // A placement or layout change: keep `created` and the suspension.
                marker.version = MARKER_VERSION;
                marker.plan = placement.plan.clone();
                marker.layout = self.layout.clone();
                marker
            }
            None => TenantMarker::new(placement, &self.layout, Utc::now()),
        };
        marker::write(store, &paths, &marker).await?;
        tracing::info!(folders = self.layout.len(), "tenant storage initialized");
        Ok(())
    }

    /// Purges the tenant's objects at `doomed`'s region after a relocation
    /// between it and `kept`'s, never when the two regions' stores are one.
    async fn purge_one_side(
        &self,
        doomed: &Placement,
        kept: &Placement,
        undo: bool,
    ) -> provisioning_core::Result<()> {
        if self.keeps_objects(doomed, kept) {
            return Ok(());
        }
        let (doomed_store, kept_store) =
            match (self.store(&doomed.region), self.store(&kept.region)) {
                (Ok(doomed_store), Ok(kept_store)) => (doomed_store, kept_store),
                // An undo: a region without a store had nothing written to it.
                _ if undo => return Ok(()),
                (Err(e), _) | (_, Err(e)) => return Err(e.into()),
            };
        let paths = TenantPaths::new(&doomed.tenant_id);
        match relocation::purge_other((doomed_store, doomed), (kept_store, kept), &paths).await? {
            Some(objects) => {
                tracing::info!(objects, region = %doomed.region, "relocated tenant storage purged")
            }
            None => tracing::warn!(
                region = %doomed.region,
                "the tenant's objects there are not a relocation's to remove; nothing purged"
            ),
        }
        Ok(())
    }

    async fn set_suspended(&self, placement: &Placement, suspended: bool) -> Result<()> {
        let store = self.store(&placement.region)?.as_ref();
        let paths = TenantPaths::new(&placement.tenant_id);
        let mut marker = self.existing_marker(store, placement, &paths).await?;
        if marker.suspended == suspended {
            // Idempotent: the first call's timestamp stays.
            return Ok(());
        }
        let now = Utc::now();
        marker.suspended = suspended;
        if suspended {
            marker.suspended_at = Some(now);
        } else {
            marker.suspended_at = None;
            marker.resumed_at = Some(now);
        }
        marker::write(store, &paths, &marker).await?;
        tracing::info!(suspended, "tenant storage marker updated");
        Ok(())
    }

    async fn remove_tenant(&self, placement: &Placement, mode: RemovalMode) -> Result<()> {
        let store = self.store(&placement.region)?;
        let paths = TenantPaths::new(&placement.tenant_id);
        match mode {
            RemovalMode::Purge => {
                let deleted = removal::purge(store, &paths).await?;
                tracing::info!(objects = deleted, "tenant storage purged");
            }
            RemovalMode::Archive => {
                match removal::archive(store, placement, &paths, self.concurrency).await? {
                    Some((archive, moved)) => {
                        tracing::info!(objects = moved, archive = %archive, "tenant storage archived");
                    }
                    None => tracing::debug!("tenant storage already removed"),
                }
            }
        }
        Ok(())
    }
}

/// Creates the zero-byte `.keep` object unless it exists, so that re-running
/// initialization does not touch objects that are already there.
async fn ensure_keep(store: &dyn ObjectStore, keep: Path) -> Result<()> {
    match store.head(&keep).await {
        Ok(_) => Ok(()),
        Err(object_store::Error::NotFound { .. }) => store
            .put(&keep, PutPayload::new())
            .await
            .map(drop)
            .map_err(|e| Error::store("put", &keep, e)),
        Err(e) => Err(Error::store("head", &keep, e)),
    }
}

#[async_trait]
impl StorageInitializer for ObjectStoreInitializer {
    /// The folder prefixes and the marker initialization creates; reads the
    /// marker only. Fails like `initialize` on an unknown region or a marker that
    /// belongs to another tenant or region.
    #[tracing::instrument(skip_all, fields(tenant_id = %placement.tenant_id, region = %placement.region))]
    async fn preview(&self, placement: &Placement) -> provisioning_core::Result<StoragePreview> {
        let store = self.store(&placement.region)?.as_ref();
        let paths = TenantPaths::new(&placement.tenant_id);
        let existing = marker::read(store, &paths).await?;
        if let Some(conflict) = existing.as_ref().and_then(|m| m.conflict(placement)) {
            return Err(conflict.into());
        }
        let mut planned: Vec<String> = self
            .layout
            .iter()
            .map(|folder| paths.folder_prefix(folder))
            .collect();
        planned.push(paths.marker().to_string());
        Ok(StoragePreview::new(planned, existing.is_some()))
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %placement.tenant_id, region = %placement.region))]
    async fn initialize(&self, placement: &Placement) -> provisioning_core::Result<()> {
        Ok(self.initialize_tenant(placement).await?)
    }

    /// Sets `suspended: true` and `suspended_at` in the marker; a tenant that is
    /// suspended already is left as it is. `NotFound` on `tenant storage` when the
    /// tenant has no marker.
    #[tracing::instrument(skip_all, fields(tenant_id = %placement.tenant_id, region = %placement.region))]
    async fn suspend(&self, placement: &Placement) -> provisioning_core::Result<()> {
        Ok(self.set_suspended(placement, true).await?)
    }

    /// Sets `suspended: false`, clears `suspended_at` and sets `resumed_at`; an
    /// active tenant is left as it is.
    #[tracing::instrument(skip_all, fields(tenant_id = %placement.tenant_id, region = %placement.region))]
    async fn resume(&self, placement: &Placement) -> provisioning_core::Result<()> {
        Ok(self.set_suspended(placement, false).await?)
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %placement.tenant_id, region = %placement.region, mode = ?mode))]
    async fn remove(
        &self,
        placement: &Placement,
        mode: RemovalMode,
    ) -> provisioning_core::Result<()> {
        Ok(self.remove_tenant(placement, mode).await?)
    }

    /// Objects stay put within a region: its store holds them whatever the
    /// shard or isolation.
    fn keeps_objects(&self, from: &Placement, to: &Placement) -> bool {
        from.region == to.region
    }

    /// Copies the tenant's objects, then its marker (new region and plan,
    /// suspension and creation time kept), from `from`'s region's store to
    /// `to`'s, after purging what the tenant had left there. Fails with
    /// `UnknownRegion` for a region without a store, and refuses two regions
    /// whose stores hold the same objects (checked with a probe object), since
    /// removing either side would delete the only copy.
    #[tracing::instrument(skip_all, fields(tenant_id = %from.tenant_id, from = %from.region, to = %to.region))]
    async fn relocate(&self, from: &Placement, to: &Placement) -> provisioning_core::Result<()> {
        if self.keeps_objects(from, to) {
            return Ok(());
        }
        let (source, target) = (self.store(&from.region)?, self.store(&to.region)?);
        if Arc::ptr_eq(source, target) {
            return Err(Error::MarkerConflict {
                tenant: from.tenant_id.clone(),
                reason: format!(
                    "regions {} and {} share one object store: the tenant's objects cannot \
                     move between them",
                    from.region, to.region
                ),
            }
            .into());
        }
        let copied = relocation::relocate((source, from), (target, to), self.concurrency).await?;
        tracing::info!(objects = copied, "tenant storage relocated");
        Ok(())
    }

    /// Purges the tenant's objects in `to`'s region, unless that store is
    /// `from`'s (the same store, or one holding the same objects) or unknown
    /// (a relocation could not have written there).
    #[tracing::instrument(skip_all, fields(tenant_id = %from.tenant_id, from = %from.region, to = %to.region))]
    async fn discard_relocated(
        &self,
        from: &Placement,
        to: &Placement,
    ) -> provisioning_core::Result<()> {
        self.purge_one_side(to, from, true).await
    }

    /// Purges the tenant's objects in `from`'s region, unless that store is
    /// `to`'s (the same store, or one holding the same objects).
    #[tracing::instrument(skip_all, fields(tenant_id = %from.tenant_id, from = %from.region, to = %to.region))]
    async fn release_relocated(
        &self,
        from: &Placement,
        to: &Placement,
    ) -> provisioning_core::Result<()> {
        self.purge_one_side(from, to, false).await
    }
}
