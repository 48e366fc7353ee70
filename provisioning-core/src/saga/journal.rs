//! The saga journal: what is appended ([`JournalEntry`]) and the trait a
//! durable store implements ([`SagaJournal`]). The replay that turns a run's
//! entries back into where it stands ([`RunState`](crate::saga::RunState)) is
//! in `replay.rs`, apart from the record types a store needs.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Entity, Error, Result};
use crate::model::RunId;

/// One fact about a run, appended as it happens.
///
/// `index` is the step's position in the saga; `attempt` counts from 1 per step
/// and keeps counting across a resume. `context` holds the context checkpoint:
/// after a step completes, fails or is compensated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum JournalEntry {
    /// The run began with this initial context.
    RunStarted {
        /// The saga's name.
        workflow: String,
        /// The saga's step names, in order.
        steps: Vec<String>,
        /// The initial context.
        context: serde_json::Value,
    },
    /// An attempt of a step began.
    StepStarted {
        /// The step.
        step: String,
        /// Its position.
        index: usize,
        /// The attempt number.
        attempt: u32,
    },
    /// An attempt failed transiently and will be retried.
    AttemptFailed {
        /// The step.
        step: String,
        /// Its position.
        index: usize,
        /// The attempt number.
        attempt: u32,
        /// The error, as text.
        error: String,
        /// The backoff before the next attempt.
        retry_in_ms: u64,
    },
    /// The step completed.
    StepCompleted {
        /// The step.
        step: String,
        /// Its position.
        index: usize,
        /// The attempt that succeeded.
        attempt: u32,
        /// How long that attempt took.
        duration_ms: u64,
        /// The context after the step.
        context: serde_json::Value,
    },
    /// The step failed for good; compensation begins with this step.
    StepFailed {
        /// The step.
        step: String,
        /// Its position.
        index: usize,
        /// The last attempt.
        attempt: u32,
        /// Why it is final.
        cause: FailureCause,
        /// The error, as text.
        error: String,
        /// The context after the failed attempt.
        context: serde_json::Value,
    },
    /// The run was cancelled before or during step `index`; compensation begins.
    RunCancelled {
        /// The step that was running or next.
        step: String,
        /// Its position.
        index: usize,
        /// Whether that step had started (and so is compensated too).
        started: bool,
    },
    /// An attempt to compensate a step began.
    CompensationStarted {
        /// The step.
        step: String,
        /// Its position.
        index: usize,
        /// The compensation attempt number.
        attempt: u32,
    },
    /// A compensation attempt failed and will be retried.
    CompensationAttemptFailed {
        /// The step.
        step: String,
        /// Its position.
        index: usize,
        /// The compensation attempt number.
        attempt: u32,
        /// The error, as text.
        error: String,
        /// The backoff before the next attempt.
        retry_in_ms: u64,
    },
    /// The step was compensated.
    StepCompensated {
        /// The step.
        step: String,
        /// Its position.
        index: usize,
        /// The compensation attempt that succeeded.
        attempt: u32,
        /// The context after compensation.
        context: serde_json::Value,
    },
    /// Compensating the step failed for good; the run stops, resumable.
    CompensationFailed {
        /// The step.
        step: String,
        /// Its position.
        index: usize,
        /// The last compensation attempt.
        attempt: u32,
        /// The error, as text.
        error: String,
    },
    /// Every step completed.
    RunCompleted,
    /// Every step that ran was compensated.
    RunCompensated,
}

impl JournalEntry {
    /// The context checkpoint this entry carries, if any.
    pub fn checkpoint(&self) -> Option<&serde_json::Value> {
        match self {
            JournalEntry::RunStarted { context, .. }
            | JournalEntry::StepCompleted { context, .. }
            | JournalEntry::StepFailed { context, .. }
            | JournalEntry::StepCompensated { context, .. } => Some(context),
            _ => None,
        }
    }

    /// The status a run has right after this entry, when the entry changes it.
    /// Stores that keep a run's status beside its records use this, as does
    /// [`RunState::apply`](crate::saga::RunState::apply).
    pub fn status_after(&self) -> Option<RunStatus> {
        match self {
            JournalEntry::RunStarted { .. } => Some(RunStatus::Running),
            JournalEntry::StepFailed { .. }
            | JournalEntry::RunCancelled { .. }
            | JournalEntry::CompensationStarted { .. } => Some(RunStatus::Compensating),
            JournalEntry::CompensationFailed { .. } => Some(RunStatus::CompensationFailed),
            JournalEntry::RunCompleted => Some(RunStatus::Completed),
            JournalEntry::RunCompensated => Some(RunStatus::Compensated),
            _ => None,
        }
    }

    /// The entry's type as written in JSON (`step_completed`...).
    pub fn kind(&self) -> &'static str {
        match self {
            JournalEntry::RunStarted { .. } => "run_started",
            JournalEntry::StepStarted { .. } => "step_started",
            JournalEntry::AttemptFailed { .. } => "attempt_failed",
            JournalEntry::StepCompleted { .. } => "step_completed",
            JournalEntry::StepFailed { .. } => "step_failed",
            JournalEntry::RunCancelled { .. } => "run_cancelled",
            JournalEntry::CompensationStarted { .. } => "compensation_started",
            JournalEntry::CompensationAttemptFailed { .. } => "compensation_attempt_failed",
            JournalEntry::StepCompensated { .. } => "step_compensated",
            JournalEntry::CompensationFailed { .. } => "compensation_failed",
            JournalEntry::RunCompleted => "run_completed",
            JournalEntry::RunCompensated => "run_compensated",
        }
    }
}

/// A journal entry with its place in the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JournalRecord {
    /// The run.
    pub run_id: RunId,
    /// The entry's position in the run, from 0, gapless.
    pub seq: u64,
    /// When it was appended.
    pub at: DateTime<Utc>,
    /// What happened.
    pub entry: JournalEntry,
}

impl JournalRecord {
    /// A record of `entry` at position `seq`, stamped now.
    pub fn new(run_id: RunId, seq: u64, entry: JournalEntry) -> Self {
        Self::stamped(run_id, seq, Utc::now(), entry)
    }

    /// A record of `entry` at position `seq`, stamped `at`.
    pub fn stamped(run_id: RunId, seq: u64, at: DateTime<Utc>, entry: JournalEntry) -> Self {
        JournalRecord {
            run_id,
            seq,
            at,
            entry,
        }
    }
}

/// Why a step's failure is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureCause {
    /// The step returned a permanent error.
    Permanent,
    /// Transient errors (or timeouts) used up the retry policy.
    RetriesExhausted,
    /// The run was cancelled.
    Cancelled,
}

impl fmt::Display for FailureCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureCause::Permanent => "permanent error",
            FailureCause::RetriesExhausted => "retries exhausted",
            FailureCause::Cancelled => "cancelled",
        })
    }
}

/// A step failure as a report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StepFailure {
    /// The step.
    pub step: String,
    /// Its position.
    pub index: usize,
    /// Why it is final.
    pub cause: FailureCause,
    /// The error, as text.
    pub error: String,
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Going forward.
    Running,
    /// A step failed or the run was cancelled; compensating.
    Compensating,
    /// Every step completed. Final.
    Completed,
    /// Every step that ran was compensated. Final.
    Compensated,
    /// A compensation failed; resuming the run tries it again.
    CompensationFailed,
}

impl RunStatus {
    /// Whether the run will never do anything again.
    pub fn is_final(self) -> bool {
        matches!(self, RunStatus::Completed | RunStatus::Compensated)
    }

    /// Whether a crash left the run with work to do (running or compensating).
    pub fn is_in_flight(self) -> bool {
        matches!(self, RunStatus::Running | RunStatus::Compensating)
    }
}

/// Records checked to be consecutive records of one run, as
/// [`SagaJournal::append_batch`] takes them: the check every journal makes
/// before it writes a batch, in one place.
///
/// ```
/// use provisioning_core::saga::{JournalBatch, JournalEntry, JournalRecord, RunStatus};
/// use provisioning_core::RunId;
///
/// let run = RunId::new();
/// let started = JournalEntry::RunStarted {
///     workflow: "w".into(),
///     steps: vec![],
///     context: serde_json::json!({}),
/// };
/// let records = vec![
///     JournalRecord::new(run, 0, started),
///     JournalRecord::new(run, 1, JournalEntry::RunCompleted),
/// ];
/// let batch = JournalBatch::new(&records).unwrap().unwrap();
/// assert_eq!((batch.run_id(), batch.from()), (run, 0));
/// assert_eq!(batch.status_after(), Some(RunStatus::Completed));
///
/// let gap = vec![records[0].clone(), JournalRecord::new(run, 2, JournalEntry::RunCompleted)];
/// assert!(JournalBatch::new(&gap).is_err());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct JournalBatch<'a> {
    records: &'a [JournalRecord],
}

impl<'a> JournalBatch<'a> {
    /// `records` as a batch, or `None` for no records.
    ///
    /// # Errors
    /// [`Error::Conflict`] on [`Entity::Run`] naming the first record that is
    /// of another run or not at the position after its predecessor's.
    pub fn new(records: &'a [JournalRecord]) -> Result<Option<Self>> {
        let Some(first) = records.first() else {
            return Ok(None);
        };
        let (run, from) = (first.run_id, first.seq);
        if let Some((i, r)) = records
            .iter()
            .enumerate()
            .find(|(i, r)| r.run_id != run || r.seq != from + *i as u64)
        {
            return Err(Error::Conflict {
                kind: Entity::Run,
                id: run.to_string(),
                reason: format!(
                    "journal position {} of run {} at place {i} of a batch from {from}",
                    r.seq, r.run_id
                ),
            });
        }
        Ok(Some(JournalBatch { records }))
    }

    /// The run the records are of.
    pub fn run_id(&self) -> RunId {
        self.records[0].run_id
    }

    /// The position of the first record.
    pub fn from(&self) -> u64 {
        self.records[0].seq
    }

    /// How many records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Never: a batch has at least one record.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The records, in order.
    pub fn records(&self) -> &'a [JournalRecord] {
        self.records
    }

    /// The run's status once the batch is stored: that of its last record
    /// that sets one ([`JournalEntry::status_after`]), `None` when no record does.
    pub fn status_after(&self) -> Option<RunStatus> {
        self.records
            .iter()
            .rev()
            .find_map(|r| r.entry.status_after())
    }
}

/// Durable, append-only storage of saga runs.
///
/// # Contract
/// - `append` stores the record atomically and durably before returning, and only
///   if `record.seq` is the run's next position (0 for a new run): a taken or
///   skipped position is an [`Error::Conflict`], which is how two executors on one
///   run are caught.
/// - `append_batch` stores consecutive records of one run as `append` would
///   store each; a store that can writes them in one transaction (all or
///   none), so that a batch costs one commit. The default appends them one by
///   one: correct, since every prefix of a run's records is a valid journal,
///   but one commit each.
/// - `load` returns a run's records in `seq` order; an unknown run gives none.
/// - `unfinished_runs` lists the runs whose status
///   [`is_in_flight`](RunStatus::is_in_flight), oldest first.
///
/// An in-memory implementation is [`InMemoryJournal`](crate::InMemoryJournal);
/// provisioning-sqlx has durable ones.
#[async_trait]
pub trait SagaJournal: Send + Sync {
    /// Appends one record.
    async fn append(&self, record: JournalRecord) -> Result<()>;

    /// Appends consecutive records of one run, in order (see the contract).
    ///
    /// # Errors
    /// As [`append`](Self::append), for the first record that cannot be
    /// stored; a store that writes the batch in one transaction then stores
    /// none of it.
    async fn append_batch(&self, records: Vec<JournalRecord>) -> Result<()> {
        for record in records {
            self.append(record).await?;
        }
        Ok(())
    }

    /// A run's records, in order.
    async fn load(&self, run_id: RunId) -> Result<Vec<JournalRecord>>;

    /// Runs a crash may have left running or compensating.
    async fn unfinished_runs(&self) -> Result<Vec<RunId>>;
}

#[async_trait]
impl<T: SagaJournal + ?Sized> SagaJournal for Arc<T> {
    async fn append(&self, record: JournalRecord) -> Result<()> {
        (**self).append(record).await
    }
    async fn append_batch(&self, records: Vec<JournalRecord>) -> Result<()> {
        (**self).append_batch(records).await
    }
    async fn load(&self, run_id: RunId) -> Result<Vec<JournalRecord>> {
        (**self).load(run_id).await
    }
    async fn unfinished_runs(&self) -> Result<Vec<RunId>> {
        (**self).unfinished_runs().await
    }
}
