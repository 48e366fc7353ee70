//! [`TenantId`]: the one identifier that names a tenant's database, schema, paths
//! and events, so it can only ever hold a safe value.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Shortest accepted tenant id.
pub const TENANT_ID_MIN_LEN: usize = 3;
/// Longest accepted tenant id: a DNS label, and PostgreSQL's 63-byte identifier limit.
pub const TENANT_ID_MAX_LEN: usize = 63;

/// Words that name system objects in the databases, stores and URLs a tenant id
/// ends up in; a tenant may not take them.
pub const RESERVED_TENANT_IDS: &[&str] = &[
    "admin",
    "administrator",
    "root",
    "system",
    "public",
    "postgres",
    "template0",
    "template1",
    "information_schema",
    "pg-catalog",
    "pg-toast",
    "mysql",
    "sqlite",
    "default",
    "null",
    "archive",
    "tenants",
    "shared",
];

/// A validated tenant id: a DNS-label-like slug.
///
/// Rules, in the order they are checked (the error names the first one broken):
/// 3 to 63 characters; lowercase ASCII letters, digits and hyphens only; starts
/// with a letter; does not end with a hyphen; no two hyphens in a row; not one of
/// [`RESERVED_TENANT_IDS`].
///
/// A `TenantId` that exists is valid: [`TenantId::parse`], [`FromStr`],
/// [`TryFrom<String>`] and `Deserialize` all go through the same check. Such an id
/// is at once a safe file name, a safe unquoted SQL identifier (after mapping `-`
/// to `_`, though the SDK quotes identifiers anyway) and a safe object-store path
/// segment.
///
/// ```
/// use provisioning_core::{Error, TenantId, TenantIdRule};
///
/// let id = TenantId::parse("acme-eu")?;
/// assert_eq!(id.as_str(), "acme-eu");
///
/// let err = TenantId::parse("../etc").unwrap_err();
/// assert!(matches!(err, Error::InvalidTenantId { rule: TenantIdRule::InvalidCharacter { .. }, .. }));
/// # Ok::<(), provisioning_core::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

/// The rule a rejected tenant id broke.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TenantIdRule {
    /// The id is empty.
    Empty,
    /// Fewer than [`TENANT_ID_MIN_LEN`] characters.
    TooShort {
        /// Its length in characters.
        len: usize,
    },
    /// More than [`TENANT_ID_MAX_LEN`] characters.
    TooLong {
        /// Its length in characters.
        len: usize,
    },
    /// A character other than `a-z`, `0-9` or `-` (uppercase, `/`, `.`, space,
    /// Unicode look-alikes...).
    InvalidCharacter {
        /// The offending character.
        character: char,
        /// Its position, counted in characters from 0.
        position: usize,
    },
    /// The first character is not a letter.
    MustStartWithLetter,
    /// The last character is a hyphen.
    TrailingHyphen,
    /// Two hyphens in a row.
    ConsecutiveHyphens,
    /// One of [`RESERVED_TENANT_IDS`].
    Reserved,
}

impl fmt::Display for TenantIdRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TenantIdRule::Empty => f.write_str("must not be empty"),
            TenantIdRule::TooShort { len } => write!(
                f,
                "must be at least {TENANT_ID_MIN_LEN} characters (got {len})"
            ),
            TenantIdRule::TooLong { len } => write!(
                f,
                "must be at most {TENANT_ID_MAX_LEN} characters (got {len})"
            ),
            TenantIdRule::InvalidCharacter {
                character,
                position,
            } => write!(
                f,
                "may contain only lowercase ASCII letters, digits and hyphens \
                 (found {character:?} at position {position})"
            ),
            TenantIdRule::MustStartWithLetter => f.write_str("must start with a letter a-z"),
            TenantIdRule::TrailingHyphen => f.write_str("must not end with a hyphen"),
            TenantIdRule::ConsecutiveHyphens => {
                f.write_str("must not contain two hyphens in a row")
            }
            TenantIdRule::Reserved => f.write_str("is a reserved word"),
        }
    }
}

impl TenantId {
    /// Parses and validates a tenant id.
    ///
    /// # Errors
    /// [`Error::InvalidTenantId`] naming the first rule the input breaks.
    pub fn parse(value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        match check(&value) {
            Ok(()) => Ok(TenantId(value)),
            Err(rule) => Err(Error::InvalidTenantId { value, rule }),
        }
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as an SQL identifier fragment: hyphens become underscores, so
    /// `acme-eu` gives `acme_eu`. Still quote it when building SQL.
    pub fn to_sql_identifier(&self) -> String {
        self.0.replace('-', "_")
    }
}

fn check(value: &str) -> std::result::Result<(), TenantIdRule> {
    if value.is_empty() {
        return Err(TenantIdRule::Empty);
    }
    let len = value.chars().count();
    if len < TENANT_ID_MIN_LEN {
        return Err(TenantIdRule::TooShort { len });
    }
    if len > TENANT_ID_MAX_LEN {
        return Err(TenantIdRule::TooLong { len });
    }
    if let Some((position, character)) = value
        .chars()
        .enumerate()
        .find(|(_, c)| !matches!(c, 'a'..='z' | '0'..='9' | '-'))
    {
        return Err(TenantIdRule::InvalidCharacter {
            character,
            position,
        });
    }
    // Only ASCII remains, so byte indexing is character indexing from here on.
    let bytes = value.as_bytes();
    if !bytes[0].is_ascii_lowercase() {
        return Err(TenantIdRule::MustStartWithLetter);
    }
    if bytes[bytes.len() - 1] == b'-' {
        return Err(TenantIdRule::TrailingHyphen);
    }
    if value.contains("--") {
        return Err(TenantIdRule::ConsecutiveHyphens);
    }
    if RESERVED_TENANT_IDS.contains(&value) {
        return Err(TenantIdRule::Reserved);
    }
    Ok(())
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

impl AsRef<str> for TenantId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for TenantId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        TenantId::parse(s)
    }
}

impl TryFrom<String> for TenantId {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        TenantId::parse(value)
    }
}

impl TryFrom<&str> for TenantId {
    type Error = Error;
    fn try_from(value: &str) -> Result<Self> {
        TenantId::parse(value)
    }
}

impl From<TenantId> for String {
    fn from(id: TenantId) -> Self {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_pads_and_aligns_like_a_str() {
        let id = TenantId::parse("acme").unwrap();
        assert_eq!(format!("[{id:<6}]"), "[acme  ]");
        assert_eq!(format!("[{id:>6}]"), "[  acme]");
        assert_eq!(format!("[{id:.2}]"), "[ac]");
        assert_eq!(
            format!("[{:>9}]", crate::RequestStatus::Running),
            "[  running]"
        );
        assert_eq!(format!("[{:<7}]", crate::TenantState::Active), "[active ]");
        assert_eq!(
            format!("[{:>8}]", crate::Region::parse("eu").unwrap()),
            "[      eu]"
        );
        assert_eq!(format!("{}", crate::UnitStatus::Migrated), "migrated");
        assert_eq!(format!("{}", crate::RolloutStatus::Halted), "halted");
    }

    fn rule(input: &str) -> TenantIdRule {
        match TenantId::parse(input) {
            Err(Error::InvalidTenantId { rule, value }) => {
                assert_eq!(value, input);
                rule
            }
            other => panic!("{input:?} was not rejected: {other:?}"),
        }
    }

    #[test]
    fn accepts_slugs() {
        for ok in ["acme", "acme-eu", "a1b", "t-0-9", &"a".repeat(63)] {
            assert_eq!(TenantId::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_each_rule_by_name() {
        assert_eq!(rule(""), TenantIdRule::Empty);
        assert_eq!(rule("ab"), TenantIdRule::TooShort { len: 2 });
        assert_eq!(rule(&"a".repeat(64)), TenantIdRule::TooLong { len: 64 });
        assert!(matches!(
            rule("Acme"),
            TenantIdRule::InvalidCharacter {
                character: 'A',
                position: 0
            }
        ));
        assert!(matches!(
            rule("../x"),
            TenantIdRule::InvalidCharacter { character: '.', .. }
        ));
        assert!(matches!(
            rule("a/b"),
            TenantIdRule::TooShort { .. } | TenantIdRule::InvalidCharacter { .. }
        ));
        assert!(matches!(
            rule("acme/b"),
            TenantIdRule::InvalidCharacter { character: '/', .. }
        ));
        assert!(matches!(
            rule("a b"),
            TenantIdRule::InvalidCharacter { character: ' ', .. }
        ));
        assert!(matches!(
            rule("acme corp"),
            TenantIdRule::InvalidCharacter { character: ' ', .. }
        ));
        assert_eq!(rule("a--b"), TenantIdRule::ConsecutiveHyphens);
        assert_eq!(rule("1acme"), TenantIdRule::MustStartWithLetter);
        assert_eq!(rule("-acme"), TenantIdRule::MustStartWithLetter);
        assert_eq!(rule("acme-"), TenantIdRule::TrailingHyphen);
        // Cyrillic 'а' (U+0430) looks like Latin 'a'.
        assert!(matches!(
            rule("\u{430}cme"),
            TenantIdRule::InvalidCharacter {
                character: '\u{430}',
                position: 0
            }
        ));
        // Fullwidth letters and a zero-width joiner.
        assert!(matches!(
            rule("ａcme"),
            TenantIdRule::InvalidCharacter { .. }
        ));
        assert!(matches!(
            rule("ac\u{200d}me"),
            TenantIdRule::InvalidCharacter { position: 2, .. }
        ));
        for reserved in ["admin", "public", "postgres", "template0", "template1"] {
            assert_eq!(rule(reserved), TenantIdRule::Reserved, "{reserved}");
        }
        assert!(matches!(
            rule("information_schema"),
            TenantIdRule::InvalidCharacter { character: '_', .. }
        ));
    }

    #[test]
    fn error_message_names_field_and_rule() {
        let err = TenantId::parse("a--b").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid tenant_id \"a--b\": must not contain two hyphens in a row"
        );
    }

    #[test]
    fn deserialize_goes_through_the_same_check() {
        let ok: TenantId = serde_json::from_str("\"acme\"").unwrap();
        assert_eq!(ok.as_str(), "acme");
        let err = serde_json::from_str::<TenantId>("\"../etc\"").unwrap_err();
        assert!(err.to_string().contains("tenant_id"), "{err}");
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"acme\"");
    }
}
