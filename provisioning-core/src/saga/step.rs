//! [`Step`]: one unit of work in a saga, and how it fails ([`StepError`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::{BoxError, Error};
use crate::saga::RetryPolicy;

/// One step of a saga over a context `C` that the caller owns.
///
/// `execute` does the work and may record what it made in the context (the
/// executor checkpoints the context in the journal after every step). `compensate`
/// undoes it; the default has nothing to undo.
///
/// # Idempotency
/// A step may run again: after a transient error, and after a crash between the
/// step finishing and the journal recording it. Both `execute` and `compensate`
/// **must be idempotent**: creating what exists, or removing what is gone, succeeds.
/// `compensate` is also called for the step that failed (it may have half-applied)
/// and for a step cancelled mid-way, so it must cope with partial work.
///
/// ```
/// use async_trait::async_trait;
/// use provisioning_core::{Step, StepError};
///
/// #[derive(Default, serde::Serialize, serde::Deserialize)]
/// struct Ctx { folder_created: bool }
///
/// struct CreateFolder;
///
/// #[async_trait]
/// impl Step<Ctx> for CreateFolder {
///     fn name(&self) -> &str { "create-folder" }
///     async fn execute(&self, ctx: &mut Ctx) -> Result<(), StepError> {
///         ctx.folder_created = true; // create_dir_all is idempotent too
///         Ok(())
///     }
///     async fn compensate(&self, ctx: &mut Ctx) -> Result<(), StepError> {
///         ctx.folder_created = false;
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait Step<C: Send + 'static>: Send + Sync {
    /// A stable name: it is journaled, so renaming a step breaks resuming runs
    /// that started before the rename.
    fn name(&self) -> &str;

    /// Does the step's work.
    ///
    /// # Errors
    /// A [`StepError`] saying whether a retry may help.
    async fn execute(&self, ctx: &mut C) -> Result<(), StepError>;

    /// Undoes what `execute` did, also when it only partly did it.
    async fn compensate(&self, ctx: &mut C) -> Result<(), StepError> {
        let _ = ctx;
        Ok(())
    }

    /// This step's retry policy; `None` uses the saga's or the executor's.
    fn retry_policy(&self) -> Option<&RetryPolicy> {
        None
    }

    /// How long one attempt may take; an attempt that runs over is cancelled and
    /// counts as a transient error. `None` means no limit.
    fn timeout(&self) -> Option<Duration> {
        None
    }
}

#[async_trait]
impl<C: Send + 'static, T: Step<C> + ?Sized> Step<C> for Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    async fn execute(&self, ctx: &mut C) -> Result<(), StepError> {
        (**self).execute(ctx).await
    }
    async fn compensate(&self, ctx: &mut C) -> Result<(), StepError> {
        (**self).compensate(ctx).await
    }
    fn retry_policy(&self) -> Option<&RetryPolicy> {
        (**self).retry_policy()
    }
    fn timeout(&self) -> Option<Duration> {
        (**self).timeout()
    }
}

/// Whether a failed step may succeed if tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepErrorKind {
    /// Retry with backoff (lost connection, busy database, timeout).
    Transient,
    /// Do not retry: compensate (invalid data, conflict, quota refused).
    Permanent,
}

/// How a step failed: transient or permanent, with the underlying error kept as
/// the source.
///
/// ```
/// use provisioning_core::{StepError, StepErrorKind};
///
/// let e = StepError::transient(std::io::Error::other("connection reset"));
/// assert_eq!(e.kind(), StepErrorKind::Transient);
/// assert_eq!(e.to_string(), "transient: connection reset");
/// ```
#[derive(Debug)]
pub struct StepError {
    kind: StepErrorKind,
    source: BoxError,
}

impl StepError {
    /// A failure that a retry may fix.
    pub fn transient(source: impl Into<BoxError>) -> Self {
        StepError {
            kind: StepErrorKind::Transient,
            source: source.into(),
        }
    }

    /// A failure that a retry will not fix: the saga compensates.
    pub fn permanent(source: impl Into<BoxError>) -> Self {
        StepError {
            kind: StepErrorKind::Permanent,
            source: source.into(),
        }
    }

    /// Transient or permanent.
    pub fn kind(&self) -> StepErrorKind {
        self.kind
    }

    /// Whether a retry may help.
    pub fn is_transient(&self) -> bool {
        self.kind == StepErrorKind::Transient
    }

    /// The underlying error.
    pub fn inner(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.source
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            StepErrorKind::Transient => write!(f, "transient: {}", self.source),
            StepErrorKind::Permanent => write!(f, "permanent: {}", self.source),
        }
    }
}

impl std::error::Error for StepError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// The crate's errors classify themselves: [`Error::is_transient`] decides.
impl From<Error> for StepError {
    fn from(error: Error) -> Self {
        if error.is_transient() {
            StepError::transient(error)
        } else {
            StepError::permanent(error)
        }
    }
}
