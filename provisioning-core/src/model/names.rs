//! Short validated names: [`PlanName`], [`Region`], [`ShardId`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Longest accepted plan, region or shard name.
pub const NAME_MAX_LEN: usize = 63;

/// The one check behind every short name: `field` names the input in the error.
///
/// A name is 1 to [`NAME_MAX_LEN`] characters of lowercase ASCII letters, digits,
/// `-` and `_`, starting with a letter or digit. Such a name is safe in a file
/// path, an object-store key and a metric label.
fn check_name(field: &'static str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    let len = value.chars().count();
    if len > NAME_MAX_LEN {
        return Err(Error::invalid(
            field,
            format!("must be at most {NAME_MAX_LEN} characters (got {len})"),
        ));
    }
    if let Some((position, c)) = value
        .chars()
        .enumerate()
        .find(|(_, c)| !matches!(c, 'a'..='z' | '0'..='9' | '-' | '_'))
    {
        return Err(Error::invalid(
            field,
            format!(
                "may contain only lowercase ASCII letters, digits, '-' and '_' \
                 (found {c:?} at position {position})"
            ),
        ));
    }
    if !value.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(Error::invalid(field, "must start with a letter or digit"));
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $field:literal, $example:literal) => {
        $(#[$doc])*
        ///
        /// Lowercase ASCII letters, digits, `-` and `_`, 1 to 63 characters, starting
        /// with a letter or digit; `FromStr`, `TryFrom<String>` and `Deserialize` all
        /// check it.
        ///
        /// ```
        #[doc = concat!("let name: provisioning_core::", stringify!($name), " = \"", $example, "\".parse()?;")]
        #[doc = concat!("assert_eq!(name.as_str(), \"", $example, "\");")]
        #[doc = concat!("assert!(\"Has Space\".parse::<provisioning_core::", stringify!($name), ">().is_err());")]
        /// # Ok::<(), provisioning_core::Error>(())
        /// ```
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses and validates the name.
            ///
            /// # Errors
            #[doc = concat!("[`Error::InvalidInput`] on `", $field, "` naming the rule broken.")]
            pub fn parse(value: impl Into<String>) -> Result<Self> {
                let value = value.into();
                check_name($field, &value)?;
                Ok($name(value))
            }

            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                $name::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(value: String) -> Result<Self> {
                $name::parse(value)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = Error;
            fn try_from(value: &str) -> Result<Self> {
                $name::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(name: $name) -> Self {
                name.0
            }
        }
    };
}

name_type!(
    /// The name of a commercial plan (`free`, `standard`, `premium`, `regulated`),
    /// which the [`PlacementPolicy`](crate::PlacementPolicy) maps to an isolation.
    PlanName,
    "plan",
    "premium"
);

name_type!(
    /// A data region (`eu-west`, `us-east`): where a tenant's data lives.
    Region,
    "region",
    "eu-west"
);

name_type!(
    /// The id of a shard: one database server or file root in one region.
    ShardId,
    "shard",
    "eu-west-shared-1"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field_and_rule() {
        let err = Region::parse("EU").unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidInput {
                field: "region",
                ..
            }
        ));
        assert!(
            err.to_string()
                .starts_with("invalid region: may contain only")
        );
        let err = PlanName::parse("").unwrap_err();
        assert_eq!(err.to_string(), "invalid plan: must not be empty");
        let err = ShardId::parse("-x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid shard: must start with a letter or digit"
        );
        assert!(PlanName::parse("p".repeat(64)).is_err());
        assert!(serde_json::from_str::<Region>("\"us east\"").is_err());
    }
}
