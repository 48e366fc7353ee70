//! Drift checks shared by the backends: a database's [`Shape`] (its tables,
//! columns and indexes as text, read from the catalog), what the release
//! makes ([`Expected`]: the shape after each migration, from a scratch
//! database migrated from nothing), and the comparison of the two with the
//! ledgers ([`compare`]).
//!
//! A migration whose ledger row is missing is judged by its change: the
//! objects whose shape it changes (between the shape before and after it).
//! All of them as it leaves them: only the row is missing (record it). All
//! of them as before it: it never ran (apply it). Anything else, or a
//! migration that changes no shape (data only), needs a person.

use std::collections::{BTreeMap, BTreeSet};

use provisioning_core::{
    Drift, DriftKind, Error, Isolation, Placement, Repair, Result, TenantId, TenantSchemaManager,
};
use sqlx::migrate::{Migration, Migrator};

use crate::schema::conn::{SchemaConn, read_ledger};
use crate::schema::migrate::up_migrations;
use crate::schema::{SEED_LEDGER_TABLE, TenantSchema};

/// Objects of a database by key (`table T`, `column T.C`, `index I`), each
/// with its definition as text (empty for a table: its columns say it).
pub(crate) type Shape = BTreeMap<String, String>;

pub(crate) fn table_key(table: &str) -> String {
    format!("table {table}")
}

pub(crate) fn column_key(table: &str, column: &str) -> String {
    format!("column {table}.{column}")
}

pub(crate) fn index_key(index: &str) -> String {
    format!("index {index}")
}

/// What each schema of a manager makes, computed on the first check.
#[derive(Default)]
pub(crate) struct ExpectedShapes {
    pub(crate) dedicated: tokio::sync::OnceCell<Expected>,
    pub(crate) shared: tokio::sync::OnceCell<Expected>,
}

/// One row of a migration ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MigrationRow {
    pub(crate) version: i64,
    pub(crate) checksum: Vec<u8>,
    pub(crate) success: bool,
}

/// What a database has.
#[derive(Debug, Clone, Default)]
pub(crate) struct Found {
    pub(crate) shape: Shape,
    pub(crate) ledger: Vec<MigrationRow>,
    /// Per tenant checked, the seeds (name, version) in its ledger.
    pub(crate) seeds: Vec<(TenantId, Vec<(String, i64)>)>,
}

/// What a release makes.
#[derive(Debug, Clone)]
pub(crate) struct Expected {
    /// The shape after 0, 1, ... n migrations.
    pub(crate) steps: Vec<Shape>,
    /// The migrations: version and checksum, in order.
    pub(crate) migrations: Vec<(i64, Vec<u8>)>,
    /// The seeds: name and version.
    pub(crate) seeds: Vec<(String, i64)>,
}

impl Expected {
    /// The expectation of `schema`: its up migrations, whose shapes after
    /// each (`steps`, the first before any) the backend read, and its seeds.
    pub(crate) fn new<C>(schema: &TenantSchema<C>, steps: Vec<Shape>) -> Self {
        Expected {
            steps,
            migrations: up_migrations(schema.migrator())
                .map(|m| (m.version, m.checksum.to_vec()))
                .collect(),
            seeds: schema
                .seeds()
                .iter()
                .map(|s| (s.name().to_owned(), s.version()))
                .collect(),
        }
    }
}

impl ExpectedShapes {
    /// The cell of `isolation`'s schema.
    pub(crate) fn of(&self, isolation: Isolation) -> &tokio::sync::OnceCell<Expected> {
        match isolation {
            Isolation::Dedicated => &self.dedicated,
            Isolation::Shared => &self.shared,
        }
    }
}

fn short(checksum: &[u8]) -> String {
    checksum
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The keys whose definition differs between `before` and `after`.
fn delta(before: &Shape, after: &Shape) -> BTreeSet<String> {
    before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .cloned()
        .collect()
}

/// Every difference between `found` and `expected`, each with its repair
/// when it is mechanical.
pub(crate) fn compare(expected: &Expected, found: &Found) -> Vec<Drift> {
    let mut drifts = Vec::new();
    // Objects a migration that did not run accounts for: not reported again
    // as missing tables or columns.
    let mut explained: BTreeSet<String> = BTreeSet::new();
    let ledger: BTreeMap<i64, &MigrationRow> =
        found.ledger.iter().map(|r| (r.version, r)).collect();
    for (k, (version, checksum)) in expected.migrations.iter().enumerate() {
        let object = format!("migration {version}");
        match ledger.get(version) {
            Some(row) if !row.success => drifts.push(Drift::new(
                DriftKind::LedgerMismatch,
                object,
                Some("applied".into()),
                Some("marked failed".into()),
            )),
            Some(row) if row.checksum != *checksum => drifts.push(Drift::new(
                DriftKind::LedgerMismatch,
                object,
                Some(format!("checksum {}", short(checksum))),
                Some(format!("checksum {}", short(&row.checksum))),
            )),
            Some(_) => {}
            None => {
                let (before, after) = (&expected.steps[k], &expected.steps[k + 1]);
                let change = delta(before, after);
                let is = |shape: &Shape| {
                    change
                        .iter()
                        .all(|key| found.shape.get(key) == shape.get(key))
                };
                let missing = |found: &str| {
                    Drift::new(
                        DriftKind::LedgerMissing,
                        object.clone(),
                        Some("a ledger row".into()),
                        Some(found.to_owned()),
                    )
                };
                // A later migration that ran (its row is there) and changed
                // the same objects makes the database's state say nothing
                // about this one: applying it now could undo that one's work.
                let overlapped = (k + 1..expected.migrations.len()).any(|j| {
                    ledger.contains_key(&expected.migrations[j].0)
                        && !delta(&expected.steps[j], &expected.steps[j + 1]).is_disjoint(&change)
                });
                if change.is_empty() {
                    drifts.push(missing(
                        "no row; it changes no table, so whether it ran cannot be read",
                    ));
                } else if overlapped {
                    drifts.push(missing(
                        "no row; a later migration that ran changed the same objects, \
                         so whether this one ran cannot be read",
                    ));
                    explained.extend(change);
                } else if is(after) {
                    drifts.push(
                        missing("its change, without the row")
                            .with_repair(Repair::RecordMigration { version: *version }),
                    );
                } else if is(before) {
                    drifts.push(
                        missing("neither the row nor its change")
                            .with_repair(Repair::ApplyMigration { version: *version }),
                    );
                    explained.extend(change);
                } else {
                    drifts.push(missing("part of its change, without the row"));
                    explained.extend(change);
                }
            }
        }
    }
    let known: BTreeSet<i64> = expected.migrations.iter().map(|(v, _)| *v).collect();
    for row in &found.ledger {
        if !known.contains(&row.version) {
            drifts.push(Drift::new(
                DriftKind::LedgerExtra,
                format!("migration {}", row.version),
                None,
                Some("a ledger row the release does not have".into()),
            ));
        }
    }
    drifts.extend(shape_drift(
        expected.steps.last().map_or(&Shape::new(), |s| s),
        &found.shape,
        &explained,
    ));
    // Seeds run against the release's schema: mechanical only once nothing
    // else is left but what its repairs fix.
    let schema_sound = drifts.iter().all(|d| {
        matches!(
            d.repair,
            Some(Repair::ApplyMigration { .. } | Repair::RecordMigration { .. })
        )
    });
    for (tenant, seeds) in &found.seeds {
        for (name, version) in &expected.seeds {
            if !seeds.iter().any(|(n, v)| n == name && v == version) {
                let drift = Drift::new(
                    DriftKind::SeedMissing,
                    format!("seed {name}@{version} of {tenant}"),
                    Some("a seed ledger row".into()),
                    None,
                );
                drifts.push(if schema_sound {
                    drift.with_repair(Repair::RunSeeds {
                        tenant: tenant.clone(),
                    })
                } else {
                    drift
                });
            }
        }
    }
    drifts
}

/// The structural differences, leaving out `explained` keys and the
/// columns of tables missing or extra as a whole.
fn shape_drift(expected: &Shape, found: &Shape, explained: &BTreeSet<String>) -> Vec<Drift> {
    let whole_tables: BTreeSet<&str> = expected
        .keys()
        .chain(found.keys())
        .filter_map(|k| k.strip_prefix("table "))
        .filter(|t| {
            let key = table_key(t);
            expected.contains_key(&key) != found.contains_key(&key)
        })
        .collect();
    let mut drifts = Vec::new();
    let keys: BTreeSet<&String> = expected.keys().chain(found.keys()).collect();
    for key in keys {
        if explained.contains(key) {
            continue;
        }
        let (e, f) = (expected.get(key), found.get(key));
        if e == f {
            continue;
        }
        let (kind_word, name) = key.split_once(' ').unwrap_or(("", key));
        if kind_word == "column"
            && let Some((table, _)) = name.split_once('.')
            && whole_tables.contains(table)
        {
            continue;
        }
        let kind = match (kind_word, e.is_some(), f.is_some()) {
            ("table", true, false) => DriftKind::MissingTable,
            ("table", false, true) => DriftKind::ExtraTable,
            ("column", true, false) => DriftKind::MissingColumn,
            ("column", false, true) => DriftKind::ExtraColumn,
            ("column", _, _) => DriftKind::TypeMismatch,
            ("index", true, false) => DriftKind::MissingIndex,
            ("index", false, true) => DriftKind::ExtraIndex,
            _ => DriftKind::IndexMismatch,
        };
        let text = |d: Option<&String>| d.filter(|d| !d.is_empty()).cloned();
        drifts.push(Drift::new(kind, name, text(e), text(f)));
    }
    drifts
}

/// The seeds (name, version) in the ledger of each of `tenants`.
pub(crate) async fn seeds_of<C: SchemaConn>(
    conn: &mut C,
    tenants: &[TenantId],
) -> Result<Vec<(TenantId, Vec<(String, i64)>)>> {
    let has_ledger = conn.table_exists(SEED_LEDGER_TABLE).await?;
    let mut seeds = Vec::new();
    for tenant in tenants {
        let rows = if has_ledger {
            read_ledger(conn, tenant).await?
        } else {
            Vec::new()
        };
        let rows = rows.into_iter().map(|(name, version, _)| (name, version));
        seeds.push((tenant.clone(), rows.collect()));
    }
    Ok(seeds)
}

/// Repairs as a backend runs them: the migrations to apply (`true`) or
/// only record, in order, each with its repair; and the tenants whose
/// seeds to run.
pub(crate) struct RepairPlan<'m> {
    pub(crate) migrations: Vec<(&'m Migration, bool, Repair)>,
    pub(crate) seeds: Vec<TenantId>,
}

impl<'m> RepairPlan<'m> {
    /// The plan of `repairs` against `migrator`'s up migrations.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `repair` for a migration the release does
    /// not have, or a repair this SDK does not know.
    pub(crate) fn new(migrator: &'m Migrator, repairs: &[Repair]) -> Result<Self> {
        let mut plan = RepairPlan {
            migrations: Vec::new(),
            seeds: Vec::new(),
        };
        for repair in repairs {
            let (version, apply) = match repair {
                Repair::ApplyMigration { version } => (*version, true),
                Repair::RecordMigration { version } => (*version, false),
                Repair::RunSeeds { tenant } => {
                    plan.seeds.push(tenant.clone());
                    continue;
                }
                other => {
                    return Err(Error::invalid(
                        "repair",
                        format!("this manager cannot {other}"),
                    ));
                }
            };
            let migration = up_migrations(migrator)
                .find(|m| m.version == version)
                .ok_or_else(|| {
                    Error::invalid("repair", format!("the release has no migration {version}"))
                })?;
            plan.migrations.push((migration, apply, repair.clone()));
        }
        Ok(plan)
    }

    /// Runs the seeds of the plan's tenants through `manager`'s own
    /// `seed` (which takes the database's lock itself); returns the repairs
    /// that ran a seed.
    pub(crate) async fn run_seeds<M>(
        &self,
        manager: &M,
        placement: &Placement,
    ) -> Result<Vec<Repair>>
    where
        M: TenantSchemaManager + ?Sized,
    {
        let mut done = Vec::new();
        for tenant in &self.seeds {
            let mut theirs = placement.clone();
            theirs.tenant_id = tenant.clone();
            if !manager.seed(&theirs).await?.is_empty() {
                done.push(Repair::RunSeeds {
                    tenant: tenant.clone(),
                });
            }
        }
        Ok(done)
    }
}

/// Collapses runs of whitespace to one space, so that definitions compare
/// by their words.
pub(crate) fn normalize(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn shape(items: &[(&str, &str)]) -> Shape {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn expected() -> Expected {
        Expected {
            steps: vec![
                Shape::new(),
                shape(&[("table t", ""), ("column t.a", "INTEGER")]),
                shape(&[
                    ("table t", ""),
                    ("column t.a", "INTEGER"),
                    ("column t.b", "TEXT"),
                ]),
            ],
            migrations: vec![(1, vec![1]), (2, vec![2])],
            seeds: vec![("base".into(), 1)],
        }
    }

    fn row(version: i64, checksum: u8) -> MigrationRow {
        MigrationRow {
            version,
            checksum: vec![checksum],
            success: true,
        }
    }

    fn kinds(drifts: &[Drift]) -> Vec<(DriftKind, String, Option<Repair>)> {
        drifts
            .iter()
            .map(|d| (d.kind, d.object.clone(), d.repair.clone()))
            .collect()
    }

    #[test]
    fn a_database_at_the_release_is_clean() {
        let tenant: TenantId = "acme".parse().unwrap();
        let found = Found {
            shape: expected().steps[2].clone(),
            ledger: vec![row(1, 1), row(2, 2)],
            seeds: vec![(tenant, vec![("base".into(), 1)])],
        };
        assert_eq!(compare(&expected(), &found), vec![]);
    }

    #[test]
    fn a_missing_row_is_recorded_or_applied_by_what_the_database_has() {
        let present = Found {
            shape: expected().steps[2].clone(),
            ledger: vec![row(1, 1)],
            seeds: vec![],
        };
        assert_eq!(
            kinds(&compare(&expected(), &present)),
            [(
                DriftKind::LedgerMissing,
                "migration 2".into(),
                Some(Repair::RecordMigration { version: 2 })
            )]
        );
        let absent = Found {
            shape: expected().steps[1].clone(),
            ledger: vec![row(1, 1)],
            seeds: vec![],
        };
        assert_eq!(
            kinds(&compare(&expected(), &absent)),
            [(
                DriftKind::LedgerMissing,
                "migration 2".into(),
                Some(Repair::ApplyMigration { version: 2 })
            )],
            "the missing column is the pending migration's, not reported again"
        );
    }

    #[test]
    fn a_missing_row_whose_objects_a_later_migration_changed_needs_a_person() {
        // 1 creates t.a, 2 adds t.b, 3 drops t.b again.
        let mut e = expected();
        e.steps.push(e.steps[1].clone());
        e.migrations.push((3, vec![3]));
        let found = Found {
            shape: e.steps[3].clone(),
            ledger: vec![row(1, 1), row(3, 3)],
            seeds: vec![],
        };
        let drifts = compare(&e, &found);
        assert_eq!(
            kinds(&drifts),
            [(DriftKind::LedgerMissing, "migration 2".into(), None)],
            "applying 2 would bring back what 3 dropped"
        );
    }

    #[test]
    fn tampered_shapes_and_ledgers_are_named_and_need_a_person() {
        let tenant: TenantId = "acme".parse().unwrap();
        let mut shape = expected().steps[2].clone();
        shape.remove("column t.b");
        shape.insert("column t.a".into(), "TEXT".into());
        shape.insert("table x".into(), String::new());
        shape.insert("column x.id".into(), "INTEGER".into());
        shape.insert("index t_a".into(), "CREATE INDEX t_a ON t (a)".into());
        let found = Found {
            shape,
            ledger: vec![row(1, 9), row(2, 2), row(3, 3)],
            seeds: vec![(tenant, vec![])],
        };
        let drifts = compare(&expected(), &found);
        let summary: Vec<(DriftKind, &str, bool)> = drifts
            .iter()
            .map(|d| (d.kind, d.object.as_str(), d.repair.is_some()))
            .collect();
        assert_eq!(
            summary,
            [
                (DriftKind::LedgerMismatch, "migration 1", false),
                (DriftKind::LedgerExtra, "migration 3", false),
                (DriftKind::TypeMismatch, "t.a", false),
                (DriftKind::MissingColumn, "t.b", false),
                (DriftKind::ExtraIndex, "t_a", false),
                (DriftKind::ExtraTable, "x", false),
                (DriftKind::SeedMissing, "seed base@1 of acme", false),
            ]
        );
        assert_eq!(drifts[2].expected.as_deref(), Some("INTEGER"));
        assert_eq!(drifts[2].found.as_deref(), Some("TEXT"));
    }
}
