//! Drift: how a tenant database differs from what its release should have,
//! found by reading catalogs (tables, columns, indexes) and ledgers, never
//! data; and which differences are safe to repair mechanically.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::TenantId;

/// A kind of difference between a database and its release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DriftKind {
    /// A table the release creates is not there.
    MissingTable,
    /// A table the release does not create is there.
    ExtraTable,
    /// A column the release creates is not there.
    MissingColumn,
    /// A column the release does not create is there.
    ExtraColumn,
    /// A column's type, nullability, default or key differs.
    TypeMismatch,
    /// An index the release creates is not there.
    MissingIndex,
    /// An index the release does not create is there.
    ExtraIndex,
    /// An index's definition differs.
    IndexMismatch,
    /// A migration of the release has no ledger row: its change is either
    /// there (the row is missing) or not (the migration never ran).
    LedgerMissing,
    /// A ledger row for a migration the release does not have.
    LedgerExtra,
    /// A ledger row whose checksum differs from the migration's, or that is
    /// marked failed.
    LedgerMismatch,
    /// A seed of the release has no ledger row for the tenant.
    SeedMissing,
}

impl DriftKind {
    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::MissingTable => "missing_table",
            DriftKind::ExtraTable => "extra_table",
            DriftKind::MissingColumn => "missing_column",
            DriftKind::ExtraColumn => "extra_column",
            DriftKind::TypeMismatch => "type_mismatch",
            DriftKind::MissingIndex => "missing_index",
            DriftKind::ExtraIndex => "extra_index",
            DriftKind::IndexMismatch => "index_mismatch",
            DriftKind::LedgerMissing => "ledger_missing",
            DriftKind::LedgerExtra => "ledger_extra",
            DriftKind::LedgerMismatch => "ledger_mismatch",
            DriftKind::SeedMissing => "seed_missing",
        }
    }
}

impl fmt::Display for DriftKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The mechanical fix of a difference, when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
#[non_exhaustive]
pub enum Repair {
    /// Apply migration `version` with its ledger row: its row is missing
    /// and none of its change is there.
    ApplyMigration {
        /// The migration.
        version: i64,
    },
    /// Record the ledger row of migration `version`: its change is there,
    /// identical to what the migration makes, and only the row is missing.
    RecordMigration {
        /// The migration.
        version: i64,
    },
    /// Run the missing seeds of `tenant`.
    RunSeeds {
        /// The tenant whose seeds are missing.
        tenant: TenantId,
    },
}

impl fmt::Display for Repair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Repair::ApplyMigration { version } => write!(f, "apply migration {version}"),
            Repair::RecordMigration { version } => {
                write!(f, "record the ledger row of migration {version}")
            }
            Repair::RunSeeds { tenant } => write!(f, "run the missing seeds of {tenant}"),
        }
    }
}

/// One difference between a database and its release.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Drift {
    /// Its kind.
    pub kind: DriftKind,
    /// What differs: `table`, `table.column`, an index's name, `migration 11`,
    /// `seed workload-seed@1`.
    pub object: String,
    /// What the release has, when it has it.
    pub expected: Option<String>,
    /// What the database has, when it has it.
    pub found: Option<String>,
    /// Its mechanical fix; `None`: it needs a person.
    pub repair: Option<Repair>,
}

impl Drift {
    /// A difference of `kind` on `object`, needing a person until
    /// [`with_repair`](Self::with_repair) says otherwise.
    pub fn new(
        kind: DriftKind,
        object: impl Into<String>,
        expected: Option<String>,
        found: Option<String>,
    ) -> Self {
        Drift {
            kind,
            object: object.into(),
            expected,
            found,
            repair: None,
        }
    }

    /// The same difference, fixed by `repair`.
    #[must_use]
    pub fn with_repair(mut self, repair: Repair) -> Self {
        self.repair = Some(repair);
        self
    }
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.object)?;
        match (&self.expected, &self.found) {
            (Some(e), Some(found)) => write!(f, " (expected {e}, found {found})")?,
            (Some(e), None) => write!(f, " (expected {e})")?,
            (None, Some(found)) => write!(f, " (found {found})")?,
            (None, None) => {}
        }
        match &self.repair {
            Some(repair) => write!(f, "; repair: {repair}"),
            None => f.write_str("; needs a person"),
        }
    }
}
