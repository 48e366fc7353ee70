//! The driver of one saga run: the loop that runs steps forward with retries,
//! compensates in reverse, and journals every record before it moves on.
//! Internal to the executor, apart from its public face in the parent module.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::error::{Error, Result};
use crate::saga::metrics as m;
use crate::saga::retry::duration_ms;
use crate::saga::{
    BoxFuture, CancellationToken, FailureCause, JournalEntry, JournalRecord, RetryPolicy, RunState,
    RunStatus, Saga, StepError,
};

use super::{RunReport, SagaExecutor};

/// What the journal keeps of a step's error: its causes, with secrets and
/// the directories of file paths taken out. The journal feeds audit trails,
/// receipts and tenant records, which the tenant's owner reads; the log keeps
/// the paths under the run's span.
fn journal_text(error: &StepError) -> String {
    Error::record_report_of(error)
}

/// How a raced future ended.
enum Raced<T> {
    Done(T),
    TimedOut,
    Cancelled,
}

/// Polls `fut` against an optional deadline and an optional cancellation.
/// The work future is polled first, so work that is ready wins a tie.
async fn race<T>(
    fut: impl Future<Output = T>,
    deadline: Option<BoxFuture<()>>,
    cancel: Option<&CancellationToken>,
) -> Raced<T> {
    let mut fut = pin!(fut);
    let mut deadline = deadline;
    let mut cancelled = pin!(async {
        match cancel {
            Some(token) => token.cancelled().await,
            None => std::future::pending().await,
        }
    });
    poll_fn(|cx| {
        if let Poll::Ready(value) = fut.as_mut().poll(cx) {
            return Poll::Ready(Raced::Done(value));
        }
        if let Some(deadline) = deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Raced::TimedOut);
        }
        if cancelled.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Raced::Cancelled);
        }
        Poll::Pending
    })
    .await
}

/// Decrements the in-flight gauge however the run ends (even if dropped).
struct InFlight(Arc<str>);

impl InFlight {
    fn enter(workflow: &Arc<str>) -> Self {
        metrics::gauge!(m::IN_FLIGHT, "workflow" => Arc::clone(workflow)).increment(1.0);
        InFlight(Arc::clone(workflow))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(m::IN_FLIGHT, "workflow" => Arc::clone(&self.0)).decrement(1.0);
    }
}

/// One run being driven: its state, its context and where it writes.
pub(super) struct Driver<'a, C: Send + 'static> {
    pub(super) exec: &'a SagaExecutor,
    saga: &'a Saga<C>,
    state: RunState,
    context: C,
    cancel: &'a CancellationToken,
    /// Wall time and timer instant read together when the driver starts:
    /// records are stamped from the timer readings the executor takes anyway,
    /// saving a wall-clock read per record on the hot path.
    epoch: (chrono::DateTime<chrono::Utc>, Instant),
    /// The step whose first attempt's `StepStarted` was journaled with the
    /// record before it (see [`record_then_start`](Self::record_then_start))
    /// and that has not begun yet.
    prestarted: Option<usize>,
}

impl<'a, C> Driver<'a, C>
where
    C: Serialize + DeserializeOwned + Send + 'static,
{
    pub(super) fn new(
        exec: &'a SagaExecutor,
        saga: &'a Saga<C>,
        state: RunState,
        context: C,
        cancel: &'a CancellationToken,
    ) -> Self {
        Driver {
            epoch: (chrono::Utc::now(), exec.timer.now()),
            exec,
            saga,
            state,
            context,
            cancel,
            prestarted: None,
        }
    }

    /// The wall time of timer instant `at`.
    fn wall(&self, at: Instant) -> chrono::DateTime<chrono::Utc> {
        let (wall, instant) = self.epoch;
        chrono::Duration::from_std(at.saturating_duration_since(instant))
            .ok()
            .and_then(|elapsed| wall.checked_add_signed(elapsed))
            .unwrap_or(wall)
    }

    /// The run's span. Spans here are at ERROR level so that a log filtered
    /// to warnings (the CLI's default) still ties each failure, with its
    /// full cause and paths, to its run and request.
    pub(super) fn span(&self) -> tracing::Span {
        tracing::error_span!(
            "saga_run",
            run_id = %self.state.run_id,
            workflow = %self.saga.name,
        )
    }

    pub(super) fn checkpoint(&self) -> Result<serde_json::Value> {
        serde_json::to_value(&self.context).map_err(|source| Error::Serialization {
            what: "saga context",
            source,
        })
    }

    fn policy(&self, index: usize) -> &'a RetryPolicy {
        self.saga.steps[index]
            .retry_policy()
            .or(self.saga.retry.as_ref())
            .unwrap_or(&self.exec.retry)
    }

    fn step_name(&self, index: usize) -> String {
        self.saga.step_names[index].clone()
    }

    fn deadline(&self, index: usize) -> Option<BoxFuture<()>> {
        self.saga.steps[index]
            .timeout()
            .map(|t| self.exec.timer.sleep(t))
    }

    fn elapsed_since(&self, start: Instant) -> Duration {
        self.exec.timer.now().saturating_duration_since(start)
    }

    /// Folds `entry` into the state, then appends it. If the append fails the
    /// driver is abandoned (the error propagates), so the state never runs ahead
    /// of the journal in a way anyone observes.
    async fn record(&mut self, entry: JournalEntry) -> Result<()> {
        let now = self.exec.timer.now();
        self.record_at(entry, now).await
    }

    /// As [`record`](Self::record), stamped with a timer reading the caller took.
    async fn record_at(&mut self, entry: JournalEntry, at: Instant) -> Result<()> {
        let record = self.fold(entry, at)?;
        // Deref to the `dyn` first: calling through the `Arc<T>` blanket impl
        // would box the future twice.
        (*self.exec.journal).append(record).await
    }

    /// Records `entry` and, in the same batch, the start of the first attempt
    /// of step `next`: one journal write (one commit) where there were two.
    ///
    /// Safe because the start is still journaled before the step runs, as
    /// when written on its own: it is only written earlier, right after the
    /// record before it. It is left out when the run is cancelled already or
    /// `next` is past the last step; the batch ends the run then (`RunCompleted`
    /// after the last step's completion) or the cancellation is recorded next.
    pub(super) async fn record_then_start(
        &mut self,
        entry: JournalEntry,
        next: usize,
        at: Instant,
    ) -> Result<()> {
        if next >= self.saga.steps.len() || self.cancel.is_cancelled() {
            return self.record_at(entry, at).await;
        }
        let first = self.fold(entry, at)?;
        let start = self.fold(
            JournalEntry::StepStarted {
                step: self.step_name(next),
                index: next,
                attempt: self.state.attempts[next] + 1,
            },
            at,
        )?;
        self.prestarted = Some(next);
        (*self.exec.journal).append_batch(vec![first, start]).await
    }

    /// Records `entry` and `then` in one batch (see
    /// [`SagaJournal::append_batch`](crate::saga::SagaJournal::append_batch)).
    async fn record_both(
        &mut self,
        entry: JournalEntry,
        then: JournalEntry,
        at: Instant,
    ) -> Result<()> {
        let first = self.fold(entry, at)?;
        let second = self.fold(then, at)?;
        (*self.exec.journal).append_batch(vec![first, second]).await
    }

    /// Applies `entry` to the state and stamps its record.
    fn fold(&mut self, entry: JournalEntry, at: Instant) -> Result<JournalRecord> {
        let seq = self.state.next_seq;
        let at = self.wall(at);
        self.state.apply(&entry)?;
        Ok(JournalRecord::stamped(self.state.run_id, seq, at, entry))
    }

    pub(super) async fn drive(mut self) -> Result<RunReport<C>> {
        let _in_flight = InFlight::enter(&self.saga.name_label);
        let started = self.exec.timer.now();
        let result = async {
            if self.state.status == RunStatus::Running {
                self.forward().await?;
            }
            if matches!(
                self.state.status,
                RunStatus::Compensating | RunStatus::CompensationFailed
            ) {
                self.backward().await?;
            }
            Ok(())
        }
        .await;
        let outcome = match &result {
            Ok(()) => status_label(self.state.status),
            Err(_) => "error",
        };
        let seconds = self.elapsed_since(started).as_secs_f64();
        let workflow = Arc::clone(&self.saga.name_label);
        metrics::counter!(m::REQUESTS_TOTAL, "workflow" => Arc::clone(&workflow), "outcome" => outcome)
            .increment(1);
        metrics::histogram!(m::DURATION_SECONDS, "workflow" => workflow, "outcome" => outcome)
            .record(seconds);
        result?;
        match self.state.status {
            RunStatus::Completed => tracing::info!("run completed"),
            RunStatus::Compensated => tracing::warn!("run compensated"),
            _ => tracing::error!(
                step = self
                    .state
                    .compensation_failure
                    .as_ref()
                    .map(|f| f.step.as_str()),
                "run stopped: compensation failed"
            ),
        }
        Ok(RunReport {
            run_id: self.state.run_id,
            workflow: self.state.workflow,
            status: self.state.status,
            failure: self.state.failure,
            compensation_failure: self.state.compensation_failure,
            context: self.context,
        })
    }

    /// Runs the remaining steps until all complete or one fails for good.
    /// The last step's completion and `RunCompleted` are one batch; a run
    /// resumed after a crash between them only has the end left to record.
    async fn forward(&mut self) -> Result<()> {
        while self.state.completed < self.saga.steps.len() {
            let index = self.state.completed;
            if self.cancel.is_cancelled() {
                // A start journaled ahead by this driver did not begin.
                let ahead = self.prestarted.take() == Some(index);
                let started = self.state.attempts[index] > 0 && !ahead;
                return self.cancelled(index, started).await;
            }
            self.run_step(index).await?;
            if self.state.status != RunStatus::Running {
                return Ok(());
            }
        }
        self.record(JournalEntry::RunCompleted).await
    }

    async fn cancelled(&mut self, index: usize, started: bool) -> Result<()> {
        tracing::warn!(step = %self.saga.step_names[index], "run cancelled");
        self.record(JournalEntry::RunCancelled {
            step: self.step_name(index),
            index,
            started,
        })
        .await
    }

    /// Attempts step `index` until it completes, fails for good, or the run is
    /// cancelled; journals each attempt.
    async fn run_step(&mut self, index: usize) -> Result<()> {
        let step = Arc::clone(&self.saga.steps[index]);
        let policy = self.policy(index);
        let mut first = None;
        let mut local_attempt = 0;
        loop {
            local_attempt += 1;
            let began = self.exec.timer.now();
            let first = *first.get_or_insert(began);
            let attempt = if self.prestarted.take() == Some(index) {
                // Journaled with the previous record already.
                self.state.attempts[index]
            } else {
                let attempt = self.state.attempts[index] + 1;
                self.record_at(
                    JournalEntry::StepStarted {
                        step: self.step_name(index),
                        index,
                        attempt,
                    },
                    began,
                )
                .await?;
                attempt
            };
            let span = tracing::error_span!("saga_step", step = %step.name(), attempt);
            let deadline = self.deadline(index);
            let injected = self
                .exec
                .faults
                .as_ref()
                .and_then(|faults| faults.inject(&self.saga.name, step.name()));
            let outcome = match injected {
                Some(error) => Raced::Done(Err(error)),
                // Deref to the `dyn` so the future is boxed once, not twice.
                None => {
                    race(
                        (*step).execute(&mut self.context),
                        deadline,
                        Some(self.cancel),
                    )
                    .instrument(span.clone())
                    .await
                }
            };
            let ended = self.exec.timer.now();
            let took = ended.saturating_duration_since(began);
            let error = match outcome {
                Raced::Done(Ok(())) => {
                    self.observe_step(index, "ok", took);
                    // Per-tenant progress: the run's span carries the tenant.
                    tracing::info!(parent: &span, took_ms = took.as_millis() as u64, "step completed");
                    let context = self.checkpoint()?;
                    let completed = JournalEntry::StepCompleted {
                        step: self.step_name(index),
                        index,
                        attempt,
                        duration_ms: duration_ms(took),
                        context,
                    };
                    if index + 1 < self.saga.steps.len() {
                        return self.record_then_start(completed, index + 1, ended).await;
                    }
                    // The last step: the run's end goes in the same batch.
                    return self
                        .record_both(completed, JournalEntry::RunCompleted, ended)
                        .await;
                }
                Raced::Cancelled => {
                    self.observe_step(index, "cancelled", took);
                    return self.cancelled(index, true).await;
                }
                Raced::TimedOut => {
                    self.observe_step(index, "timeout", took);
                    StepError::transient(Error::Backend {
                        component: "saga step",
                        message: format!("attempt timed out after {took:?}"),
                        transient: true,
                        source: None,
                    })
                }
                Raced::Done(Err(error)) => {
                    self.observe_step(index, error_label(&error), took);
                    error
                }
            };
            let cause = if error.is_transient() {
                match policy.next_delay(local_attempt, self.elapsed_since(first)) {
                    Some(delay) => {
                        tracing::warn!(parent: &span, error = %Error::log_report_of(&error), retry_in = ?delay, "step attempt failed; retrying");
                        metrics::counter!(m::RETRIES_TOTAL, "workflow" => Arc::clone(&self.saga.name_label), "step" => Arc::clone(&self.saga.step_labels[index]))
                            .increment(1);
                        self.record(JournalEntry::AttemptFailed {
                            step: self.step_name(index),
                            index,
                            attempt,
                            error: journal_text(&error),
                            retry_in_ms: duration_ms(delay),
                        })
                        .await?;
                        let sleep = self.exec.timer.sleep(delay);
                        if let Raced::Cancelled = race(sleep, None, Some(self.cancel)).await {
                            return self.cancelled(index, true).await;
                        }
                        continue;
                    }
                    None => FailureCause::RetriesExhausted,
                }
            } else {
                FailureCause::Permanent
            };
            tracing::error!(parent: &span, error = %Error::log_report_of(&error), %cause, "step failed; compensating");
            let context = self.checkpoint()?;
            return self
                .record(JournalEntry::StepFailed {
                    step: self.step_name(index),
                    index,
                    attempt,
                    cause,
                    error: journal_text(&error),
                    context,
                })
                .await;
        }
    }

    fn observe_step(&self, index: usize, outcome: &'static str, took: Duration) {
        metrics::histogram!(
            m::STEP_DURATION_SECONDS,
            "workflow" => Arc::clone(&self.saga.name_label),
            "step" => Arc::clone(&self.saga.step_labels[index]),
            "outcome" => outcome,
        )
        .record(took.as_secs_f64());
    }

    /// Compensates, highest index first, every step that must be and is not yet.
    /// Cancellation does not interrupt compensation: it is what cancelling asks for.
    async fn backward(&mut self) -> Result<()> {
        let pending: Vec<usize> = self.state.pending_compensations().collect();
        for index in pending {
            if !self.compensate_step(index).await? {
                return Ok(());
            }
        }
        self.record(JournalEntry::RunCompensated).await
    }

    /// Compensates step `index`, retrying transient errors; `false` when it
    /// failed for good (the run is then `CompensationFailed`).
    async fn compensate_step(&mut self, index: usize) -> Result<bool> {
        let step = Arc::clone(&self.saga.steps[index]);
        let policy = self.policy(index);
        let first = self.exec.timer.now();
        let mut local_attempt = 0;
        loop {
            local_attempt += 1;
            let attempt = self.state.compensation_attempts[index] + 1;
            self.record(JournalEntry::CompensationStarted {
                step: self.step_name(index),
                index,
                attempt,
            })
            .await?;
            let span = tracing::error_span!("saga_compensate", step = %step.name(), attempt);
            let deadline = self.deadline(index);
            let outcome = race((*step).compensate(&mut self.context), deadline, None)
                .instrument(span.clone())
                .await;
            let error = match outcome {
                Raced::Done(Ok(())) => {
                    self.count_compensation(index, "ok");
                    let context = self.checkpoint()?;
                    self.record(JournalEntry::StepCompensated {
                        step: self.step_name(index),
                        index,
                        attempt,
                        context,
                    })
                    .await?;
                    return Ok(true);
                }
                Raced::Done(Err(error)) => error,
                Raced::TimedOut | Raced::Cancelled => StepError::transient(Error::Backend {
                    component: "saga compensation",
                    message: "attempt timed out".to_owned(),
                    transient: true,
                    source: None,
                }),
            };
            let retry = error
                .is_transient()
                .then(|| policy.next_delay(local_attempt, self.elapsed_since(first)))
                .flatten();
            if let Some(delay) = retry {
                tracing::warn!(parent: &span, error = %Error::log_report_of(&error), retry_in = ?delay, "compensation attempt failed; retrying");
                self.record(JournalEntry::CompensationAttemptFailed {
                    step: self.step_name(index),
                    index,
                    attempt,
                    error: journal_text(&error),
                    retry_in_ms: duration_ms(delay),
                })
                .await?;
                self.exec.timer.sleep(delay).await;
                continue;
            }
            tracing::error!(parent: &span, error = %Error::log_report_of(&error), "compensation failed; run stopped for a later retry");
            self.count_compensation(index, "failed");
            self.record(JournalEntry::CompensationFailed {
                step: self.step_name(index),
                index,
                attempt,
                error: journal_text(&error),
            })
            .await?;
            return Ok(false);
        }
    }

    fn count_compensation(&self, index: usize, outcome: &'static str) {
        metrics::counter!(
            m::COMPENSATIONS_TOTAL,
            "workflow" => Arc::clone(&self.saga.name_label),
            "step" => Arc::clone(&self.saga.step_labels[index]),
            "outcome" => outcome,
        )
        .increment(1);
    }
}

fn error_label(error: &StepError) -> &'static str {
    if error.is_transient() {
        "transient"
    } else {
        "permanent"
    }
}

fn status_label(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Running => "running",
        RunStatus::Compensating => "compensating",
        RunStatus::Completed => "completed",
        RunStatus::Compensated => "compensated",
        RunStatus::CompensationFailed => "compensation_failed",
    }
}
