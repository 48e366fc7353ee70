//! Fleet roll-outs driven by the orchestrator: the units of the catalog's
//! tenants, their waves, leases and failure limit, over the catalog's
//! [`FleetStore`].

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::future::{Either, select};
use futures_util::stream::StreamExt;
use serde::{Deserialize, Serialize};

use crate::error::{Entity, Error, Result};
use crate::fleet::{
    FailureLimit, FleetStore, NewRolloutUnit, Rollout, RolloutCounts, RolloutSettings,
    RolloutStatus, RolloutUnit, UnitResult, UnitStatus,
};
use crate::model::{Isolation, RolloutId, TenantId, TenantState};
use crate::orchestrator::ProvisioningOrchestrator;
use crate::store::TenantFilter;
use crate::traits::SchemaPreview;

/// How [`ProvisioningOrchestrator::roll_out`] runs.
///
/// `canary` and `max_failures` are kept with a new roll-out; a roll-out that
/// is continued keeps its waves, and runs under the `max_failures` given now
/// (raise it to continue one that halted).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RolloutOptions {
    /// The release to record the roll-out under (default: the schema
    /// manager's [`release`](crate::TenantSchemaManager::release)).
    pub release: Option<String>,
    /// Units migrated first, before any other; one failing halts the
    /// roll-out (default 0: no canary wave).
    pub canary: usize,
    /// Workers upgrading units at once, each a batch at a time (default 4;
    /// 0 is taken as 1).
    pub concurrency: usize,
    /// When the roll-out halts for failures (default: the limit it was
    /// started with; for a new one, never).
    pub max_failures: Option<FailureLimit>,
    /// Give the failed units of a continued roll-out another try.
    pub retry_failed: bool,
    /// How long a unit stays leased to this process without a heartbeat
    /// (default 30 s): a unit of a process that died is taken over by
    /// another after this long. It is renewed every third of it.
    pub lease: Duration,
    /// This process's name in leases (default: `fleet-{pid}-{random}`).
    pub worker: Option<String>,
}

impl Default for RolloutOptions {
    fn default() -> Self {
        RolloutOptions {
            release: None,
            canary: 0,
            concurrency: 4,
            max_failures: None,
            retry_failed: false,
            lease: Duration::from_secs(30),
            worker: None,
        }
    }
}

impl RolloutOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the roll-out under `release`.
    #[must_use]
    pub fn release(mut self, release: impl Into<String>) -> Self {
        self.release = Some(release.into());
        self
    }

    /// Migrates `canary` units first.
    #[must_use]
    pub fn canary(mut self, canary: usize) -> Self {
        self.canary = canary;
        self
    }

    /// Migrates `concurrency` units at once (0 is taken as 1).
    #[must_use]
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// Halts when failures exceed `limit` (kept with a new roll-out; for
    /// one continued, this run's limit instead of the one kept).
    #[must_use]
    pub fn max_failures(mut self, limit: FailureLimit) -> Self {
        self.max_failures = Some(limit);
        self
    }

    /// Retries the failed units of a continued roll-out.
    #[must_use]
    pub fn retry_failed(mut self, retry: bool) -> Self {
        self.retry_failed = retry;
        self
    }

    /// Sets the lease of a unit (100 ms to a day: a longer one would
    /// overflow the stores' lease arithmetic and mean no takeover at all).
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.clamp(Duration::from_millis(100), Duration::from_secs(86_400));
        self
    }

    /// Names this process in leases.
    #[must_use]
    pub fn worker(mut self, worker: impl Into<String>) -> Self {
        self.worker = Some(worker.into());
        self
    }
}

/// One unit just settled by this process, and the roll-out's counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RolloutProgress {
    /// The unit, as settled.
    pub unit: RolloutUnit,
    /// The roll-out's counts after it (as this process knows them).
    pub counts: RolloutCounts,
}

/// What one call of [`ProvisioningOrchestrator::roll_out`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RolloutReport {
    /// The roll-out, as it stands now.
    pub rollout: Rollout,
    /// Whether an unfinished roll-out of the release was continued.
    pub resumed: bool,
    /// Its counts now.
    pub counts: RolloutCounts,
    /// The units this call settled, in the order they settled.
    pub settled: Vec<RolloutUnit>,
}

/// The state of a roll-out: what `fleet status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FleetStatus {
    /// The roll-out.
    pub rollout: Rollout,
    /// Its counts.
    pub counts: RolloutCounts,
    /// Its failed units, with their errors.
    pub failures: Vec<RolloutUnit>,
    /// Its skipped units, with why.
    pub skipped: Vec<RolloutUnit>,
    /// The processes holding leases on its running units.
    pub workers: Vec<String>,
}

/// One database of a dry run and what it would get.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UnitPreview {
    /// The unit it would be.
    pub unit: NewRolloutUnit,
    /// What its database would get (none for a skipped unit).
    #[serde(alias = "plan")]
    pub schema: Option<SchemaPreview>,
    /// Why it could not be previewed.
    pub error: Option<String>,
}

impl ProvisioningOrchestrator {
    fn fleet_store(&self) -> Result<&dyn FleetStore> {
        self.store().fleet().ok_or_else(|| {
            Error::invalid(
                "store",
                "this catalog store keeps no fleet roll-outs (TenantStore::fleet is None)",
            )
        })
    }

    /// The units of the catalog's tenants now: one per dedicated tenant and
    /// one per shared database, for Active and Suspended tenants (pending)
    /// and tenants being created, moved or deleted (skipped, saying so).
    /// Deleted and failed tenants have no database to migrate.
    pub async fn rollout_units(&self) -> Result<Vec<NewRolloutUnit>> {
        let mut units: Vec<NewRolloutUnit> = Vec::new();
        let mut shared: HashMap<String, usize> = HashMap::new();
        let mut filter = TenantFilter::all();
        filter.limit = 10_000;
        loop {
            let page = self.list_tenants(&filter).await?;
            let Some(last) = page.last() else { break };
            filter.after = Some(last.tenant_id.clone());
            for record in page {
                let Some(placement) = record.placement else {
                    continue;
                };
                let (status, note) = match record.state {
                    TenantState::Active | TenantState::Suspended => (UnitStatus::Pending, None),
                    TenantState::Deleted | TenantState::Failed | TenantState::Requested => {
                        continue;
                    }
                    other => (UnitStatus::Skipped, Some(busy(other))),
                };
                if placement.isolation == Isolation::Shared {
                    if status == UnitStatus::Skipped {
                        // Its rows are in the shared database, migrated
                        // through the unit of its settled neighbours.
                        continue;
                    }
                    let key = format!("shared:{}/{}", placement.region, placement.shard);
                    if let Some(&i) = shared.get(&key) {
                        units[i].tenants.push(record.tenant_id);
                        continue;
                    }
                    shared.insert(key.clone(), units.len());
                    units.push(NewRolloutUnit {
                        key,
                        tenants: vec![record.tenant_id],
                        placement,
                        status,
                        note,
                    });
                } else {
                    units.push(NewRolloutUnit {
                        key: record.tenant_id.to_string(),
                        tenants: vec![record.tenant_id],
                        placement,
                        status,
                        note,
                    });
                }
            }
        }
        Ok(units)
    }

    /// A dry run: every unit of the fleet and what its database would get,
    /// `concurrency` databases read at once. Nothing is written, the
    /// catalog's roll-out record included.
    pub async fn preview_rollout(&self, concurrency: usize) -> Result<Vec<UnitPreview>> {
        let units = self.rollout_units().await?;
        let schema = &self.inner.parts.schema;
        Ok(futures_util::stream::iter(units)
            .map(|unit| async move {
                if unit.status != UnitStatus::Pending {
                    return UnitPreview {
                        unit,
                        schema: None,
                        error: None,
                    };
                }
                match schema.preview(&unit.placement).await {
                    Ok(preview) => UnitPreview {
                        unit,
                        schema: Some(preview),
                        error: None,
                    },
                    Err(e) => UnitPreview {
                        unit,
                        schema: None,
                        error: Some(e.report()),
                    },
                }
            })
            .buffered(concurrency.max(1))
            .collect()
            .await)
    }

    /// Rolls the schema manager's release out to every tenant database, as
    /// a durable roll-out in the catalog, calling `on_progress` as each unit
    /// settles.
    ///
    /// The roll-out of the release that is not finished yet is continued
    /// (units settled before are not run again, tenants created since are
    /// added); otherwise a new one starts. Its canary wave runs first, and a
    /// failure there halts it; then the rest, by `concurrency` workers.
    /// Each worker takes a batch of units at a time (up to 32, fewer as the
    /// end nears) and hands it to the schema manager's
    /// [`upgrade`](crate::TenantSchemaManager::upgrade), which may upgrade
    /// them together (one transaction for PostgreSQL schemas of one
    /// database). When failures exceed `max_failures` no further unit
    /// starts: those in flight finish, the others stay pending, and the
    /// roll-out is [`Halted`](RolloutStatus::Halted). The workers' batches
    /// together hold no more units than the failures still allowed plus one
    /// (and at least one each), so no more start past the limit than one
    /// unit at a time per worker would. A failed unit does not stop the
    /// others below that limit. Every unit is leased, so processes running the same roll-out
    /// at once share its units, each migrated once. Dedicated tenants are
    /// read again when their batch is taken: one deleted since is skipped,
    /// one moved since is migrated where it is now.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use async_trait::async_trait;
    /// # use provisioning_core::*;
    /// # struct Plans; #[async_trait] impl PlacementPolicy for Plans {
    /// #   async fn decide(&self, r: &TenantRequest) -> Result<PlacementDecision> {
    /// #     Ok(PlacementDecision::new(r.plan.clone(), Isolation::Dedicated, r.region.clone(), Residency::Strict, "dedicated")) } }
    /// # struct Shards; #[async_trait] impl ShardResolver for Shards {
    /// #   async fn resolve(&self, _: &TenantId, d: &PlacementDecision) -> Result<ShardChoice> {
    /// #     Ok(ShardChoice::new("db-1".parse()?, d.region.clone(), "one shard")) } }
    /// # struct Db; #[async_trait] impl TenantSchemaManager for Db {
    /// #   async fn preview(&self, _: &Placement) -> Result<SchemaPreview> { Ok(SchemaPreview::new("mem", true, false, vec![], vec![])) }
    /// #   async fn provision(&self, _: &Placement) -> Result<DatabaseOutcome> { Ok(DatabaseOutcome::Created) }
    /// #   async fn migrate(&self, _: &Placement) -> Result<Vec<MigrationInfo>> { Ok(vec![]) }
    /// #   async fn seed(&self, _: &Placement) -> Result<Vec<SeedInfo>> { Ok(vec![]) }
    /// #   async fn drop_tenant(&self, _: &Placement, _: DropReason) -> Result<()> { Ok(()) } }
    /// # struct Files; #[async_trait] impl StorageInitializer for Files {
    /// #   async fn preview(&self, _: &Placement) -> Result<StoragePreview> { Ok(StoragePreview::new(vec![], false)) }
    /// #   async fn initialize(&self, _: &Placement) -> Result<()> { Ok(()) }
    /// #   async fn remove(&self, _: &Placement, _: RemovalMode) -> Result<()> { Ok(()) } }
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// # let orchestrator = ProvisioningOrchestrator::builder()
    /// #     .store(Arc::new(InMemoryStore::new())).placement_policy(Arc::new(Plans))
    /// #     .shard_resolver(Arc::new(Shards)).schema_manager(Arc::new(Db)).storage(Arc::new(Files))
    /// #     .build()?;
    /// for id in ["acme", "globex", "initech"] {
    ///     orchestrator.create(TenantRequest::new(id.parse()?, "premium".parse()?, "eu-west".parse()?)).await?;
    /// }
    /// // One canary first; halt if more than 5% of the databases fail.
    /// let options = RolloutOptions::new().release("2026-12").canary(1).max_failures("5%".parse()?);
    /// let report = orchestrator.roll_out(options, |p| println!("{} {:?}", p.unit.key, p.unit.status)).await?;
    /// assert_eq!(report.rollout.status, RolloutStatus::Completed);
    /// assert_eq!(report.counts.migrated, 3);
    /// // Run again: the release's roll-out is finished, so a new one starts
    /// // and finds every database up to date.
    /// let again = orchestrator.roll_out(RolloutOptions::new().release("2026-12"), |_| {}).await?;
    /// assert!(again.settled.iter().all(|u| u.applied.is_empty()));
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when no release is given and the schema
    /// manager names none, or when the store keeps no roll-outs; store
    /// failures. A unit's failure is not an error: it is in the report.
    pub async fn roll_out(
        &self,
        options: RolloutOptions,
        mut on_progress: impl FnMut(&RolloutProgress) + Send,
    ) -> Result<RolloutReport> {
        let fleet = self.fleet_store()?;
        let release = match options
            .release
            .clone()
            .or_else(|| self.inner.parts.schema.release())
        {
            Some(r) if !r.trim().is_empty() => r,
            _ => {
                return Err(Error::invalid(
                    "release",
                    "must be given: the schema manager names no release",
                ));
            }
        };
        let worker = options.worker.clone().unwrap_or_else(|| {
            let id = RolloutId::new().to_string();
            format!("fleet-{}-{}", std::process::id(), &id[id.len() - 8..])
        });
        let units = self.rollout_units().await?;
        let settings =
            RolloutSettings::new(options.canary, options.max_failures.unwrap_or_default());
        let opened = fleet
            .open_rollout(&release, &settings, &worker, units)
            .await?;
        let id = opened.rollout.id;
        if options.retry_failed {
            let n = fleet.retry_failed_units(id).await?;
            tracing::info!(rollout = %id, retried = n, "failed units given another try");
        }
        if opened.rollout.status != RolloutStatus::Running {
            fleet
                .set_rollout_status(id, RolloutStatus::Running, None)
                .await?;
        }
        // Read once here and once at the end of each wave that runs: a read
        // of every unit is the costliest catalog call of a roll-out.
        let mut units = fleet.rollout_units(id).await?;
        let run = Run {
            fleet,
            id,
            worker: &worker,
            options: &options,
            max_failures: options
                .max_failures
                .unwrap_or(opened.rollout.settings.max_failures),
            canary: opened.rollout.settings.canary,
            counts: Mutex::new((RolloutCounts::of(&units), 0)),
            settled: Mutex::default(),
            held: Mutex::default(),
            halt: Mutex::default(),
        };
        let on_progress = Mutex::new(&mut on_progress);
        let mut halt = None;
        // Whether `units` is as the catalog has them now.
        let mut fresh = true;
        for wave in [0, 1] {
            if units
                .iter()
                .any(|u| u.wave == wave && !u.status.is_finished())
            {
                let (stopped, now) = self.run_wave(&run, wave, &on_progress).await?;
                halt = stopped;
                fresh = now.is_some();
                units = now.unwrap_or(units);
                if halt.is_some() {
                    break;
                }
            }
            if wave == 0
                && let Some(failed) = units
                    .iter()
                    .find(|u| u.wave == 0 && u.status == UnitStatus::Failed)
            {
                halt = Some(format!(
                    "canary {} failed: {}",
                    failed.key,
                    failed.note.as_deref().unwrap_or("no reason recorded")
                ));
                break;
            }
        }
        if !fresh {
            units = fleet.rollout_units(id).await?;
        }
        let counts = RolloutCounts::of(&units);
        let stored = fleet.rollout(id).await?.map(|r| r.status);
        let settled = match halt {
            // A halt this call found recorded (another process's, or a limit
            // reached here) stays as recorded; a canary's is recorded now.
            Some(_) if stored == Some(RolloutStatus::Halted) => None,
            Some(reason) => Some((RolloutStatus::Halted, Some(reason))),
            // Units another process holds, or that came back: not finished.
            None if counts.pending + counts.running > 0 => None,
            None if counts.failed > 0 => Some((
                RolloutStatus::Failed,
                Some(format!(
                    "{} unit(s) failed; --retry-failed tries them again",
                    counts.failed
                )),
            )),
            None => Some((RolloutStatus::Completed, None)),
        };
        if let Some((status, reason)) = settled {
            fleet.set_rollout_status(id, status, reason).await?;
        }
        let rollout = fleet.rollout(id).await?.ok_or_else(|| Error::NotFound {
            kind: Entity::Rollout,
            id: id.to_string(),
        })?;
        Ok(RolloutReport {
            rollout,
            resumed: opened.resumed,
            counts,
            settled: run
                .settled
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner),
        })
    }

    /// Runs one wave to its end: until no unit of it is pending or held by
    /// anyone. Returns why it halted, if failures exceeded the limit, and
    /// every unit as it read them last (none when a halt here ended it).
    ///
    /// `concurrency` workers each claim a batch, upgrade it and settle it,
    /// in turn, all polled together (a worker's catalog write never stalls
    /// another's migration); a heartbeat renews the leases of the units in
    /// hand.
    async fn run_wave(
        &self,
        run: &Run<'_>,
        wave: u32,
        on_progress: &Mutex<impl FnMut(&RolloutProgress) + Send>,
    ) -> Result<(Option<String>, Option<Vec<RolloutUnit>>)> {
        let timer = self.inner.executor.timer().clone();
        let options = run.options;
        loop {
            // All of them to their end, also when one fails: a store error
            // in one worker must not drop the others mid-migration (their
            // outcomes would be lost); the first error is returned after.
            let workers = futures_util::future::join_all(
                (0..options.concurrency.max(1)).map(|_| self.wave_worker(run, wave, on_progress)),
            );
            let heartbeat = async {
                loop {
                    timer.sleep(options.lease / 3).await;
                    let held = lock(&run.held).clone();
                    if let Err(error) = run
                        .fleet
                        .renew_units(run.id, run.worker, &held, options.lease)
                        .await
                    {
                        // Retried at the next beat, with two thirds of the
                        // lease still to go.
                        tracing::warn!(rollout = %run.id, error = %error, "lease renewal failed");
                    }
                }
            };
            match select(Box::pin(workers), Box::pin(heartbeat)).await {
                Either::Left((done, _)) => {
                    done.into_iter().collect::<Result<Vec<()>>>()?;
                }
                Either::Right(((), _)) => {}
            }
            if let Some(halt) = lock(&run.halt).clone() {
                return Ok((Some(halt), None));
            }
            // Nothing to claim: done, unless another process still holds
            // units of this wave (its failure may yet halt the roll-out, or
            // its lease expire and its units come back).
            let units = run.fleet.rollout_units(run.id).await?;
            lock(&run.counts).0 = RolloutCounts::of(&units);
            if !units
                .iter()
                .any(|u| u.wave == wave && !u.status.is_finished())
            {
                return Ok((None, Some(units)));
            }
            if let Some(rollout) = run.fleet.rollout(run.id).await?
                && rollout.status != RolloutStatus::Running
            {
                // Halted by another process: its claims stopped ours.
                let reason = rollout.reason.unwrap_or_else(|| "halted".to_owned());
                return Ok((Some(reason), Some(units)));
            }
            timer
                .sleep((options.lease / 4).min(Duration::from_secs(1)))
                .await;
        }
    }

    /// One worker of a wave: claims units, upgrades them, settles them, until
    /// none is left to claim or the roll-out halts.
    ///
    /// Units are claimed, their tenants read, their databases upgraded and
    /// their outcomes written a batch at a time: one catalog round trip of
    /// each for the batch, and one [`upgrade`](crate::TenantSchemaManager::upgrade)
    /// call (one transaction for a batch of PostgreSQL schemas). A batch is
    /// at most [`MAX_BATCH`] units, a share of what is pending so that every
    /// worker has some, and, with the other workers' batches, no more than
    /// the failures the limit still allows plus one (see [`batch_size`]):
    /// the units of a batch start together.
    async fn wave_worker(
        &self,
        run: &Run<'_>,
        wave: u32,
        on_progress: &Mutex<impl FnMut(&RolloutProgress) + Send>,
    ) -> Result<()> {
        let options = run.options;
        loop {
            let halting = {
                let counts = lock(&run.counts).0;
                let mut halt = lock(&run.halt);
                if halt.is_some() {
                    return Ok(());
                }
                let limit = run.max_failures;
                limit.exceeded(counts.failed, counts.total).then(|| {
                    let reason = format!(
                        "{} of {} unit(s) failed, over the limit of {limit}",
                        counts.failed, counts.total
                    );
                    *halt = Some(reason.clone());
                    reason
                })
            };
            if let Some(reason) = halting {
                // Recorded at once: every process's claims stop with it.
                run.fleet
                    .set_rollout_status(run.id, RolloutStatus::Halted, Some(reason))
                    .await?;
                return Ok(());
            }
            // Reserved under the lock, so that the workers' batches together
            // stay within the failures the limit still allows.
            let batch = {
                let mut counts = lock(&run.counts);
                let wave_size = if wave == 0 { run.canary } else { usize::MAX };
                let n = batch_size(
                    &counts.0,
                    counts.1,
                    run.max_failures,
                    options.concurrency,
                    wave_size,
                );
                counts.1 += n;
                n
            };
            let claimed = run
                .fleet
                .claim_units(run.id, wave, run.worker, options.lease, batch)
                .await;
            // Saturating: a store handing out more than asked must not
            // panic the roll-out, only loosen the reservation.
            release(
                &run.counts,
                batch.saturating_sub(claimed.as_ref().map_or(0, Vec::len)),
            );
            let claimed = claimed?;
            if claimed.is_empty() {
                return Ok(());
            }
            lock(&run.held).extend(claimed.iter().map(|u| u.seq));
            let results = self.upgrade_units(&claimed).await;
            let outcomes: Vec<(u64, UnitResult)> =
                claimed.iter().map(|u| u.seq).zip(results).collect();
            let kept = self.settle_units(run, &outcomes).await;
            lock(&run.held).retain(|s| !outcomes.iter().any(|(seq, _)| seq == s));
            release(&run.counts, claimed.len());
            let kept = kept?;
            for ((mut unit, (_, result)), kept) in claimed.into_iter().zip(outcomes).zip(kept) {
                if !kept {
                    tracing::warn!(rollout = %run.id, unit = %unit.key, "lease lost; the unit's outcome is another process's");
                    continue;
                }
                let counts = {
                    let counts = &mut lock(&run.counts).0;
                    let from = if counts.pending > 0 {
                        UnitStatus::Pending
                    } else {
                        UnitStatus::Running
                    };
                    counts.shift(from, result.status());
                    *counts
                };
                unit.settle(&result);
                unit.worker = Some(run.worker.to_owned());
                let progress = RolloutProgress { unit, counts };
                (lock(on_progress))(&progress);
                lock(&run.settled).push(progress.unit);
            }
        }
    }

    /// The catalog's records of `ids` now, in one read; if that read fails,
    /// one read each, so that a store failure fails only the units whose
    /// tenant could not be read (with why). An id the catalog lacks is left
    /// out.
    async fn current_tenants(
        &self,
        ids: &[TenantId],
    ) -> HashMap<TenantId, std::result::Result<crate::model::TenantRecord, String>> {
        let store = &self.inner.parts.store;
        if ids.is_empty() {
            return HashMap::new();
        }
        match store.tenants(ids).await {
            Ok(records) => records
                .into_iter()
                .map(|r| (r.tenant_id.clone(), Ok(r)))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, tenants = ids.len(), "reading a batch's tenants failed; reading them one at a time");
                let mut now = HashMap::with_capacity(ids.len());
                for id in ids {
                    match store.tenant(id).await {
                        Ok(Some(record)) => {
                            now.insert(id.clone(), Ok(record));
                        }
                        Ok(None) => {}
                        Err(e) => {
                            now.insert(id.clone(), Err(e.report()));
                        }
                    }
                }
                now
            }
        }
    }

    /// Upgrades the databases of `units`, one outcome per unit. Dedicated
    /// tenants are read again first (together): one deleted since is
    /// skipped, one moved since is upgraded where it is now.
    async fn upgrade_units(&self, units: &[RolloutUnit]) -> Vec<UnitResult> {
        let dedicated: Vec<TenantId> = units
            .iter()
            .filter(|u| u.placement.isolation == Isolation::Dedicated)
            .map(|u| u.placement.tenant_id.clone())
            .collect();
        let now = self.current_tenants(&dedicated).await;
        let mut results: Vec<Option<UnitResult>> = Vec::with_capacity(units.len());
        let mut databases = Vec::new();
        for unit in units {
            let mut placement = unit.placement.clone();
            if placement.isolation == Isolation::Dedicated {
                let skip = match now.get(&placement.tenant_id) {
                    None => Some(UnitResult::Skipped(
                        "tenant is no longer in the catalog".into(),
                    )),
                    Some(Err(e)) => Some(UnitResult::Failed(format!("reading the tenant: {e}"))),
                    Some(Ok(record)) => match (record.state, &record.placement) {
                        (TenantState::Active | TenantState::Suspended, Some(here)) => {
                            placement = here.clone();
                            None
                        }
                        (state, _) => Some(UnitResult::Skipped(busy(state))),
                    },
                };
                if skip.is_some() {
                    results.push(skip);
                    continue;
                }
            }
            results.push(None);
            databases.push((placement, unit.tenants.clone()));
        }
        let mut upgraded = self
            .inner
            .parts
            .schema
            .upgrade(&databases)
            .await
            .into_iter();
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| match upgraded.next() {
                    Some(Ok(u)) => UnitResult::Migrated {
                        applied: u.applied,
                        seeded: u.seeded,
                    },
                    Some(Err(e)) => UnitResult::Failed(e.report()),
                    None => UnitResult::Failed(
                        "the schema manager returned fewer outcomes than databases".into(),
                    ),
                })
            })
            .collect()
    }

    /// The last roll-out started, with its counts, failures and the
    /// processes working on it; `None` before the first.
    ///
    /// # Errors
    /// When the store keeps no roll-outs, and store failures.
    pub async fn fleet_status(&self) -> Result<Option<FleetStatus>> {
        let fleet = self.fleet_store()?;
        let Some(rollout) = fleet.latest_rollout().await? else {
            return Ok(None);
        };
        let units = fleet.rollout_units(rollout.id).await?;
        let mut workers: Vec<String> = units
            .iter()
            .filter(|u| u.status == UnitStatus::Running)
            .filter_map(|u| u.worker.clone())
            .collect();
        workers.sort();
        workers.dedup();
        let pick = |status| {
            units
                .iter()
                .filter(|u| u.status == status)
                .cloned()
                .collect::<Vec<_>>()
        };
        Ok(Some(FleetStatus {
            counts: RolloutCounts::of(&units),
            failures: pick(UnitStatus::Failed),
            skipped: pick(UnitStatus::Skipped),
            workers,
            rollout,
        }))
    }
}

impl ProvisioningOrchestrator {
    /// Records units' outcomes, trying a transient store failure again
    /// (three times, 100 ms apart then longer): the migrations behind them
    /// are done, and an outcome lost would make its unit run again.
    async fn settle_units(
        &self,
        run: &Run<'_>,
        outcomes: &[(u64, UnitResult)],
    ) -> Result<Vec<bool>> {
        let timer = self.inner.executor.timer();
        let mut attempt = 0u32;
        let kept = loop {
            match run.fleet.finish_units(run.id, run.worker, outcomes).await {
                Err(e) if e.is_transient() && attempt < 3 => {
                    attempt += 1;
                    tracing::warn!(rollout = %run.id, units = outcomes.len(), error = %e, attempt, "recording units' outcomes failed; trying again");
                    timer
                        .sleep(Duration::from_millis(100 * u64::from(attempt)))
                        .await;
                }
                other => break other?,
            }
        };
        if attempt == 0 || kept.iter().all(|&k| k) {
            return Ok(kept);
        }
        // A failed attempt may have written some before it failed: those
        // are this worker's, settled as it settled them, not lost.
        let stored = run.fleet.rollout_units(run.id).await?;
        Ok(outcomes
            .iter()
            .zip(kept)
            .map(|((seq, result), kept)| {
                kept || stored.iter().any(|u| {
                    u.seq == *seq
                        && u.status == result.status()
                        && u.worker.as_deref() == Some(run.worker)
                })
            })
            .collect())
    }
}

/// The most units a worker claims and upgrades together.
pub(crate) const MAX_BATCH: usize = 32;

/// How many units a worker claims next: a share, among `concurrency`
/// workers, of the pending units of its wave (at most `wave_size`) that no
/// worker holds; at most [`MAX_BATCH`]; and no more than the failures `limit`
/// still allows plus one, less the `in_flight` units of the other workers.
/// At least one: with every worker at one unit the roll-out runs as one
/// unit at a time would.
fn batch_size(
    counts: &RolloutCounts,
    in_flight: usize,
    limit: FailureLimit,
    concurrency: usize,
    wave_size: usize,
) -> usize {
    let share = counts.pending.saturating_sub(in_flight).min(wave_size) / concurrency.max(1);
    let room = limit
        .headroom(counts.failed, counts.total)
        .map_or(MAX_BATCH, |r| r.saturating_add(1).saturating_sub(in_flight));
    share.min(room).clamp(1, MAX_BATCH)
}

/// Why a tenant in `state` is left out of a roll-out.
fn busy(state: TenantState) -> String {
    match state {
        TenantState::Deleted | TenantState::Deleting | TenantState::Failed => {
            format!("tenant is {state}")
        }
        other => format!(
            "tenant is {other}: its database is left alone while it is, and a later roll-out migrates it"
        ),
    }
}

/// One call's view of its roll-out, shared by its workers.
struct Run<'a> {
    fleet: &'a dyn FleetStore,
    id: RolloutId,
    worker: &'a str,
    options: &'a RolloutOptions,
    /// The failure limit in force: this call's, else the one kept.
    max_failures: FailureLimit,
    /// The roll-out's canary wave: at most this many units in wave 0.
    canary: usize,
    /// The roll-out's counts, as this call knows them, and how many units
    /// this call's workers have claimed and not settled yet.
    counts: Mutex<(RolloutCounts, usize)>,
    /// The units this call settled, in order.
    settled: Mutex<Vec<RolloutUnit>>,
    /// The units in hand, whose leases the heartbeat renews.
    held: Mutex<Vec<u64>>,
    /// Why the roll-out halts, once it does.
    halt: Mutex<Option<String>>,
}

/// Gives back `n` units reserved by a worker (see [`batch_size`]).
fn release(counts: &Mutex<(RolloutCounts, usize)>, n: usize) {
    let mut counts = lock(counts);
    counts.1 = counts.1.saturating_sub(n);
}

/// Locks `m`; a worker that panicked holding it left only counts behind.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Workers reserving batches one after another never hold more than
        /// the failures allowed plus one, and one more unit per other worker
        /// (each has at least one, as one unit at a time would).
        #[test]
        fn reserved_batches_stay_within_the_limit(
            pending in 0usize..5_000,
            failed in 0usize..100,
            n in 0usize..50,
            workers in 1usize..16,
        ) {
            let counts = RolloutCounts {
                total: pending + failed,
                pending,
                failed,
                ..RolloutCounts::default()
            };
            let limit = FailureLimit::Count(n);
            let mut in_flight = 0;
            for _ in 0..workers {
                let batch = batch_size(&counts, in_flight, limit, workers, usize::MAX);
                prop_assert!((1..=MAX_BATCH).contains(&batch));
                in_flight += batch;
            }
            let room = limit.headroom(failed, counts.total).unwrap() + 1;
            prop_assert!(in_flight < room + workers, "{in_flight} >= {room} + {workers}");
        }
    }

    #[test]
    fn batches_share_the_wave_and_shrink_at_its_end() {
        let counts = |pending| RolloutCounts {
            total: 1_000,
            pending,
            ..RolloutCounts::default()
        };
        let free = FailureLimit::Unlimited;
        assert_eq!(
            batch_size(&counts(1_000), 0, free, 4, usize::MAX),
            MAX_BATCH
        );
        assert_eq!(batch_size(&counts(40), 0, free, 4, usize::MAX), 10);
        assert_eq!(batch_size(&counts(40), 36, free, 4, usize::MAX), 1);
        // A canary wave of 8 among 1,000 pending: two units a worker.
        assert_eq!(batch_size(&counts(1_000), 0, free, 4, 8), 2);
        // No failure allowed: one unit at a time.
        let none = FailureLimit::Count(0);
        assert_eq!(batch_size(&counts(1_000), 0, none, 1, usize::MAX), 1);
    }
}
