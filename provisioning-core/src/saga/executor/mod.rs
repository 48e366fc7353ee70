//! [`SagaExecutor`]: runs, retries, compensates and resumes sagas, journaling
//! every step.
//!
//! This file is the executor's public face (the executor, its builder, the
//! run report); the loop that drives a run is in `driver.rs`, kept apart so
//! the API reads without it.

mod driver;

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::error::{Error, Result};
use crate::model::RunId;
use crate::saga::{
    CancellationToken, FaultInjector, JournalEntry, RetryPolicy, RunState, RunStatus, Saga,
    SagaJournal, StepFailure, Timer,
};
use driver::Driver;

/// What a run came to.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunReport<C> {
    /// The run.
    pub run_id: RunId,
    /// The saga's name.
    pub workflow: String,
    /// `Completed`, `Compensated` or `CompensationFailed`.
    pub status: RunStatus,
    /// The failure that made the run compensate.
    pub failure: Option<StepFailure>,
    /// The compensation that failed, when `status` is `CompensationFailed`.
    pub compensation_failure: Option<StepFailure>,
    /// The context as the last step left it.
    pub context: C,
}

impl<C> RunReport<C> {
    /// Whether every step completed.
    pub fn is_completed(&self) -> bool {
        self.status == RunStatus::Completed
    }
}

/// Runs [`Saga`]s with retry, compensation and a durable journal.
///
/// - A transient error is retried under the step's [`RetryPolicy`] (or the
///   saga's, or the executor's); a step timeout counts as transient.
/// - A permanent error, or retries exhausted, compensates the failing step and
///   every completed step, in reverse. Compensation is retried on transient
///   errors; if it still fails the run ends [`RunStatus::CompensationFailed`],
///   naming the step, and [`resume`](Self::resume) tries again later.
/// - Every start, attempt, completion, failure and compensation is appended to
///   the [`SagaJournal`] before the run moves on, with the context after each
///   step. After a crash, [`resume`](Self::resume) rebuilds the run from the
///   journal and goes on forward or goes on compensating; a step whose
///   completion was journaled never runs again.
/// - Records that follow each other with nothing run in between go in one
///   [`append_batch`](SagaJournal::append_batch), one commit on a durable
///   journal: a step's completion with the next step's start (still journaled
///   before that step runs), the run's start with the first step's, the last
///   step's completion with the run's end. A run that completes costs one
///   journal write per step, plus one.
/// - A cancelled [`CancellationToken`] stops the run before the next step or
///   attempt (or while one is pending) and compensates.
///
/// A run is an error (`Err`) only when the journal cannot be written or read;
/// the run is then left as the journal last recorded it, for `resume`.
///
/// ```
/// use std::sync::Arc;
/// use async_trait::async_trait;
/// use provisioning_core::{InMemoryJournal, RunStatus, Saga, SagaExecutor, Step, StepError};
///
/// #[derive(Default, serde::Serialize, serde::Deserialize)]
/// struct Ctx { created: Vec<String> }
///
/// struct Create(&'static str);
///
/// #[async_trait]
/// impl Step<Ctx> for Create {
///     fn name(&self) -> &str { self.0 }
///     async fn execute(&self, ctx: &mut Ctx) -> Result<(), StepError> {
///         ctx.created.push(self.0.to_owned());
///         Ok(())
///     }
///     async fn compensate(&self, ctx: &mut Ctx) -> Result<(), StepError> {
///         ctx.created.retain(|c| c != self.0);
///         Ok(())
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let executor = SagaExecutor::new(Arc::new(InMemoryJournal::new()));
/// let saga = Saga::builder("provision-resource")
///     .step(Create("bucket"))
///     .step(Create("queue"))
///     .build()?;
/// let report = executor.run(&saga, Ctx::default()).await?;
/// assert_eq!(report.status, RunStatus::Completed);
/// assert_eq!(report.context.created, ["bucket", "queue"]);
/// # Ok::<(), provisioning_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct SagaExecutor {
    journal: Arc<dyn SagaJournal>,
    timer: Arc<dyn Timer>,
    retry: RetryPolicy,
    faults: Option<Arc<dyn FaultInjector>>,
}

impl std::fmt::Debug for SagaExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SagaExecutor")
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// Builds a [`SagaExecutor`].
#[derive(Default)]
#[must_use]
pub struct SagaExecutorBuilder {
    journal: Option<Arc<dyn SagaJournal>>,
    timer: Option<Arc<dyn Timer>>,
    retry: Option<RetryPolicy>,
    faults: Option<Arc<dyn FaultInjector>>,
}

impl SagaExecutorBuilder {
    /// The journal runs are recorded in (required).
    pub fn journal(mut self, journal: Arc<dyn SagaJournal>) -> Self {
        self.journal = Some(journal);
        self
    }

    /// The timer for backoffs and timeouts (defaults to tokio's with the `tokio`
    /// feature; required without it).
    pub fn timer(mut self, timer: Arc<dyn Timer>) -> Self {
        self.timer = Some(timer);
        self
    }

    /// The retry policy for sagas and steps that set none
    /// (default: [`RetryPolicy::default`]).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Injects failures into steps, for drills and tests (see [`StepFaults`](crate::StepFaults)).
    pub fn fault_injector(mut self, faults: Arc<dyn FaultInjector>) -> Self {
        self.faults = Some(faults);
        self
    }

    /// The executor.
    ///
    /// # Errors
    /// [`Error::MissingPart`] naming the journal, or the timer without the
    /// `tokio` feature.
    pub fn build(self) -> Result<SagaExecutor> {
        let journal = self.journal.ok_or(Error::MissingPart {
            part: "journal",
            setter: "journal",
        })?;
        let timer = match self.timer {
            Some(timer) => timer,
            None => default_timer()?,
        };
        Ok(SagaExecutor {
            journal,
            timer,
            retry: self.retry.unwrap_or_default(),
            faults: self.faults,
        })
    }
}

#[cfg(feature = "tokio")]
fn default_timer() -> Result<Arc<dyn Timer>> {
    Ok(Arc::new(crate::saga::TokioTimer))
}

#[cfg(not(feature = "tokio"))]
fn default_timer() -> Result<Arc<dyn Timer>> {
    Err(Error::MissingPart {
        part: "timer (the `tokio` feature is off)",
        setter: "timer",
    })
}

impl SagaExecutor {
    /// A builder.
    pub fn builder() -> SagaExecutorBuilder {
        SagaExecutorBuilder::default()
    }

    /// An executor on `journal` with tokio's timer and the default retry policy.
    #[cfg(feature = "tokio")]
    pub fn new(journal: Arc<dyn SagaJournal>) -> Self {
        SagaExecutor {
            journal,
            timer: Arc::new(crate::saga::TokioTimer),
            retry: RetryPolicy::default(),
            faults: None,
        }
    }

    /// The journal this executor writes.
    pub fn journal(&self) -> &Arc<dyn SagaJournal> {
        &self.journal
    }

    /// The timer this executor sleeps on.
    pub fn timer(&self) -> &Arc<dyn Timer> {
        &self.timer
    }

    /// Runs `saga` from the start under a new run id, without cancellation.
    ///
    /// # Errors
    /// Journal failures; see [`SagaExecutor`].
    pub async fn run<C>(&self, saga: &Saga<C>, context: C) -> Result<RunReport<C>>
    where
        C: Serialize + DeserializeOwned + Send + 'static,
    {
        self.start(saga, RunId::new(), context, &CancellationToken::new())
            .await
    }

    /// Runs `saga` from the start under `run_id`.
    ///
    /// # Errors
    /// [`Error::Conflict`] if `run_id` already has a journal; journal failures.
    pub async fn start<C>(
        &self,
        saga: &Saga<C>,
        run_id: RunId,
        context: C,
        cancel: &CancellationToken,
    ) -> Result<RunReport<C>>
    where
        C: Serialize + DeserializeOwned + Send + 'static,
    {
        let state = RunState::new(run_id, saga.name.clone(), Arc::clone(&saga.step_names));
        let mut driver = Driver::new(self, saga, state, context, cancel);
        let span = driver.span();
        async move {
            let initial = driver.checkpoint()?;
            let started = JournalEntry::RunStarted {
                workflow: saga.name.clone(),
                steps: saga.step_names.to_vec(),
                context: initial,
            };
            let now = driver.exec.timer.now();
            driver.record_then_start(started, 0, now).await?;
            driver.drive().await
        }
        .instrument(span)
        .await
    }

    /// Resumes run `run_id` from its journal: forward from the first step whose
    /// completion is not journaled, or on with compensation; a
    /// `CompensationFailed` run retries its compensation. A finished run is
    /// reported as it ended, and nothing runs.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown run; [`Error::RunMismatch`] when `saga`
    /// has another name or other steps than the journaled run; journal failures.
    pub async fn resume<C>(
        &self,
        saga: &Saga<C>,
        run_id: RunId,
        cancel: &CancellationToken,
    ) -> Result<RunReport<C>>
    where
        C: Serialize + DeserializeOwned + Send + 'static,
    {
        let records = self.journal.load(run_id).await?;
        let (state, checkpoint) = RunState::replay(run_id, &records)?;
        if state.workflow != saga.name || state.steps != saga.step_names {
            return Err(Error::RunMismatch {
                run: run_id,
                reason: format!(
                    "journaled as {:?} with steps {:?}, resumed as {:?} with steps {:?}",
                    state.workflow, state.steps, saga.name, saga.step_names
                ),
            });
        }
        let context: C =
            serde_json::from_value(checkpoint).map_err(|source| Error::Serialization {
                what: "saga context checkpoint",
                source,
            })?;
        let driver = Driver::new(self, saga, state, context, cancel);
        let span = driver.span();
        tracing::info!(parent: &span, "resuming run");
        driver.drive().instrument(span).await
    }
}
