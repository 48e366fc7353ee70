//! Per-key async locks: work within one process that must take turns per key
//! (the orchestrator per request, schema managers per database) takes the
//! key's lock. Runtime-agnostic, and the map holds only keys in use.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::lock::{Mutex as AsyncMutex, OwnedMutexGuard};

/// A map from keys to async locks; a key's entry lives while someone holds
/// or waits for its lock.
///
/// ```
/// use provisioning_core::sync::KeyedLocks;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let locks: KeyedLocks<String> = KeyedLocks::default();
/// let a = locks.lock("tenant-a.sqlite").await;
/// // Another key does not wait.
/// let b = locks.lock("tenant-b.sqlite").await;
/// assert_eq!(locks.len(), 2);
/// drop((a, b));
/// assert_eq!(locks.len(), 0);
/// # });
/// ```
#[derive(Debug)]
pub struct KeyedLocks<K> {
    map: Mutex<HashMap<K, Arc<AsyncMutex<()>>>>,
}

impl<K> Default for KeyedLocks<K> {
    fn default() -> Self {
        KeyedLocks {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone> KeyedLocks<K> {
    /// Waits for the lock of `key`; it is released when the guard drops.
    pub async fn lock(&self, key: impl Into<K>) -> KeyedGuard<'_, K> {
        let key = key.into();
        let lock = Arc::clone(self.entries().entry(key.clone()).or_default());
        // The guard exists while waiting, so that a caller that stops
        // waiting (a timeout, a dropped future) still removes the entry.
        let mut keyed = KeyedGuard {
            locks: self,
            key,
            lock: Some(Arc::clone(&lock)),
            guard: None,
        };
        keyed.guard = Some(lock.lock_owned().await);
        keyed
    }

    /// The lock of `key` if nobody holds it, without waiting.
    pub fn try_lock(&self, key: impl Into<K>) -> Option<KeyedGuard<'_, K>> {
        let key = key.into();
        let lock = Arc::clone(self.entries().entry(key.clone()).or_default());
        // On failure the guard-less entry is dropped through a guard that
        // holds nothing, which removes the key if it was ours alone.
        let guard = Arc::clone(&lock).try_lock_owned();
        let taken = guard.is_some();
        let guard = KeyedGuard {
            locks: self,
            key,
            lock: Some(lock),
            guard,
        };
        taken.then_some(guard)
    }

    /// How many keys are locked or waited for.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// Whether no key is locked or waited for.
    pub fn is_empty(&self) -> bool {
        self.entries().is_empty()
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<K, Arc<AsyncMutex<()>>>> {
        // A panic while holding this std mutex cannot leave the map
        // inconsistent (each mutation is one call), so poison is ignored.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The lock of one key, held until dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct KeyedGuard<'a, K: Eq + Hash + Clone> {
    locks: &'a KeyedLocks<K>,
    key: K,
    lock: Option<Arc<AsyncMutex<()>>>,
    guard: Option<OwnedMutexGuard<()>>,
}

impl<K: Eq + Hash + Clone> std::fmt::Debug for KeyedGuard<'_, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedGuard").finish_non_exhaustive()
    }
}

impl<K: Eq + Hash + Clone> Drop for KeyedGuard<'_, K> {
    fn drop(&mut self) {
        self.guard.take();
        let mut map = self.locks.entries();
        // Our clone goes under the map's mutex, where every other clone is
        // made: the map's alone left means nobody holds or waits, so the
        // entry can go; the last of several guards to drop removes it.
        self.lock.take();
        if map
            .get(&self.key)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_key_takes_turns_and_the_map_empties() {
        let locks: Arc<KeyedLocks<u32>> = Arc::new(KeyedLocks::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = locks.lock(1u32).await;
        let waiter = {
            let (locks, order) = (Arc::clone(&locks), Arc::clone(&order));
            tokio::spawn(async move {
                let _g = locks.lock(1u32).await;
                order.lock().unwrap().push("second");
            })
        };
        tokio::task::yield_now().await;
        order.lock().unwrap().push("first");
        assert_eq!(locks.len(), 1);
        drop(first);
        waiter.await.unwrap();
        assert_eq!(*order.lock().unwrap(), ["first", "second"]);
        assert!(locks.is_empty());
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_leaves_no_entry() {
        let locks: KeyedLocks<u32> = KeyedLocks::default();
        let held = locks.lock(7u32).await;
        let gave_up =
            tokio::time::timeout(std::time::Duration::from_millis(10), locks.lock(7u32)).await;
        assert!(gave_up.is_err());
        assert!(locks.try_lock(7u32).is_none(), "still held");
        drop(held);
        assert!(locks.is_empty());
        let again = locks.try_lock(7u32);
        assert!(again.is_some());
        drop(again);
        assert!(locks.is_empty());
    }
}
