//! The replay of the saga journal: [`RunState`], a run's state folded from its
//! journal entries, which the executor keeps while it drives a run and rebuilds
//! to resume one. Apart from the record types in `journal.rs`, which stores use
//! without it.

use std::sync::Arc;

use crate::error::{Entity, Error, Result};
use crate::model::RunId;
use crate::saga::{FailureCause, JournalEntry, JournalRecord, RunStatus, StepFailure};

/// A run's state, folded from its journal entries in order.
///
/// The executor keeps one while it drives a run and rebuilds one from the journal
/// to resume, through the same [`RunState::apply`], so both agree by construction.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RunState {
    /// The run.
    pub run_id: RunId,
    /// The saga's name.
    pub workflow: String,
    /// The saga's step names, in order.
    pub steps: Arc<[String]>,
    /// Where the run stands.
    pub status: RunStatus,
    /// How many leading steps completed.
    pub completed: usize,
    /// Execution attempts journaled per step.
    pub attempts: Vec<u32>,
    /// Compensation attempts journaled per step.
    pub compensation_attempts: Vec<u32>,
    /// Which steps are compensated.
    pub compensated: Vec<bool>,
    /// The highest step index that must be compensated, once compensating.
    pub compensate_from: Option<usize>,
    /// The failure that started compensation.
    pub failure: Option<StepFailure>,
    /// The compensation failure that stopped the run, while `CompensationFailed`.
    pub compensation_failure: Option<StepFailure>,
    /// The sequence number the next entry takes.
    pub next_seq: u64,
}

impl RunState {
    /// A run that has just started.
    pub fn new(
        run_id: RunId,
        workflow: impl Into<String>,
        steps: impl Into<Arc<[String]>>,
    ) -> Self {
        let steps = steps.into();
        let n = steps.len();
        RunState {
            run_id,
            workflow: workflow.into(),
            steps,
            status: RunStatus::Running,
            completed: 0,
            attempts: vec![0; n],
            compensation_attempts: vec![0; n],
            compensated: vec![false; n],
            compensate_from: None,
            failure: None,
            compensation_failure: None,
            next_seq: 0,
        }
    }

    /// Rebuilds a run's state and its latest context checkpoint from its records.
    ///
    /// # Errors
    /// [`Error::NotFound`] for no records; [`Error::Conflict`] when the records are
    /// not a gapless sequence starting with `RunStarted`, or name a step the run
    /// does not have.
    pub fn replay(
        run_id: RunId,
        records: &[JournalRecord],
    ) -> Result<(RunState, serde_json::Value)> {
        let Some(first) = records.first() else {
            return Err(Error::NotFound {
                kind: Entity::Run,
                id: run_id.to_string(),
            });
        };
        let (mut state, mut context) = match &first.entry {
            JournalEntry::RunStarted {
                workflow,
                steps,
                context,
            } => (
                RunState::new(run_id, workflow.clone(), steps.as_slice()),
                context.clone(),
            ),
            other => return Err(corrupt(run_id, format!("starts with {}", other.kind()))),
        };
        for record in records {
            if record.seq != state.next_seq {
                return Err(corrupt(
                    run_id,
                    format!("entry {} where {} was expected", record.seq, state.next_seq),
                ));
            }
            if let Some(checkpoint) = record.entry.checkpoint() {
                context.clone_from(checkpoint);
            }
            state.apply(&record.entry)?;
        }
        Ok((state, context))
    }

    /// Folds one entry into the state.
    ///
    /// # Errors
    /// [`Error::Conflict`] when the entry names a step index the run does not have.
    pub fn apply(&mut self, entry: &JournalEntry) -> Result<()> {
        if let Some(index) = entry_index(entry)
            && index >= self.steps.len()
        {
            return Err(corrupt(
                self.run_id,
                format!(
                    "{} names step {index} of {}",
                    entry.kind(),
                    self.steps.len()
                ),
            ));
        }
        match entry {
            JournalEntry::RunStarted { .. } | JournalEntry::AttemptFailed { .. } => {}
            JournalEntry::StepStarted { index, attempt, .. } => {
                self.attempts[*index] = *attempt;
            }
            JournalEntry::StepCompleted { index, .. } => {
                self.completed = self.completed.max(index + 1);
            }
            JournalEntry::StepFailed {
                step,
                index,
                cause,
                error,
                ..
            } => {
                self.compensate_from = Some(*index);
                self.failure = Some(StepFailure {
                    step: step.clone(),
                    index: *index,
                    cause: *cause,
                    error: error.clone(),
                });
            }
            JournalEntry::RunCancelled {
                step,
                index,
                started,
            } => {
                self.compensate_from = if *started {
                    Some(*index)
                } else {
                    index.checked_sub(1)
                };
                self.failure = Some(StepFailure {
                    step: step.clone(),
                    index: *index,
                    cause: FailureCause::Cancelled,
                    error: "run cancelled".to_owned(),
                });
            }
            JournalEntry::CompensationStarted { index, attempt, .. } => {
                self.compensation_failure = None;
                self.compensation_attempts[*index] = *attempt;
            }
            JournalEntry::CompensationAttemptFailed { .. } => {}
            JournalEntry::StepCompensated { index, .. } => {
                self.compensated[*index] = true;
            }
            JournalEntry::CompensationFailed {
                step, index, error, ..
            } => {
                self.compensation_failure = Some(StepFailure {
                    step: step.clone(),
                    index: *index,
                    cause: FailureCause::RetriesExhausted,
                    error: error.clone(),
                });
            }
            JournalEntry::RunCompleted | JournalEntry::RunCompensated => {}
        }
        if let Some(status) = entry.status_after() {
            self.status = status;
        }
        self.next_seq += 1;
        Ok(())
    }

    /// The steps still to compensate, highest index first.
    pub fn pending_compensations(&self) -> impl Iterator<Item = usize> + '_ {
        let upto = self.compensate_from.map_or(0, |i| i + 1);
        (0..upto).rev().filter(|i| !self.compensated[*i])
    }
}

fn entry_index(entry: &JournalEntry) -> Option<usize> {
    match entry {
        JournalEntry::StepStarted { index, .. }
        | JournalEntry::AttemptFailed { index, .. }
        | JournalEntry::StepCompleted { index, .. }
        | JournalEntry::StepFailed { index, .. }
        | JournalEntry::RunCancelled { index, .. }
        | JournalEntry::CompensationStarted { index, .. }
        | JournalEntry::CompensationAttemptFailed { index, .. }
        | JournalEntry::StepCompensated { index, .. }
        | JournalEntry::CompensationFailed { index, .. } => Some(*index),
        JournalEntry::RunStarted { .. }
        | JournalEntry::RunCompleted
        | JournalEntry::RunCompensated => None,
    }
}

fn corrupt(run_id: RunId, reason: String) -> Error {
    Error::Conflict {
        kind: Entity::Run,
        id: run_id.to_string(),
        reason: format!("journal is inconsistent: {reason}"),
    }
}
