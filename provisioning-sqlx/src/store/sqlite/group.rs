//! Group commit: writes of one kind that queue up while another write holds
//! the writer lock are written together, in one transaction and one trip to
//! the connection's thread, by whichever of their callers gets the lock next.
//!
//! sqlx runs a SQLite connection on a thread of its own and hands every
//! statement's outcome across threads; for a small write those trips, not
//! SQLite, are most of the cost, and all writes queue on one lock. A batch
//! shares the trips and the commit, so under load a write costs a fraction of
//! one trip; alone, it costs what it did. Each queued write keeps its own
//! meaning and its caller learns its own outcome, and returns only once its
//! write is committed. A batch never holds two writes that touch the same
//! run, tenant or request: a later one waits, in order, for the next batch,
//! so set-based checks made before any write of a batch see what each write
//! would have seen alone.

use std::sync::{Mutex, PoisonError};

use provisioning_core::{Error, Result};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use tokio::sync::{MutexGuard, oneshot};

use super::{COMPONENT, SqliteStore, err};
use crate::store::codec::to_json;

/// At most this many writes go in one transaction; more wait for the next.
const MAX_BATCH: usize = 64;

/// A write that can be batched with others of its kind. Every kind is
/// written the same way: a script (see `script`) whose `?1` is the batch as a
/// JSON array of ops, and whose `SELECT` returns one row per write, its place
/// in the batch first and then its outcome.
pub(super) trait Grouped: Send + Sync + 'static {
    /// What it is the answer for: each caller's own outcome.
    type Outcome: Reported;

    /// The script that writes a batch, a whole transaction.
    const SCRIPT: &'static str;
    /// Names the write in errors.
    const WHAT: &'static str;
    /// Names the reading of the script's rows in errors.
    const READING: &'static str;

    /// Whether `other` must not be in one batch with this write (they touch
    /// the same run, tenant or request).
    fn conflicts(&self, other: &Self) -> bool;

    /// This write as one element of the script's parameter.
    fn op(&self) -> Result<serde_json::Value>;
}

/// An outcome as the script reports it, in the columns after a write's place.
pub(super) trait Reported: Copy + Send + 'static {
    /// The outcome of a write the script returned no row for.
    const UNREPORTED: Self;

    /// Reads it from the row of its write.
    fn from_row(row: &SqliteRow) -> std::result::Result<Self, sqlx::Error>;
}

/// Whether the write took effect, the one column after its place.
impl Reported for bool {
    const UNREPORTED: Self = false;

    fn from_row(row: &SqliteRow) -> std::result::Result<Self, sqlx::Error> {
        row.try_get(1)
    }
}

struct Queued<W: Grouped> {
    write: W,
    done: oneshot::Sender<Result<W::Outcome>>,
}

/// The writes of one kind waiting for the writer lock, oldest first.
pub(super) struct Group<W: Grouped> {
    queued: Mutex<Vec<Queued<W>>>,
}

impl<W: Grouped> Default for Group<W> {
    fn default() -> Self {
        Group {
            queued: Mutex::new(Vec::new()),
        }
    }
}

impl<W: Grouped> std::fmt::Debug for Group<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group").finish_non_exhaustive()
    }
}

fn abandoned(what: &'static str, why: &str) -> Error {
    Error::backend(COMPONENT, what, true, std::io::Error::other(why.to_owned()))
}

impl<W: Grouped> Group<W> {
    /// Queues `write`, waits for the writer lock, and returns its outcome,
    /// written by this caller (with whatever else is queued) or by an
    /// earlier holder of the lock.
    pub(super) async fn write(&self, store: &SqliteStore, write: W) -> Result<W::Outcome> {
        let (done, mut outcome) = oneshot::channel();
        self.lock().push(Queued { write, done });
        let writer = store.writer.lock().await;
        loop {
            match outcome.try_recv() {
                Ok(result) => return result,
                Err(oneshot::error::TryRecvError::Closed) => {
                    // The caller that took it stopped before telling.
                    return Err(abandoned(
                        W::WHAT,
                        "the batch carrying this write was abandoned",
                    ));
                }
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            let batch = self.take_batch();
            if batch.is_empty() {
                // Not reachable: this write stays queued until taken.
                return Err(abandoned(W::WHAT, "the write left the queue untaken"));
            }
            let (writes, senders): (Vec<W>, Vec<_>) =
                batch.into_iter().map(|q| (q.write, q.done)).unzip();
            match Self::write_batch(store, &writer, &writes).await {
                Ok(outcomes) => {
                    for (done, outcome) in senders.into_iter().zip(outcomes) {
                        // A caller that stopped waiting has nothing to be told.
                        let _ = done.send(Ok(outcome));
                    }
                }
                Err(e) => {
                    // Every waiter gets the cause's text (the database's own
                    // error: `database or disk is full`), which cannot be cloned.
                    let message = std::error::Error::source(&e)
                        .map_or_else(|| e.to_string(), Error::report_of);
                    let transient = e.is_transient();
                    for done in senders {
                        let error = Error::backend(
                            COMPONENT,
                            W::WHAT,
                            transient,
                            std::io::Error::other(message.clone()),
                        );
                        let _ = done.send(Err(error));
                    }
                }
            }
        }
    }

    /// Writes `batch` in one transaction (the caller holds the writer lock)
    /// and returns each write's outcome, in order. An error fails them all.
    async fn write_batch(
        store: &SqliteStore,
        writer: &MutexGuard<'_, ()>,
        batch: &[W],
    ) -> Result<Vec<W::Outcome>> {
        let ops = batch.iter().map(W::op).collect::<Result<Vec<_>>>()?;
        let query = sqlx::query(W::SCRIPT).bind(to_json(&ops)?);
        let rows = store.script_locked(writer, query, W::WHAT).await?;
        let mut outcomes = vec![W::Outcome::UNREPORTED; batch.len()];
        for row in &rows {
            let i: i64 = row.try_get(0).map_err(err(W::READING))?;
            let outcome = W::Outcome::from_row(row).map_err(err(W::READING))?;
            if let Some(slot) = usize::try_from(i).ok().and_then(|i| outcomes.get_mut(i)) {
                *slot = outcome;
            }
        }
        Ok(outcomes)
    }

    /// Takes the next batch: oldest first, at most [`MAX_BATCH`], no two
    /// writes in conflict.
    fn take_batch(&self) -> Vec<Queued<W>> {
        let mut queued = self.lock();
        let mut batch: Vec<Queued<W>> = Vec::new();
        let mut rest = Vec::with_capacity(queued.len());
        for q in queued.drain(..) {
            let wait =
                batch.len() >= MAX_BATCH || batch.iter().any(|b| b.write.conflicts(&q.write));
            if wait {
                rest.push(q);
            } else {
                batch.push(q);
            }
        }
        *queued = rest;
        batch
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Queued<W>>> {
        // Pushes and drains are single calls: a panic cannot leave the queue
        // half-changed, so poison is ignored.
        self.queued.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
