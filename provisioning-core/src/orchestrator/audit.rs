//! The audit trail of a request: its steps, attempts, errors and compensations.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::orchestrator::Receipt;
use crate::saga::{JournalEntry, JournalRecord};

/// What one line of a request's history records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditOutcome {
    /// The run started.
    RunStarted,
    /// A step's attempt started.
    Started,
    /// A step's attempt failed and will be retried.
    Retrying,
    /// A step completed.
    Completed,
    /// A step failed for good.
    Failed,
    /// The run was cancelled before the step.
    Cancelled,
    /// A step's compensation started.
    Compensating,
    /// A compensation attempt failed and will be retried.
    CompensationRetrying,
    /// A step was compensated.
    Compensated,
    /// A step's compensation failed for good.
    CompensationFailed,
    /// The run completed.
    RunCompleted,
    /// The run was compensated.
    RunCompensated,
}

impl AuditOutcome {
    /// The outcome as the JSON and the CLI write it (`compensation_failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::RunStarted => "run_started",
            AuditOutcome::Started => "started",
            AuditOutcome::Retrying => "retrying",
            AuditOutcome::Completed => "completed",
            AuditOutcome::Failed => "failed",
            AuditOutcome::Cancelled => "cancelled",
            AuditOutcome::Compensating => "compensating",
            AuditOutcome::CompensationRetrying => "compensation_retrying",
            AuditOutcome::Compensated => "compensated",
            AuditOutcome::CompensationFailed => "compensation_failed",
            AuditOutcome::RunCompleted => "run_completed",
            AuditOutcome::RunCompensated => "run_compensated",
        }
    }
}

impl std::fmt::Display for AuditOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// One line of a request's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuditEntry {
    /// Position in the run's journal.
    pub seq: u64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The step, for step entries.
    pub step: Option<String>,
    /// The attempt, for step entries.
    pub attempt: Option<u32>,
    /// What happened.
    pub outcome: AuditOutcome,
    /// The error, for failures.
    pub error: Option<String>,
    /// How long the attempt took, for completions.
    pub duration_ms: Option<u64>,
}

/// A request and its ordered history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuditTrail {
    /// The request.
    pub request: Receipt,
    /// What its run did, in order.
    pub entries: Vec<AuditEntry>,
}

impl AuditEntry {
    pub(crate) fn from_record(record: &JournalRecord) -> Self {
        let mut entry = AuditEntry {
            seq: record.seq,
            at: record.at,
            step: None,
            attempt: None,
            outcome: AuditOutcome::RunStarted,
            error: None,
            duration_ms: None,
        };
        let (outcome, step, attempt) = match &record.entry {
            JournalEntry::RunStarted { .. } => (AuditOutcome::RunStarted, None, None),
            JournalEntry::StepStarted { step, attempt, .. } => {
                (AuditOutcome::Started, Some(step), Some(*attempt))
            }
            JournalEntry::AttemptFailed {
                step,
                attempt,
                error,
                ..
            } => {
                entry.error = Some(error.clone());
                (AuditOutcome::Retrying, Some(step), Some(*attempt))
            }
            JournalEntry::StepCompleted {
                step,
                attempt,
                duration_ms,
                ..
            } => {
                entry.duration_ms = Some(*duration_ms);
                (AuditOutcome::Completed, Some(step), Some(*attempt))
            }
            JournalEntry::StepFailed {
                step,
                attempt,
                error,
                ..
            } => {
                entry.error = Some(error.clone());
                (AuditOutcome::Failed, Some(step), Some(*attempt))
            }
            JournalEntry::RunCancelled { step, .. } => (AuditOutcome::Cancelled, Some(step), None),
            JournalEntry::CompensationStarted { step, attempt, .. } => {
                (AuditOutcome::Compensating, Some(step), Some(*attempt))
            }
            JournalEntry::CompensationAttemptFailed {
                step,
                attempt,
                error,
                ..
            } => {
                entry.error = Some(error.clone());
                (
                    AuditOutcome::CompensationRetrying,
                    Some(step),
                    Some(*attempt),
                )
            }
            JournalEntry::StepCompensated { step, attempt, .. } => {
                (AuditOutcome::Compensated, Some(step), Some(*attempt))
            }
            JournalEntry::CompensationFailed {
                step,
                attempt,
                error,
                ..
            } => {
                entry.error = Some(error.clone());
                (AuditOutcome::CompensationFailed, Some(step), Some(*attempt))
            }
            JournalEntry::RunCompleted => (AuditOutcome::RunCompleted, None, None),
            JournalEntry::RunCompensated => (AuditOutcome::RunCompensated, None, None),
        };
        entry.outcome = outcome;
        entry.step = step.cloned();
        entry.attempt = attempt;
        entry
    }
}
