//! The crate's own error, for its configuration and builder API, and the mapping
//! of sqlx failures onto [`provisioning_core::Error`].

// Without a backend feature the shared pieces have no user; the crate still
// builds (for `cargo check --no-default-features`), without warnings.
#![cfg_attr(
    not(any(feature = "sqlite", feature = "postgres")),
    allow(dead_code, unused_imports)
)]

use std::path::PathBuf;

use provisioning_core::Error as CoreError;
use sqlx::migrate::MigrateError;

/// `Result` with [`Error`] as the default error: what this crate's builders
/// return. The trait methods (provision, migrate, the stores) return
/// [`provisioning_core::Result`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while configuring this crate's schema managers.
///
/// Runtime operations (provision, migrate, seed, drop) return
/// [`provisioning_core::Error`]; this type converts into it, so `?` works in
/// code that mixes both.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A part of a builder was not supplied.
    #[error("missing {part}: call `{setter}` on the builder")]
    MissingPart {
        /// The part (`root`, `shard`, `schema`...).
        part: &'static str,
        /// The builder method that supplies it.
        setter: &'static str,
    },

    /// A configuration value broke a rule.
    #[error("invalid {field}: {rule}")]
    Invalid {
        /// The field, as named by the builder method.
        field: &'static str,
        /// The rule, phrased so that the message tells how to fix it.
        rule: String,
    },

    /// A migrations folder could not be read.
    #[error("cannot load migrations from {path}")]
    Migrations {
        /// The folder.
        path: PathBuf,
        /// What sqlx reported.
        #[source]
        source: MigrateError,
    },
}

impl From<Error> for CoreError {
    fn from(err: Error) -> Self {
        match err {
            Error::MissingPart { part, setter } => CoreError::MissingPart { part, setter },
            Error::Invalid { field, rule } => CoreError::invalid(field, rule),
            err @ Error::Migrations { .. } => {
                CoreError::backend("migrations", err.to_string(), false, err)
            }
        }
    }
}

/// Maps a sqlx error to [`CoreError::Backend`], flagging the failures a retry
/// may cure (pool timeout, I/O, lost connection, SQLite busy or locked,
/// PostgreSQL serialization failures and deadlocks) as transient.
pub(crate) fn db_error(
    component: &'static str,
    message: impl Into<String>,
    err: sqlx::Error,
) -> CoreError {
    let transient = is_transient(&err);
    CoreError::backend(component, message, transient, err)
}

/// Maps a failure to open the SQLite file `path`. SQLite says only "unable
/// to open database file" (or "attempt to write a readonly database") for a
/// read-only file system, a missing directory or a lacking permission; the
/// operating system, asked to open the same for writing, names which, and its
/// answer becomes the cause (`Read-only file system (os error 30)`).
#[cfg(feature = "sqlite")]
pub(crate) fn sqlite_open_error(
    component: &'static str,
    path: &std::path::Path,
    err: sqlx::Error,
) -> CoreError {
    let message = format!("opening {}", path.display());
    let cannot_open = err
        .as_database_error()
        .and_then(|e| e.code())
        .and_then(|code| code.parse::<i32>().ok())
        // SQLITE_READONLY (8) and SQLITE_CANTOPEN (14), any extended code.
        .is_some_and(|code| matches!(code & 0xff, 8 | 14));
    match cannot_open.then(|| why_not_writable(path)).flatten() {
        // Read-only, missing or forbidden: an operator must act first.
        Some(cause) => CoreError::backend(component, format!("{message}: {err}"), false, cause),
        None => db_error(component, message, err),
    }
}

/// Refuses, before SQLite opens it, a file (or its directory) this process
/// cannot write. SQLite would open such a file read-only without a word,
/// and the first write would fail with "attempt to write a readonly
/// database" and no cause; this names the cause (`Read-only file system`).
#[cfg(feature = "sqlite")]
pub(crate) fn check_writable(
    component: &'static str,
    path: &std::path::Path,
) -> Result<(), CoreError> {
    match why_not_writable(path) {
        Some(cause) => Err(CoreError::backend(
            component,
            format!("opening {} for writing", path.display()),
            false,
            cause,
        )),
        None => Ok(()),
    }
}

/// Why `path` cannot be written, or made in its directory, as the operating
/// system says (`access(2)`, which opens nothing: closing a descriptor of a
/// file would drop every SQLite lock this process holds on it); `None` if it
/// can be, or on systems where this is not asked.
#[cfg(all(feature = "sqlite", unix))]
fn why_not_writable(path: &std::path::Path) -> Option<std::io::Error> {
    use rustix::io::Errno;
    let target = if path.exists() {
        path
    } else {
        let dir = path
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        match std::fs::metadata(dir) {
            Err(missing) => return Some(missing),
            Ok(meta) if !meta.is_dir() => return Some(Errno::NOTDIR.into()),
            Ok(_) => dir,
        }
    };
    rustix::fs::access(target, rustix::fs::Access::WRITE_OK)
        .err()
        .map(std::io::Error::from)
}

#[cfg(all(feature = "sqlite", not(unix)))]
fn why_not_writable(_path: &std::path::Path) -> Option<std::io::Error> {
    None
}

/// A sqlx failure in a step of yours, as the executor takes it: transient
/// (retried under the step's policy) when a retry may cure it, as for the
/// SDK's own steps (pool timeout, I/O, a lost connection, SQLite busy or
/// locked, PostgreSQL serialization failures and deadlocks), else permanent.
///
/// ```
/// let busy = provisioning_sqlx::step_error(provisioning_sqlx::sqlx::Error::PoolTimedOut);
/// assert!(busy.is_transient());
/// let bad = provisioning_sqlx::step_error(provisioning_sqlx::sqlx::Error::RowNotFound);
/// assert!(!bad.is_transient());
/// ```
pub fn step_error(err: sqlx::Error) -> provisioning_core::StepError {
    provisioning_core::StepError::from(db_error("workflow step", "a database call failed", err))
}

fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::Io(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| transient_code(&code)),
        _ => false,
    }
}

/// PostgreSQL reports a five-character SQLSTATE; SQLite its (extended) result
/// code as a number, always below 10000, so the length tells them apart
/// ("40001" is a SQLSTATE, not SQLite code 40001).
fn transient_code(code: &str) -> bool {
    if code.len() != 5 {
        // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with any extended code.
        return code.parse::<i32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6));
    }
    // serialization_failure, deadlock_detected, lock_not_available,
    // too_many_connections, admin/crash shutdown, cannot_connect_now, and the
    // connection exception class.
    matches!(
        code,
        "40001" | "40P01" | "55P03" | "53300" | "57P01" | "57P02" | "57P03"
    ) || code.starts_with("08")
}

/// Whether `error` is a unique violation of `constraint` (PostgreSQL names
/// the constraint; a violation of another one is another failure).
#[cfg(feature = "postgres")]
pub(crate) fn violates(error: &sqlx::Error, constraint: &str) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.is_unique_violation() && e.constraint() == Some(constraint))
}

/// Maps a migration failure: SQL errors keep their sqlx classification, a
/// tampered or dirty ledger is permanent (a human must look).
pub(crate) fn migrate_error(
    component: &'static str,
    location: &str,
    err: MigrateError,
) -> CoreError {
    match err {
        MigrateError::Execute(e) => db_error(component, format!("migrating {location}"), e),
        MigrateError::ExecuteMigration(e, version) => {
            db_error(component, format!("migration {version} on {location}"), e)
        }
        other => CoreError::backend(
            component,
            format!("migrating {location}: {other}"),
            false,
            other,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_busy_and_pg_serialization_are_transient() {
        assert!(transient_code("5"));
        assert!(transient_code("517")); // SQLITE_BUSY_SNAPSHOT
        assert!(transient_code("262")); // SQLITE_LOCKED_SHAREDCACHE
        assert!(transient_code("40001"));
        assert!(transient_code("08006"));
        assert!(!transient_code("1")); // SQLITE_ERROR: bad SQL
        assert!(!transient_code("2067")); // SQLITE_CONSTRAINT_UNIQUE
        assert!(!transient_code("42P01")); // undefined_table
        assert!(!transient_code("23505")); // unique_violation
        assert!(transient_code("773")); // SQLITE_BUSY_TIMEOUT
        assert!(db_error("x", "y", sqlx::Error::PoolTimedOut).is_transient());
        assert!(!db_error("x", "y", sqlx::Error::RowNotFound).is_transient());
    }

    #[test]
    fn config_errors_convert_to_core_errors() {
        let err: CoreError = Error::MissingPart {
            part: "root",
            setter: "root",
        }
        .into();
        assert_eq!(err.to_string(), "missing root: call `root` on the builder");
        let err: CoreError = Error::Invalid {
            field: "tenant_tables",
            rule: "must not be empty".into(),
        }
        .into();
        assert!(matches!(
            err,
            CoreError::InvalidInput {
                field: "tenant_tables",
                ..
            }
        ));
    }
}
