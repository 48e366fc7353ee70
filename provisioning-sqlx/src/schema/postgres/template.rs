//! A shard's connection from the shard map, as a template: where its tenants'
//! data goes, checked once when the manager is built.

use std::fmt;
use std::str::FromStr;

use provisioning_core::model::fill_template;
use provisioning_core::{Region, ShardId, TenantId};
use sqlx::postgres::PgConnectOptions;

use super::url::UrlParts;

/// The placeholder of a tenant's database or schema name.
const TENANT: &str = "{tenant}";

/// The query parameter naming a tenant's schema in a template and in a
/// recorded location. sqlx does not know it: it is removed before parsing.
pub(crate) const SCHEMA_PARAM: &str = "schema";

/// The database server-level statements run on when a template names a
/// database per tenant (there is no other database in it to use).
pub(crate) const ADMIN_DATABASE: &str = "postgres";

/// Where a shard's connection puts dedicated tenants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// No `{tenant}`: shared tenants in its database, dedicated ones as the
    /// manager's `dedicated_mode` says.
    Fixed,
    /// `/{tenant}`: a database per dedicated tenant; no shared tenants.
    Database,
    /// `?schema={tenant}`: a schema per dedicated tenant in its database; no
    /// shared tenants.
    Schema,
}

/// One shard's connection: its URL without the `{tenant}` part, and where
/// that part was.
pub(crate) struct ShardConn {
    shard: ShardId,
    /// The URL as given, `{tenant}` removed (no database for
    /// [`Layout::Database`], no `schema=` for [`Layout::Schema`]); it holds
    /// the password.
    parts: UrlParts,
    layout: Layout,
    /// The URL as given, redacted: what `Debug` and errors show.
    redacted: String,
}

impl fmt::Debug for ShardConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl ShardConn {
    /// Checks `url` as shard `shard`'s connection: `{tenant}` only as the
    /// whole database or as `schema={tenant}`, no placeholder but `{tenant}`,
    /// `{shard}` and `{region}`, and a URL sqlx parses once filled in.
    ///
    /// # Errors
    /// [`crate::Error::Invalid`] on `connection`, naming the shard and showing
    /// the URL redacted.
    pub(crate) fn parse(shard: &ShardId, url: &str) -> Result<Self, crate::Error> {
        let redacted = provisioning_core::model::redact_secrets(url);
        let invalid = |rule: String| crate::Error::Invalid {
            field: "connection",
            rule: format!("shard {shard}: {rule} (in {redacted})"),
        };
        let mut parts = UrlParts::split(url).ok_or_else(|| {
            invalid("not a PostgreSQL URL: expected postgres://user@host:port/database".into())
        })?;
        let schemas = parts.take_param(SCHEMA_PARAM);
        let per_schema = match schemas.as_slice() {
            [] => false,
            [one] if one == TENANT => true,
            _ => {
                return Err(invalid(format!(
                    "`{SCHEMA_PARAM}=` may only be given once, as `{SCHEMA_PARAM}={TENANT}` \
                     (a schema per dedicated tenant); shared tenants live in the database's \
                     default schema"
                )));
            }
        };
        let per_database = parts.database() == Some(TENANT);
        let layout = match (per_database, per_schema) {
            (false, false) => Layout::Fixed,
            (true, false) => Layout::Database,
            (false, true) => Layout::Schema,
            (true, true) => {
                return Err(invalid(format!(
                    "{TENANT} names either the database or the schema of a tenant, not both"
                )));
            }
        };
        if layout == Layout::Database {
            parts.set_database(None);
        }
        if parts.join().contains(TENANT) {
            return Err(invalid(format!(
                "{TENANT} may only be the whole database (`/{TENANT}`) or \
                 `{SCHEMA_PARAM}={TENANT}`"
            )));
        }
        let sample = parts
            .join()
            .replace("{shard}", shard.as_str())
            .replace("{region}", "region");
        let mut filled = UrlParts::split(&sample).unwrap_or_else(|| parts.clone());
        if filled.redacted().contains(['{', '}']) {
            return Err(invalid(format!(
                "unknown placeholder: only {TENANT}, {{shard}} and {{region}} are filled in"
            )));
        }
        if layout == Layout::Database {
            filled.set_database(Some(ADMIN_DATABASE));
        }
        // sqlx's error may quote the URL: only the redacted one is shown.
        if let Err(e) = PgConnectOptions::from_str(&filled.join()) {
            let shown = provisioning_core::model::redact_secrets(&e.to_string());
            return Err(invalid(format!("not a PostgreSQL URL ({shown})")));
        }
        Ok(ShardConn {
            shard: shard.clone(),
            parts,
            layout,
            redacted,
        })
    }

    /// The shard.
    pub(crate) fn shard(&self) -> &ShardId {
        &self.shard
    }

    /// Where it puts dedicated tenants.
    pub(crate) fn layout(&self) -> Layout {
        self.layout
    }

    /// The URL as given, redacted.
    pub(crate) fn redacted(&self) -> &str {
        &self.redacted
    }

    /// The URL of the shard's server database for a tenant in `region`:
    /// `{shard}` and `{region}` filled in, and for [`Layout::Database`] the
    /// [`ADMIN_DATABASE`]. Holds the password.
    pub(crate) fn server_url(&self, tenant: &TenantId, region: &Region) -> UrlParts {
        let filled = fill_template(&self.parts.join(), tenant, &self.shard, region);
        let mut parts = UrlParts::split(&filled).unwrap_or_else(|| self.parts.clone());
        if self.layout == Layout::Database {
            parts.set_database(Some(ADMIN_DATABASE));
        }
        parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<ShardConn, crate::Error> {
        ShardConn::parse(&"eu-1".parse().unwrap(), url)
    }

    #[test]
    fn the_tenant_goes_in_the_database_or_the_schema() {
        let tenant: TenantId = "acme".parse().unwrap();
        let region: Region = "eu-west".parse().unwrap();
        let db = parse("postgres://app:pw@db-{region}:5432/{tenant}?sslmode=prefer").unwrap();
        assert_eq!(db.layout(), Layout::Database);
        assert_eq!(
            db.server_url(&tenant, &region).redacted(),
            "postgres://app:***@db-eu-west:5432/postgres?sslmode=prefer"
        );
        let schema = parse("postgres://app:pw@db/app_{shard}?schema={tenant}").unwrap();
        assert_eq!(schema.layout(), Layout::Schema);
        assert_eq!(
            schema.server_url(&tenant, &region).redacted(),
            "postgres://app:***@db/app_eu-1"
        );
        let fixed = parse("postgres://app:pw@db/app").unwrap();
        assert_eq!(fixed.layout(), Layout::Fixed);
        assert_eq!(format!("{fixed:?}"), "postgres://app:***@db/app");
    }

    #[test]
    fn templates_that_cannot_place_a_tenant_are_refused_without_the_password() {
        for (url, says) in [
            (
                "postgres://app:pw@{tenant}.db/app",
                "may only be the whole database",
            ),
            (
                "postgres://app:pw@db/t_{tenant}",
                "may only be the whole database",
            ),
            (
                "postgres://app:pw@db/app?schema=other",
                "may only be given once",
            ),
            ("postgres://app:pw@db/{tenant}?schema={tenant}", "not both"),
            ("postgres://app:pw@db/{tenant_id}", "unknown placeholder"),
            ("postgres://app:pw@db/app?port=x", "not a PostgreSQL URL"),
            ("db:5432/app", "not a PostgreSQL URL"),
        ] {
            let err = parse(url).err().unwrap().to_string();
            assert!(err.contains(says), "{url}: {err}");
            assert!(
                err.contains("connection") && err.contains("shard eu-1"),
                "{err}"
            );
            assert!(!err.contains("pw@"), "{err}");
        }
    }
}
