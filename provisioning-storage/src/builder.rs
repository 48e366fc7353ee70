//! [`ObjectStoreInitializerBuilder`]: regions, their stores, the folder layout.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::memory::InMemory;
use provisioning_core::Region;

use crate::error::{Error, Result};
use crate::initializer::ObjectStoreInitializer;
use crate::layout;

/// How many object store calls run at once by default while initializing and
/// archiving (purge hands its stream to the store's own bounded `delete_stream`).
pub const DEFAULT_CONCURRENCY: usize = 10;

/// Builds an [`ObjectStoreInitializer`]: one store per region, the folder layout,
/// and the bounded concurrency.
///
/// Setters never fail; the first mistake (a region given twice, a local folder
/// that cannot be created, a cloud builder missing its bucket, a bad layout
/// folder) is kept and returned by [`build`](Self::build), which never panics.
#[derive(Debug, Default)]
#[must_use]
pub struct ObjectStoreInitializerBuilder {
    stores: BTreeMap<Region, Arc<dyn ObjectStore>>,
    layout: Vec<String>,
    concurrency: Option<usize>,
    error: Option<Error>,
}

impl ObjectStoreInitializerBuilder {
    /// An empty builder: no region, no layout folders.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts the objects of tenants in `region` into `store`.
    ///
    /// A tenant whose region has no store gets
    /// [`Error::UnknownRegion`]: its objects never go to another region.
    pub fn region(mut self, region: Region, store: Arc<dyn ObjectStore>) -> Self {
        match self.stores.entry(region) {
            Entry::Vacant(slot) => {
                slot.insert(store);
            }
            Entry::Occupied(taken) => {
                let region = taken.key().clone();
                self.fail(Error::DuplicateRegion { region });
            }
        }
        self
    }

    /// Puts the objects of tenants in `region` into the local folder
    /// `{root}/{region}`, creating it if needed.
    ///
    /// Deleting an object also removes the folders it leaves empty, so a purged
    /// tenant leaves no empty directories behind.
    #[cfg(feature = "fs")]
    pub fn with_local(self, region: Region, root: impl AsRef<std::path::Path>) -> Self {
        let path = root.as_ref().join(region.as_str());
        let local = std::fs::create_dir_all(&path)
            .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })
            .and_then(|()| {
                object_store::local::LocalFileSystem::new_with_prefix(&path)
                    .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })
            });
        match local {
            Ok(store) => self.region(region, Arc::new(store.with_automatic_cleanup(true))),
            Err(source) => self.failed(Error::LocalRoot {
                region,
                path,
                source,
            }),
        }
    }

    /// Puts the objects of tenants in `region` into a new in-memory store: for
    /// tests and prototypes; everything is lost with the initializer.
    pub fn with_in_memory(self, region: Region) -> Self {
        self.region(region, Arc::new(InMemory::new()))
    }

    /// The folders created under every tenant's prefix, e.g.
    /// `["uploads", "exports"]`; nested folders use `/` (`"exports/daily"`).
    ///
    /// Replaces an earlier layout. Each folder becomes a zero-byte
    /// `tenants/{tenant_id}/{folder}/.keep` object. Rules, checked by `build`:
    /// segments of ASCII letters, digits, `-`, `_` and `.`, not starting with `.`,
    /// at most 63 characters.
    pub fn layout<I, S>(mut self, folders: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        match layout::normalize(folders) {
            Ok(folders) => self.layout = folders,
            Err(e) => self.fail(e),
        }
        self
    }

    /// How many object store calls run at once while initializing and archiving
    /// (default [`DEFAULT_CONCURRENCY`]); also the bound on objects in flight.
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = Some(concurrency);
        self
    }

    /// The initializer, or the first configuration mistake.
    ///
    /// # Errors
    /// [`Error::NoRegions`] without any region; otherwise the first error
    /// kept by a setter ([`Error::DuplicateRegion`],
    /// [`Error::InvalidLayoutFolder`], [`Error::LocalRoot`],
    /// [`Error::StoreConfig`]) or [`Error::ZeroConcurrency`].
    pub fn build(self) -> Result<ObjectStoreInitializer> {
        if let Some(error) = self.error {
            return Err(error);
        }
        if self.stores.is_empty() {
            return Err(Error::NoRegions);
        }
        let concurrency = self.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
        if concurrency == 0 {
            return Err(Error::ZeroConcurrency);
        }
        Ok(ObjectStoreInitializer::new(
            self.stores,
            self.layout,
            concurrency,
        ))
    }

    /// Keeps the first error only: later ones are often consequences of it.
    pub(crate) fn fail(&mut self, error: Error) {
        self.error.get_or_insert(error);
    }

    #[cfg(any(feature = "fs", feature = "aws", feature = "azure", feature = "gcp"))]
    pub(crate) fn failed(mut self, error: Error) -> Self {
        self.fail(error);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(name: &str) -> Region {
        name.parse().unwrap()
    }

    #[test]
    fn build_names_what_is_missing_or_wrong() {
        assert!(matches!(
            ObjectStoreInitializerBuilder::new().build(),
            Err(Error::NoRegions)
        ));
        let err = ObjectStoreInitializerBuilder::new()
            .with_in_memory(region("eu-west"))
            .with_in_memory(region("eu-west"))
            .build()
            .unwrap_err();
        assert_eq!(err.to_string(), "region eu-west is configured twice");
        let err = ObjectStoreInitializerBuilder::new()
            .with_in_memory(region("eu-west"))
            .layout(["uploads", "../escape"])
            .build()
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidLayoutFolder { ref folder, .. } if folder == "../escape")
        );
        assert!(matches!(
            ObjectStoreInitializerBuilder::new()
                .with_in_memory(region("eu-west"))
                .concurrency(0)
                .build(),
            Err(Error::ZeroConcurrency)
        ));
    }

    #[test]
    fn build_keeps_regions_and_layout() {
        let init = ObjectStoreInitializerBuilder::new()
            .with_in_memory(region("us-east"))
            .with_in_memory(region("eu-west"))
            .layout(["uploads/", "exports"])
            .build()
            .unwrap();
        let regions: Vec<_> = init.regions().map(Region::as_str).collect();
        assert_eq!(regions, ["eu-west", "us-east"]);
        assert_eq!(init.layout(), ["uploads", "exports"]);
    }

    #[cfg(feature = "fs")]
    #[test]
    fn with_local_creates_one_folder_per_region() {
        let dir = tempfile::tempdir().unwrap();
        ObjectStoreInitializerBuilder::new()
            .with_local(region("eu-west"), dir.path())
            .with_local(region("us-east"), dir.path())
            .build()
            .unwrap();
        assert!(dir.path().join("eu-west").is_dir());
        assert!(dir.path().join("us-east").is_dir());
    }

    #[cfg(feature = "fs")]
    #[test]
    fn with_local_reports_an_unusable_root() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let err = ObjectStoreInitializerBuilder::new()
            .with_local(region("eu-west"), &file)
            .build()
            .unwrap_err();
        assert!(
            matches!(err, Error::LocalRoot { ref path, .. } if *path == file.join("eu-west")),
            "{err:?}"
        );
    }
}
