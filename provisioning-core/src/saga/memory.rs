//! [`InMemoryJournal`]: the journal for tests, prototypes and benchmarks.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::error::{Entity, Error, Result};
use crate::model::RunId;
use crate::saga::{JournalBatch, JournalRecord, RunStatus, SagaJournal};

/// A [`SagaJournal`] in memory: fast, faithful to the contract, and gone with
/// the process. Cloning is not provided; share it through an `Arc`.
///
/// ```
/// use provisioning_core::{InMemoryJournal, JournalEntry, JournalRecord, RunId, SagaJournal};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let journal = InMemoryJournal::new();
/// let run = RunId::new();
/// let started = JournalEntry::RunStarted {
///     workflow: "demo".into(), steps: vec!["a".into()], context: serde_json::Value::Null,
/// };
/// journal.append(JournalRecord::new(run, 0, started.clone())).await?;
/// // Position 0 is taken: a second writer is refused.
/// assert!(journal.append(JournalRecord::new(run, 0, started)).await.is_err());
/// assert_eq!(journal.unfinished_runs().await?, vec![run]);
/// # Ok::<(), provisioning_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Default)]
pub struct InMemoryJournal {
    runs: Mutex<Runs>,
}

#[derive(Debug, Default)]
struct Runs {
    records: HashMap<RunId, Vec<JournalRecord>>,
    status: HashMap<RunId, (u64, RunStatus)>,
    next_order: u64,
}

impl InMemoryJournal {
    /// An empty journal.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Runs> {
        // A panic while holding the lock leaves whole records only (each push is
        // one call), so the data is still consistent: recover from poisoning.
        self.runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Runs {
    /// The position `run`'s next record takes.
    fn next_seq(&self, run: RunId) -> u64 {
        self.records.get(&run).map_or(0, |log| log.len() as u64)
    }

    /// Stores `record` if it takes its run's next position.
    fn push(&mut self, record: JournalRecord) -> Result<()> {
        let expected = self.next_seq(record.run_id);
        if record.seq != expected {
            return Err(Error::Conflict {
                kind: Entity::Run,
                id: record.run_id.to_string(),
                reason: format!(
                    "journal position {} was asked for, {expected} is next",
                    record.seq
                ),
            });
        }
        let Runs {
            records,
            status,
            next_order,
        } = self;
        // Keep the status current so `unfinished_runs` needs no replay.
        if let Some(s) = record.entry.status_after() {
            let order = status
                .get(&record.run_id)
                .map(|(o, _)| *o)
                .unwrap_or_else(|| {
                    *next_order += 1;
                    *next_order
                });
            status.insert(record.run_id, (order, s));
        }
        let log = records
            .entry(record.run_id)
            .or_insert_with(|| match &record.entry {
                // Room for a start and a completion per step, and the end.
                crate::saga::JournalEntry::RunStarted { steps, .. } => {
                    Vec::with_capacity(2 * steps.len() + 2)
                }
                _ => Vec::new(),
            });
        log.push(record);
        Ok(())
    }
}

#[async_trait]
impl SagaJournal for InMemoryJournal {
    async fn append(&self, record: JournalRecord) -> Result<()> {
        self.lock().push(record)
    }

    /// All or nothing: every position is checked before any record is stored.
    async fn append_batch(&self, records: Vec<JournalRecord>) -> Result<()> {
        let mut runs = self.lock();
        let Some(batch) = JournalBatch::new(&records)? else {
            return Ok(());
        };
        let expected = runs.next_seq(batch.run_id());
        if batch.from() != expected {
            return Err(Error::Conflict {
                kind: Entity::Run,
                id: batch.run_id().to_string(),
                reason: format!(
                    "journal position {} was asked for, {expected} is next",
                    batch.from()
                ),
            });
        }
        for record in records {
            runs.push(record)?;
        }
        Ok(())
    }

    async fn load(&self, run_id: RunId) -> Result<Vec<JournalRecord>> {
        Ok(self
            .lock()
            .records
            .get(&run_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn unfinished_runs(&self) -> Result<Vec<RunId>> {
        let runs = self.lock();
        let mut unfinished: Vec<(u64, RunId)> = runs
            .status
            .iter()
            .filter(|(_, (_, s))| s.is_in_flight())
            .map(|(id, (order, _))| (*order, *id))
            .collect();
        unfinished.sort_unstable();
        Ok(unfinished.into_iter().map(|(_, id)| id).collect())
    }
}
