//! [`PostgresStore`]: the catalog, saga journal and outbox in a PostgreSQL
//! schema, shared by many orchestrator processes.

mod catalog;
mod fleet;
mod journal;
#[cfg(feature = "sharding")]
mod load;
mod notices;
mod sql;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use provisioning_core::{Error, Result};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgRow};
use sqlx::{Postgres, Row};

use crate::error::{db_error, migrate_error};
use crate::schema::postgres::url::redact_url;
use sql::Statements;

const COMPONENT: &str = "postgres store";

/// The store's own schema, embedded. Its SQL names tables unqualified: it runs
/// with `search_path` set to the store's schema.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/store/postgres");

/// The catalog store for many orchestrator processes: tenants, requests, the
/// saga journal and the event outbox in one PostgreSQL schema (default
/// [`DEFAULT_SCHEMA`](Self::DEFAULT_SCHEMA)), created and migrated on connect.
///
/// Every write of the catalog, journal and outbox is one atomic statement in
/// autocommit, with no BEGIN or COMMIT around it (a refused write then reads
/// why it was refused); opening a fleet roll-out is the one short
/// transaction (see [`FleetStore`](provisioning_core::FleetStore)):
/// - idempotency comes from primary keys (`INSERT ... ON CONFLICT DO NOTHING`
///   and a count of the rows written), never from a read before the write, so
///   concurrent submissions of one request from many processes accept exactly
///   one; a submission whose tenant id is taken violates the tenants' primary
///   key, which undoes its whole statement;
/// - a tenant's events are numbered and written by the statement whose
///   version-checked `UPDATE` locks its row, so sequences stay gapless under
///   concurrency;
/// - a journal append advances its run's position in the same statement that
///   writes the entry, so a second executor of a run gets
///   [`Error::Conflict`];
/// - runs are handed out by [`claim_requests`](provisioning_core::TenantStore::claim_requests)
///   with `FOR UPDATE SKIP LOCKED` and a lease timed by the database's clock:
///   two workers never hold one request at once, and a dead worker's lease
///   expires so that another resumes the run from its journal.
///
/// Database failures become [`Error::Backend`], flagged transient when a retry
/// may cure them (lost connection, pool timeout, serialization failure,
/// deadlock). The connection URL is never printed with its password.
///
/// ```no_run
/// use std::sync::Arc;
/// use provisioning_core::{TenantFilter, TenantStore};
/// use provisioning_sqlx::PostgresStore;
///
/// # async fn example() -> Result<(), provisioning_core::Error> {
/// let store = Arc::new(PostgresStore::connect("postgres://app:secret@db:5432/catalog").await?);
/// assert!(!format!("{store:?}").contains("secret"));
/// let tenants = store.list_tenants(&TenantFilter::all()).await?;
/// # drop(tenants);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// Fleet leases and unit outcomes: written with `synchronous_commit`
    /// off, as one lost on a server crash costs nothing (a claim lost gives
    /// its unit back; an outcome lost makes its unit run again, finding its
    /// database up to date), and waiting for the WAL flush would cost each
    /// unit of a roll-out two fsyncs. Connected on first use.
    leases: PgPool,
    schema: String,
    location: String,
    sql: Arc<Statements>,
    /// Request notices for waiters, listened for from the first waiter on.
    notices: notices::Notices,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the pool: its connect options would print the password.
        f.debug_struct("PostgresStore")
            .field("location", &self.location)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// The schema [`connect`](Self::connect) uses.
    pub const DEFAULT_SCHEMA: &'static str = "provisioning";

    /// Connects to the database `url` names, with a pool of 10 connections,
    /// and brings the store's schema ([`DEFAULT_SCHEMA`](Self::DEFAULT_SCHEMA))
    /// up to date, creating it if missing.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `url` when it is not a PostgreSQL URL (shown
    /// without its password); [`Error::Backend`] when the server cannot be
    /// reached or the schema cannot be migrated.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_to_schema(url, Self::DEFAULT_SCHEMA).await
    }

    /// As [`connect`](Self::connect), with the store's tables in `schema`.
    ///
    /// # Errors
    /// As [`connect`](Self::connect), and [`Error::InvalidInput`] on `schema`
    /// (see [`connect_with`](Self::connect_with)).
    pub async fn connect_to_schema(url: &str, schema: &str) -> Result<Self> {
        let redacted = redact_url(url);
        // sqlx parses any scheme; another database's URL would only fail
        // later, as an unreachable server.
        let scheme = url.split_once("://").map(|(scheme, _)| scheme);
        if !matches!(scheme, Some("postgres" | "postgresql")) {
            return Err(Error::invalid(
                "url",
                format!("{redacted} is not a postgres:// or postgresql:// URL"),
            ));
        }
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            Error::invalid("url", format!("{redacted} is not a PostgreSQL URL ({e})"))
        })?;
        validate_schema(schema)?;
        let pool = crate::pool::pool_options::<Postgres>()
            .max_connections(10)
            .connect_with(options)
            .await
            .map_err(|e| db_error(COMPONENT, format!("connecting to {redacted}"), e))?;
        Self::open(pool, schema, redacted).await
    }

    /// A store on an existing pool (shared with your own queries if you like),
    /// with its tables in `schema`, which is created and migrated if needed.
    /// Tables are always named with their schema, so the pool's connections
    /// need no particular `search_path`; two stores in two schemas of one
    /// database share nothing, not even their migration ledger.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `schema` unless it is 1 to 63 lowercase ASCII
    /// letters, digits or `_`, not starting with a digit; [`Error::Backend`]
    /// when the schema cannot be created or migrated.
    pub async fn connect_with(pool: PgPool, schema: &str) -> Result<Self> {
        validate_schema(schema)?;
        let options = pool.connect_options();
        let location = format!(
            "{}@{}:{}/{}",
            options.get_username(),
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("postgres"),
        );
        Self::open(pool, schema, location).await
    }

    async fn open(pool: PgPool, schema: &str, location: String) -> Result<Self> {
        migrate(&pool, schema, &location).await?;
        let leases = crate::pool::pool_options::<Postgres>()
            .max_connections(4)
            .acquire_timeout(pool.options().get_acquire_timeout())
            .connect_lazy_with(
                (*pool.connect_options())
                    .clone()
                    .options([("synchronous_commit", "off")]),
            );
        Ok(PostgresStore {
            sql: Arc::new(Statements::new(&quote(schema))),
            pool,
            leases,
            schema: schema.to_owned(),
            location,
            notices: notices::Notices::default(),
        })
    }

    /// The schema holding the store's tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The connection pool, for queries of your own.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Runs the embedded migrations into `schema` through a one-connection pool
/// of its own whose `search_path` is that schema (the migrations name their
/// tables unqualified), so the setting never leaks into the store's pool, and
/// closing it releases sqlx's migration lock even when a migration fails.
async fn migrate(pool: &PgPool, schema: &str, location: &str) -> Result<()> {
    // A search_path naming a schema that does not exist yet is accepted; the
    // migrator creates the schema under its lock, so concurrent first starts
    // of many workers do not race on CREATE SCHEMA. The name is a validated
    // lowercase identifier, so it needs no quoting in the startup option.
    let options = (*pool.connect_options())
        .clone()
        .options([("search_path", schema)]);
    let ledger = crate::pool::pool_options::<Postgres>()
        .max_connections(1)
        .acquire_timeout(pool.options().get_acquire_timeout())
        .connect_with(options)
        .await
        .map_err(|e| db_error(COMPONENT, format!("connecting to {location}"), e))?;
    let quoted = quote(schema);
    let mut migrator = Migrator::with_migrations(MIGRATOR.iter().cloned().collect());
    migrator.create_schema(quoted.clone());
    migrator.dangerous_set_table_name(format!("{quoted}._sqlx_migrations"));
    let outcome = migrator.run(&ledger).await;
    ledger.close().await;
    outcome.map_err(|e| migrate_error(COMPONENT, &format!("{location} schema {schema}"), e))
}

fn validate_schema(schema: &str) -> Result<()> {
    let valid = !schema.is_empty()
        && schema.len() <= 63
        && !schema.starts_with(|c: char| c.is_ascii_digit())
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(
            "schema",
            format!(
                "{schema:?} must be 1 to 63 lowercase ASCII letters, digits or '_', \
                 not starting with a digit"
            ),
        ))
    }
}

/// A validated schema name as a quoted identifier.
fn quote(schema: &str) -> String {
    format!("\"{schema}\"")
}

fn err(what: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| db_error(COMPONENT, what, e)
}

/// A text column of a row; a missing or mistyped column is a backend error
/// rather than sqlx's panic.
fn text<'r>(row: &'r PgRow, column: &'static str) -> Result<&'r str> {
    row.try_get(column).map_err(err("decoding a row"))
}

/// A size as a `LIMIT` (anything past `i64::MAX` is unlimited anyway).
fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(validate_schema("provisioning").is_ok());
        assert!(validate_schema("prov_2").is_ok());
        for bad in ["", "2prov", "Prov", "a-b", "a\"; DROP", &"x".repeat(64)] {
            let err = validate_schema(bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidInput {
                        field: "schema",
                        ..
                    }
                ),
                "{bad}: {err}"
            );
        }
    }
}
