//! What copying a tenant's data between two databases means, written once
//! for both backends: which tables, which columns, how rows are scoped to the
//! tenant, and the checksum a move verifies. The backends hold only the SQL.
//!
//! The rules:
//! - **Tables**: from a shared source, the shared schema's declared tenant
//!   tables (parents first), else the dedicated schema's; from a dedicated
//!   source, the dedicated schema's; else the source database's own tables
//!   in creation order. Then the seed ledger, so the target counts as seeded.
//! - **Refusals**, before anything is written: a source column the target
//!   lacks (its values would be lost), and a table without `tenant_id` in a
//!   database several tenants share (read whole, or cleared for everyone).
//!   Internal tables (sqlx's migration ledger, the ownership marker) never move.
//! - **Columns**: those both sides have, `tenant_id` aside. A source table
//!   with a `tenant_id` column gives only the tenant's rows; a target table
//!   with one gets the tenant's id written into it. So shared to dedicated
//!   drops the column and dedicated to shared fills it.
//! - **Replace, never merge**: the tenant's rows at the target are deleted
//!   (children first) before the copy, so a retried or resumed copy is exact.
//! - **The seed ledger** says what the target's schema would have run: a
//!   copied row's checksum becomes that of the target schema's seed of the
//!   same name and version (a shared seed copied into a dedicated database
//!   counts as the dedicated seed applied), so a later `seed` or dry run does
//!   not mistake it for a changed seed; the comparison leaves that column out.
//! - **Checksums**: SHA-256 over the rows' text, in a canonical order (the
//!   common columns sorted by name, rows sorted by their text), with the row
//!   count: the same rows give the same checksum on either side.

use sha2::{Digest, Sha256};

use provisioning_core::{Error, Result};

use crate::schema::{SEED_LEDGER_TABLE, Schemas, TenantSchema};

/// The column that scopes a row to its tenant in a shared database.
pub(crate) const TENANT_COLUMN: &str = "tenant_id";

/// Tables that belong to the database, not to a tenant: never copied.
pub(crate) const INTERNAL_TABLES: &[&str] = &["_sqlx_migrations", "_tenant_owner"];

/// How one table is copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TablePlan {
    /// The table.
    pub(crate) table: String,
    /// The columns copied and compared: both sides have them, `tenant_id`
    /// aside; sorted by name.
    pub(crate) columns: Vec<String>,
    /// The source table has `tenant_id`: select only the tenant's rows.
    pub(crate) source_scoped: bool,
    /// The target table has `tenant_id`: write the tenant's id into it,
    /// and clear only the tenant's rows.
    pub(crate) target_scoped: bool,
    /// Source columns the target lacks, `tenant_id` aside: their values
    /// would be lost, so [`check`](Self::check) refuses the copy.
    pub(crate) dropped: Vec<String>,
}

impl TablePlan {
    /// The plan for `table` given each side's columns.
    pub(crate) fn new(table: &str, source: &[String], target: &[String]) -> Self {
        let mut columns: Vec<String> = source
            .iter()
            .filter(|c| c.as_str() != TENANT_COLUMN && target.contains(c))
            .cloned()
            .collect();
        columns.sort();
        columns.dedup();
        let dropped = source
            .iter()
            .filter(|c| c.as_str() != TENANT_COLUMN && !target.contains(c))
            .cloned()
            .collect();
        TablePlan {
            table: table.to_owned(),
            columns,
            source_scoped: source.iter().any(|c| c == TENANT_COLUMN),
            target_scoped: target.iter().any(|c| c == TENANT_COLUMN),
            dropped,
        }
    }

    /// Refuses a copy that would lose or leak rows: a source column the
    /// target lacks (its values would be dropped), or a table without
    /// `tenant_id` in a database whose rows several tenants share (`*_shares_rows`):
    /// read there it would take other tenants' rows, cleared there it would
    /// wipe them.
    pub(crate) fn check(&self, source_shares_rows: bool, target_shares_rows: bool) -> Result<()> {
        let refuse = |rule: String| Err(Error::invalid("move", rule));
        if !self.dropped.is_empty() {
            return refuse(format!(
                "table {} has columns {} at the source but not at the target: their values \
                 would be lost (migrate the target's schema first)",
                self.table,
                self.dropped.join(", ")
            ));
        }
        for (shares, scoped, side) in [
            (source_shares_rows, self.source_scoped, "source"),
            (target_shares_rows, self.target_scoped, "target"),
        ] {
            if shares && !scoped {
                return refuse(format!(
                    "table {} has no {TENANT_COLUMN} column, but the {side} database is shared \
                     by several tenants: its rows are not the tenant's alone to copy or clear",
                    self.table
                ));
            }
        }
        Ok(())
    }
}

impl TablePlan {
    /// The columns compared: those copied, except the seed ledger's
    /// `checksum`, which the copy rewrites (see the module docs).
    pub(crate) fn compared(&self) -> Vec<String> {
        self.columns
            .iter()
            .filter(|c| !(self.table == SEED_LEDGER_TABLE && c.as_str() == LEDGER_CHECKSUM))
            .cloned()
            .collect()
    }
}

/// The seed ledger's checksum column.
pub(crate) const LEDGER_CHECKSUM: &str = "checksum";

/// `(name, version, checksum)` of each seed of `schema`: what the copied
/// ledger rows of those seeds are set to at the target.
pub(crate) fn seed_checksums<C>(schema: &TenantSchema<C>) -> Vec<(String, i64, String)> {
    schema
        .seeds()
        .iter()
        .map(|s| (s.name().to_owned(), s.version(), s.checksum().to_owned()))
        .collect()
}

/// The tables to copy when the schemas declare them (see the module docs),
/// the seed ledger last; `None` when the source's rows must be listed from
/// the source database itself. A source whose rows several tenants share
/// (`source_shares_rows`) takes the shared schema's declared tables, else the
/// dedicated one's; a dedicated source only its own schema's, since every
/// table of its database is the tenant's.
pub(crate) fn declared_tables<C>(
    schemas: &Schemas<C>,
    source_shares_rows: bool,
) -> Option<Vec<String>> {
    let candidates = if source_shares_rows {
        [schemas.shared.as_ref(), schemas.dedicated.as_ref()]
    } else {
        [schemas.dedicated.as_ref(), None]
    };
    let declared = candidates
        .into_iter()
        .flatten()
        .map(|s| s.tables())
        .find(|t| !t.is_empty())?;
    Some(with_ledger(declared.to_vec()))
}

/// `tables` without internal ones, with the seed ledger last.
pub(crate) fn with_ledger(mut tables: Vec<String>) -> Vec<String> {
    tables.retain(|t| !INTERNAL_TABLES.contains(&t.as_str()) && t != SEED_LEDGER_TABLE);
    tables.push(SEED_LEDGER_TABLE.to_owned());
    tables
}

/// The row count and checksum of one side of a table, fed one row's text
/// at a time in the canonical order.
#[derive(Default)]
pub(crate) struct RowDigest {
    hasher: Sha256,
    rows: u64,
}

impl RowDigest {
    /// Adds one row, given as its text (the backends aggregate on the
    /// server and use [`of_joined`](Self::of_joined); this is its model).
    #[cfg(test)]
    pub(crate) fn push(&mut self, row: &str) {
        self.hasher.update(row.as_bytes());
        self.hasher.update(b"\n");
        self.rows += 1;
    }

    /// The count and checksum of `rows` rows given as their texts joined
    /// with `\n`, in order: the same as pushing each, for a backend that
    /// aggregates the rows itself (one value to fetch instead of a row each).
    pub(crate) fn of_joined(rows: u64, joined: &str) -> (u64, String) {
        let mut digest = RowDigest::default();
        if rows > 0 {
            digest.hasher.update(joined.as_bytes());
            digest.hasher.update(b"\n");
        }
        digest.rows = rows;
        digest.finish()
    }

    /// The count and the hex checksum.
    pub(crate) fn finish(self) -> (u64, String) {
        (self.rows, crate::schema::sql::hex(&self.hasher.finalize()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn shared_to_dedicated_drops_the_tenant_column_and_keeps_common_ones() {
        let plan = TablePlan::new(
            "users",
            &cols(&["id", "tenant_id", "email"]),
            &cols(&["email", "id"]),
        );
        assert_eq!(plan.columns, cols(&["email", "id"]));
        assert!(plan.source_scoped && !plan.target_scoped);
        assert!(plan.check(true, false).is_ok());
        let back = TablePlan::new(
            "users",
            &cols(&["email", "id"]),
            &cols(&["tenant_id", "id", "email"]),
        );
        assert!(!back.source_scoped && back.target_scoped);
        assert!(back.check(false, true).is_ok());
    }

    fn refusal(plan: &TablePlan, source_shares: bool, target_shares: bool) -> String {
        match plan.check(source_shares, target_shares) {
            Err(Error::InvalidInput { field, rule }) => {
                assert_eq!(field, "move");
                rule
            }
            other => panic!("{plan:?} was accepted: {other:?}"),
        }
    }

    #[test]
    fn a_column_the_target_lacks_is_refused_not_dropped() {
        let plan = TablePlan::new(
            "users",
            &cols(&["id", "tenant_id", "email", "last_login_at"]),
            &cols(&["email", "id"]),
        );
        assert_eq!(plan.dropped, cols(&["last_login_at"]));
        let rule = refusal(&plan, true, false);
        assert!(
            rule.contains("users") && rule.contains("last_login_at"),
            "{rule}"
        );
    }

    #[test]
    fn an_unscoped_table_in_a_shared_database_is_refused_on_either_side() {
        let plan = TablePlan::new("countries", &cols(&["code"]), &cols(&["code"]));
        assert!(plan.check(false, false).is_ok());
        assert!(refusal(&plan, false, true).contains("target database is shared"));
        assert!(refusal(&plan, true, false).contains("source database is shared"));
    }

    #[test]
    fn the_ledger_goes_last_and_internal_tables_never() {
        let tables = with_ledger(cols(&[
            "_sqlx_migrations",
            "roles",
            "_tenant_seeds",
            "users",
            "_tenant_owner",
        ]));
        assert_eq!(tables, cols(&["roles", "users", "_tenant_seeds"]));
    }

    #[test]
    fn digests_depend_on_rows_and_order_given() {
        let digest = |rows: &[&str]| {
            let mut d = RowDigest::default();
            rows.iter().for_each(|r| d.push(r));
            d.finish()
        };
        assert_eq!(digest(&["a", "b"]), digest(&["a", "b"]));
        assert_ne!(digest(&["a", "b"]).1, digest(&["a", "c"]).1);
        assert_eq!(digest(&[]).0, 0);
        assert_eq!(RowDigest::of_joined(2, "a\nb"), digest(&["a", "b"]));
        assert_eq!(RowDigest::of_joined(0, ""), digest(&[]));
    }
}
