//! [`ConnectionTarget`]: where a shard's databases live, with the password kept
//! out of logs.

use std::fmt;
use std::ops::Range;

use provisioning_core::{Region, ShardId, TenantId};
use serde::{Deserialize, Serialize};

/// A shard's connection URL (`postgres://app:secret@db1/tenants`) or path
/// template (`/var/lib/tenants/{region}/{tenant}.db`).
///
/// `Debug` and `Display` redact passwords, so a target can be logged, put in an
/// error or printed with its shard: the password of a URL's user info and the
/// value of any `password=` / `pwd=` key (URL query, libpq or ADO.NET style
/// strings) become `***`. [`ConnectionTarget::expose`] returns the real text, for
/// the one place that connects. Serialization writes the real text too, because
/// config files are where it came from.
///
/// ```
/// use provisioning_sharding::ConnectionTarget;
///
/// let target = ConnectionTarget::new("postgres://app:s3cret@db1:5432/tenants");
/// assert_eq!(target.to_string(), "postgres://app:***@db1:5432/tenants");
/// assert_eq!(format!("{target:?}"), r#"ConnectionTarget("postgres://app:***@db1:5432/tenants")"#);
/// assert_eq!(target.expose(), "postgres://app:s3cret@db1:5432/tenants");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConnectionTarget(String);

impl ConnectionTarget {
    /// Wraps a URL or a path template. Placeholders `{tenant}`, `{shard}` and
    /// `{region}` are filled by [`ConnectionTarget::render`].
    pub fn new(target: impl Into<String>) -> Self {
        ConnectionTarget(target.into())
    }

    /// The real text, password included. Use it to connect; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the target is a URL (`scheme://...`) rather than a path.
    pub fn is_url(&self) -> bool {
        self.0.contains("://")
    }

    /// Whether the target is empty.
    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }

    /// The target for one tenant on one shard: `{tenant}`, `{shard}` and
    /// `{region}` replaced. The ids are validated slugs, so the result cannot
    /// escape the template's directory or inject URL syntax.
    ///
    /// ```
    /// use provisioning_sharding::ConnectionTarget;
    ///
    /// let target = ConnectionTarget::new("/data/{region}/{shard}/{tenant}.db");
    /// let path = target.render(&"acme".parse()?, &"eu-1".parse()?, &"eu-west".parse()?);
    /// assert_eq!(path.expose(), "/data/eu-west/eu-1/acme.db");
    /// # Ok::<(), provisioning_core::Error>(())
    /// ```
    #[must_use]
    pub fn render(&self, tenant: &TenantId, shard: &ShardId, region: &Region) -> ConnectionTarget {
        ConnectionTarget(
            self.0
                .replace("{tenant}", tenant.as_str())
                .replace("{shard}", shard.as_str())
                .replace("{region}", region.as_str()),
        )
    }

    /// Writes the target with every secret span replaced by `***`.
    fn write_redacted(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut at = 0;
        for span in secret_spans(&self.0) {
            f.write_str(&self.0[at..span.start])?;
            f.write_str("***")?;
            at = span.end;
        }
        f.write_str(&self.0[at..])
    }
}

impl fmt::Display for ConnectionTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_redacted(f)
    }
}

impl fmt::Debug for ConnectionTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConnectionTarget(\"")?;
        self.write_redacted(f)?;
        f.write_str("\")")
    }
}

impl From<String> for ConnectionTarget {
    fn from(target: String) -> Self {
        ConnectionTarget(target)
    }
}

impl From<&str> for ConnectionTarget {
    fn from(target: &str) -> Self {
        ConnectionTarget(target.to_owned())
    }
}

/// Keys whose values are secrets in query strings and key=value connection strings.
const SECRET_KEYS: &[&str] = &["password", "pwd", "sslpassword"];

/// Byte ranges of `text` that hold secrets, sorted and disjoint.
fn secret_spans(text: &str) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    if let Some(span) = userinfo_password(text) {
        spans.push(span);
    }
    spans.extend(keyed_secrets(text));
    spans.sort_by_key(|s| s.start);
    // A keyed secret inside the user info (odd, but possible) overlaps it: keep the first.
    spans.dedup_by(|later, earlier| later.start < earlier.end);
    spans
}

/// The password in `scheme://user:password@host`.
///
/// The user info ends at the last `@` before the query, not at the first `/`:
/// an unencoded `/` or `@` in a password must not leak it. That may redact a
/// little too much of an odd URL, never too little.
fn userinfo_password(text: &str) -> Option<Range<usize>> {
    let start = text.find("://")? + 3;
    let rest = &text[start..];
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    let at = rest[..end].rfind('@')?;
    let colon = rest[..at].find(':')?;
    Some(start + colon + 1..start + at)
}

/// Values of `password=...` style keys, up to the next separator.
fn keyed_secrets(text: &str) -> impl Iterator<Item = Range<usize>> + '_ {
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    for key in SECRET_KEYS {
        let pattern = format!("{key}=");
        let mut from = 0;
        while let Some(found) = lower[from..].find(&pattern) {
            let key_start = from + found;
            let value_start = key_start + pattern.len();
            from = value_start;
            // Only a whole key counts: `sslpassword=` must not also match as `password=`.
            let boundary =
                key_start == 0 || matches!(bytes[key_start - 1], b'?' | b'&' | b';' | b' ' | b'\t');
            if !boundary {
                continue;
            }
            let value_end = text[value_start..]
                .find(['&', ';', ' ', '\t', '#'])
                .map_or(text.len(), |i| value_start + i);
            if value_end > value_start {
                spans.push(value_start..value_end);
            }
        }
    }
    spans.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(text: &str) -> String {
        ConnectionTarget::new(text).to_string()
    }

    #[test]
    fn url_passwords_are_redacted() {
        assert_eq!(
            shown("postgres://user:pw@host/db"),
            "postgres://user:***@host/db"
        );
        assert_eq!(
            shown("postgres://user:@host/db"),
            "postgres://user:***@host/db"
        );
        assert_eq!(
            shown("postgres://u:p/w@d@host:5432/db"),
            "postgres://u:***@host:5432/db"
        );
    }

    #[test]
    fn targets_without_secrets_are_unchanged() {
        for text in [
            "postgres://user@host/db",
            "postgres://host:5432/db",
            "/var/lib/tenants/{tenant}.db",
            "sqlite://data/{shard}.db?mode=rwc",
        ] {
            assert_eq!(shown(text), text);
        }
    }

    #[test]
    fn keyed_passwords_are_redacted() {
        assert_eq!(
            shown("postgres://u:a@h/db?sslpassword=k&PASSWORD=b&x=1"),
            "postgres://u:***@h/db?sslpassword=***&PASSWORD=***&x=1"
        );
        assert_eq!(
            shown("host=db1 user=app password=s3cret dbname=t"),
            "host=db1 user=app password=*** dbname=t"
        );
        assert_eq!(
            shown("Server=db;Pwd=x;Database=t"),
            "Server=db;Pwd=***;Database=t"
        );
        // `mypassword=` is not a secret key, only a key that ends like one.
        assert_eq!(shown("x?mypassword=1"), "x?mypassword=1");
    }

    #[test]
    fn debug_is_redacted_and_serde_keeps_the_real_text() {
        let target = ConnectionTarget::new("postgres://u:pw@h/db");
        assert_eq!(
            format!("{target:?}"),
            r#"ConnectionTarget("postgres://u:***@h/db")"#
        );
        let json = serde_json::to_string(&target).unwrap();
        assert_eq!(json, r#""postgres://u:pw@h/db""#);
        assert_eq!(
            serde_json::from_str::<ConnectionTarget>(&json).unwrap(),
            target
        );
    }
}
