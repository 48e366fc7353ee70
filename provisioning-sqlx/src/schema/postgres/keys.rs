//! What keeps a copy from breaking the target: a primary key another
//! tenant of a shared database already uses is refused before anything is
//! written, and sequences are moved past the copied ids.

use provisioning_core::{Entity, Error, Result};
use sqlx::{AssertSqlSafe, PgConnection};

use super::catalog::{self, qualified};
use super::conn::COMPONENT;
use super::copy::{Conns, Sides, exec, scope_in};
use crate::error::db_error;
use crate::schema::copy::{TENANT_COLUMN, TablePlan};
use crate::schema::sql::{quote_ident, quote_literal};

/// Refuses, before anything is written, a copy into a shared table whose
/// primary key (not scoped by tenant) another tenant already uses for one
/// of the copied rows: row ids in a shared database are the database's, not
/// the tenant's.
pub(super) async fn check_keys(
    conns: &mut Conns<'_>,
    plan: &TablePlan,
    sides: &Sides<'_>,
) -> Result<()> {
    let key = catalog::primary_key(conns.target(), &sides.target, &plan.table).await?;
    let checkable = !key.is_empty()
        && key
            .iter()
            .all(|(c, _)| c != TENANT_COLUMN && plan.columns.contains(c));
    if !checkable {
        return Ok(());
    }
    let literal = sides.literal();
    let target = qualified(&sides.target, &plan.table);
    let source = qualified(&sides.source, &plan.table);
    let others = format!("{} <> {literal}", quote_ident(TENANT_COLUMN));
    let what = || {
        format!(
            "checking the keys of {} at {}",
            plan.table, sides.target_location
        )
    };
    let names: Vec<String> = key.iter().map(|(c, _)| quote_ident(c)).collect();
    let row = |alias: &str| {
        let cols: Vec<String> = names.iter().map(|c| format!("{alias}.{c}")).collect();
        format!("ROW({})::text", cols.join(", "))
    };
    // A key as text: `7` for one column, `(7,eu)` for several.
    let single = key.len() == 1;
    let text = |alias: &str| {
        if single {
            format!("{alias}.{}::text", names[0])
        } else {
            row(alias)
        }
    };
    let used: Option<String> = match conns {
        Conns::One(conn) => {
            let sql = format!(
                "SELECT {} FROM {target} t WHERE t.{others} AND ({}) IN \
                 (SELECT {} FROM {source} s{}) ORDER BY 1 LIMIT 1",
                text("t"),
                names
                    .iter()
                    .map(|c| format!("t.{c}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                names
                    .iter()
                    .map(|c| format!("s.{c}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                scope_in("s", plan.source_scoped, &literal)
            );
            sqlx::query_scalar(AssertSqlSafe(sql))
                .fetch_optional(&mut **conn)
                .await
                .map_err(|e| db_error(COMPONENT, what(), e))?
        }
        Conns::Two {
            source: from,
            target: to,
        } => {
            let shared = format!("SELECT EXISTS (SELECT 1 FROM {target} WHERE {others})");
            let shared: bool = sqlx::query_scalar(AssertSqlSafe(shared))
                .fetch_one(&mut **to)
                .await
                .map_err(|e| db_error(COMPONENT, what(), e))?;
            if !shared {
                return Ok(());
            }
            let keys = format!(
                "SELECT {} FROM {source} s{}",
                text("s"),
                scope_in("s", plan.source_scoped, &literal)
            );
            let keys: Vec<String> = sqlx::query_scalar(AssertSqlSafe(keys))
                .fetch_all(&mut **from)
                .await
                .map_err(|e| db_error(COMPONENT, what(), e))?;
            if keys.is_empty() {
                return Ok(());
            }
            // One column: compared as its own type, so its index serves.
            let matches = if single {
                format!("t.{} = ANY ($1::text[]::{}[])", names[0], key[0].1)
            } else {
                format!("{} = ANY ($1::text[])", row("t"))
            };
            let sql = format!(
                "SELECT {} FROM {target} t WHERE t.{others} AND {matches} ORDER BY 1 LIMIT 1",
                text("t")
            );
            sqlx::query_scalar(AssertSqlSafe(sql))
                .bind(keys)
                .fetch_optional(&mut **to)
                .await
                .map_err(|e| db_error(COMPONENT, what(), e))?
        }
    };
    match used {
        None => Ok(()),
        Some(key) => Err(Error::Conflict {
            kind: Entity::Table,
            id: plan.table.clone(),
            reason: format!(
                "tenant {}'s row with key {key} cannot be copied to {}: another tenant uses \
                 that key there (row ids in a shared database are not per tenant); nothing \
                 was copied",
                sides.tenant, sides.target_location
            ),
        }),
    }
}

/// Moves `sequence` past the largest `column` now in the target table, so
/// that new rows do not collide with copied ones; never moves it back.
pub(super) async fn advance(
    conn: &mut PgConnection,
    plan: &TablePlan,
    column: &str,
    sequence: &str,
    sides: &Sides<'_>,
) -> Result<()> {
    // `sequence` is PostgreSQL's own text (pg_get_serial_sequence), quoted
    // as it needs.
    let sql = format!(
        "SELECT setval(s.seq, x.m, true) \
         FROM (SELECT max({})::bigint AS m FROM {}) x, \
              (SELECT {}::regclass AS seq, last_value, is_called FROM {sequence}) s \
         WHERE x.m IS NOT NULL AND (x.m > s.last_value OR (x.m = s.last_value AND NOT s.is_called))",
        quote_ident(column),
        qualified(&sides.target, &plan.table),
        quote_literal(sequence)
    );
    exec(conn, sql, || {
        format!("advancing {sequence} at {}", sides.target_location)
    })
    .await
    .map(|_| ())
}
