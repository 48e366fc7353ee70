//! Fleet migration: rolling new migrations out to every tenant database.
//!
//! The caller passes the plans of the tenants to migrate (the Active and
//! Suspended ones, from its catalog); each dedicated tenant is one unit of work,
//! and all shared tenants of one shard are one unit, since they share a
//! database. Units run with bounded concurrency; one failing unit is reported
//! and the others go on. A run is resumable: running it again applies only what
//! is still pending, so tenants done before an interruption are up to date.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::stream::{self, Stream, StreamExt};
use provisioning_core::{
    Isolation, MigrationInfo, Placement, Region, ShardId, TenantId, TenantSchemaManager,
};

/// How a fleet migration runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FleetOptions {
    /// How many databases are migrated at once (at least 1; default 8).
    pub concurrency: usize,
    /// List what each database would get, change nothing (default false).
    pub dry_run: bool,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            concurrency: 8,
            dry_run: false,
        }
    }
}

impl FleetOptions {
    /// The defaults: 8 at once, for real.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets how many databases are migrated at once (0 is taken as 1).
    #[must_use]
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// Sets dry-run mode.
    #[must_use]
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }
}

/// What happened to one database.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnitOutcome {
    /// These migrations were applied (empty: it was up to date).
    Migrated(Vec<MigrationInfo>),
    /// Dry run: these migrations are pending.
    WouldApply(Vec<MigrationInfo>),
    /// It failed; the reason is the error's message. Other databases went on.
    Failed {
        /// The error, as text.
        reason: String,
        /// Whether a later run may succeed without a fix.
        transient: bool,
    },
}

/// One database of the fleet and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FleetUnit {
    /// The tenants whose data it holds: one when dedicated, every tenant of
    /// the shard that was passed in when shared.
    pub tenants: Vec<TenantId>,
    /// Shared or dedicated.
    pub isolation: Isolation,
    /// Its outcome.
    pub outcome: UnitOutcome,
    /// How long it took.
    pub duration: Duration,
}

impl FleetUnit {
    /// Whether it failed.
    pub fn is_failed(&self) -> bool {
        matches!(self.outcome, UnitOutcome::Failed { .. })
    }
}

/// One step of progress: the unit just finished and the running counts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FleetProgress {
    /// The database just finished.
    pub unit: FleetUnit,
    /// Databases finished without error so far.
    pub done: usize,
    /// Databases failed so far.
    pub failed: usize,
    /// Databases not finished yet.
    pub remaining: usize,
}

/// The outcome of a whole fleet migration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FleetReport {
    /// Databases finished without error, in completion order.
    pub done: Vec<FleetUnit>,
    /// Databases that failed, with their reasons.
    pub failed: Vec<FleetUnit>,
}

impl FleetReport {
    /// Adds one progress step to the report.
    pub fn record(&mut self, progress: FleetProgress) {
        if progress.unit.is_failed() {
            self.failed.push(progress.unit);
        } else {
            self.done.push(progress.unit);
        }
    }

    /// Databases that were already up to date (or, in a dry run, had nothing
    /// pending): skipped.
    pub fn skipped(&self) -> usize {
        self.done
            .iter()
            .filter(|u| {
                matches!(&u.outcome, UnitOutcome::Migrated(m) | UnitOutcome::WouldApply(m) if m.is_empty())
            })
            .count()
    }

    /// Total migrations applied (or, in a dry run, pending) over the fleet.
    pub fn migrations(&self) -> usize {
        self.done
            .iter()
            .map(|u| match &u.outcome {
                UnitOutcome::Migrated(m) | UnitOutcome::WouldApply(m) => m.len(),
                UnitOutcome::Failed { .. } => 0,
            })
            .sum()
    }
}

struct Job {
    plan: Placement,
    tenants: Vec<TenantId>,
}

/// One job per dedicated tenant, one per shared database.
fn group(tenants: impl IntoIterator<Item = Placement>) -> Vec<Job> {
    let mut jobs: Vec<Job> = Vec::new();
    let mut shared: HashMap<(Region, ShardId), usize> = HashMap::new();
    for plan in tenants {
        if plan.isolation == Isolation::Shared {
            let key = (plan.region.clone(), plan.shard.clone());
            if let Some(&i) = shared.get(&key) {
                jobs[i].tenants.push(plan.tenant_id);
                continue;
            }
            shared.insert(key, jobs.len());
        }
        jobs.push(Job {
            tenants: vec![plan.tenant_id.clone()],
            plan,
        });
    }
    jobs
}

async fn run_job<M>(manager: &M, job: Job, dry_run: bool) -> FleetUnit
where
    M: TenantSchemaManager + ?Sized,
{
    let start = Instant::now();
    let result = if dry_run {
        manager
            .preview(&job.plan)
            .await
            .map(|p| UnitOutcome::WouldApply(p.pending_migrations))
    } else {
        manager.migrate(&job.plan).await.map(UnitOutcome::Migrated)
    };
    let outcome = result.unwrap_or_else(|e| {
        tracing::warn!(tenant_id = %job.plan.tenant_id, error = %e, "fleet migration failed for a database");
        UnitOutcome::Failed {
            reason: e.to_string(),
            transient: e.is_transient(),
        }
    });
    FleetUnit {
        tenants: job.tenants,
        isolation: job.plan.isolation,
        outcome,
        duration: start.elapsed(),
    }
}

/// Migrates the tenants' databases and yields one [`FleetProgress`] per
/// database as it finishes.
///
/// Each shared database is migrated once, through the first of its tenants;
/// `options.concurrency` databases are in flight at once; a failure is
/// reported in its progress item and does not stop the others.
pub fn migrate_fleet_stream<'m, M>(
    manager: &'m M,
    tenants: impl IntoIterator<Item = Placement>,
    options: FleetOptions,
) -> impl Stream<Item = FleetProgress> + Send + 'm
where
    M: TenantSchemaManager + ?Sized,
{
    let jobs = group(tenants);
    let total = jobs.len();
    stream::iter(jobs)
        .map(move |job| run_job(manager, job, options.dry_run))
        .buffer_unordered(options.concurrency.max(1))
        .scan((0usize, 0usize), move |(done, failed), unit| {
            if unit.is_failed() {
                *failed += 1;
            } else {
                *done += 1;
            }
            let progress = FleetProgress {
                remaining: total - *done - *failed,
                done: *done,
                failed: *failed,
                unit,
            };
            std::future::ready(Some(progress))
        })
}

/// Migrates the tenants' databases (see [`migrate_fleet_stream`]) and returns
/// the report once all are done.
///
/// ```
/// # use provisioning_core::*;
/// # use provisioning_sqlx::{FleetOptions, SqliteSchemaManager, TenantSchema, migrate_fleet};
/// # use sqlx::migrate::Migrator;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// # let dir = tempfile::tempdir().unwrap();
/// let manager = SqliteSchemaManager::builder()
///     .root(dir.path())
///     .dedicated(TenantSchema::new(Migrator::DEFAULT))
///     .build()?;
/// let tenants: Vec<Placement> = Vec::new(); // from the catalog: Active and Suspended
/// let report = migrate_fleet(&manager, tenants, FleetOptions::new().concurrency(16)).await;
/// assert!(report.failed.is_empty());
/// # Ok::<(), Error>(())
/// # }).unwrap();
/// ```
pub async fn migrate_fleet<M>(
    manager: &M,
    tenants: impl IntoIterator<Item = Placement>,
    options: FleetOptions,
) -> FleetReport
where
    M: TenantSchemaManager + ?Sized,
{
    migrate_fleet_stream(manager, tenants, options)
        .fold(FleetReport::default(), |mut report, progress| {
            report.record(progress);
            std::future::ready(report)
        })
        .await
}
