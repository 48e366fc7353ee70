//! Properties of `TenantId`: every accepted id is a safe file name, a safe SQL
//! identifier and a safe object-store path segment; every rejection names a rule.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use provisioning_core::{Error, TENANT_ID_MAX_LEN, TenantId};

fn is_safe_file_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s != "."
        && s != ".."
        && !s.starts_with('.')
        && !s.starts_with('-') // not mistaken for a command-line option
        && !s.contains(['/', '\\', '\0', ':'])
        && s.bytes().all(|b| b.is_ascii_graphic())
}

fn is_safe_sql_identifier(s: &str) -> bool {
    // Unquoted-safe in PostgreSQL and SQLite: starts with a letter, then
    // letters, digits and underscores, at most 63 bytes.
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
}

fn is_safe_path_segment(s: &str) -> bool {
    // What object_store's `PathPart` keeps unchanged, and no URL escaping needed.
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn check_accepted(id: &TenantId) -> Result<(), TestCaseError> {
    let s = id.as_str();
    prop_assert!(is_safe_file_name(s), "{s:?} as a file name");
    prop_assert!(
        is_safe_sql_identifier(&id.to_sql_identifier()),
        "{s:?} as SQL"
    );
    prop_assert!(is_safe_path_segment(s), "{s:?} as a path segment");
    prop_assert!((3..=TENANT_ID_MAX_LEN).contains(&s.len()));
    // And it round-trips through every door.
    prop_assert_eq!(&s.parse::<TenantId>().unwrap(), id);
    let json = serde_json::to_string(id).unwrap();
    prop_assert_eq!(&serde_json::from_str::<TenantId>(&json).unwrap(), id);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    /// Mostly-valid alphabet, so that many inputs are accepted.
    #[test]
    fn accepted_slugs_are_safe_everywhere(s in "[a-z0-9-]{0,70}") {
        match TenantId::parse(s.clone()) {
            Ok(id) => check_accepted(&id)?,
            Err(Error::InvalidTenantId { value, rule }) => {
                prop_assert_eq!(value, s);
                prop_assert!(!rule.to_string().is_empty());
            }
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
    }

    /// Any Unicode at all: accepted only if safe, rejected with a rule otherwise.
    #[test]
    fn arbitrary_input_is_accepted_only_if_safe(s in any::<String>()) {
        match TenantId::parse(s.clone()) {
            Ok(id) => check_accepted(&id)?,
            Err(Error::InvalidTenantId { value, .. }) => prop_assert_eq!(value, s),
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
    }

    /// Path-like and SQL-like attacks never get through.
    #[test]
    fn separators_and_quotes_are_always_rejected(
        prefix in "[a-z]{1,10}",
        bad in proptest::sample::select(vec!["/", "\\", ".", "..", " ", "\"", "'", ";", "\0", "%2f", "_", "A", "\u{430}"]),
        suffix in "[a-z0-9]{0,10}",
    ) {
        let input = format!("{prefix}{bad}{suffix}");
        prop_assert!(TenantId::parse(input).is_err());
    }
}
