//! Per-database async locks: concurrent provisionings in this process that touch
//! one database file or schema take turns on its migrations.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OwnedMutexGuard;

/// A map from a database's location to its lock.
#[derive(Debug, Default)]
pub(crate) struct KeyedLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl KeyedLocks {
    /// Waits for the lock of `key`.
    pub(crate) async fn lock(&self, key: &str) -> OwnedMutexGuard<()> {
        let lock = {
            // A panic while holding this std mutex cannot leave the map
            // inconsistent (insert is the only mutation), so poison is ignored.
            let mut map = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            // Drop locks nobody holds or waits for, so the map does not grow
            // with every tenant ever migrated.
            if map.len() > 1024 {
                map.retain(|_, l| Arc::strong_count(l) > 1);
            }
            Arc::clone(map.entry(key.to_owned()).or_default())
        };
        lock.lock_owned().await
    }
}
