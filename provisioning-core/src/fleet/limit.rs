//! [`FailureLimit`]: how many failed units a roll-out tolerates.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How many failed units a roll-out tolerates before it halts: a count
/// (`0` halts at the first failure) or a share of its units (`10%`).
///
/// ```
/// use provisioning_core::FailureLimit;
///
/// let limit: FailureLimit = "10%".parse()?;
/// assert!(!limit.exceeded(10, 100));
/// assert!(limit.exceeded(11, 100));
/// assert!("0".parse::<FailureLimit>()?.exceeded(1, 100));
/// assert!("150%".parse::<FailureLimit>().is_err());
/// # Ok::<(), provisioning_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum FailureLimit {
    /// Never halt for failures: every unit is tried.
    #[default]
    Unlimited,
    /// Halt once more than this many units failed.
    Count(usize),
    /// Halt once more than this percentage (0 to 100) of the units failed.
    Percent(u8),
}

impl FailureLimit {
    /// Whether `failed` failures out of `total` units are too many.
    pub fn exceeded(self, failed: usize, total: usize) -> bool {
        match self {
            FailureLimit::Unlimited => false,
            FailureLimit::Count(n) => failed > n,
            FailureLimit::Percent(p) => failed.saturating_mul(100) > usize::from(p) * total,
        }
    }

    /// How many more units may fail, after `failed` of `total`, before the
    /// limit is exceeded; `None` when never. A roll-out's workers hold at
    /// most one more than this together (and at least one each).
    ///
    /// ```
    /// use provisioning_core::FailureLimit;
    ///
    /// assert_eq!(FailureLimit::Count(3).headroom(1, 100), Some(2));
    /// assert_eq!("10%".parse::<FailureLimit>()?.headroom(4, 100), Some(6));
    /// assert_eq!(FailureLimit::Unlimited.headroom(50, 100), None);
    /// # Ok::<(), provisioning_core::Error>(())
    /// ```
    pub fn headroom(self, failed: usize, total: usize) -> Option<usize> {
        let allowed = match self {
            FailureLimit::Unlimited => return None,
            FailureLimit::Count(n) => n,
            FailureLimit::Percent(p) => usize::from(p).saturating_mul(total) / 100,
        };
        Some(allowed.saturating_sub(failed))
    }
}

impl fmt::Display for FailureLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureLimit::Unlimited => f.write_str("unlimited"),
            FailureLimit::Count(n) => write!(f, "{n}"),
            FailureLimit::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl FromStr for FailureLimit {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        const RULE: &str =
            "must be a count (0 or more), a percentage from 0% to 100%, or \"unlimited\"";
        let s = s.trim();
        if s == "unlimited" {
            return Ok(FailureLimit::Unlimited);
        }
        let bad = || Error::invalid("max_failures", format!("{RULE}; got {s:?}"));
        match s.strip_suffix('%') {
            Some(p) => match p.trim().parse::<u8>() {
                Ok(p) if p <= 100 => Ok(FailureLimit::Percent(p)),
                _ => Err(bad()),
            },
            None => s
                .parse::<usize>()
                .map(FailureLimit::Count)
                .map_err(|_| bad()),
        }
    }
}

impl TryFrom<String> for FailureLimit {
    type Error = Error;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<FailureLimit> for String {
    fn from(limit: FailureLimit) -> String {
        limit.to_string()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn display_parses_back(n in 0usize..1_000_000, p in 0u8..=100) {
            for limit in [FailureLimit::Count(n), FailureLimit::Percent(p), FailureLimit::Unlimited] {
                prop_assert_eq!(limit.to_string().parse::<FailureLimit>().unwrap(), limit);
            }
        }

        #[test]
        fn anything_else_is_refused_naming_the_field(s in "[^0-9]*[a-z%-][^%]*") {
            prop_assume!(s.trim() != "unlimited");
            let err = s.parse::<FailureLimit>().unwrap_err();
            prop_assert!(err.to_string().contains("max_failures"), "{}", err);
        }

        #[test]
        fn percent_never_halts_at_or_under_its_share(p in 0u8..=100, total in 1usize..10_000) {
            let allowed = usize::from(p) * total / 100;
            prop_assert!(!FailureLimit::Percent(p).exceeded(allowed, total));
            prop_assert!(FailureLimit::Percent(p).exceeded(total + 1, total));
        }

        #[test]
        fn headroom_is_the_failures_left_before_the_limit(
            n in 0usize..1_000, p in 0u8..=100, failed in 0usize..2_000, total in 1usize..2_000,
        ) {
            for limit in [FailureLimit::Count(n), FailureLimit::Percent(p)] {
                let room = limit.headroom(failed, total).unwrap();
                if !limit.exceeded(failed, total) {
                    prop_assert!(!limit.exceeded(failed + room, total), "{limit} {failed} {room}");
                    prop_assert!(limit.exceeded(failed + room + 1, total), "{limit} {failed} {room}");
                } else {
                    prop_assert_eq!(room, 0);
                }
            }
        }
    }

    #[test]
    fn over_a_hundred_percent_and_negatives_are_refused() {
        for bad in ["101%", "-1", "1.5", "%", ""] {
            assert!(bad.parse::<FailureLimit>().is_err(), "{bad}");
        }
        assert!(FailureLimit::Count(0).exceeded(1, 10));
        assert!(!FailureLimit::Count(0).exceeded(0, 10));
        assert!(!FailureLimit::Unlimited.exceeded(10, 10));
    }
}
