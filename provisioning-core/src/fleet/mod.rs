//! Fleet roll-outs: a release's migrations rolled out to every tenant
//! database as a durable record in the catalog, so that a roll-out survives
//! its process, resumes where it stopped, runs in waves and is shared safely
//! by several operators.
//!
//! A roll-out is made of units: one per dedicated tenant, and one per shared
//! database (every tenant of a shared shard lives in it, so it is migrated
//! once). Units are handed out under leases, as requests are to workers, so
//! that two processes never migrate one database at once; a unit whose
//! process died is taken over when its lease expires.
//!
//! [`FleetStore`] keeps the record; the orchestrator's
//! [`roll_out`](crate::ProvisioningOrchestrator::roll_out) drives it.

mod drift;
mod limit;
pub(crate) mod memory;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use drift::{Drift, DriftKind, Repair};
pub use limit::FailureLimit;

use crate::error::Result;
use crate::model::{Placement, RolloutId, TenantId};
use crate::traits::{MigrationInfo, SeedInfo};

/// Where a roll-out stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RolloutStatus {
    /// Units are pending or being migrated (or its process stopped: running
    /// it again continues it).
    Running,
    /// Stopped on purpose: a canary failed, or more units failed than the
    /// roll-out allows. The rest are left pending; running it again with a
    /// higher limit, or with failures retried, continues it.
    Halted,
    /// Every unit was tried and some failed: `--retry-failed` retries them.
    Failed,
    /// Every unit was migrated (or skipped).
    Completed,
}

impl RolloutStatus {
    /// The lowercase name used in JSON and in the stores.
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutStatus::Running => "running",
            RolloutStatus::Halted => "halted",
            RolloutStatus::Failed => "failed",
            RolloutStatus::Completed => "completed",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s names.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Running, Self::Halted, Self::Failed, Self::Completed]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// Where one unit of a roll-out stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum UnitStatus {
    /// Not tried yet (or given back for a retry).
    Pending,
    /// Leased to a process that is migrating it.
    Running,
    /// Its database is at the release.
    Migrated,
    /// Migrating it failed; the error says why.
    Failed,
    /// Left alone on purpose (the tenant was deleted, or is moving); the
    /// note says why.
    Skipped,
}

impl std::fmt::Display for UnitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::fmt::Display for RolloutStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl UnitStatus {
    /// The lowercase name used in JSON and in the stores.
    pub fn as_str(self) -> &'static str {
        match self {
            UnitStatus::Pending => "pending",
            UnitStatus::Running => "running",
            UnitStatus::Migrated => "migrated",
            UnitStatus::Failed => "failed",
            UnitStatus::Skipped => "skipped",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s names.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Running,
            Self::Migrated,
            Self::Failed,
            Self::Skipped,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }

    /// Whether the unit is settled (migrated, failed or skipped).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            UnitStatus::Migrated | UnitStatus::Failed | UnitStatus::Skipped
        )
    }
}

/// How a roll-out was started: kept with its record, so that every process
/// that continues it runs the same waves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct RolloutSettings {
    /// Units migrated first, alone; a failure among them halts the roll-out.
    pub canary: usize,
    /// When the roll-out halts for failures.
    pub max_failures: FailureLimit,
}

impl RolloutSettings {
    /// Settings with `canary` canary units and `max_failures`.
    pub fn new(canary: usize, max_failures: FailureLimit) -> Self {
        RolloutSettings {
            canary,
            max_failures,
        }
    }
}

/// A roll-out as the catalog keeps it. Its fields are all public, and it is
/// not `non_exhaustive`, so that a store of your own can build it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rollout {
    /// Its id.
    pub id: RolloutId,
    /// The release it rolls out (see
    /// [`TenantSchemaManager::release`](crate::TenantSchemaManager::release)).
    pub release: String,
    /// Where it stands.
    pub status: RolloutStatus,
    /// Why it halted or failed, if it did.
    #[cfg_attr(feature = "openapi", schema(required))]
    pub reason: Option<String>,
    /// Its waves and failure limit.
    pub settings: RolloutSettings,
    /// The process that started it.
    pub started_by: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When its status last changed.
    pub updated_at: DateTime<Utc>,
}

impl Rollout {
    /// A roll-out of `release` starting now (`at`), running.
    pub fn new(
        id: RolloutId,
        release: impl Into<String>,
        settings: RolloutSettings,
        started_by: impl Into<String>,
        at: DateTime<Utc>,
    ) -> Self {
        Rollout {
            id,
            release: release.into(),
            status: RolloutStatus::Running,
            reason: None,
            settings,
            started_by: started_by.into(),
            started_at: at,
            updated_at: at,
        }
    }
}

/// One unit to add to a roll-out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NewRolloutUnit {
    /// What makes it unique in its roll-out: the tenant id for a dedicated
    /// database, `shared:{region}/{shard}` for a shared one.
    pub key: String,
    /// The placement it is migrated through (a dedicated tenant's is read
    /// again from the catalog when its batch is taken: it may have moved).
    pub placement: Placement,
    /// The tenants whose data it holds.
    pub tenants: Vec<TenantId>,
    /// Pending, or skipped with `note` saying why.
    pub status: UnitStatus,
    /// Why it is skipped, if it is.
    pub note: Option<String>,
}

/// A unit of a roll-out as the catalog keeps it (built by stores, as
/// [`Rollout`] is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutUnit {
    /// Its position in the roll-out (0-based, in the order units were added).
    pub seq: u64,
    /// See [`NewRolloutUnit::key`].
    pub key: String,
    /// 0 for the canary wave, 1 for the rest.
    pub wave: u32,
    /// The placement it was added with.
    pub placement: Placement,
    /// The tenants whose data it holds.
    pub tenants: Vec<TenantId>,
    /// Where it stands.
    pub status: UnitStatus,
    /// The migrations applied to it.
    pub applied: Vec<MigrationInfo>,
    /// The seeds applied to it.
    pub seeded: Vec<SeedInfo>,
    /// The error, when it failed; why, when it was skipped.
    pub note: Option<String>,
    /// How many times it was handed out.
    pub attempts: u32,
    /// The process holding (or that last held) its lease.
    pub worker: Option<String>,
    /// When it settled.
    pub finished_at: Option<DateTime<Utc>>,
}

impl RolloutUnit {
    /// New units as a store records them: numbered from `first_seq`, the
    /// first `canary` pending ones in wave 0 and the rest in wave 1, none
    /// attempted yet. A unit whose key an earlier one of `units` has is left
    /// out, so that numbers have no gaps.
    pub fn numbered(units: Vec<NewRolloutUnit>, first_seq: u64, canary: usize) -> Vec<RolloutUnit> {
        let mut canaries = 0;
        let mut seen = std::collections::HashSet::new();
        units
            .into_iter()
            .filter(|u| seen.insert(u.key.clone()))
            .zip(first_seq..)
            .map(|(unit, seq)| {
                let wave = if unit.status == UnitStatus::Pending && canaries < canary {
                    canaries += 1;
                    0
                } else {
                    1
                };
                RolloutUnit {
                    seq,
                    key: unit.key,
                    wave,
                    placement: unit.placement,
                    tenants: unit.tenants,
                    status: unit.status,
                    applied: Vec::new(),
                    seeded: Vec::new(),
                    note: unit.note,
                    attempts: 0,
                    worker: None,
                    finished_at: None,
                }
            })
            .collect()
    }

    /// The unit settled with `result`.
    pub fn settle(&mut self, result: &UnitResult) {
        self.status = result.status();
        self.finished_at = Some(Utc::now());
        if let Some((applied, seeded)) = result.migrated() {
            self.applied = applied.to_vec();
            self.seeded = seeded.to_vec();
        }
        self.note = result.note().map(str::to_owned);
    }
}

/// How one unit ended, as the process that migrated it reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum UnitResult {
    /// Migrated: these migrations and seeds were applied (none: it was
    /// already at the release).
    Migrated {
        /// The migrations applied.
        applied: Vec<MigrationInfo>,
        /// The seeds applied.
        seeded: Vec<SeedInfo>,
    },
    /// Failed with this error.
    Failed(String),
    /// Skipped for this reason.
    Skipped(String),
}

impl UnitResult {
    /// The migrations and seeds applied, when migrated.
    pub fn migrated(&self) -> Option<(&[MigrationInfo], &[SeedInfo])> {
        match self {
            UnitResult::Migrated { applied, seeded } => Some((applied, seeded)),
            UnitResult::Failed(_) | UnitResult::Skipped(_) => None,
        }
    }

    /// The error of a failed unit, or why one was skipped.
    pub fn note(&self) -> Option<&str> {
        match self {
            UnitResult::Migrated { .. } => None,
            UnitResult::Failed(note) | UnitResult::Skipped(note) => Some(note),
        }
    }

    /// The status it settles its unit in.
    pub fn status(&self) -> UnitStatus {
        match self {
            UnitResult::Migrated { .. } => UnitStatus::Migrated,
            UnitResult::Failed(_) => UnitStatus::Failed,
            UnitResult::Skipped(_) => UnitStatus::Skipped,
        }
    }
}

/// How many units of a roll-out are in each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct RolloutCounts {
    /// Every unit.
    pub total: usize,
    /// Not tried yet.
    pub pending: usize,
    /// Being migrated.
    pub running: usize,
    /// Done.
    pub migrated: usize,
    /// Failed.
    pub failed: usize,
    /// Skipped.
    pub skipped: usize,
}

impl RolloutCounts {
    /// The counts of `units`.
    pub fn of<'a>(units: impl IntoIterator<Item = &'a RolloutUnit>) -> Self {
        let mut counts = RolloutCounts::default();
        for unit in units {
            counts.add(unit.status);
        }
        counts
    }

    pub(crate) fn add(&mut self, status: UnitStatus) {
        self.total += 1;
        *self.slot(status) += 1;
    }

    /// Moves one unit from status `from` to `to`.
    pub(crate) fn shift(&mut self, from: UnitStatus, to: UnitStatus) {
        let slot = self.slot(from);
        *slot = slot.saturating_sub(1);
        *self.slot(to) += 1;
    }

    fn slot(&mut self, status: UnitStatus) -> &mut usize {
        match status {
            UnitStatus::Pending => &mut self.pending,
            UnitStatus::Running => &mut self.running,
            UnitStatus::Migrated => &mut self.migrated,
            UnitStatus::Failed => &mut self.failed,
            UnitStatus::Skipped => &mut self.skipped,
        }
    }

    /// Units settled (migrated, failed or skipped).
    pub fn finished(&self) -> usize {
        self.migrated + self.failed + self.skipped
    }
}

/// What [`FleetStore::open_rollout`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedRollout {
    /// The roll-out, as stored.
    pub rollout: Rollout,
    /// Whether it existed already (it is continued), or was created now.
    pub resumed: bool,
    /// Units added now: all of them for a new roll-out; for one continued,
    /// those of tenants it did not have yet.
    pub added: usize,
}

impl OpenedRollout {
    /// `rollout`, continued or not, with `added` units added.
    pub fn new(rollout: Rollout, resumed: bool, added: usize) -> Self {
        OpenedRollout {
            rollout,
            resumed,
            added,
        }
    }
}

/// The durable record of fleet roll-outs, kept in the catalog.
///
/// # Contract
/// - At most one roll-out per release is unfinished (not
///   [`Completed`](RolloutStatus::Completed)); [`open_rollout`](Self::open_rollout)
///   continues it, and two processes opening the same release at once get
///   the same roll-out.
/// - A unit is leased to one worker at a time: [`claim_units`](Self::claim_units)
///   hands out pending units, and running ones whose lease expired, of one
///   wave, atomically (`FOR UPDATE SKIP LOCKED` on PostgreSQL);
///   [`finish_unit`](Self::finish_unit) settles a unit only for the worker
///   holding its lease.
///
/// The SQLite and PostgreSQL stores of provisioning-sqlx implement it, as does
/// [`InMemoryStore`](crate::InMemoryStore); [`TenantStore::fleet`](crate::TenantStore::fleet)
/// gives the orchestrator its catalog's.
#[async_trait]
pub trait FleetStore: Send + Sync {
    /// Continues the unfinished roll-out of `release`, adding the `units`
    /// whose keys it does not have yet; or, if there is none, starts one
    /// with `units`, the first `settings.canary` pending ones in wave 0.
    async fn open_rollout(
        &self,
        release: &str,
        settings: &RolloutSettings,
        started_by: &str,
        units: Vec<NewRolloutUnit>,
    ) -> Result<OpenedRollout>;

    /// A roll-out by id.
    async fn rollout(&self, id: RolloutId) -> Result<Option<Rollout>>;

    /// The roll-out started last, if any.
    async fn latest_rollout(&self) -> Result<Option<Rollout>>;

    /// Sets a roll-out's status and reason.
    async fn set_rollout_status(
        &self,
        id: RolloutId,
        status: RolloutStatus,
        reason: Option<String>,
    ) -> Result<()>;

    /// Every unit of a roll-out, in order.
    async fn rollout_units(&self, id: RolloutId) -> Result<Vec<RolloutUnit>>;

    /// Leases up to `limit` units of `wave` (pending ones, and running ones
    /// whose lease expired) to `worker` for `lease`, counting an attempt on
    /// each; in order. None while the roll-out is not
    /// [`Running`](RolloutStatus::Running): a halt by one process stops
    /// every process's claims.
    async fn claim_units(
        &self,
        id: RolloutId,
        wave: u32,
        worker: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<RolloutUnit>>;

    /// Extends `worker`'s leases on units `seqs` by `lease` from now.
    async fn renew_units(
        &self,
        id: RolloutId,
        worker: &str,
        seqs: &[u64],
        lease: Duration,
    ) -> Result<()>;

    /// Settles unit `seq` with `result` if `worker` still holds its lease;
    /// `false` (nothing written) when it does not.
    async fn finish_unit(
        &self,
        id: RolloutId,
        seq: u64,
        worker: &str,
        result: &UnitResult,
    ) -> Result<bool>;

    /// Settles each `(seq, result)` of `outcomes` as
    /// [`finish_unit`](Self::finish_unit) does; whether each was kept, in
    /// order. The default settles them one at a time; the SDK's stores
    /// write them together.
    async fn finish_units(
        &self,
        id: RolloutId,
        worker: &str,
        outcomes: &[(u64, UnitResult)],
    ) -> Result<Vec<bool>> {
        let mut kept = Vec::with_capacity(outcomes.len());
        for (seq, result) in outcomes {
            kept.push(self.finish_unit(id, *seq, worker, result).await?);
        }
        Ok(kept)
    }

    /// Gives failed units back as pending; returns how many.
    async fn retry_failed_units(&self, id: RolloutId) -> Result<usize>;
}
