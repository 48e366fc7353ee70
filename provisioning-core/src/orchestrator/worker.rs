//! Workers: drive queued requests from a shared store under leases, so that
//! many orchestrator processes can share one catalog and a dead worker's runs
//! are resumed by another.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::orchestrator::ProvisioningOrchestrator;
use crate::saga::CancellationToken;
use crate::store::{RequestRecord, RequestStatus};

/// How a worker claims and drives requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkerOptions {
    /// How long a claim lasts without renewal; renewed every third of it.
    pub lease: Duration,
    /// Requests driven at once; also how many are claimed per round, so that
    /// no claimed request waits unrenewed while its lease runs out.
    pub concurrency: usize,
    /// Pause after a round that found nothing to claim; a store that sends
    /// [`request_notices`](crate::TenantStore::request_notices) (PostgreSQL)
    /// wakes the worker sooner, when a request is queued.
    pub idle: Duration,
    /// Return after the first round that finds nothing to claim (drains the
    /// queue, for batch jobs and tests) instead of polling until cancelled.
    pub exit_when_idle: bool,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            lease: Duration::from_secs(30),
            concurrency: 4,
            idle: Duration::from_millis(500),
            exit_when_idle: false,
        }
    }
}

impl WorkerOptions {
    /// The defaults, draining the queue and returning when it is empty.
    pub fn drain() -> Self {
        WorkerOptions {
            exit_when_idle: true,
            ..Self::default()
        }
    }

    /// The same, with this lease.
    #[must_use]
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The same, driving this many requests at once.
    #[must_use]
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }
}

/// What a worker did before it returned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkerReport {
    /// Requests driven to `Succeeded`.
    pub succeeded: usize,
    /// Requests driven to `Failed` or `CompensationFailed`.
    pub failed: usize,
    /// Requests abandoned because the lease was lost (another worker took over).
    pub lost_leases: usize,
}

/// The longest pause between two reads of a request waited for when the
/// store sends no notices.
const POLL_MAX: Duration = Duration::from_millis(250);
/// How often a request waited for is read again although the store sends
/// notices: a safety net, should a notice be lost without a `Missed`.
const NOTICE_SAFETY: Duration = Duration::from_secs(5);

impl ProvisioningOrchestrator {
    /// The same orchestrator (sharing everything), whose methods that change
    /// something record the request and return at once, leaving the run to a
    /// worker ([`run_worker`](Self::run_worker), in this process or another
    /// sharing the store): `create`, `retry`, `suspend`, `resume`, `delete`,
    /// `change_plan`, `move_tenant`, `move_off_shard` and `run_workflow`.
    ///
    /// Everything checked before a run starts is still checked here, so bad
    /// input, an unknown tenant, an illegal transition or a conflicting
    /// request id are refused at once and nothing is written. A request
    /// accepted is answered with its receipt `Running`; the same request id
    /// again returns the stored receipt, as without queueing. Follow it with
    /// [`status`](Self::status) or [`wait_until_finished`](Self::wait_until_finished).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use async_trait::async_trait;
    /// # use provisioning_core::*;
    /// # struct Plans; #[async_trait] impl PlacementPolicy for Plans {
    /// #   async fn decide(&self, r: &TenantRequest) -> Result<PlacementDecision> {
    /// #     Ok(PlacementDecision::new(r.plan.clone(), Isolation::Shared, r.region.clone(), Residency::Strict, "all shared")) } }
    /// # struct Shards; #[async_trait] impl ShardResolver for Shards {
    /// #   async fn resolve(&self, _: &TenantId, d: &PlacementDecision) -> Result<ShardChoice> {
    /// #     Ok(ShardChoice::new("shared-1".parse()?, d.region.clone(), "one shard")) } }
    /// # struct Db; #[async_trait] impl TenantSchemaManager for Db {
    /// #   async fn preview(&self, _: &Placement) -> Result<SchemaPreview> { Ok(SchemaPreview::new("mem", true, false, vec![], vec![])) }
    /// #   async fn provision(&self, _: &Placement) -> Result<DatabaseOutcome> { Ok(DatabaseOutcome::Shared) }
    /// #   async fn migrate(&self, _: &Placement) -> Result<Vec<MigrationInfo>> { Ok(vec![]) }
    /// #   async fn seed(&self, _: &Placement) -> Result<Vec<SeedInfo>> { Ok(vec![]) }
    /// #   async fn drop_tenant(&self, _: &Placement, _: DropReason) -> Result<()> { Ok(()) } }
    /// # struct Files; #[async_trait] impl StorageInitializer for Files {
    /// #   async fn preview(&self, _: &Placement) -> Result<StoragePreview> { Ok(StoragePreview::new(vec![], false)) }
    /// #   async fn initialize(&self, _: &Placement) -> Result<()> { Ok(()) }
    /// #   async fn remove(&self, _: &Placement, _: RemovalMode) -> Result<()> { Ok(()) } }
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let orchestrator = ProvisioningOrchestrator::builder()
    ///     .store(Arc::new(InMemoryStore::new()))
    ///     .placement_policy(Arc::new(Plans))
    ///     .shard_resolver(Arc::new(Shards))
    ///     .schema_manager(Arc::new(Db))
    ///     .storage(Arc::new(Files))
    ///     .build()?;
    /// let api = orchestrator.queued();
    /// let request = TenantRequest::new("acme".parse()?, "free".parse()?, "eu-west".parse()?);
    /// let accepted = api.create(request.clone()).await?;
    /// assert_eq!(accepted.status, RequestStatus::Running);
    ///
    /// // A worker (here in the same process) carries it out.
    /// orchestrator.run_worker("worker-1", &WorkerOptions::drain(), &CancellationToken::new()).await?;
    /// let done = api.wait_until_finished(request.request_id, Duration::from_secs(5)).await?;
    /// assert_eq!(done.status, RequestStatus::Succeeded);
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    #[must_use]
    pub fn queued(&self) -> Self {
        ProvisioningOrchestrator {
            inner: Arc::clone(&self.inner),
            queued: true,
        }
    }

    /// Whether this handle queues requests (see [`queued`](Self::queued)).
    pub fn is_queued(&self) -> bool {
        self.queued
    }

    /// Accepts a create without running it: the request, the tenant
    /// (`Requested`) and `TenantCreated` are written at once, and a worker
    /// ([`run_worker`](Self::run_worker)) carries it out. Same idempotency and
    /// errors as [`create`](Self::create); the receipt says `Running`.
    /// Shorthand for `queued().create(request)`.
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub async fn submit(&self, request: crate::model::TenantRequest) -> Result<super::Receipt> {
        self.queued().create(request).await
    }

    /// Waits until request `request_id` has ended (finished, or stopped
    /// with a compensation that failed: not `Running` any more), or
    /// `timeout` has passed, and returns its receipt as last read (still
    /// `Running` after a timeout). Wakes when a run of this process ends and
    /// on the store's [`request_notices`](crate::TenantStore::request_notices)
    /// (PostgreSQL's `NOTIFY`, from any process); a store without notices,
    /// or whose notices cannot be had at the moment, is read with pauses
    /// growing to 250 ms. Everything but the last read is bounded by
    /// `timeout`.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for an unknown request;
    /// store failures.
    pub async fn wait_until_finished(
        &self,
        request_id: crate::model::RequestId,
        timeout: Duration,
    ) -> Result<super::Receipt> {
        let timer = Arc::clone(self.inner.executor.timer());
        let wait = self.wait_for_end(request_id, &timer);
        futures_util::pin_mut!(wait);
        match futures_util::future::select(wait, timer.sleep(timeout)).await {
            futures_util::future::Either::Left((ended, _)) => ended,
            futures_util::future::Either::Right(_) => self.status(request_id).await,
        }
    }

    /// The loop of [`wait_until_finished`](Self::wait_until_finished),
    /// without its deadline.
    async fn wait_for_end(
        &self,
        request_id: crate::model::RequestId,
        timer: &Arc<dyn crate::saga::Timer>,
    ) -> Result<super::Receipt> {
        // Subscribed before the first read, so that nothing between is
        // missed. Without notices, reads with pauses do.
        let mut notices = match self.inner.parts.store.request_notices().await {
            Ok(notices) => notices,
            Err(error) => {
                tracing::warn!(%error, "request notices unavailable; reading the request with pauses");
                None
            }
        };
        let mut pause = Duration::from_millis(2);
        loop {
            let local = self.inner.finished.listen();
            let receipt = self.status(request_id).await?;
            if receipt.status != RequestStatus::Running {
                return Ok(receipt);
            }
            let wake = async {
                match notices.as_mut() {
                    Some(stream) => {
                        let notice = async {
                            while let Some(notice) = stream.next().await {
                                match notice {
                                    crate::store::RequestNotice::Changed(id)
                                        if id != request_id => {}
                                    _ => return,
                                }
                            }
                            // The stream ended: no more notices, only reads.
                            futures_util::future::pending::<()>().await;
                        };
                        let safety = timer.sleep(NOTICE_SAFETY);
                        futures_util::pin_mut!(notice);
                        futures_util::future::select(notice, safety).await;
                    }
                    None => {
                        timer.sleep(pause).await;
                        pause = (pause * 2).min(POLL_MAX);
                    }
                }
            };
            futures_util::pin_mut!(wake);
            futures_util::future::select(wake, local).await;
        }
    }

    /// Claims unfinished requests from the store under leases and drives each
    /// to its end (resuming from the journal what another worker began),
    /// renewing the lease meanwhile. A request whose lease is lost is dropped
    /// at once: the worker that claimed it next resumes it from the journal.
    /// Returns when `cancel` is cancelled, or with
    /// [`WorkerOptions::exit_when_idle`] when nothing is left to claim.
    ///
    /// # Errors
    /// Store failures while claiming.
    pub async fn run_worker(
        &self,
        worker: &str,
        options: &WorkerOptions,
        cancel: &CancellationToken,
    ) -> Result<WorkerReport> {
        let succeeded = AtomicUsize::new(0);
        let failed = AtomicUsize::new(0);
        let lost = AtomicUsize::new(0);
        let store = Arc::clone(&self.inner.parts.store);
        // Requests queued from now on wake an idle worker at once, where the
        // store sends notices; otherwise it looks again every `idle`.
        let mut notices = match options.exit_when_idle {
            true => None,
            false => store.request_notices().await?,
        };
        while !cancel.is_cancelled() {
            // Notices of what happened before this claim are spent: the
            // claim sees it. (Drained before it, not after: a request
            // queued while it reads keeps its notice.)
            if let Some(stream) = notices.as_mut() {
                loop {
                    match stream.next().now_or_never() {
                        Some(Some(_)) => {}
                        // The stream ended: no more notices, only pauses.
                        Some(None) => {
                            notices = None;
                            break;
                        }
                        None => break,
                    }
                }
            }
            let claimed = store
                .claim_requests(worker, options.lease, options.concurrency.max(1))
                .await?;
            if claimed.is_empty() {
                if options.exit_when_idle {
                    break;
                }
                let sleep = self.inner.executor.timer().sleep(options.idle);
                let cancelled = Box::pin(cancel.cancelled());
                match notices.as_mut() {
                    Some(stream) => {
                        let notice = stream.next();
                        let woken = futures_util::future::select(sleep, notice);
                        futures_util::future::select(woken, cancelled).await;
                    }
                    None => {
                        futures_util::future::select(sleep, cancelled).await;
                    }
                }
                continue;
            }
            futures_util::stream::iter(claimed)
                .for_each_concurrent(options.concurrency.max(1), |request| async {
                    match self.drive_leased(worker, options.lease, request).await {
                        Ok(Some(RequestStatus::Succeeded)) => {
                            succeeded.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Some(_)) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(None) => {
                            lost.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(error) => {
                            // Left unfinished with its lease released: the
                            // next claim retries it.
                            tracing::warn!(worker, error = %error, "request not finished; will be retried");
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
                .await;
            self.dispatch_quietly().await;
        }
        Ok(WorkerReport {
            succeeded: succeeded.into_inner(),
            failed: failed.into_inner(),
            lost_leases: lost.into_inner(),
        })
    }

    /// Drives one claimed request while renewing its lease; `None` if the
    /// lease was lost.
    async fn drive_leased(
        &self,
        worker: &str,
        lease: Duration,
        request: RequestRecord,
    ) -> Result<Option<RequestStatus>> {
        let store = &self.inner.parts.store;
        let request_id = request.request_id;
        // The claim may have waited for a free slot: make sure it still holds
        // before touching anything.
        if !store.renew_lease(worker, request_id, lease).await? {
            return Ok(None);
        }
        let drive = async {
            let receipt = self.finish_unfinished(request_id).await?;
            Ok::<_, crate::Error>(receipt.status)
        };
        match self.while_leased(worker, lease, request_id, drive).await {
            Some(result) => {
                self.release_quietly(worker, request_id).await;
                result.map(Some)
            }
            None => Ok(None),
        }
    }

    /// Runs `work` while renewing `worker`'s lease on `request_id` every
    /// third of `lease`; `None`, with `work` dropped, once the lease is lost
    /// (it lapsed and another process claimed the request: that one resumes
    /// the run from its journal).
    pub(super) async fn while_leased<T>(
        &self,
        worker: &str,
        lease: Duration,
        request_id: crate::model::RequestId,
        work: impl std::future::Future<Output = T>,
    ) -> Option<T> {
        let store = &self.inner.parts.store;
        let heartbeat = async {
            let timer = self.inner.executor.timer();
            loop {
                timer.sleep(lease / 3).await;
                match store.renew_lease(worker, request_id, lease).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    // A failed renewal is retried at the next beat; the lease
                    // still has two thirds of its time.
                    Err(error) => tracing::warn!(worker, error = %error, "lease renewal failed"),
                }
            }
        };
        match futures_util::future::select(Box::pin(work), Box::pin(heartbeat)).await {
            futures_util::future::Either::Left((done, _)) => Some(done),
            futures_util::future::Either::Right(((), _)) => {
                tracing::warn!(worker, request_id = %request_id, "lease lost; another process resumes the run");
                None
            }
        }
    }
}
