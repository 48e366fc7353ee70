//! The generic saga executor: ordered steps with retry, compensation, a durable
//! journal, resume after a crash and cooperative cancellation.

mod cancel;
mod definition;
mod executor;
mod faults;
mod journal;
mod memory;
pub mod metrics;
mod replay;
mod retry;
mod step;
mod timer;

pub use cancel::CancellationToken;
pub use definition::{Saga, SagaBuilder};
pub use executor::{RunReport, SagaExecutor, SagaExecutorBuilder};
pub use faults::{FaultInjector, FaultKind, StepFaults};
pub use journal::{
    FailureCause, JournalBatch, JournalEntry, JournalRecord, RunStatus, SagaJournal, StepFailure,
};
pub use memory::InMemoryJournal;
pub use replay::RunState;
pub use retry::{RetryPolicy, RetryPolicyBuilder};
pub use step::{Step, StepError, StepErrorKind};
#[cfg(feature = "tokio")]
pub use timer::TokioTimer;
pub use timer::{BoxFuture, Timer};
