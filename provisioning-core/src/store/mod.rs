//! The catalog store: tenants, requests (idempotency keys), the saga journal and
//! the event outbox, behind one trait ([`TenantStore`]) so that their writes can
//! share transactions. [`InMemoryStore`] lives here; provisioning-sqlx has
//! SQLite and PostgreSQL ones.

mod memory;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use memory::InMemoryStore;

use crate::error::Result;
use crate::events::{NewEvent, TenantEvent};
use crate::model::{
    FailureInfo, PlanName, Region, RequestId, RunId, TenantId, TenantRecord, TenantState,
};
use crate::saga::SagaJournal;

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    /// Accepted; its run has not finished.
    Running,
    /// Its run completed.
    Succeeded,
    /// Its run failed and was rolled back (or, for delete, stopped).
    Failed,
    /// Its run failed and rolling back failed too; `recover` retries it.
    CompensationFailed,
}

impl std::fmt::Display for RequestStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl RequestStatus {
    /// Whether the request's outcome is settled.
    pub fn is_finished(self) -> bool {
        matches!(self, RequestStatus::Succeeded | RequestStatus::Failed)
    }

    /// The lowercase name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Running => "running",
            RequestStatus::Succeeded => "succeeded",
            RequestStatus::Failed => "failed",
            RequestStatus::CompensationFailed => "compensation_failed",
        }
    }
}

/// A request as the catalog stores it: its idempotency key, what it asked for,
/// its run, and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RequestRecord {
    /// The idempotency key.
    pub request_id: RequestId,
    /// The tenant it is about.
    pub tenant_id: TenantId,
    /// The workflow (`create-tenant`, `suspend-tenant`, a user's workflow...).
    pub workflow: String,
    /// What was asked, as JSON; a second request under the same id must ask
    /// the same, or it is a conflict.
    pub payload: serde_json::Value,
    /// The saga run that carries it out.
    pub run_id: RunId,
    /// Where it stands.
    pub status: RequestStatus,
    /// Why it failed, if it did.
    pub failure: Option<FailureInfo>,
    /// When it was accepted.
    pub submitted_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
}

impl RequestRecord {
    /// A request accepted now, running.
    pub fn new(
        request_id: RequestId,
        tenant_id: TenantId,
        workflow: impl Into<String>,
        payload: serde_json::Value,
        run_id: RunId,
    ) -> Self {
        RequestRecord {
            request_id,
            tenant_id,
            workflow: workflow.into(),
            payload,
            run_id,
            status: RequestStatus::Running,
            failure: None,
            submitted_at: Utc::now(),
            finished_at: None,
        }
    }
}

/// One atomic submission: a request row, and for a create the new tenant row
/// and its first event; optionally leased at once to the process that will
/// drive it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Submission {
    /// The request.
    pub request: RequestRecord,
    /// The tenant to create, with the event announcing it.
    pub new_tenant: Option<(TenantRecord, NewEvent)>,
    /// The lease written with the request: its driver holds it from the
    /// first instant, so no [`claim_requests`](TenantStore::claim_requests)
    /// of another process takes the request while it lasts.
    pub lease: Option<SubmissionLease>,
}

/// Who drives a submitted request, and for how long before a renewal
/// ([`TenantStore::renew_lease`]); after that, any claimant may take it over.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubmissionLease {
    /// The lease's owner, as [`TenantStore::claim_requests`] names workers.
    pub owner: String,
    /// How long it lasts from the submission.
    pub duration: Duration,
}

impl Submission {
    /// A request on an existing tenant.
    pub fn request(request: RequestRecord) -> Self {
        Submission {
            request,
            new_tenant: None,
            lease: None,
        }
    }

    /// A request that creates `tenant`, announced by `event`.
    pub fn create(request: RequestRecord, tenant: TenantRecord, event: NewEvent) -> Self {
        Submission {
            request,
            new_tenant: Some((tenant, event)),
            lease: None,
        }
    }

    /// The same submission, its request leased to `owner` for `duration`
    /// from the moment it is written (see [`SubmissionLease`]).
    #[must_use]
    pub fn leased_to(mut self, owner: impl Into<String>, duration: Duration) -> Self {
        self.lease = Some(SubmissionLease {
            owner: owner.into(),
            duration,
        });
        self
    }
}

/// What [`TenantStore::submit`] did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SubmitOutcome {
    /// Everything was written; the caller owns the run.
    Accepted,
    /// The request id was known: nothing was written; here is the stored request.
    Duplicate(RequestRecord),
}

/// Which tenants a listing returns, and which page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TenantFilter {
    /// Only tenants in this state.
    pub state: Option<TenantState>,
    /// Only tenants in this region.
    pub region: Option<Region>,
    /// Only tenants on this plan.
    pub plan: Option<PlanName>,
    /// Only tenants whose id sorts after this one (keyset pagination).
    pub after: Option<TenantId>,
    /// At most this many (0 means the store's default of 100).
    pub limit: usize,
}

impl TenantFilter {
    /// Every tenant, first page; narrowed with the methods below.
    ///
    /// ```
    /// use provisioning_core::{TenantFilter, TenantState};
    ///
    /// let filter = TenantFilter::all()
    ///     .state(TenantState::Active)
    ///     .region("eu-west".parse()?)
    ///     .after("acme".parse()?)
    ///     .limit(50);
    /// assert_eq!(filter.effective_limit(), 50);
    /// assert_eq!(filter.after.unwrap().as_str(), "acme");
    /// # Ok::<(), provisioning_core::Error>(())
    /// ```
    pub fn all() -> Self {
        Self::default()
    }

    /// Only tenants in `state`.
    #[must_use]
    pub fn state(mut self, state: TenantState) -> Self {
        self.state = Some(state);
        self
    }

    /// Only tenants in `region`.
    #[must_use]
    pub fn region(mut self, region: Region) -> Self {
        self.region = Some(region);
        self
    }

    /// Only tenants on `plan`.
    #[must_use]
    pub fn plan(mut self, plan: PlanName) -> Self {
        self.plan = Some(plan);
        self
    }

    /// Only tenants whose id sorts after `tenant` (the last of the page
    /// before).
    #[must_use]
    pub fn after(mut self, tenant: TenantId) -> Self {
        self.after = Some(tenant);
        self
    }

    /// At most `limit` tenants (0: the store's default of 100; at most
    /// 10,000).
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// The page size the store uses for `limit`.
    pub fn effective_limit(&self) -> usize {
        match self.limit {
            0 => 100,
            n => n.min(10_000),
        }
    }

    /// Whether `record` passes the filter (not the page bounds).
    pub fn matches(&self, record: &TenantRecord) -> bool {
        self.state.is_none_or(|s| s == record.state)
            && self.region.as_ref().is_none_or(|r| *r == record.region)
            && self.plan.as_ref().is_none_or(|p| *p == record.plan)
            && self.after.as_ref().is_none_or(|a| record.tenant_id > *a)
    }
}

/// What a store's [`request_notices`](TenantStore::request_notices) stream yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestNotice {
    /// This request was queued for workers, or its status changed (it may
    /// have finished).
    Changed(RequestId),
    /// Notices may have been lost (a dropped connection, a slow reader):
    /// read again what you wait for.
    Missed,
}

/// The stream [`TenantStore::request_notices`] returns.
pub type RequestNotices = futures_util::stream::BoxStream<'static, RequestNotice>;

/// The catalog: tenants, requests, the saga journal and the event outbox.
///
/// # Contract
/// - [`submit`](Self::submit) writes the request, the tenant and its first event
///   atomically, or nothing: a known request id is
///   [`SubmitOutcome::Duplicate`] (checked first: a repeated create is a
///   duplicate, not a conflict, and the orchestrator relies on it); a tenant id that exists (tombstones
///   included: ids are never reused) is [`Error::Conflict`](crate::Error::Conflict).
///   Concurrent submissions of one request id accept exactly one.
/// - [`update_tenant`](Self::update_tenant) writes the record and its events
///   atomically if the stored version is `expected_version`, else
///   [`Error::Conflict`](crate::Error::Conflict) and nothing is written; the
///   stored version becomes `expected_version + 1`. Events get the tenant's
///   next gapless sequence numbers.
/// - The outbox keeps, per subscriber and tenant, the last acknowledged
///   sequence; [`undelivered_events`](Self::undelivered_events) returns the
///   later ones ordered by tenant, then sequence.
///
/// The conformance suite in provisioning-sqlx runs the same tests against every
/// implementation.
#[async_trait]
pub trait TenantStore: SagaJournal {
    /// Records a submission atomically, with its
    /// [`lease`](Submission::lease) if it has one: the orchestrator leases
    /// every run it starts, renews it while the run goes on, and stops
    /// driving a run whose renewal fails, so a store that dropped the lease
    /// would see its longer runs abandoned to workers.
    async fn submit(&self, submission: Submission) -> Result<SubmitOutcome>;

    /// A request by id.
    async fn request(&self, request_id: RequestId) -> Result<Option<RequestRecord>>;

    /// Sets a request's status and failure, stamping `finished_at` when settled.
    async fn finish_request(
        &self,
        request_id: RequestId,
        status: RequestStatus,
        failure: Option<FailureInfo>,
    ) -> Result<()>;

    /// Requests whose status is `Running` or `CompensationFailed`, oldest first.
    async fn unfinished_requests(&self) -> Result<Vec<RequestRecord>>;

    /// A tenant by id (tombstones included).
    async fn tenant(&self, tenant_id: &TenantId) -> Result<Option<TenantRecord>>;

    /// The tenants of `tenant_ids` the catalog has (tombstones included),
    /// in any order; ids it does not have are left out. The default reads
    /// them one at a time; the SDK's stores read them in one query.
    async fn tenants(&self, tenant_ids: &[TenantId]) -> Result<Vec<TenantRecord>> {
        let mut found = Vec::with_capacity(tenant_ids.len());
        for id in tenant_ids {
            if let Some(record) = self.tenant(id).await? {
                found.push(record);
            }
        }
        Ok(found)
    }

    /// Writes `record` and appends `events` if the stored version is
    /// `expected_version`; returns the record as stored.
    async fn update_tenant(
        &self,
        record: TenantRecord,
        expected_version: u64,
        events: Vec<NewEvent>,
    ) -> Result<TenantRecord>;

    /// Tenants matching `filter`, ordered by id.
    async fn list_tenants(&self, filter: &TenantFilter) -> Result<Vec<TenantRecord>>;

    /// A tenant's events, in sequence order.
    async fn tenant_events(&self, tenant_id: &TenantId) -> Result<Vec<TenantEvent>>;

    /// Up to `limit` events not yet acknowledged by `subscriber`, ordered by
    /// tenant and sequence.
    async fn undelivered_events(&self, subscriber: &str, limit: usize) -> Result<Vec<TenantEvent>>;

    /// Records that `subscriber` handled `tenant`'s events up to `sequence`.
    async fn ack_event(&self, subscriber: &str, tenant: &TenantId, sequence: u64) -> Result<()>;

    /// Claims up to `limit` unfinished requests (oldest first) whose lease is
    /// free or expired, leasing each to `worker` for `lease`. Two workers never
    /// hold one request's lease at once: a claim is atomic per request (with
    /// `FOR UPDATE SKIP LOCKED` on PostgreSQL), and an expired lease passes to
    /// the next claimant, who resumes the run from its journal.
    async fn claim_requests(
        &self,
        worker: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<RequestRecord>>;

    /// Extends `worker`'s lease on `request_id` by `lease` from now; `false`
    /// when the worker no longer holds it (expired and claimed by another, or
    /// released), in which case it must stop working on the request.
    async fn renew_lease(
        &self,
        worker: &str,
        request_id: RequestId,
        lease: Duration,
    ) -> Result<bool>;

    /// Gives up `worker`'s lease on `request_id` (a no-op if not held).
    async fn release_lease(&self, worker: &str, request_id: RequestId) -> Result<()>;

    /// A stream of notices that requests were queued or changed status, from
    /// every process sharing the catalog, for
    /// [`ProvisioningOrchestrator::wait_until_finished`](crate::ProvisioningOrchestrator::wait_until_finished)
    /// and idle [`run_worker`](crate::ProvisioningOrchestrator::run_worker)s:
    /// once this returns, no later change is missed (or a
    /// [`RequestNotice::Missed`] says some may have been). `None` by default:
    /// the orchestrator then reads the request with growing pauses. The
    /// PostgreSQL store answers with `LISTEN`/`NOTIFY`.
    async fn request_notices(&self) -> Result<Option<RequestNotices>> {
        Ok(None)
    }

    /// The catalog's record of fleet roll-outs, if it keeps one (every store
    /// of the SDK does); [`ProvisioningOrchestrator::roll_out`](crate::ProvisioningOrchestrator::roll_out)
    /// needs it. `None` by default, so that a store of your own need not.
    fn fleet(&self) -> Option<&dyn crate::fleet::FleetStore> {
        None
    }
}
