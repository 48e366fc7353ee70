//! Fault injection for drills and tests: make a named step fail, transiently
//! for a few attempts or for good.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::saga::StepError;

/// Decides whether a step attempt fails before it runs. The executor asks
/// before every attempt; an injected failure is journaled and handled like the
/// step's own (retried if transient, compensated, the failing step included).
pub trait FaultInjector: Send + Sync {
    /// The failure to report for this attempt of `step` in `workflow`, if any.
    fn inject(&self, workflow: &str, step: &str) -> Option<StepError>;
}

/// How an injected fault behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Fail this many attempts transiently, then let the step succeed.
    Transient(u32),
    /// Fail every attempt, permanently.
    Permanent,
}

/// A [`FaultInjector`] from a table of step names, as drills configure it
/// (`--inject-failure migrate:permanent`).
///
/// ```
/// use provisioning_core::{FaultInjector, FaultKind, StepFaults};
///
/// let faults: StepFaults = "seed:transient,migrate".parse()?;
/// assert!(faults.inject("create-tenant", "seed").unwrap().is_transient());
/// assert!(faults.inject("create-tenant", "seed").is_none()); // one transient failure
/// assert!(!faults.inject("create-tenant", "migrate").unwrap().is_transient());
/// # Ok::<(), provisioning_core::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct StepFaults {
    faults: Mutex<HashMap<String, FaultKind>>,
}

impl StepFaults {
    /// No faults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `step` (in any workflow) fail as `kind`.
    #[must_use]
    pub fn fail(self, step: impl Into<String>, kind: FaultKind) -> Self {
        self.lock().insert(step.into(), kind);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, FaultKind>> {
        self.faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl std::str::FromStr for StepFaults {
    type Err = Error;

    /// `STEP[:transient|:permanent]`, comma-separated; no kind means permanent,
    /// `transient` fails the first attempt only (`transient=N` the first N).
    fn from_str(s: &str) -> Result<Self> {
        let mut faults = StepFaults::new();
        for spec in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (step, kind) = match spec.split_once(':') {
                None => (spec, FaultKind::Permanent),
                Some((step, "permanent")) => (step, FaultKind::Permanent),
                Some((step, "transient")) => (step, FaultKind::Transient(1)),
                Some((step, kind)) => match kind.strip_prefix("transient=").map(str::parse) {
                    Some(Ok(n)) => (step, FaultKind::Transient(n)),
                    _ => {
                        return Err(Error::invalid(
                            "inject_failure",
                            format!(
                                "{spec:?}: the kind must be `transient`, `transient=N` or `permanent`"
                            ),
                        ));
                    }
                },
            };
            if step.is_empty() {
                return Err(Error::invalid(
                    "inject_failure",
                    format!("{spec:?}: a step name is required (STEP[:transient|:permanent])"),
                ));
            }
            faults = faults.fail(step, kind);
        }
        Ok(faults)
    }
}

impl FaultInjector for StepFaults {
    fn inject(&self, workflow: &str, step: &str) -> Option<StepError> {
        let mut faults = self.lock();
        let kind = faults.get_mut(step)?;
        let error = |transient: bool| {
            let message = format!("injected failure at step {step} of {workflow}");
            let source = std::io::Error::other(message);
            if transient {
                StepError::transient(source)
            } else {
                StepError::permanent(source)
            }
        };
        match kind {
            FaultKind::Permanent => Some(error(false)),
            FaultKind::Transient(0) => None,
            FaultKind::Transient(left) => {
                *left -= 1;
                Some(error(true))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_specs_name_the_rule() {
        let err = "seed:sometimes".parse::<StepFaults>().unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidInput {
                field: "inject_failure",
                ..
            }
        ));
        assert!(":permanent".parse::<StepFaults>().is_err());
    }

    #[test]
    fn transient_counts_down() {
        let faults: StepFaults = "a:transient=2".parse().unwrap();
        assert!(faults.inject("w", "a").is_some());
        assert!(faults.inject("w", "a").is_some());
        assert!(faults.inject("w", "a").is_none());
        assert!(faults.inject("w", "b").is_none());
    }
}
