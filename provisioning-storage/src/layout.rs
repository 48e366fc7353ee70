//! The configured folder layout, validated once at build time so that a folder
//! can never step out of the tenant's prefix.

use crate::error::{Error, Result};

/// Longest accepted segment of a layout folder.
const SEGMENT_MAX_LEN: usize = 63;

/// Checks and normalizes layout folders: `"uploads/"` becomes `"uploads"`,
/// duplicates are dropped, order is kept.
///
/// A folder is one or more `/`-separated segments of ASCII letters, digits, `-`,
/// `_` and `.`, each at most 63 characters and not starting with `.` (which keeps
/// out `.`, `..` and the names of the control objects, `.keep` and `.tenant.json`).
pub(crate) fn normalize<I, S>(folders: I) -> Result<Vec<String>>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut layout: Vec<String> = Vec::new();
    for folder in folders {
        let folder = folder.into();
        let trimmed = folder.trim_matches('/');
        check(&folder, trimmed)?;
        if !layout.iter().any(|f| f == trimmed) {
            layout.push(trimmed.to_owned());
        }
    }
    Ok(layout)
}

fn check(original: &str, folder: &str) -> Result<()> {
    let invalid = |rule| Error::InvalidLayoutFolder {
        folder: original.to_owned(),
        rule,
    };
    if folder.is_empty() {
        return Err(invalid("must not be empty"));
    }
    for segment in folder.split('/') {
        if segment.is_empty() {
            return Err(invalid("must not contain an empty segment (`//`)"));
        }
        if segment.len() > SEGMENT_MAX_LEN {
            return Err(invalid("segments must be at most 63 characters"));
        }
        if segment.starts_with('.') {
            return Err(invalid(
                "segments must not start with `.` (no `.`, `..` or hidden names)",
            ));
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(invalid(
                "may contain only ASCII letters, digits, `-`, `_`, `.` and `/`",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(folder: &str) -> &'static str {
        match normalize([folder]) {
            Err(Error::InvalidLayoutFolder { rule, folder: f }) => {
                assert_eq!(f, folder);
                rule
            }
            other => panic!("{folder:?} was accepted: {other:?}"),
        }
    }

    #[test]
    fn normalizes_slashes_and_duplicates() {
        let layout = normalize(["uploads/", "/exports", "uploads", "exports/daily"]).unwrap();
        assert_eq!(layout, ["uploads", "exports", "exports/daily"]);
    }

    #[test]
    fn rejects_folders_that_could_escape_or_collide() {
        assert_eq!(rule(""), "must not be empty");
        assert_eq!(rule("/"), "must not be empty");
        assert!(rule("..").contains("must not start with `.`"));
        assert!(rule("uploads/../../acme-eu").contains("must not start with `.`"));
        assert!(rule(".tenant.json").contains("must not start with `.`"));
        assert!(rule("a//b").contains("empty segment"));
        assert!(rule("up loads").contains("may contain only"));
        assert!(rule("up\\loads").contains("may contain only"));
        assert!(rule("%2E%2E").contains("may contain only"));
        assert!(rule(&"a".repeat(64)).contains("at most 63"));
    }
}
