//! PostgreSQL as the example meets it on a fresh server: the databases the
//! configuration names (the catalog's, each shard server's) are made when
//! missing, so that `--config` with `config --postgres` works on the first
//! try. Tenants' own databases and schemas are the schema manager's work.

use std::str::FromStr;

use provisioning_core::ShardId;
use provisioning_core::model::redact_secrets;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, Connection};

/// The database PostgreSQL always has, where `CREATE DATABASE` runs.
const ADMIN_DATABASE: &str = "postgres";

/// SQLSTATE `invalid_catalog_name`: the database does not exist.
const NO_SUCH_DATABASE: &str = "3D000";
/// SQLSTATEs `duplicate_database` and `unique_violation` (on the catalog
/// of databases): another process made it first.
const MADE_MEANWHILE: [&str; 2] = ["42P04", "23505"];

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Whether `connection` is a PostgreSQL URL (else a SQLite path).
pub(crate) fn is_url(connection: &str) -> bool {
    connection.starts_with("postgres://") || connection.starts_with("postgresql://")
}

/// The server database shard `shard`'s connection names, as a URL sqlx
/// takes: where shared tenants' rows and dedicated tenants' schemas go. A
/// connection with a database per tenant (`/{tenant}`) names none: the
/// schema manager creates those.
pub(crate) fn shard_database(shard: &ShardId, region: &str, connection: &str) -> Option<String> {
    let url = connection
        .replace("{shard}", shard.as_str())
        .replace("{region}", region);
    // `?schema={tenant}` is the schema manager's, not sqlx's.
    let url = match url.split_once('?') {
        Some((base, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|param| !param.starts_with("schema="))
                .collect();
            if kept.is_empty() {
                base.to_owned()
            } else {
                format!("{base}?{}", kept.join("&"))
            }
        }
        None => url,
    };
    (!url.contains("{tenant}")).then_some(url)
}

/// Makes the database `url` names if it does not exist, on the same server
/// as the same user; whether it made it.
///
/// # Errors
/// The server cannot be reached, or refuses the `CREATE DATABASE`; the URL
/// is shown without its password.
pub(crate) async fn ensure_database(url: &str) -> BoxResult<bool> {
    let shown = redact_secrets(url);
    let options = PgConnectOptions::from_str(url).map_err(|e| format!("{shown}: {e}"))?;
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Ok(false);
    };
    match PgConnection::connect_with(&options).await {
        Ok(conn) => {
            let _ = conn.close().await;
            return Ok(false);
        }
        Err(e) if code(&e).as_deref() == Some(NO_SUCH_DATABASE) => {}
        Err(e) => return Err(format!("connecting to {shown}: {e}").into()),
    }
    let admin = options.clone().database(ADMIN_DATABASE);
    let mut conn = PgConnection::connect_with(&admin)
        .await
        .map_err(|e| format!("connecting to {shown} to create database {name}: {e}"))?;
    let create = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
    let made = sqlx::raw_sql(AssertSqlSafe(create))
        .execute(&mut conn)
        .await;
    let _ = conn.close().await;
    match made {
        Ok(_) => {
            tracing::info!(database = %name, "created database");
            Ok(true)
        }
        Err(e) if code(&e).is_some_and(|c| MADE_MEANWHILE.contains(&c.as_str())) => Ok(true),
        Err(e) => Err(format!("creating database {name} for {shown}: {e}").into()),
    }
}

/// A database error's SQLSTATE.
fn code(error: &sqlx::Error) -> Option<String> {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .map(|code| code.into_owned())
}
