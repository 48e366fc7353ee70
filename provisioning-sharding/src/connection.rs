//! [`ConnectionTarget`]: where a shard's databases live, with the password kept
//! out of logs.

use std::fmt;

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
        ConnectionTarget(provisioning_core::model::fill_template(
            &self.0, tenant, shard, region,
        ))
    }

    /// The target with every secret replaced by `***` (the workspace's one
    /// rule, [`provisioning_core::model::redact_secrets`]): what `Display` shows.
    pub fn redacted(&self) -> String {
        provisioning_core::model::redact_secrets(&self.0)
    }
}

impl fmt::Display for ConnectionTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for ConnectionTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnectionTarget({:?})", self.redacted())
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

#[cfg(test)]
mod tests {
    use super::*;

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
