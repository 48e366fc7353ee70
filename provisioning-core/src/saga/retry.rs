//! [`RetryPolicy`]: exponential backoff with jitter, as a plain value.
//!
//! Written here rather than taken from a backoff crate because the executor needs
//! the delay as a value it can journal and test exactly, and must sleep through its
//! own [`Timer`](crate::Timer) seam; the computation itself is a few lines.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// When and how often a failed step (or compensation) is tried again.
///
/// After attempt `n` fails transiently, the executor waits
/// `min(initial_interval * multiplier^(n-1), max_interval)`, shortened by a random
/// fraction of up to `jitter` (so `jitter = 0.2` waits between 80% and 100% of
/// that), then tries again, up to `max_attempts` attempts in all and, when set,
/// only while the next attempt would start within `max_elapsed` of the first.
///
/// In JSON or TOML, durations are milliseconds:
/// `{"initial_interval_ms":100,"multiplier":2.0,"max_interval_ms":10000,"max_attempts":5,"max_elapsed_ms":null,"jitter":0.2}`.
///
/// ```
/// use std::time::Duration;
/// use provisioning_core::RetryPolicy;
///
/// let policy = RetryPolicy::builder()
///     .initial_interval(Duration::from_millis(100))
///     .multiplier(2.0)
///     .max_interval(Duration::from_millis(300))
///     .max_attempts(4)
///     .jitter(0.0)
///     .build()?;
/// assert_eq!(policy.base_delay(1), Duration::from_millis(100));
/// assert_eq!(policy.base_delay(2), Duration::from_millis(200));
/// assert_eq!(policy.base_delay(3), Duration::from_millis(300)); // capped
/// # Ok::<(), provisioning_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RetryPolicyConfig", into = "RetryPolicyConfig")]
pub struct RetryPolicy {
    initial_interval: Duration,
    multiplier: f64,
    max_interval: Duration,
    max_attempts: u32,
    max_elapsed: Option<Duration>,
    jitter: f64,
}

impl Default for RetryPolicy {
    /// 100 ms, doubling, at most 10 s apart, 5 attempts, 20% jitter.
    fn default() -> Self {
        RetryPolicy {
            initial_interval: Duration::from_millis(100),
            multiplier: 2.0,
            max_interval: Duration::from_secs(10),
            max_attempts: 5,
            max_elapsed: None,
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// A builder starting from [`RetryPolicy::default`].
    pub fn builder() -> RetryPolicyBuilder {
        RetryPolicyBuilder(RetryPolicyConfig::from(RetryPolicy::default()))
    }

    /// One attempt, no retry.
    pub fn no_retry() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The first delay.
    pub fn initial_interval(&self) -> Duration {
        self.initial_interval
    }
    /// The growth factor between delays.
    pub fn multiplier(&self) -> f64 {
        self.multiplier
    }
    /// The longest delay.
    pub fn max_interval(&self) -> Duration {
        self.max_interval
    }
    /// The most attempts, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }
    /// The longest time from the first attempt to the start of the last.
    pub fn max_elapsed(&self) -> Option<Duration> {
        self.max_elapsed
    }
    /// The largest fraction by which a delay is randomly shortened.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// The delay after failed attempt `attempt` (1-based), before jitter.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(i32::MAX as u32) as i32;
        let secs = self.initial_interval.as_secs_f64() * self.multiplier.powi(exponent);
        let capped = secs.min(self.max_interval.as_secs_f64());
        Duration::try_from_secs_f64(capped).unwrap_or(self.max_interval)
    }

    /// The delay after failed attempt `attempt`, with jitter applied.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self.base_delay(attempt);
        if self.jitter == 0.0 {
            return base;
        }
        base.mul_f64(1.0 - self.jitter * fastrand::f64())
    }

    /// The delay before the next attempt after `attempt` failed at `elapsed` since
    /// the first attempt started, or `None` when the policy is exhausted.
    pub fn next_delay(&self, attempt: u32, elapsed: Duration) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let delay = self.delay(attempt);
        match self.max_elapsed {
            Some(max) if elapsed.saturating_add(delay) > max => None,
            _ => Some(delay),
        }
    }
}

/// Builds a [`RetryPolicy`], checking every field in [`build`](Self::build).
#[derive(Debug, Clone)]
#[must_use]
pub struct RetryPolicyBuilder(RetryPolicyConfig);

impl RetryPolicyBuilder {
    /// The first delay.
    pub fn initial_interval(mut self, value: Duration) -> Self {
        self.0.initial_interval_ms = duration_ms(value);
        self
    }
    /// The growth factor, at least 1.0.
    pub fn multiplier(mut self, value: f64) -> Self {
        self.0.multiplier = value;
        self
    }
    /// The longest delay, at least the initial one.
    pub fn max_interval(mut self, value: Duration) -> Self {
        self.0.max_interval_ms = duration_ms(value);
        self
    }
    /// The most attempts, the first included; at least 1.
    pub fn max_attempts(mut self, value: u32) -> Self {
        self.0.max_attempts = value;
        self
    }
    /// The longest time from the first attempt to the start of the last.
    pub fn max_elapsed(mut self, value: Option<Duration>) -> Self {
        self.0.max_elapsed_ms = value.map(duration_ms);
        self
    }
    /// The largest fraction a delay is randomly shortened by, from 0.0 to 1.0.
    pub fn jitter(mut self, value: f64) -> Self {
        self.0.jitter = value;
        self
    }

    /// The policy.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the field (`retry.multiplier`...) and the rule.
    pub fn build(self) -> Result<RetryPolicy> {
        RetryPolicy::try_from(self.0)
    }
}

/// A duration in whole milliseconds, saturating (as journaled and configured).
pub(crate) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The serialized form of [`RetryPolicy`]; deserializing goes through its checks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryPolicyConfig {
    initial_interval_ms: u64,
    multiplier: f64,
    max_interval_ms: u64,
    max_attempts: u32,
    #[serde(default)]
    max_elapsed_ms: Option<u64>,
    #[serde(default)]
    jitter: f64,
}

impl From<RetryPolicy> for RetryPolicyConfig {
    fn from(p: RetryPolicy) -> Self {
        RetryPolicyConfig {
            initial_interval_ms: duration_ms(p.initial_interval),
            multiplier: p.multiplier,
            max_interval_ms: duration_ms(p.max_interval),
            max_attempts: p.max_attempts,
            max_elapsed_ms: p.max_elapsed.map(duration_ms),
            jitter: p.jitter,
        }
    }
}

impl TryFrom<RetryPolicyConfig> for RetryPolicy {
    type Error = Error;
    fn try_from(c: RetryPolicyConfig) -> Result<Self> {
        if c.max_attempts == 0 {
            return Err(Error::invalid("retry.max_attempts", "must be at least 1"));
        }
        if !(c.multiplier.is_finite() && c.multiplier >= 1.0) {
            return Err(Error::invalid(
                "retry.multiplier",
                format!("must be a number of at least 1.0 (got {})", c.multiplier),
            ));
        }
        if !(0.0..=1.0).contains(&c.jitter) {
            return Err(Error::invalid(
                "retry.jitter",
                format!("must be between 0.0 and 1.0 (got {})", c.jitter),
            ));
        }
        if c.max_interval_ms < c.initial_interval_ms {
            return Err(Error::invalid(
                "retry.max_interval_ms",
                format!(
                    "must be at least retry.initial_interval_ms ({} < {})",
                    c.max_interval_ms, c.initial_interval_ms
                ),
            ));
        }
        Ok(RetryPolicy {
            initial_interval: Duration::from_millis(c.initial_interval_ms),
            multiplier: c.multiplier,
            max_interval: Duration::from_millis(c.max_interval_ms),
            max_attempts: c.max_attempts,
            max_elapsed: c.max_elapsed_ms.map(Duration::from_millis),
            jitter: c.jitter,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_fields_are_named() {
        let err = RetryPolicy::builder().multiplier(0.5).build().unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidInput {
                field: "retry.multiplier",
                ..
            }
        ));
        let err = RetryPolicy::builder().max_attempts(0).build().unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidInput {
                field: "retry.max_attempts",
                ..
            }
        ));
        let err = RetryPolicy::builder().jitter(1.5).build().unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidInput {
                field: "retry.jitter",
                ..
            }
        ));
        let err = RetryPolicy::builder()
            .initial_interval(Duration::from_secs(2))
            .max_interval(Duration::from_secs(1))
            .build()
            .unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidInput {
                field: "retry.max_interval_ms",
                ..
            }
        ));
        let err = serde_json::from_str::<RetryPolicy>(
            r#"{"initial_interval_ms":1,"multiplier":2,"max_interval_ms":5,"max_attempts":0}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("retry.max_attempts"), "{err}");
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let policy = RetryPolicy::builder()
            .initial_interval(Duration::from_millis(1000))
            .jitter(0.25)
            .build()
            .unwrap();
        for _ in 0..1000 {
            let d = policy.delay(1);
            assert!(
                d <= Duration::from_millis(1000) && d >= Duration::from_millis(750),
                "{d:?}"
            );
        }
    }

    #[test]
    fn exhausted_by_attempts_and_elapsed() {
        let policy = RetryPolicy::builder()
            .initial_interval(Duration::from_millis(100))
            .max_attempts(3)
            .max_elapsed(Some(Duration::from_millis(250)))
            .jitter(0.0)
            .build()
            .unwrap();
        assert_eq!(
            policy.next_delay(1, Duration::ZERO),
            Some(Duration::from_millis(100))
        );
        assert_eq!(policy.next_delay(2, Duration::from_millis(100)), None); // 100 + 200 > 250
        assert_eq!(policy.next_delay(3, Duration::ZERO), None);
    }

    #[test]
    fn round_trips_through_json() {
        let policy = RetryPolicy::default();
        let json = serde_json::to_string(&policy).unwrap();
        assert!(json.contains("\"initial_interval_ms\":100"), "{json}");
        assert_eq!(serde_json::from_str::<RetryPolicy>(&json).unwrap(), policy);
    }
}
