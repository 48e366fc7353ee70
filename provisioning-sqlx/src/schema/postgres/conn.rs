//! PostgreSQL connections and the seed ledger on them.

use provisioning_core::{Result, SeedInfo, TenantId};
use std::ops::{Deref, DerefMut};

use futures_util::future::BoxFuture;
use sqlx::Postgres;
use sqlx::migrate::{AppliedMigration, MigrateError, Migration};
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection, Executor, FromRow, PgConnection, Row};

use crate::error::{db_error, violates};
use crate::schema::conn::impl_schema_conn;
use crate::schema::migrate::{self, ApplyAll, Ledger};
use crate::schema::seed::{LedgerRow, Seed, SeedBody, pending_seeds};
use crate::schema::sql::{hex, inline_param, quote_ident, quote_literal};

pub(super) const COMPONENT: &str = "postgres schema";

/// Connects a connection of its own (to a tenant's own database).
pub(super) async fn connect(options: &PgConnectOptions, what: &str) -> Result<PgConnection> {
    PgConnection::connect_with(options)
        .await
        .map_err(|e| db_error(COMPONENT, format!("connecting to {what}"), e))
}

/// A connection to one tenant's data: from the shard's pool (a schema of the
/// URL's database, or its shared tenants), or of its own (a database of its
/// own).
pub(super) enum TenantConn {
    Pooled(PoolConnection<Postgres>),
    Own(PgConnection),
}

impl Deref for TenantConn {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        match self {
            TenantConn::Pooled(conn) => conn,
            TenantConn::Own(conn) => conn,
        }
    }
}

impl DerefMut for TenantConn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match self {
            TenantConn::Pooled(conn) => conn,
            TenantConn::Own(conn) => conn,
        }
    }
}

impl TenantConn {
    /// Gives the connection back: to the pool, or closed. After `failed`
    /// work a pooled one is rolled back first, in case a transaction
    /// [`begin`] opened is still there (on a healthy connection without one
    /// this is only a warning from the server).
    pub(super) async fn done(self, failed: bool) {
        match self {
            TenantConn::Own(conn) => close(conn).await,
            TenantConn::Pooled(mut conn) if failed => {
                if conn.execute("ROLLBACK").await.is_err() {
                    // Unusable: it must not go back to the pool.
                    conn.close_on_drop();
                }
            }
            TenantConn::Pooled(_) => {}
        }
    }

    /// Gives the connection back after a copy: after a failure it is
    /// closed, never pooled again, since a `COPY` cut short leaves the
    /// protocol in a state a rollback alone may not cure.
    pub(super) async fn release(self, failed: bool) {
        match self {
            TenantConn::Pooled(mut conn) if failed => conn.close_on_drop(),
            conn => conn.done(failed).await,
        }
    }
}

/// Points a pooled connection's unqualified names at `schema`, or back at
/// the database's default with `None`. Pooled connections keep whatever a
/// previous user set, so every tenant-level use sets it first.
pub(super) async fn search_path(conn: &mut PgConnection, schema: Option<&str>) -> Result<()> {
    let sql = match schema {
        Some(schema) => format!("SET search_path TO {}", quote_ident(schema)),
        None => "SET search_path TO DEFAULT".to_owned(),
    };
    sqlx::query(AssertSqlSafe(sql))
        .execute(&mut *conn)
        .await
        .map_err(|e| db_error(COMPONENT, format!("selecting schema {schema:?}"), e))?;
    Ok(())
}

/// The savepoint that lets [`ApplyAll::apply_all`] fail without failing its
/// transaction, so that the migrations can be retried one at a time.
const SAVEPOINT: &str = "_provisioning_migrate";

impl ApplyAll for PgConnection {
    /// sqlx's ledger table, made if missing, and read, in one round trip.
    fn ledger<'e>(
        &'e mut self,
        table: &'e str,
    ) -> BoxFuture<'e, std::result::Result<Ledger, MigrateError>> {
        Box::pin(async move {
            // The DDL is sqlx's own (`Migrate::ensure_migrations_table`), so
            // that `sqlx migrate` reads these ledgers.
            let sql = format!(
                "CREATE TABLE IF NOT EXISTS {table} (
                    version BIGINT PRIMARY KEY,
                    description TEXT NOT NULL,
                    installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),
                    success BOOLEAN NOT NULL,
                    checksum BYTEA NOT NULL,
                    execution_time BIGINT NOT NULL
                );
                SELECT version, checksum, success FROM {table} ORDER BY version"
            );
            let rows = sqlx::raw_sql(AssertSqlSafe(sql))
                .fetch_all(&mut *self)
                .await?;
            Ok(ledger_of(&rows)?)
        })
    }

    /// The migrations and their ledger rows as one simple-protocol query
    /// inside a savepoint of the caller's transaction: one round trip for
    /// any number of migrations. On failure the savepoint is rolled back, so
    /// the transaction stays usable for the one-at-a-time retry.
    fn apply_all<'e>(
        &'e mut self,
        table: &'e str,
        migrations: &'e [&'e Migration],
    ) -> BoxFuture<'e, std::result::Result<(), sqlx::Error>> {
        Box::pin(async move {
            let sql = format!(
                "SAVEPOINT {SAVEPOINT};\n{}RELEASE SAVEPOINT {SAVEPOINT}",
                applied_with_rows(table, migrations)
            );
            match self.execute(sqlx::raw_sql(AssertSqlSafe(sql))).await {
                Ok(_) => Ok(()),
                Err(e) => {
                    self.execute(sqlx::raw_sql(AssertSqlSafe(format!(
                        "ROLLBACK TO SAVEPOINT {SAVEPOINT}; RELEASE SAVEPOINT {SAVEPOINT}"
                    ))))
                    .await?;
                    Err(e)
                }
            }
        })
    }
}

/// The migration ledger in `rows` (`version`, `checksum`, `success`, in
/// version order).
pub(super) fn ledger_of(
    rows: &[sqlx::postgres::PgRow],
) -> std::result::Result<Ledger, sqlx::Error> {
    let mut ledger = Ledger {
        dirty: None,
        applied: Vec::with_capacity(rows.len()),
    };
    for row in rows {
        let version: i64 = row.try_get("version")?;
        if !row.try_get::<bool, _>("success")? {
            ledger.dirty = ledger.dirty.or(Some(version));
        }
        let checksum: Vec<u8> = row.try_get("checksum")?;
        ledger.applied.push(AppliedMigration {
            version,
            checksum: checksum.into(),
        });
    }
    Ok(ledger)
}

/// `migrations` as one script followed by their rows in ledger `table`
/// (on the search path), each statement ended.
pub(super) fn applied_with_rows(table: &str, migrations: &[&Migration]) -> String {
    let rows = migrations
        .iter()
        .map(|m| {
            format!(
                "({}, {}, TRUE, decode('{}', 'hex'), -1)",
                m.version,
                quote_literal(&m.description),
                hex(&m.checksum)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{}INSERT INTO {table} (version, description, success, checksum, execution_time) \
         VALUES {rows};\n",
        migrate::script(migrations)
    )
}

/// Begins a transaction on a tenant's connection, with its `search_path` set
/// for the transaction only (`SET LOCAL`: a pooled connection keeps nothing
/// of it), in one round trip.
///
/// Nothing that can wait goes in this query: sqlx only counts the
/// transaction (and rolls it back when its guard is dropped) once the query
/// has returned, so a caller cancelled while, say, waiting for a lock here
/// would leave the pooled connection inside a transaction holding it. Locks
/// are taken in the next statement, inside the transaction sqlx tracks.
pub(super) async fn begin<'c>(
    conn: &'c mut PgConnection,
    schema: Option<&str>,
    what: &str,
) -> Result<sqlx::Transaction<'c, Postgres>> {
    begin_as(conn, Access::Write, schema, what).await
}

/// What a transaction of [`begin_as`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// Reads and writes, as the session's defaults say.
    Write,
    /// Writes rows given as text (a copy's target): dates and times read
    /// as [`Access::Snapshot`] writes them.
    WriteCanonical,
    /// Reads one snapshot of every table (repeatable read, read only), and
    /// gives values as text the same way whatever the server's or the
    /// database's settings: UTC, ISO dates, hex `bytea`. What a copy's
    /// source and a comparison read in.
    Snapshot,
}

/// Session settings that make a value's text the same on every server.
const CANONICAL: &str = "SET LOCAL TimeZone TO 'UTC'; SET LOCAL DateStyle TO 'ISO, YMD'; \
     SET LOCAL IntervalStyle TO 'postgres'; SET LOCAL bytea_output TO 'hex'; \
     SET LOCAL extra_float_digits TO 1";

/// [`begin`] as `access` says, in the same one round trip.
pub(super) async fn begin_as<'c>(
    conn: &'c mut PgConnection,
    access: Access,
    schema: Option<&str>,
    what: &str,
) -> Result<sqlx::Transaction<'c, Postgres>> {
    let path = schema.map_or_else(|| "DEFAULT".to_owned(), quote_ident);
    let sql = match access {
        Access::Write => format!("BEGIN; SET LOCAL search_path TO {path}"),
        Access::WriteCanonical => {
            format!("BEGIN; SET LOCAL search_path TO {path}; {CANONICAL}")
        }
        Access::Snapshot => format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; \
             SET LOCAL search_path TO {path}; {CANONICAL}"
        ),
    };
    conn.begin_with(AssertSqlSafe(sql))
        .await
        .map_err(|e| db_error(COMPONENT, what.to_owned(), e))
}

/// `SELECT pg_advisory_xact_lock(...)` of `key`, as SQL text. The
/// lock is held until the transaction ends: workers in other processes (or
/// on other connections) working on the same database or schema take turns,
/// and a lock can never outlive its transaction, even on a pooled connection
/// whose user was dropped.
pub(super) fn xact_lock_sql(key: &str) -> String {
    format!(
        "SELECT pg_advisory_xact_lock(hashtextextended({}, 0))",
        quote_literal(&lock_key(key))
    )
}

/// The statement that takes the lock on the tenant id bound as `$1` until
/// the transaction ends: the removal of a shared tenant's rows and
/// [`PostgresSchemaManager::lock_tenant`](super::PostgresSchemaManager::lock_tenant) take it.
pub(super) fn tenant_lock_sql() -> &'static str {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT pg_advisory_xact_lock(hashtextextended({} || $1, 0))",
            quote_literal(&lock_key("tenant "))
        )
    });
    &SQL
}

fn lock_key(key: &str) -> String {
    format!("provisioning-sqlx:{key}")
}

/// Closes a connection; every write was committed, so a failure is only logged.
pub(super) async fn close(conn: PgConnection) {
    if let Err(error) = conn.close().await {
        tracing::warn!(%error, "closing a postgres connection failed");
    }
}

/// Whether a table is visible on the connection's search path.
async fn table_exists(conn: &mut PgConnection, table: &str) -> Result<bool> {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(quote_ident(table))
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| db_error(COMPONENT, format!("looking up table {table}"), e))
}

impl_schema_conn!(
    PgConnection,
    COMPONENT,
    "$1",
    table_exists,
    Some(tenant_lock_sql())
);

/// The seed ledger's DDL. Concurrent `CREATE TABLE IF NOT EXISTS` races on
/// PostgreSQL's catalog, so it runs under the location's advisory lock.
/// Every column is bounded (tenant ids, seed names, hex SHA-256 checksums),
/// so the table gets no TOAST table: creating it costs about half as much,
/// once per tenant schema or database. Ledgers made with `TEXT` columns by
/// earlier versions are read the same way.
const CREATE_LEDGER: &str = "CREATE TABLE IF NOT EXISTS _tenant_seeds (
    tenant_id  VARCHAR(63) NOT NULL,
    name       VARCHAR(200) NOT NULL,
    version    BIGINT NOT NULL,
    checksum   VARCHAR(64) NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name, version)
)";

/// [`CREATE_LEDGER`] in `schema`, whatever the search path.
pub(super) fn create_ledger_in(schema: &str) -> String {
    CREATE_LEDGER.replacen(
        "_tenant_seeds",
        &format!("{}._tenant_seeds", quote_ident(schema)),
        1,
    )
}

/// The ledger's primary key: violating it means another seeder applied the
/// same seed first.
const LEDGER_KEY: &str = "_tenant_seeds_pkey";

/// Applies `tenant`'s missing seeds on its connection (`schema` is the
/// tenant's schema, `None` for the connection's database), each in one
/// transaction with its ledger row, in four round trips for a SQL seed:
/// `BEGIN`; the ledger read (and, unless `ledger_known`, made if missing
/// under `lock_key`'s advisory lock first); the ledger row and the seed's
/// statements as one query, the tenant inlined as a quoted literal; `COMMIT`.
///
/// The ledger row goes first and has no `ON CONFLICT`: a concurrent seeder of
/// the same tenant waits on its key, then fails on it, and leaves the seed to
/// the first.
pub(super) async fn apply(
    conn: &mut PgConnection,
    seeds: &[Seed<PgConnection>],
    tenant: &TenantId,
    schema: Option<&str>,
    lock_key: &str,
    ledger_known: bool,
) -> Result<Vec<SeedInfo>> {
    let literal = quote_literal(tenant.as_str());
    let mut tx = begin(&mut *conn, schema, &format!("seeding {tenant}")).await?;
    // A ledger not known to exist is made if missing, under the location's
    // lock, in the same query as the read.
    let read = format!(
        "{}SELECT name, version, checksum FROM _tenant_seeds WHERE tenant_id = {literal}",
        if ledger_known {
            String::new()
        } else {
            format!("{};\n{CREATE_LEDGER};\n", xact_lock_sql(lock_key))
        }
    );
    let ledger = sqlx::raw_sql(AssertSqlSafe(read))
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| db_error(COMPONENT, "reading the seed ledger", e))?
        .iter()
        // The lock's row has one column; the ledger's have three.
        .filter(|row| row.len() == 3)
        .map(LedgerRow::from_row)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| db_error(COMPONENT, "reading the seed ledger", e))?;
    let mut pending = pending_seeds(seeds, &ledger, tenant)?.into_iter();
    let Some(first) = pending.next() else {
        // Nothing to apply; the ledger made on the way is kept.
        tx.commit()
            .await
            .map_err(|e| db_error(COMPONENT, "creating the seed ledger", e))?;
        return Ok(Vec::new());
    };
    let mut applied = Vec::new();
    if apply_one(tx, first, tenant, &literal).await? {
        applied.push(first.info());
    }
    for seed in pending {
        let tx = begin(&mut *conn, schema, &describe(seed, tenant)).await?;
        if apply_one(tx, seed, tenant, &literal).await? {
            applied.push(seed.info());
        }
    }
    Ok(applied)
}

fn describe(seed: &Seed<PgConnection>, tenant: &TenantId) -> String {
    format!("seed {}@{} for {tenant}", seed.name(), seed.version())
}

/// Writes `seed`'s ledger row and runs it in `tx`, then commits; `false` when
/// a concurrent seeder had applied it (`tx` rolls back).
async fn apply_one(
    mut tx: sqlx::Transaction<'_, Postgres>,
    seed: &Seed<PgConnection>,
    tenant: &TenantId,
    literal: &str,
) -> Result<bool> {
    let row = format!(
        "INSERT INTO _tenant_seeds (tenant_id, name, version, checksum) VALUES ({literal}, {}, {}, {})",
        quote_literal(seed.name()),
        seed.version(),
        quote_literal(seed.checksum())
    );
    let written = match seed.body() {
        SeedBody::Sql(sql) => tx
            .execute(sqlx::raw_sql(AssertSqlSafe(format!(
                "{row};\n{}",
                inline_param(sql, "$1", literal)
            ))))
            .await
            .map(|_| ()),
        SeedBody::Rust { run, .. } => match tx.execute(sqlx::raw_sql(AssertSqlSafe(row))).await {
            Ok(_) => {
                run(&mut tx, tenant).await?;
                Ok(())
            }
            Err(e) => Err(e),
        },
    };
    match written {
        Ok(()) => {}
        Err(e) if violates(&e, LEDGER_KEY) => return Ok(false),
        Err(e) => return Err(db_error(COMPONENT, describe(seed, tenant), e)),
    }
    tx.commit()
        .await
        .map_err(|e| db_error(COMPONENT, describe(seed, tenant), e))?;
    Ok(true)
}
