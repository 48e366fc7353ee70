//! What a copy reads from PostgreSQL's catalog: the schema a side's tables
//! are in, its tables in creation order, each table's columns, primary key
//! and sequences.

use provisioning_core::Result;
use sqlx::{AssertSqlSafe, PgConnection, Row};

use super::conn::COMPONENT;
use super::location::Target;
use crate::error::db_error;
use crate::schema::sql::quote_ident;

/// `"schema"."table"`.
pub(super) fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

/// The schema `target`'s tables are in, on a connection inside a
/// transaction whose `search_path` is `path` (a schema, or `None` for the
/// default): its own schema, else the first schema of the default search
/// path (looked up, then `path` set back, in one round trip).
pub(super) async fn schema_of(
    conn: &mut PgConnection,
    target: &Target,
    path: Option<&str>,
) -> Result<String> {
    if let Some(schema) = target.schema() {
        return Ok(schema.to_owned());
    }
    let back = path.map_or_else(|| "DEFAULT".to_owned(), quote_ident);
    let sql = format!(
        "SET LOCAL search_path TO DEFAULT; SELECT current_schema()::text; \
         SET LOCAL search_path TO {back}"
    );
    let what = || format!("finding the default schema of {}", target.location());
    let rows = sqlx::raw_sql(AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| db_error(COMPONENT, what(), e))?;
    let schema: Option<String> = match rows.first() {
        Some(row) => row.try_get(0).map_err(|e| db_error(COMPONENT, what(), e))?,
        None => None,
    };
    schema.ok_or_else(|| {
        provisioning_core::Error::invalid(
            "connection",
            format!(
                "{} has no schema on its default search_path to hold the tenant's tables",
                target.location()
            ),
        )
    })
}

/// The tables of `schema` in creation order (their catalog oids), partitions
/// left to their parent.
pub(super) async fn tables(conn: &mut PgConnection, schema: &str) -> Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
         ORDER BY c.oid",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| {
        db_error(
            COMPONENT,
            format!("listing the tables of schema {schema}"),
            e,
        )
    })
}

/// One table's columns as a copy needs them.
#[derive(Debug, Clone, Default)]
pub(super) struct Columns {
    /// The columns a copy can write, in table order: generated ones aside.
    pub(super) names: Vec<String>,
    /// `(column, sequence)` for each column fed by a sequence (serial or
    /// identity); the sequence's name is qualified and quoted as needed.
    pub(super) sequences: Vec<(String, String)>,
}

impl Columns {
    /// Whether the table exists (a table has at least one column here).
    pub(super) fn exist(&self) -> bool {
        !self.names.is_empty()
    }
}

/// The columns of `schema.table`; none when it does not exist.
pub(super) async fn columns(conn: &mut PgConnection, schema: &str, table: &str) -> Result<Columns> {
    let rows = sqlx::query(
        "SELECT column_name::text, is_generated::text = 'ALWAYS', \
                pg_get_serial_sequence(format('%I.%I', table_schema, table_name), column_name) \
         FROM information_schema.columns \
         WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
    )
    .bind(schema)
    .bind(table)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| {
        db_error(
            COMPONENT,
            format!("reading the columns of {schema}.{table}"),
            e,
        )
    })?;
    let mut columns = Columns::default();
    for row in rows {
        let read = |e| {
            db_error(
                COMPONENT,
                format!("reading the columns of {schema}.{table}"),
                e,
            )
        };
        let name: String = row.try_get(0).map_err(read)?;
        let generated: bool = row.try_get(1).map_err(read)?;
        let sequence: Option<String> = row.try_get(2).map_err(read)?;
        if generated {
            continue;
        }
        if let Some(sequence) = sequence {
            columns.sequences.push((name.clone(), sequence));
        }
        columns.names.push(name);
    }
    Ok(columns)
}

/// The primary key of `schema.table` as `(column, type)`, in key order;
/// empty without one.
pub(super) async fn primary_key(
    conn: &mut PgConnection,
    schema: &str,
    table: &str,
) -> Result<Vec<(String, String)>> {
    let rows = sqlx::query(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) \
         FROM pg_index i \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) \
         WHERE i.indrelid = to_regclass(format('%I.%I', $1::text, $2::text)) AND i.indisprimary \
         ORDER BY array_position(i.indkey::int2[], a.attnum)",
    )
    .bind(schema)
    .bind(table)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| db_error(COMPONENT, format!("reading the key of {schema}.{table}"), e))?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<sqlx::Result<_>>()
        .map_err(|e| db_error(COMPONENT, format!("reading the key of {schema}.{table}"), e))
}
