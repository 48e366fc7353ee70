//! UUID-based ids: [`RequestId`], the idempotency key of a request, and
//! [`RunId`], one execution of a saga.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        ///
        /// `new()` makes a UUID v7, whose time-ordered bits keep index inserts cheap
        /// and make ids sort by creation. Parsing accepts any non-nil UUID, so that a
        /// caller can reuse a key its own system already has.
        ///
        /// ```
        #[doc = concat!("use provisioning_core::", stringify!($name), ";")]
        ///
        #[doc = concat!("let id = ", stringify!($name), "::new();")]
        #[doc = concat!("let again: ", stringify!($name), " = id.to_string().parse()?;")]
        /// assert_eq!(id, again);
        #[doc = concat!("assert!(\"not-a-uuid\".parse::<", stringify!($name), ">().is_err());")]
        /// # Ok::<(), provisioning_core::Error>(())
        /// ```
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "Uuid", into = "Uuid")]
        pub struct $name(Uuid);

        impl $name {
            /// A new time-ordered (v7) id.
            #[allow(clippy::new_without_default)] // a fresh id per call is not a "default"
            pub fn new() -> Self {
                $name(Uuid::now_v7())
            }

            /// Wraps an existing UUID.
            ///
            /// # Errors
            #[doc = concat!("[`Error::InvalidInput`] on `", $field, "` if the UUID is nil.")]
            pub fn from_uuid(uuid: Uuid) -> Result<Self> {
                if uuid.is_nil() {
                    return Err(Error::invalid($field, "must not be the nil UUID"));
                }
                Ok($name(uuid))
            }

            /// The UUID inside.
            pub fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                let uuid = Uuid::parse_str(s)
                    .map_err(|e| Error::invalid($field, format!("must be a UUID ({e})")))?;
                $name::from_uuid(uuid)
            }
        }

        impl TryFrom<Uuid> for $name {
            type Error = Error;
            fn try_from(uuid: Uuid) -> Result<Self> {
                $name::from_uuid(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }
    };
}

uuid_id!(
    /// The idempotency key of a provisioning request: the same id always yields the
    /// same outcome and the same receipt.
    RequestId,
    "request_id"
);

uuid_id!(
    /// One execution of a saga, the key of its journal.
    RunId,
    "run_id"
);

uuid_id!(
    /// One fleet roll-out of a release: the key of its durable record.
    RolloutId,
    "rollout_id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_v7_and_nil_is_rejected() {
        assert_eq!(RequestId::new().as_uuid().get_version_num(), 7);
        let err = RunId::from_uuid(Uuid::nil()).unwrap_err();
        assert_eq!(err.to_string(), "invalid run_id: must not be the nil UUID");
        let err = "nope".parse::<RequestId>().unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidInput {
                field: "request_id",
                ..
            }
        ));
    }
}
