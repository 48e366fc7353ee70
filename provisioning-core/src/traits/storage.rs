//! [`StorageInitializer`]: a tenant's folders or containers.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::Placement;

/// What removing a tenant's storage does with its objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalMode {
    /// Move every object under an archive prefix, then remove the tenant's prefix.
    #[default]
    Archive,
    /// Delete every object under the tenant's prefix.
    Purge,
}

/// What initializing a tenant's storage would create: the result of a dry run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StoragePreview {
    /// The paths (prefixes and marker) that initialization creates.
    pub paths: Vec<String>,
    /// Whether the tenant's storage is initialized already.
    pub exists: bool,
}

impl StoragePreview {
    /// A preview with the given paths.
    pub fn new(paths: Vec<String>, exists: bool) -> Self {
        StoragePreview { paths, exists }
    }
}

/// Creates a tenant's storage on activation and removes it on delete.
///
/// Every method is idempotent: initializing an initialized tenant changes nothing,
/// removing a removed one succeeds. Implementations build paths only from the
/// validated [`TenantId`](crate::TenantId), so no tenant reaches another's objects.
///
/// ```
/// use std::collections::BTreeSet;
/// use std::sync::Mutex;
///
/// use async_trait::async_trait;
/// use provisioning_core::{RemovalMode, Result, StorageInitializer, StoragePreview, Placement};
///
/// /// Keeps folder names in a set.
/// #[derive(Default)]
/// struct Folders(Mutex<BTreeSet<String>>);
///
/// impl Folders {
///     fn paths(placement: &Placement) -> Vec<String> {
///         ["uploads/", "exports/"].iter().map(|d| format!("tenants/{}/{d}", placement.tenant_id)).collect()
///     }
/// }
///
/// #[async_trait]
/// impl StorageInitializer for Folders {
///     async fn preview(&self, placement: &Placement) -> Result<StoragePreview> {
///         let paths = Self::paths(placement);
///         let exists = self.0.lock().unwrap().contains(&paths[0]);
///         Ok(StoragePreview::new(paths, exists))
///     }
///     async fn initialize(&self, placement: &Placement) -> Result<()> {
///         self.0.lock().unwrap().extend(Self::paths(placement));
///         Ok(())
///     }
///     async fn remove(&self, placement: &Placement, _mode: RemovalMode) -> Result<()> {
///         let prefix = format!("tenants/{}/", placement.tenant_id);
///         self.0.lock().unwrap().retain(|p| !p.starts_with(&prefix));
///         Ok(())
///     }
/// }
///
/// # use provisioning_core::*;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// # let placement = Placement::new("acme".parse()?, PlacementDecision::new("free".parse()?,
/// #     Isolation::Shared, "eu-west".parse()?, Residency::Strict, "free"),
/// #     ShardChoice::new("eu-1".parse()?, "eu-west".parse()?, "only shard"));
/// let storage = Folders::default();
/// storage.initialize(&placement).await?;
/// storage.initialize(&placement).await?; // idempotent
/// assert!(storage.preview(&placement).await?.exists);
/// storage.remove(&placement, RemovalMode::Purge).await?;
/// assert!(!storage.preview(&placement).await?.exists);
/// # Ok::<(), Error>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait StorageInitializer: Send + Sync {
    /// The dry run: the paths initialization would create. Creates nothing.
    async fn preview(&self, placement: &Placement) -> Result<StoragePreview>;

    /// Creates the tenant's folders and marker.
    async fn initialize(&self, placement: &Placement) -> Result<()>;

    /// Records that the tenant is suspended; the default does nothing.
    async fn suspend(&self, placement: &Placement) -> Result<()> {
        let _ = placement;
        Ok(())
    }

    /// Records that the tenant is active again; the default does nothing.
    async fn resume(&self, placement: &Placement) -> Result<()> {
        let _ = placement;
        Ok(())
    }

    /// Archives or purges everything under the tenant's prefix.
    async fn remove(&self, placement: &Placement, mode: RemovalMode) -> Result<()>;

    /// Whether a tenant moving from `from` to `to` keeps its objects where
    /// they are. The default: when both are in one region (storage is kept
    /// per region). When not, the move calls [`relocate`](Self::relocate)
    /// while the tenant's writes are held, then, once the tenant lives at
    /// `to`, [`release_relocated`](Self::release_relocated); a move rolled
    /// back calls [`discard_relocated`](Self::discard_relocated).
    fn keeps_objects(&self, from: &Placement, to: &Placement) -> bool {
        from.region == to.region
    }

    /// Copies every object of the tenant, and its storage's own records,
    /// from where `from` keeps them to where `to` does, leaving `from`'s as
    /// they are. Running it again replaces what an earlier run copied.
    ///
    /// The default refuses: a storage that cannot copy between regions keeps
    /// its tenants in theirs, and the move fails before cut-over with nothing
    /// changed.
    async fn relocate(&self, from: &Placement, to: &Placement) -> Result<()> {
        Err(crate::Error::invalid(
            "region",
            format!(
                "this storage cannot move tenant {}'s objects from region {} to {}: \
                 moves between regions need a storage that implements `relocate`",
                from.tenant_id, from.region, to.region
            ),
        ))
    }

    /// Undoes a [`relocate`](Self::relocate) of a move that rolled back
    /// (it may have failed half-way): removes what it wrote for the tenant
    /// at `to`, and never anything the tenant still uses at `from`. The
    /// default does nothing, which is right for the default `relocate`,
    /// which writes nothing.
    async fn discard_relocated(&self, from: &Placement, to: &Placement) -> Result<()> {
        let _ = (from, to);
        Ok(())
    }

    /// Removes the tenant's objects from where `from` kept them, once the
    /// tenant lives at `to` with its copy there. The default purges `from`
    /// ([`remove`](Self::remove) with [`RemovalMode::Purge`]); a storage
    /// whose two places may be one (the same bucket under two names) must
    /// check that first, or it deletes the only copy.
    async fn release_relocated(&self, from: &Placement, to: &Placement) -> Result<()> {
        let _ = to;
        self.remove(from, RemovalMode::Purge).await
    }
}

macro_rules! forward_storage {
    ($ty:ty) => {
        #[async_trait]
        impl<T: StorageInitializer + ?Sized> StorageInitializer for $ty {
            async fn preview(&self, placement: &Placement) -> Result<StoragePreview> {
                (**self).preview(placement).await
            }
            async fn initialize(&self, placement: &Placement) -> Result<()> {
                (**self).initialize(placement).await
            }
            async fn suspend(&self, placement: &Placement) -> Result<()> {
                (**self).suspend(placement).await
            }
            async fn resume(&self, placement: &Placement) -> Result<()> {
                (**self).resume(placement).await
            }
            async fn remove(&self, placement: &Placement, mode: RemovalMode) -> Result<()> {
                (**self).remove(placement, mode).await
            }
            fn keeps_objects(&self, from: &Placement, to: &Placement) -> bool {
                (**self).keeps_objects(from, to)
            }
            async fn relocate(&self, from: &Placement, to: &Placement) -> Result<()> {
                (**self).relocate(from, to).await
            }
            async fn discard_relocated(&self, from: &Placement, to: &Placement) -> Result<()> {
                (**self).discard_relocated(from, to).await
            }
            async fn release_relocated(&self, from: &Placement, to: &Placement) -> Result<()> {
                (**self).release_relocated(from, to).await
            }
        }
    };
}

forward_storage!(Arc<T>);
forward_storage!(Box<T>);
