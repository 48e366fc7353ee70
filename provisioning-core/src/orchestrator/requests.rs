//! Request bookkeeping behind the [`ProvisioningOrchestrator`] facade:
//! deduplicating, submitting and driving requests under their per-request
//! lock, recovering unfinished ones, and building request records and receipts.

use serde::Serialize;
use tracing::Instrument;

use crate::error::{Entity, Error, Result};
use crate::model::{RequestId, RunId, TenantId};
use crate::orchestrator::{CREATE_TENANT, ProvisioningOrchestrator, Receipt, RecoveryReport};
use crate::store::{RequestRecord, Submission, SubmitOutcome};

impl ProvisioningOrchestrator {
    /// Finishes every request a crash left unfinished: resumes its run to
    /// completion or compensation (starting it if it never started), retries
    /// failed compensations, and settles tenant and request.
    ///
    /// A request journaled by another version of its workflow (other
    /// steps, or a context of another shape, say after an upgrade) cannot
    /// resume: it is reported in
    /// [`RecoveryReport::mismatched`] and left unfinished, and the other
    /// requests are still recovered. So is one whose recovery fails (its
    /// journal unreadable, the store failing for it): it is reported in
    /// [`RecoveryReport::failed`], left for a later `recover` or an
    /// operator, and the rest go on, so that one bad run never keeps a
    /// process from starting. A request this process is driving at the
    /// moment is skipped, not waited for: a live process may call this
    /// periodically to resume runs a fault (a full disk, a lost
    /// connection) interrupted, once the fault is gone.
    ///
    /// Leases are not consulted: this is recovery for a catalog one process
    /// drives (the usual SQLite deployment, where waiting for a dead
    /// process's lease to lapse would only delay it). Where several
    /// processes share a catalog, use [`recover_leased`](Self::recover_leased)
    /// or let [`run_worker`](Self::run_worker) take over runs: they claim
    /// only requests whose lease is free or has lapsed, and runs started in
    /// a process hold a lease while it lives (see the builder's `run_lease`).
    ///
    /// # Errors
    /// The store failing to list the unfinished requests; a request whose
    /// run fails again is reported in its receipt, not as an error.
    pub async fn recover(&self) -> Result<RecoveryReport> {
        let mut report = RecoveryReport::default();
        for request in self.inner.parts.store.unfinished_requests().await? {
            self.recover_one(&request, &mut report).await;
        }
        self.dispatch_quietly().await;
        Ok(report)
    }

    /// As [`recover`](Self::recover), for a catalog several processes
    /// share: only requests whose lease is free or has lapsed are taken,
    /// one at a time, each leased to this orchestrator (the builder's
    /// `run_lease`, renewed meanwhile) while it is driven, so that runs a
    /// live worker or process holds are left to it, and a dead one's are
    /// taken once its lease lapses. A request it leaves unfinished (an
    /// unknown workflow, a mismatched journal, a failure) keeps its lease
    /// until the pass ends, so the pass goes on to the next; each request is
    /// tried at most once per pass.
    ///
    /// # Errors
    /// The store failing to claim requests.
    pub async fn recover_leased(&self) -> Result<RecoveryReport> {
        let mut report = RecoveryReport::default();
        let (driver, lease) = (self.inner.driver.as_str(), self.inner.run_lease);
        let store = &self.inner.parts.store;
        let mut kept = Vec::new();
        let mut tried = std::collections::HashSet::new();
        loop {
            // A failed claim ends the pass; the leases kept lapse on their own.
            let Some(request) = store.claim_requests(driver, lease, 1).await?.pop() else {
                break;
            };
            let request_id = request.request_id;
            // One tried already this pass: a kept lease lapsed while the
            // pass went on. The pass has seen everything; it ends here.
            if !tried.insert(request_id) {
                self.release_quietly(driver, request_id).await;
                break;
            }
            let recovering = self.recover_one(&request, &mut report);
            match self
                .while_leased(driver, lease, request_id, recovering)
                .await
            {
                Some(true) => self.release_quietly(driver, request_id).await,
                Some(false) => kept.push(request_id),
                // Taken over meanwhile: the other process finishes it.
                None => {}
            }
        }
        for request_id in kept {
            self.release_quietly(driver, request_id).await;
        }
        self.dispatch_quietly().await;
        Ok(report)
    }

    /// Recovers one unfinished request into `report`; whether it was driven
    /// to its end (`false`: left unfinished, and reported why, or skipped).
    async fn recover_one(&self, request: &RequestRecord, report: &mut RecoveryReport) -> bool {
        if self.registered(&request.workflow).is_err() {
            tracing::warn!(request_id = %request.request_id, workflow = %request.workflow, "unknown workflow; left alone");
            report.unknown_workflows.push(request.request_id);
            return false;
        }
        // A request this process is driving right now is its run's to
        // finish: skipped, not waited for, so that a live process can
        // call this periodically to resume what a fault interrupted.
        let Some(_guard) = self.inner.inflight.try_lock(request.request_id) else {
            tracing::debug!(request_id = %request.request_id, "being driven in this process; skipped");
            return false;
        };
        match self.finish_locked(request.request_id).await {
            Ok(receipt) => {
                let finished = receipt.status.is_finished();
                report.recovered.push(receipt);
                finished
            }
            // Another version's run: other steps, or a context this
            // version's types cannot read. Reported, and the rest go on.
            Err(error @ (Error::RunMismatch { .. } | Error::Serialization { .. })) => {
                tracing::error!(request_id = %request.request_id, %error, "journaled by another version of its workflow; left alone");
                report
                    .mismatched
                    .push((request.request_id, error.to_string()));
                false
            }
            Err(error) => {
                tracing::error!(request_id = %request.request_id, error = %error.report(), "recovering the request failed; left for a later recover");
                report.failed.push((request.request_id, error.report()));
                false
            }
        }
    }

    pub(super) async fn request_record(&self, request_id: RequestId) -> Result<RequestRecord> {
        self.inner
            .parts
            .store
            .request(request_id)
            .await?
            .ok_or_else(|| Error::NotFound {
                kind: Entity::Request,
                id: request_id.to_string(),
            })
    }

    /// The one path every request takes: dedupe by request id, check the
    /// precondition, submit atomically, drive the run, deliver events.
    pub(super) async fn execute<F, Fut>(
        &self,
        submission: Submission,
        precondition: F,
    ) -> Result<Receipt>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let request_id = submission.request.request_id;
        self.with_request_lock(request_id, async {
            let store = &self.inner.parts.store;
            if let Some(existing) = store.request(request_id).await? {
                return duplicate(existing, &submission.request);
            }
            precondition().await?;
            if self.queued {
                return self.record_queued(submission).await;
            }
            self.submit_and_drive(submission).await
        })
        .await
    }

    /// Submits, drives the run, delivers events; a known request id gets its
    /// stored receipt. The caller holds the request's lock.
    ///
    /// The request is leased to this orchestrator as it is written, and the
    /// lease renewed while the run goes on, so that a worker of another
    /// process never takes it meanwhile. Finishing the request ends the
    /// lease's meaning (claims take only unfinished requests): the fast path
    /// writes nothing more for it.
    pub(super) async fn submit_and_drive(&self, submission: Submission) -> Result<Receipt> {
        let request_id = submission.request.request_id;
        let request = submission.request.clone();
        let created = submission.new_tenant.as_ref().map(|(t, _)| t.clone());
        let parts = &self.inner.parts;
        let (driver, lease) = (self.inner.driver.as_str(), self.inner.run_lease);
        let submission = submission.leased_to(driver, lease);
        if let SubmitOutcome::Duplicate(existing) = parts.store.submit(submission).await? {
            return duplicate(existing, &request);
        }
        let _forget = parts.records.forget_on_drop(&request.tenant_id);
        if let Some(tenant) = created {
            // Stored as submitted: the run's first transition writes from it.
            parts.records.put(tenant);
        }
        let driven = self
            .while_leased(driver, lease, request_id, self.drive(&request, true))
            .await;
        match driven {
            Some(Ok(())) => {}
            Some(Err(error)) => {
                // Left unfinished by a fault: free it for a worker at once.
                self.release_quietly(driver, request_id).await;
                return Err(error);
            }
            None => {
                return Err(Error::Backend {
                    component: "orchestrator",
                    message: format!(
                        "lost the lease on request {request_id}: another process took its \
                         run over and finishes it (its status has the outcome)"
                    ),
                    transient: true,
                    source: None,
                });
            }
        }
        self.dispatch_quietly().await;
        let receipt = self.status(request_id).await?;
        if !receipt.status.is_finished() {
            // Stopped for a later retry (a compensation failed): claimable now.
            self.release_quietly(driver, request_id).await;
        }
        Ok(receipt)
    }

    /// Gives up `driver`'s lease on `request_id`; a failure only delays a
    /// claimant until the lease lapses, so it is logged, not returned.
    pub(super) async fn release_quietly(&self, driver: &str, request_id: RequestId) {
        if let Err(error) = self
            .inner
            .parts
            .store
            .release_lease(driver, request_id)
            .await
        {
            tracing::debug!(%error, "releasing a lease failed; it lapses instead");
        }
    }

    /// Records a submission, unleased, for a worker to claim (see
    /// `queued`); the caller holds the request's lock.
    pub(super) async fn record_queued(&self, submission: Submission) -> Result<Receipt> {
        let store = &self.inner.parts.store;
        let request = submission.request.clone();
        if let SubmitOutcome::Duplicate(existing) = store.submit(submission).await? {
            return duplicate(existing, &request);
        }
        self.dispatch_quietly().await;
        self.status(request.request_id).await
    }

    /// Drives `request`'s run with its registered workflow (see
    /// [`Workflow::drive`](crate::orchestrator::workflow::Workflow::drive)), in the request's span.
    async fn drive(&self, request: &RequestRecord, fresh: bool) -> Result<()> {
        let driven = self
            .registered(&request.workflow)?
            .erased
            .drive(&self.inner.parts, &self.inner.executor, request, fresh)
            .instrument(request_span(request))
            .await;
        // Wakes this process's waiters (`wait_until_finished`) at once,
        // whatever the store's own notices do.
        self.inner.finished.notify(usize::MAX);
        driven
    }

    /// Under the request's lock, drives an unfinished request to its end
    /// (resuming its run, or starting it if it never started) and returns its
    /// receipt. The request is re-read under the lock: a run of this process
    /// may have finished it meanwhile.
    pub(crate) async fn finish_unfinished(&self, request_id: RequestId) -> Result<Receipt> {
        self.with_request_lock(request_id, self.finish_locked(request_id))
            .await
    }

    /// As [`finish_unfinished`](Self::finish_unfinished); the caller holds
    /// the request's lock.
    async fn finish_locked(&self, request_id: RequestId) -> Result<Receipt> {
        let current = self.request_record(request_id).await?;
        if !current.status.is_finished() {
            self.drive(&current, false).await?;
        }
        self.status(request_id).await
    }

    pub(super) async fn with_request_lock<T>(
        &self,
        request_id: RequestId,
        work: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let _guard = self.inner.inflight.lock(request_id).await;
        work.await
    }

    /// Delivers pending events once; a failure is logged and left for the
    /// next delivery (events stay in the outbox).
    pub(super) async fn dispatch_quietly(&self) {
        if self.inner.dispatcher.subscribers().is_empty() {
            return;
        }
        if let Err(error) = self.inner.dispatcher.dispatch_once().await {
            tracing::warn!(error = %error, "event delivery failed; events stay in the outbox");
        }
    }
}

/// At ERROR level, as the executor's spans, so that every failure logged
/// under it names its request.
fn request_span(request: &RequestRecord) -> tracing::Span {
    tracing::error_span!(
        "provisioning",
        request_id = %request.request_id,
        tenant_id = %request.tenant_id,
        workflow = %request.workflow,
    )
}

/// The stored request answers a repeat of the same request; a different
/// request under the same id is a conflict.
fn duplicate(existing: RequestRecord, asked: &RequestRecord) -> Result<Receipt> {
    // What the caller asked for: a create's payload also carries the plan
    // builder's decision, which may differ between versions or configs
    // without the request being another one.
    let asked_for = |r: &RequestRecord| match r.workflow.as_str() {
        CREATE_TENANT => r.payload.get("request").cloned(),
        _ => Some(r.payload.clone()),
    };
    if existing.workflow != asked.workflow
        || existing.tenant_id != asked.tenant_id
        || asked_for(&existing) != asked_for(asked)
    {
        return Err(Error::Conflict {
            kind: Entity::Request,
            id: asked.request_id.to_string(),
            reason: format!(
                "request id already used for {} of tenant {} with other parameters",
                existing.workflow, existing.tenant_id
            ),
        });
    }
    Ok(existing.into())
}

/// A request of `workflow` for `tenant`, whose initial saga context is
/// `context`; its run takes the request's id, one run per request.
pub(super) fn new_request<T: Serialize>(
    request_id: RequestId,
    tenant: &TenantId,
    workflow: &str,
    context: &T,
) -> Result<RequestRecord> {
    Ok(RequestRecord::new(
        request_id,
        tenant.clone(),
        workflow,
        to_payload(context)?,
        RunId::from_uuid(*request_id.as_uuid())?,
    ))
}

fn to_payload<T: Serialize>(value: &T) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(|source| Error::Serialization {
        what: "request payload",
        source,
    })
}
