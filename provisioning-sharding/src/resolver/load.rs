//! [`LoadSource`]: how many tenants each shard holds, and [`InMemoryLoad`].

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;
use provisioning_core::{Result, ShardId};

/// Where [`LeastLoadedResolver`](crate::LeastLoadedResolver) reads the number
/// of tenants already on each shard.
///
/// The catalog is the natural source (`SELECT shard, count(*) ... GROUP BY
/// shard`): provisioning-sqlx's `SqliteStore` and `PostgresStore` implement
/// it with that crate's `sharding` feature. A shard missing from the map
/// holds no tenants. The counts may lag behind placements in flight: the resolver adds
/// its own reservations on top.
///
/// ```
/// use std::collections::HashMap;
/// use async_trait::async_trait;
/// use provisioning_core::{Result, ShardId};
/// use provisioning_sharding::LoadSource;
///
/// /// Every shard holds 7 tenants.
/// struct Seven(Vec<ShardId>);
///
/// #[async_trait]
/// impl LoadSource for Seven {
///     async fn tenant_counts(&self) -> Result<HashMap<ShardId, u64>> {
///         Ok(self.0.iter().map(|id| (id.clone(), 7)).collect())
///     }
/// }
/// ```
#[async_trait]
pub trait LoadSource: Send + Sync {
    /// The number of tenants on each shard now.
    ///
    /// # Errors
    /// Whatever the source fails with (a transient
    /// [`Error::Backend`](provisioning_core::Error::Backend) for a lost
    /// connection); the resolution fails with it and reserves nothing.
    async fn tenant_counts(&self) -> Result<HashMap<ShardId, u64>>;
}

#[async_trait]
impl<T: LoadSource + ?Sized> LoadSource for Arc<T> {
    async fn tenant_counts(&self) -> Result<HashMap<ShardId, u64>> {
        (**self).tenant_counts().await
    }
}

/// Tenant counts held in memory: for tests, prototypes, and processes that own
/// their placement.
///
/// ```
/// use provisioning_sharding::InMemoryLoad;
///
/// let eu1 = "eu-1".parse()?;
/// let load = InMemoryLoad::new().with_count(&eu1, 40);
/// load.add(&eu1, 2);
/// assert_eq!(load.count(&eu1), 42);
/// # Ok::<(), provisioning_core::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct InMemoryLoad {
    counts: RwLock<HashMap<ShardId, u64>>,
}

impl InMemoryLoad {
    /// No tenants anywhere.
    pub fn new() -> Self {
        InMemoryLoad::default()
    }

    /// The same source with `shard` holding `count` tenants.
    #[must_use]
    pub fn with_count(self, shard: &ShardId, count: u64) -> Self {
        self.set(shard, count);
        self
    }

    /// Sets the count of `shard`.
    pub fn set(&self, shard: &ShardId, count: u64) {
        // Poisoning cannot leave the map half-written (each write is one insert),
        // so the data behind a poisoned lock is still good.
        let mut counts = self.counts.write().unwrap_or_else(PoisonError::into_inner);
        counts.insert(shard.clone(), count);
    }

    /// Adds `delta` (negative to remove) to the count of `shard`, saturating at 0.
    pub fn add(&self, shard: &ShardId, delta: i64) {
        let mut counts = self.counts.write().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(shard.clone()).or_default();
        *count = count.saturating_add_signed(delta);
    }

    /// The count of `shard`.
    pub fn count(&self, shard: &ShardId) -> u64 {
        let counts = self.counts.read().unwrap_or_else(PoisonError::into_inner);
        counts.get(shard).copied().unwrap_or(0)
    }
}

#[async_trait]
impl LoadSource for InMemoryLoad {
    async fn tenant_counts(&self) -> Result<HashMap<ShardId, u64>> {
        let counts = self.counts.read().unwrap_or_else(PoisonError::into_inner);
        Ok(counts.clone())
    }
}
