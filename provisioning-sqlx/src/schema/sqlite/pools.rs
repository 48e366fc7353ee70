//! A connection kept open per shared database file, and what the manager
//! has learnt about that database.
//!
//! Opening a SQLite connection costs file opens and pragmas, and closing the
//! last connection to a WAL database checkpoints it: an fsync of the WAL and
//! of the database, and the WAL and shared-memory files deleted, to be made
//! again by the next opener. A shared database is touched three times per
//! tenant provisioned (provision, migrate, seed), so it keeps one connection
//! open for the manager's life instead; the WAL is checkpointed as it grows
//! (SQLite's auto-checkpoint) rather than on every call.
//!
//! One connection is enough: every use of a shared database by the manager
//! holds the database's lock ([`KeyedLocks`](crate::schema::KeyedLocks)), so
//! writes queue in the process instead of sleeping in SQLite's busy handler.
//!
//! Each database also remembers two facts that only ever become true: all of
//! the shared schema's migrations are applied (the manager never reverts one,
//! so the next tenant's `migrate` has nothing to check), and the seed ledger
//! exists. They go with the connection: a database replaced on disk gets a
//! new entry, knowing nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use provisioning_core::{Error, Result};
use sqlx::SqliteConnection;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use super::conn::{COMPONENT, Open, close, connect};

/// One shared database: its connection and what is known about it.
///
/// The connection is a plain one behind a lock, not a sqlx pool: a pool
/// needs the runtime's timers, which the manager has never required.
#[derive(Debug)]
pub(super) struct SharedDb {
    conn: Arc<AsyncMutex<Option<SqliteConnection>>>,
    migrated: AtomicBool,
    ledger: AtomicBool,
}

/// The connection of a shared database, held (opened on first use).
pub(super) struct SharedConn(OwnedMutexGuard<Option<SqliteConnection>>);

impl std::ops::Deref for SharedConn {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        // Invariant: `acquire` hands out a guard only after filling it.
        self.0
            .as_ref()
            .unwrap_or_else(|| unreachable!("filled by acquire"))
    }
}

impl std::ops::DerefMut for SharedConn {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.0
            .as_mut()
            .unwrap_or_else(|| unreachable!("filled by acquire"))
    }
}

impl SharedConn {
    /// Takes the kept connection out, for a caller that must not leave it
    /// kept (one left in an unknown state): the next `acquire` opens anew.
    pub(super) fn discard(mut self) -> Option<SqliteConnection> {
        self.0.take()
    }
}

impl SharedDb {
    /// Whether every migration of the shared schema is applied.
    pub(super) fn migrated(&self) -> bool {
        self.migrated.load(Ordering::Acquire)
    }

    /// Records that every migration of the shared schema is applied.
    pub(super) fn set_migrated(&self) {
        self.migrated.store(true, Ordering::Release);
    }

    /// Whether the seed ledger table exists.
    pub(super) fn has_ledger(&self) -> bool {
        self.ledger.load(Ordering::Acquire)
    }

    /// Records that the seed ledger table exists.
    pub(super) fn set_ledger(&self) {
        self.ledger.store(true, Ordering::Release);
    }

    /// Closes the connection, if open (waiting for its user to finish).
    async fn close(&self) {
        if let Some(conn) = self.conn.lock().await.take() {
            close(conn).await;
        }
    }
}

/// The open connections of shared databases, by file.
#[derive(Debug, Default)]
pub(super) struct SharedPools {
    dbs: Mutex<HashMap<PathBuf, Arc<SharedDb>>>,
}

impl SharedPools {
    /// The shared database at `path` and a connection to it, created (with
    /// its folder) on first use. The caller holds the database's lock, so no
    /// other task of this manager creates, replaces or uses it meanwhile.
    ///
    /// With `check`, the file is looked for first, and an entry whose file
    /// has gone (removed by hand) is closed and replaced: its connection would
    /// go on writing to the unlinked file. `provision` checks, since it runs
    /// first for every tenant; the calls after it trust the entry.
    pub(super) async fn acquire(
        &self,
        path: &Path,
        busy: Duration,
        check: bool,
    ) -> Result<(Arc<SharedDb>, SharedConn)> {
        let present = !check || tokio::fs::try_exists(path).await.unwrap_or(false);
        let found = {
            let mut dbs = self.lock();
            match dbs.get(path) {
                Some(db) if present => Some(Ok(Arc::clone(db))),
                Some(_) => dbs.remove(path).map(Err),
                None => None,
            }
        };
        let db = match found {
            Some(Ok(db)) => db,
            stale => {
                if let Some(Err(gone)) = stale {
                    gone.close().await;
                }
                if let Some(dir) = path.parent() {
                    tokio::fs::create_dir_all(dir).await.map_err(|e| {
                        Error::backend(COMPONENT, format!("creating {}", dir.display()), true, e)
                    })?;
                }
                let db = Arc::new(SharedDb {
                    conn: Arc::default(),
                    migrated: AtomicBool::new(false),
                    ledger: AtomicBool::new(false),
                });
                self.lock().insert(path.to_owned(), Arc::clone(&db));
                db
            }
        };
        let mut guard = Arc::clone(&db.conn).lock_owned().await;
        if guard.is_none() {
            *guard = Some(connect(path, Open::Write { create: true }, busy).await?);
        }
        Ok((db, SharedConn(guard)))
    }

    /// Closes every kept connection (checkpointing each WAL).
    pub(super) async fn close(&self) {
        let dbs: Vec<Arc<SharedDb>> = self.lock().drain().map(|(_, db)| db).collect();
        for db in dbs {
            db.close().await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Arc<SharedDb>>> {
        // Inserts and removes are single calls: a panic cannot leave the map
        // half-changed, so poison is ignored.
        self.dbs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
