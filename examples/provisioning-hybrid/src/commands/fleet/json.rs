//! (4) The JSON documents of `fleet status` and `drift` (and of their HTTP
//! endpoints, and `migrate-all`'s databases), as types: what they print is
//! what the OpenAPI document describes, both derived from these fields.

use provisioning_core::{
    DriftKind, DriftReport, FleetStatus, Isolation, Rollout, RolloutCounts, RolloutUnit, TenantId,
    UnitStatus,
};
use serde::Serialize;
use utoipa::ToSchema;

/// The last fleet roll-out: `{"rollout": null}` before the first, its
/// record, counts, failed and skipped databases and workers after.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FleetStatusView {
    /// The roll-out; `null` before the first, and then nothing else is there.
    #[schema(required)]
    rollout: Option<Rollout>,
    /// How many databases are in each status.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    counts: Option<RolloutCounts>,
    /// The databases that failed, with their errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    failures: Option<Vec<UnitView>>,
    /// The databases left alone, with why.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    skipped: Option<Vec<UnitView>>,
    /// The processes holding leases on its running databases.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    workers: Option<Vec<String>>,
}

impl FleetStatusView {
    /// The view of `status`, the last roll-out if there is one.
    pub(crate) fn new(status: Option<&FleetStatus>) -> Self {
        match status {
            None => FleetStatusView {
                rollout: None,
                counts: None,
                failures: None,
                skipped: None,
                workers: None,
            },
            Some(s) => FleetStatusView {
                rollout: Some(s.rollout.clone()),
                counts: Some(s.counts),
                failures: Some(s.failures.iter().map(UnitView::new).collect()),
                skipped: Some(s.skipped.iter().map(UnitView::new).collect()),
                workers: Some(s.workers.clone()),
            },
        }
    }
}

/// One database of a roll-out and where it stands.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UnitView {
    /// The database: the tenant id when dedicated, `shared:{region}/{shard}`.
    database: String,
    /// The tenants whose data it holds.
    tenants: Vec<TenantId>,
    /// Shared or dedicated.
    isolation: Isolation,
    /// 0 for the canary wave, 1 for the rest.
    wave: u32,
    /// Where it stands.
    status: UnitStatus,
    /// The versions of the migrations applied to it.
    applied: Vec<i64>,
    /// The names of the seeds applied to it.
    seeded: Vec<String>,
    /// The error, when it failed.
    #[schema(required)]
    error: Option<String>,
    /// Why it was skipped, or a remark on its run.
    #[schema(required)]
    note: Option<String>,
    /// How many times it was handed out.
    attempts: u32,
    /// The process holding (or that last held) its lease.
    #[schema(required)]
    worker: Option<String>,
    /// Its outcome in words (`up to date`, `applied 11,12`, `FAILED: ...`).
    outcome: String,
}

impl UnitView {
    /// The view of `unit`.
    pub(crate) fn new(unit: &RolloutUnit) -> Self {
        let failed = unit.status == UnitStatus::Failed;
        UnitView {
            database: unit.key.clone(),
            tenants: unit.tenants.clone(),
            isolation: unit.placement.isolation,
            wave: unit.wave,
            status: unit.status,
            applied: unit.applied.iter().map(|m| m.version).collect(),
            seeded: unit.seeded.iter().map(|s| s.name.clone()).collect(),
            error: if failed { unit.note.clone() } else { None },
            note: if failed { None } else { unit.note.clone() },
            attempts: unit.attempts,
            worker: unit.worker.clone(),
            outcome: super::outcome(unit),
        }
    }
}

/// Every checked database compared with the release, per tenant.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DriftView {
    /// The release compared with; `null` when the schema manager names none.
    #[schema(required)]
    release: Option<String>,
    /// Whether every database matches it.
    clean: bool,
    /// How many databases were checked.
    databases: usize,
    /// How many differ (or could not be checked).
    drifted: usize,
    /// How many repairs were applied.
    repaired: usize,
    /// Per tenant, its database's result.
    tenants: Vec<TenantDriftView>,
}

impl DriftView {
    /// The view of `report`.
    pub(crate) fn new(report: &DriftReport) -> Self {
        let tenants = report
            .units
            .iter()
            .flat_map(|unit| {
                unit.tenants.iter().map(move |tenant| TenantDriftView {
                    tenant: tenant.clone(),
                    database: unit.database.clone(),
                    isolation: unit.isolation,
                    clean: unit.is_clean(),
                    drifts: unit.drifts.iter().map(DriftItemView::new).collect(),
                    repaired: unit.repaired.iter().map(|r| r.to_string()).collect(),
                    error: unit.error.clone(),
                })
            })
            .collect();
        DriftView {
            release: report.release.clone(),
            clean: report.is_clean(),
            databases: report.units.len(),
            drifted: report.drifted().count(),
            repaired: report.units.iter().map(|u| u.repaired.len()).sum(),
            tenants,
        }
    }
}

/// One tenant's database compared with the release.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TenantDriftView {
    /// The tenant.
    tenant: TenantId,
    /// Its database: the tenant id when dedicated, `shared:{region}/{shard}`.
    database: String,
    /// Shared or dedicated.
    isolation: Isolation,
    /// Whether it was checked and matches the release.
    clean: bool,
    /// The differences left.
    drifts: Vec<DriftItemView>,
    /// The repairs applied, in words.
    repaired: Vec<String>,
    /// Why it could not be checked (or repaired).
    #[schema(required)]
    error: Option<String>,
}

/// One difference between a database and its release.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DriftItemView {
    /// Its kind.
    kind: DriftKind,
    /// What differs: a table, `table.column`, an index, `migration 11`.
    object: String,
    /// What the release has, when it has it.
    #[schema(required)]
    expected: Option<String>,
    /// What the database has, when it has it.
    #[schema(required)]
    found: Option<String>,
    /// Its mechanical fix in words; `null`: it needs a person.
    #[schema(required)]
    repair: Option<String>,
    /// Whether `drift --repair` can fix it.
    repairable: bool,
}

impl DriftItemView {
    fn new(d: &provisioning_core::Drift) -> Self {
        DriftItemView {
            kind: d.kind,
            object: d.object.clone(),
            expected: d.expected.clone(),
            found: d.found.clone(),
            repair: d.repair.as_ref().map(|r| r.to_string()),
            repairable: d.repair.is_some(),
        }
    }
}
