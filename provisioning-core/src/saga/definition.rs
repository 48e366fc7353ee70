//! [`Saga`]: a named, ordered list of steps.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::saga::{RetryPolicy, Step};

/// A workflow: a name and its steps in order, over a context `C`.
///
/// Built once and reused for every run; the name and step names are journaled,
/// and a run resumes only under a saga with the same ones.
///
/// ```
/// use async_trait::async_trait;
/// use provisioning_core::{Saga, Step, StepError};
///
/// struct Noop(&'static str);
///
/// #[async_trait]
/// impl Step<()> for Noop {
///     fn name(&self) -> &str { self.0 }
///     async fn execute(&self, _: &mut ()) -> Result<(), StepError> { Ok(()) }
/// }
///
/// let saga = Saga::builder("provision-user").step(Noop("create")).step(Noop("notify")).build()?;
/// assert_eq!(saga.step_names(), ["create", "notify"]);
/// assert!(Saga::<()>::builder("empty").build().is_err());
/// # Ok::<(), provisioning_core::Error>(())
/// ```
pub struct Saga<C> {
    pub(crate) name: String,
    pub(crate) steps: Vec<Arc<dyn Step<C>>>,
    pub(crate) step_names: Arc<[String]>,
    pub(crate) retry: Option<RetryPolicy>,
    /// The name and step names as shared strings, so that metric labels cost a
    /// reference count rather than an allocation per step.
    pub(crate) name_label: Arc<str>,
    pub(crate) step_labels: Vec<Arc<str>>,
}

impl<C: Send + 'static> Saga<C> {
    /// A builder for a saga named `name`.
    pub fn builder(name: impl Into<String>) -> SagaBuilder<C> {
        SagaBuilder {
            name: name.into(),
            steps: Vec::new(),
            retry: None,
        }
    }

    /// The saga's (workflow's) name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The step names, in order.
    pub fn step_names(&self) -> &[String] {
        &self.step_names
    }

    /// The saga's retry policy, if it overrides the executor's.
    pub fn retry_policy(&self) -> Option<&RetryPolicy> {
        self.retry.as_ref()
    }
}

impl<C> fmt::Debug for Saga<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Saga")
            .field("name", &self.name)
            .field("steps", &self.step_names)
            .field("retry", &self.retry)
            .finish()
    }
}

/// Builds a [`Saga`].
#[must_use]
pub struct SagaBuilder<C> {
    name: String,
    steps: Vec<Arc<dyn Step<C>>>,
    retry: Option<RetryPolicy>,
}

impl<C: Send + 'static> SagaBuilder<C> {
    /// Appends a step.
    pub fn step(mut self, step: impl Step<C> + 'static) -> Self {
        self.steps.push(Arc::new(step));
        self
    }

    /// Appends a shared step.
    pub fn step_arc(mut self, step: Arc<dyn Step<C>>) -> Self {
        self.steps.push(step);
        self
    }

    /// The retry policy for steps that do not set their own.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// The saga.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `workflow` for an empty name, and on `steps` for
    /// no steps, an empty step name or a name used twice.
    pub fn build(self) -> Result<Saga<C>> {
        if self.name.trim().is_empty() {
            return Err(Error::invalid("workflow", "name must not be empty"));
        }
        if self.steps.is_empty() {
            return Err(Error::invalid("steps", "a saga needs at least one step"));
        }
        let step_names: Vec<String> = self.steps.iter().map(|s| s.name().to_owned()).collect();
        let mut seen = HashSet::new();
        for name in &step_names {
            if name.trim().is_empty() {
                return Err(Error::invalid("steps", "step names must not be empty"));
            }
            if !seen.insert(name.as_str()) {
                return Err(Error::invalid(
                    "steps",
                    format!("step name {name:?} is used twice; names must be unique"),
                ));
            }
        }
        Ok(Saga {
            name_label: Arc::from(self.name.as_str()),
            step_labels: step_names.iter().map(|n| Arc::from(n.as_str())).collect(),
            name: self.name,
            steps: self.steps,
            step_names: step_names.into(),
            retry: self.retry,
        })
    }
}
