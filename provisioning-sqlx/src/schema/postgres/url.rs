//! A shard's server address, parsed once and never printed with its password.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use sqlx::postgres::{PgConnectOptions, PgPool};

use crate::error::SqlxError;

/// A PostgreSQL server URL whose `Debug` and `Display` hide the password,
/// and the connection pool to the database it names.
#[derive(Clone)]
pub(crate) struct PgServer {
    pub(crate) options: PgConnectOptions,
    redacted: String,
    /// Made on first use, inside the runtime (a pool starts tasks of its own).
    pool: Arc<OnceLock<PgPool>>,
    pool_size: u32,
}

impl PgServer {
    pub(crate) fn parse(url: &str, pool_size: u32) -> Result<Self, SqlxError> {
        let redacted = redact_url(url);
        let options = PgConnectOptions::from_str(url).map_err(|e| SqlxError::Invalid {
            field: "shard url",
            rule: format!("{redacted} is not a PostgreSQL URL ({e})"),
        })?;
        Ok(PgServer {
            options,
            redacted,
            pool: Arc::default(),
            pool_size,
        })
    }

    /// The pool of connections to the URL's database: what server-level
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

    /// The database the URL names: the shared database, and where databases
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
/// [`provisioning_core::redact_secrets`].
pub(crate) fn redact_url(url: &str) -> String {
    provisioning_core::redact_secrets(url)
}

#[cfg(test)]
mod tests {
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
        let server = PgServer::parse("postgres://app:hunter2@db:5433/main", 1).unwrap();
        assert!(!format!("{server:?} {server}").contains("hunter2"));
        assert_eq!(server.address(), "db:5433/main");
        let err = PgServer::parse("postgres://app:hunter2@db/main?port=x", 1)
            .err()
            .unwrap();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
