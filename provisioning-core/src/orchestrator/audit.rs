//! The audit trail of a request: its steps, attempts, errors and compensations.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::orchestrator::Receipt;
use crate::saga::{JournalEntry, JournalRecord};

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
    /// What happened: `run_started`, `started`, `retrying`, `completed`,
    /// `failed`, `cancelled`, `compensating`, `compensation_retrying`,
    /// `compensated`, `compensation_failed`, `run_completed`, `run_compensated`.
    pub outcome: String,
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
            outcome: String::new(),
            error: None,
            duration_ms: None,
        };
        let (outcome, step, attempt) = match &record.entry {
            JournalEntry::RunStarted { .. } => ("run_started", None, None),
            JournalEntry::StepStarted { step, attempt, .. } => {
                ("started", Some(step), Some(*attempt))
            }
            JournalEntry::AttemptFailed {
                step,
                attempt,
                error,
                ..
            } => {
                entry.error = Some(error.clone());
                ("retrying", Some(step), Some(*attempt))
            }
            JournalEntry::StepCompleted {
                step,
                attempt,
                duration_ms,
                ..
            } => {
                entry.duration_ms = Some(*duration_ms);
                ("completed", Some(step), Some(*attempt))
            }
            JournalEntry::StepFailed {
                step,
                attempt,
                error,
                ..
            } => {
                entry.error = Some(error.clone());
                ("failed", Some(step), Some(*attempt))
            }
            JournalEntry::RunCancelled { step, .. } => ("cancelled", Some(step), None),
            JournalEntry::CompensationStarted { step, attempt, .. } => {
                ("compensating", Some(step), Some(*attempt))
            }
            JournalEntry::CompensationAttemptFailed {
                step,
                attempt,
                error,
                ..
            } => {
                entry.error = Some(error.clone());
                ("compensation_retrying", Some(step), Some(*attempt))
            }
            JournalEntry::StepCompensated { step, attempt, .. } => {
                ("compensated", Some(step), Some(*attempt))
            }
            JournalEntry::CompensationFailed {
                step,
                attempt,
                error,
                ..
            } => {
                entry.error = Some(error.clone());
                ("compensation_failed", Some(step), Some(*attempt))
            }
            JournalEntry::RunCompleted => ("run_completed", None, None),
            JournalEntry::RunCompensated => ("run_compensated", None, None),
        };
        entry.outcome = outcome.to_owned();
        entry.step = step.cloned();
        entry.attempt = attempt;
        entry
    }
}
