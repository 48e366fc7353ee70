//! Writes as scripts: a whole transaction (`BEGIN IMMEDIATE; ...; COMMIT`)
//! sent to SQLite as one command.
//!
//! sqlx runs each SQLite connection on a thread of its own, so every
//! statement, `BEGIN` and `COMMIT` is a round trip between threads: two
//! context switches, and on a busy machine the larger part of a small write's
//! cost. A script is one command: sqlx still hands each statement's outcome
//! back across, but the thread runs the statements back to back. The
//! group-commit writes (see `group`) are scripts of a few set-based
//! statements whose one parameter is the batch, as JSON; a `SELECT` reports
//! each write's outcome.

use provisioning_core::Result;
use sqlx::Sqlite;
use sqlx::pool::PoolConnection;
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteRow};

use super::{SqliteStore, err};

/// The write connection while a script runs on it. A script that did not
/// finish (an error, or its future dropped half-way) may have left its
/// transaction open: the connection is then closed instead of going back to
/// the pool, which rolls the transaction back.
struct Writing {
    conn: Option<PoolConnection<Sqlite>>,
    done: bool,
}

impl Drop for Writing {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.as_mut().filter(|_| !self.done) {
            conn.close_on_drop();
        }
    }
}

impl Writing {
    fn conn(&mut self) -> Result<&mut PoolConnection<Sqlite>> {
        self.conn.as_mut().ok_or_else(|| {
            provisioning_core::Error::backend(
                super::COMPONENT,
                "the write connection was already released",
                true,
                std::io::Error::other("write connection released"),
            )
        })
    }
}

impl SqliteStore {
    /// Runs `script`, a whole transaction ending in `COMMIT`, as one command
    /// on the write connection, for a caller that holds the writer lock;
    /// returns the rows its `SELECT`s returned.
    pub(super) async fn script_locked(
        &self,
        writer: &tokio::sync::MutexGuard<'_, ()>,
        script: Query<'_, Sqlite, SqliteArguments>,
        what: &'static str,
    ) -> Result<Vec<SqliteRow>> {
        self.run_locked(writer, script, what).await
    }

    async fn run_locked(
        &self,
        // Proof that the caller holds the writer lock.
        _writer: &tokio::sync::MutexGuard<'_, ()>,
        script: Query<'_, Sqlite, SqliteArguments>,
        what: &'static str,
    ) -> Result<Vec<SqliteRow>> {
        let conn = self
            .writes
            .acquire()
            .await
            .map_err(err("opening the write connection"))?;
        let mut writing = Writing {
            conn: Some(conn),
            done: false,
        };
        let rows = script
            .fetch_all(&mut **writing.conn()?)
            .await
            .map_err(err(what))?;
        writing.done = true;
        Ok(rows)
    }
}
