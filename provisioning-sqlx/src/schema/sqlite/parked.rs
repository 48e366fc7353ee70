//! Connections of dedicated databases kept open from `migrate` to the `seed`
//! that follows it.
//!
//! Closing the last connection of a WAL database checkpoints it (an fsync of
//! the WAL and one of the database) and deletes its `-wal` and `-shm` files,
//! which the next opener makes again. A new tenant's database is migrated and
//! then seeded, two calls: with the connection closed in between, that is
//! paid twice. So `migrate` parks its connection here and `seed` takes it,
//! and a new database is opened and checkpointed once, as a hand-written
//! provisioning would do it.
//!
//! A parked connection is only reused while its file is the same file (same
//! device and inode) and the manager holds the database's lock throughout;
//! `provision` and `drop_tenant` close it first. A few are kept at most (the
//! oldest is closed when another is parked), so a fleet migration of
//! thousands of databases keeps a few open, never thousands. Elsewhere than
//! on Unix, where a file's identity is not at hand, nothing is parked.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use sqlx::SqliteConnection;

use super::conn::close;

/// How many connections are kept parked at most.
const CAPACITY: usize = 16;

/// A file's identity: `(device, inode)`.
pub(super) type FileId = (u64, u64);

/// A file's identity, where the platform tells it.
#[cfg(unix)]
pub(super) fn identity(metadata: &std::fs::Metadata) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    Some((metadata.dev(), metadata.ino()))
}

/// A file's identity, where the platform tells it.
#[cfg(not(unix))]
pub(super) fn identity(_: &std::fs::Metadata) -> Option<FileId> {
    None
}

struct Parked {
    path: PathBuf,
    id: FileId,
    conn: SqliteConnection,
}

/// The parked connections, oldest first.
#[derive(Default)]
pub(super) struct ParkedConns {
    parked: Mutex<VecDeque<Parked>>,
}

impl std::fmt::Debug for ParkedConns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParkedConns")
            .field("parked", &self.lock().len())
            .finish()
    }
}

impl ParkedConns {
    /// Takes the connection parked for `path` if the file there is still
    /// `id`; a connection to a replaced file is closed.
    pub(super) async fn take(&self, path: &Path, id: FileId) -> Option<SqliteConnection> {
        let parked = self.remove(path)?;
        if parked.id == id {
            return Some(parked.conn);
        }
        close(parked.conn).await;
        None
    }

    /// Parks `conn` to the file `id` at `path`; the oldest parked connection
    /// is closed if there are too many.
    pub(super) async fn park(&self, path: &Path, id: Option<FileId>, conn: SqliteConnection) {
        let Some(id) = id else {
            return close(conn).await;
        };
        let evicted = {
            let mut parked = self.lock();
            parked.push_back(Parked {
                path: path.to_owned(),
                id,
                conn,
            });
            (parked.len() > CAPACITY)
                .then(|| parked.pop_front())
                .flatten()
        };
        if let Some(evicted) = evicted {
            close(evicted.conn).await;
        }
    }

    /// Closes the connection parked for `path`, if any.
    pub(super) async fn evict(&self, path: &Path) {
        if let Some(parked) = self.remove(path) {
            close(parked.conn).await;
        }
    }

    /// Closes every parked connection.
    pub(super) async fn close_all(&self) {
        let all: Vec<Parked> = self.lock().drain(..).collect();
        for parked in all {
            close(parked.conn).await;
        }
    }

    fn remove(&self, path: &Path) -> Option<Parked> {
        let mut parked = self.lock();
        let at = parked.iter().position(|p| p.path == path)?;
        parked.remove(at)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Parked>> {
        // Pushes and removals are single calls: a panic cannot leave the
        // queue half-changed, so poison is ignored.
        self.parked.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
