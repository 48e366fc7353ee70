//! A journal and a store that "die" at their Nth journal write.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::events::{NewEvent, TenantEvent};
use crate::fleet::FleetStore;
use crate::model::{FailureInfo, RequestId, RunId, TenantId, TenantRecord};
use crate::saga::{InMemoryJournal, JournalRecord, SagaJournal};
use crate::store::{
    InMemoryStore, RequestRecord, RequestStatus, Submission, SubmitOutcome, TenantFilter,
    TenantStore,
};

/// A [`SagaJournal`] that writes through to `inner` until `fail_after`
/// records are written, then refuses every write, as if the process had
/// died there: what `inner` holds is what a restarted process finds.
///
/// A batch is written record by record, so the crash can fall inside one:
/// the harshest case, that of a journal without atomic batches, which
/// covers the atomic one. Reads keep working.
///
/// ```
/// # use std::sync::Arc;
/// # use provisioning_core::*;
/// # use provisioning_core::testing::CrashingJournal;
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// # struct Noop;
/// # #[async_trait::async_trait]
/// # impl Step<u32> for Noop {
/// #     fn name(&self) -> &str { "noop" }
/// #     async fn execute(&self, _: &mut u32) -> Result<(), StepError> { Ok(()) }
/// # }
/// let durable = Arc::new(InMemoryJournal::new());
/// // Dies after its first record: the run's start.
/// let dying = SagaExecutor::new(Arc::new(CrashingJournal::new(durable.clone(), 1)));
/// let saga = Saga::builder("two-steps").step(Noop).build()?;
/// assert!(dying.run(&saga, 0u32).await.is_err());
/// // A process started afterwards finds the run unfinished and resumes it.
/// let run = durable.unfinished_runs().await?[0];
/// let report = SagaExecutor::new(durable).resume(&saga, run, &CancellationToken::new()).await?;
/// assert_eq!(report.status, RunStatus::Completed);
/// # Ok::<(), Error>(())
/// # }).unwrap();
/// ```
pub struct CrashingJournal<J: ?Sized = InMemoryJournal> {
    inner: Arc<J>,
    fail_after: AtomicUsize,
    written: AtomicUsize,
}

impl<J: SagaJournal + ?Sized> CrashingJournal<J> {
    /// `inner`, dying after `fail_after` records (0: at the first write).
    pub fn new(inner: Arc<J>, fail_after: usize) -> Self {
        CrashingJournal {
            inner,
            fail_after: AtomicUsize::new(fail_after),
            written: AtomicUsize::new(0),
        }
    }

    /// Lets writes through again from now on, as a disk would once space
    /// is freed: for testing that a live process resumes what the fault
    /// interrupted, without a restart.
    pub fn revive(&self) {
        self.fail_after.store(usize::MAX, Ordering::SeqCst);
    }

    /// The journal written through to.
    pub fn inner(&self) -> &Arc<J> {
        &self.inner
    }

    /// How many records were written before the "crash".
    pub fn written(&self) -> usize {
        self.written.load(Ordering::SeqCst)
    }

    /// Takes one record's room, or fails as a dead process would.
    fn admit(&self) -> Result<()> {
        let fail_after = self.fail_after.load(Ordering::SeqCst);
        let admitted = self
            .written
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |written| {
                (written < fail_after).then_some(written + 1)
            });
        admitted.map(|_| ()).map_err(|_| Error::Backend {
            component: "crashing journal",
            message: format!("simulated crash after {fail_after} journal records"),
            transient: false,
            source: None,
        })
    }
}

#[async_trait]
impl<J: SagaJournal + ?Sized> SagaJournal for CrashingJournal<J> {
    async fn append(&self, record: JournalRecord) -> Result<()> {
        self.admit()?;
        self.inner.append(record).await
    }
    async fn load(&self, run_id: RunId) -> Result<Vec<JournalRecord>> {
        self.inner.load(run_id).await
    }
    async fn unfinished_runs(&self) -> Result<Vec<RunId>> {
        self.inner.unfinished_runs().await
    }
}

/// A [`TenantStore`] whose journal dies as a [`CrashingJournal`] does, after
/// `fail_after` records, while its catalog keeps working, as the database
/// would after the process died mid-run. Give it to an orchestrator to cut
/// runs short at every step in turn, then check that
/// [`recover`](crate::ProvisioningOrchestrator::recover) on an orchestrator
/// over `inner` finishes or rolls back each one.
pub struct CrashingStore<S: ?Sized = InMemoryStore> {
    journal: CrashingJournal<S>,
}

impl<S: TenantStore + ?Sized> CrashingStore<S> {
    /// `inner`, its journal dying after `fail_after` records.
    pub fn new(inner: Arc<S>, fail_after: usize) -> Self {
        CrashingStore {
            journal: CrashingJournal::new(inner, fail_after),
        }
    }

    /// The store written through to.
    pub fn inner(&self) -> &Arc<S> {
        self.journal.inner()
    }

    /// Lets journal writes through again (see [`CrashingJournal::revive`]).
    pub fn revive(&self) {
        self.journal.revive();
    }

    fn store(&self) -> &S {
        self.journal.inner()
    }
}

#[async_trait]
impl<S: TenantStore + ?Sized> SagaJournal for CrashingStore<S> {
    async fn append(&self, record: JournalRecord) -> Result<()> {
        self.journal.append(record).await
    }
    async fn append_batch(&self, records: Vec<JournalRecord>) -> Result<()> {
        self.journal.append_batch(records).await
    }
    async fn load(&self, run_id: RunId) -> Result<Vec<JournalRecord>> {
        self.journal.load(run_id).await
    }
    async fn unfinished_runs(&self) -> Result<Vec<RunId>> {
        self.journal.unfinished_runs().await
    }
}

#[async_trait]
impl<S: TenantStore + ?Sized> TenantStore for CrashingStore<S> {
    async fn submit(&self, submission: Submission) -> Result<SubmitOutcome> {
        self.store().submit(submission).await
    }
    async fn request(&self, request_id: RequestId) -> Result<Option<RequestRecord>> {
        self.store().request(request_id).await
    }
    async fn finish_request(
        &self,
        request_id: RequestId,
        status: RequestStatus,
        failure: Option<FailureInfo>,
    ) -> Result<()> {
        self.store()
            .finish_request(request_id, status, failure)
            .await
    }
    async fn unfinished_requests(&self) -> Result<Vec<RequestRecord>> {
        self.store().unfinished_requests().await
    }
    async fn tenant(&self, tenant_id: &TenantId) -> Result<Option<TenantRecord>> {
        self.store().tenant(tenant_id).await
    }
    async fn tenants(&self, tenant_ids: &[TenantId]) -> Result<Vec<TenantRecord>> {
        self.store().tenants(tenant_ids).await
    }
    async fn update_tenant(
        &self,
        record: TenantRecord,
        expected_version: u64,
        events: Vec<NewEvent>,
    ) -> Result<TenantRecord> {
        self.store()
            .update_tenant(record, expected_version, events)
            .await
    }
    async fn list_tenants(&self, filter: &TenantFilter) -> Result<Vec<TenantRecord>> {
        self.store().list_tenants(filter).await
    }
    async fn tenant_events(&self, tenant_id: &TenantId) -> Result<Vec<TenantEvent>> {
        self.store().tenant_events(tenant_id).await
    }
    async fn undelivered_events(&self, subscriber: &str, limit: usize) -> Result<Vec<TenantEvent>> {
        self.store().undelivered_events(subscriber, limit).await
    }
    async fn ack_event(&self, subscriber: &str, tenant: &TenantId, sequence: u64) -> Result<()> {
        self.store().ack_event(subscriber, tenant, sequence).await
    }
    async fn claim_requests(
        &self,
        worker: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<RequestRecord>> {
        self.store().claim_requests(worker, lease, limit).await
    }
    async fn renew_lease(
        &self,
        worker: &str,
        request_id: RequestId,
        lease: Duration,
    ) -> Result<bool> {
        self.store().renew_lease(worker, request_id, lease).await
    }
    async fn release_lease(&self, worker: &str, request_id: RequestId) -> Result<()> {
        self.store().release_lease(worker, request_id).await
    }
    fn fleet(&self) -> Option<&dyn FleetStore> {
        self.store().fleet()
    }
}
