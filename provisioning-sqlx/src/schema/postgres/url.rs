//! PostgreSQL URLs: taken apart as text (to fill a shard's template, record a
//! tenant's location and read it back), and a server's connect options with
//! their pool, never printed with a password.

use std::fmt;
use std::sync::{Arc, OnceLock};

use sqlx::postgres::{PgConnectOptions, PgPool};

/// The connect options of one server database, whose `Debug` and `Display`
/// hide the password, and the connection pool to it.
#[derive(Clone)]
pub(crate) struct PgServer {
    pub(crate) options: PgConnectOptions,
    redacted: String,
    /// Made on first use, inside the runtime (a pool starts tasks of its own).
    pool: Arc<OnceLock<PgPool>>,
    pool_size: u32,
}

impl PgServer {
    /// The server database `options` name; `url` is only shown, redacted.
    pub(crate) fn new(options: PgConnectOptions, url: &str, pool_size: u32) -> Self {
        PgServer {
            options,
            redacted: redact_url(url),
            pool: Arc::default(),
            pool_size,
        }
    }

    /// The pool of connections to the database: what server-level
    /// statements, schema tenants and shared tenants use. Connecting costs a
    /// server process start and authentication each time; provisioning a
    /// tenant used to connect six times.
    pub(crate) fn pool(&self) -> &PgPool {
        self.pool.get_or_init(|| {
            crate::pool::pool_options::<sqlx::Postgres>()
                .max_connections(self.pool_size)
                .connect_lazy_with(self.options.clone())
        })
    }

    /// `host:port/database`, for locations and logs.
    pub(crate) fn address(&self) -> String {
        format!(
            "{}:{}/{}",
            self.options.get_host(),
            self.options.get_port(),
            self.database()
        )
    }

    /// The database the options name: the shared database, and where databases
    /// and schemas of dedicated tenants are created from.
    pub(crate) fn database(&self) -> &str {
        self.options.get_database().unwrap_or("postgres")
    }
}

impl fmt::Debug for PgServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Display for PgServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

/// The URL with its password redacted: the workspace's one rule,
/// [`provisioning_core::model::redact_secrets`].
pub(crate) fn redact_url(url: &str) -> String {
    provisioning_core::model::redact_secrets(url)
}

/// A URL taken apart as written (nothing decoded): `scheme://user:pw@host:port`,
/// the database (the path), the query parameters in order, the fragment.
///
/// It holds the password: it has no `Debug` or `Display`, and
/// [`join`](Self::join) is only for parsing and, redacted, for showing.
#[derive(Clone)]
pub(crate) struct UrlParts {
    head: String,
    database: Option<String>,
    params: Vec<(String, String)>,
    fragment: Option<String>,
}

impl UrlParts {
    /// Splits `url`; `None` without `scheme://`. The user info ends at the
    /// last `@` before the query, as `redact_secrets` reads it, so that a `/`
    /// in a password is not taken for the path. A `dbname=` parameter is
    /// moved into the path (it names the database as the path does, and
    /// wins over it).
    pub(crate) fn split(url: &str) -> Option<UrlParts> {
        let scheme_end = url.find("://")? + 3;
        let rest = &url[scheme_end..];
        let (rest, fragment) = match rest.split_once('#') {
            Some((rest, fragment)) => (rest, Some(fragment.to_owned())),
            None => (rest, None),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let host_start = rest.rfind('@').map_or(0, |at| at + 1);
        let path_start = rest[host_start..]
            .find('/')
            .map_or(rest.len(), |i| host_start + i);
        let database = rest[path_start..]
            .strip_prefix('/')
            .filter(|d| !d.is_empty())
            .map(str::to_owned);
        let params = query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (p.to_owned(), String::new()),
            })
            .collect();
        let mut parts = UrlParts {
            head: url[..scheme_end + path_start].to_owned(),
            database,
            params,
            fragment,
        };
        if let Some(name) = parts.take_param("dbname").pop() {
            parts.database = Some(name);
        }
        Some(parts)
    }

    /// The database, as written (percent-encoded); `None` without one.
    pub(crate) fn database(&self) -> Option<&str> {
        self.database.as_deref()
    }

    /// The same URL naming another database (`None`: none, the server's
    /// default for the user).
    pub(crate) fn set_database(&mut self, database: Option<&str>) {
        self.database = database.map(str::to_owned);
    }

    /// Removes every `key=` parameter and returns their values, in order.
    pub(crate) fn take_param(&mut self, key: &str) -> Vec<String> {
        let mut taken = Vec::new();
        self.params.retain(|(k, v)| {
            if k == key {
                taken.push(v.clone());
                return false;
            }
            true
        });
        taken
    }

    /// Adds `key=value` after the other parameters.
    pub(crate) fn push_param(&mut self, key: &str, value: &str) {
        self.params.push((key.to_owned(), value.to_owned()));
    }

    /// The URL again, password included: parse it or redact it, never show it.
    pub(crate) fn join(&self) -> String {
        let mut url = self.head.clone();
        if let Some(database) = &self.database {
            url.push('/');
            url.push_str(database);
        }
        for (i, (k, v)) in self.params.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(k);
            if !v.is_empty() {
                url.push('=');
                url.push_str(v);
            }
        }
        if let Some(fragment) = &self.fragment {
            url.push('#');
            url.push_str(fragment);
        }
        url
    }

    /// [`join`](Self::join) with the password redacted.
    pub(crate) fn redacted(&self) -> String {
        redact_url(&self.join())
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact_url("postgres://app:s3cr%40t@db:5432/main?sslmode=require"),
            "postgres://app:***@db:5432/main?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://db/main?user=app&password=hunter2"),
            "postgres://db/main?user=app&password=***"
        );
        assert_eq!(
            redact_url("postgres://app@db/main"),
            "postgres://app@db/main"
        );
        let url = "postgres://app:hunter2@db:5433/main";
        let server = PgServer::new(PgConnectOptions::from_str(url).unwrap(), url, 1);
        assert!(!format!("{server:?} {server}").contains("hunter2"));
        assert_eq!(server.address(), "db:5433/main");
    }

    #[test]
    fn urls_come_apart_and_together_as_written() {
        for url in [
            "postgres://app:p/w@d@db:5432/main?sslmode=require&schema={tenant}#x",
            "postgres://db",
            "postgres://app@db:5432/",
            "postgresql://db/{tenant}?application_name=a%20b",
        ] {
            let parts = UrlParts::split(url).unwrap();
            let again = url.trim_end_matches('/');
            assert_eq!(parts.join(), again, "{url}");
        }
        let mut parts =
            UrlParts::split("postgres://app:p/w@db:5432/main?a=1&schema=x&dbname=other").unwrap();
        assert_eq!(parts.head, "postgres://app:p/w@db:5432");
        assert_eq!(parts.database(), Some("other"), "dbname= wins");
        assert_eq!(parts.take_param("schema"), ["x"]);
        parts.set_database(Some("tenant_acme"));
        parts.push_param("schema", "s");
        assert_eq!(
            parts.redacted(),
            "postgres://app:***@db:5432/tenant_acme?a=1&schema=s"
        );
        assert!(UrlParts::split("db:5432/main").is_none());
    }
}
