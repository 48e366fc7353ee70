//! [`InMemoryStore`]: the catalog in memory, for tests and prototypes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;

use crate::error::{Entity, Error, Result};
use crate::events::{NewEvent, TenantEvent};
use crate::model::{FailureInfo, RequestId, RunId, TenantId, TenantRecord};
use crate::saga::{InMemoryJournal, JournalRecord, SagaJournal};
use crate::store::{
    RequestRecord, RequestStatus, Submission, SubmitOutcome, TenantFilter, TenantStore,
};

/// A [`TenantStore`] (and [`SagaJournal`]) in memory: faithful to the contract,
/// atomic through one lock, gone with the process.
///
/// ```
/// use std::sync::Arc;
/// use provisioning_core::{InMemoryStore, TenantFilter, TenantStore};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = Arc::new(InMemoryStore::new());
/// assert!(store.list_tenants(&TenantFilter::all()).await?.is_empty());
/// # Ok::<(), provisioning_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Default)]
pub struct InMemoryStore {
    journal: InMemoryJournal,
    catalog: Mutex<Catalog>,
    /// Fleet roll-outs (see [`FleetStore`](crate::FleetStore)).
    pub(crate) fleet: Mutex<crate::fleet::memory::FleetTables>,
}

#[derive(Debug, Default)]
struct Catalog {
    tenants: BTreeMap<TenantId, TenantRecord>,
    requests: HashMap<RequestId, RequestRecord>,
    events: BTreeMap<TenantId, Vec<TenantEvent>>,
    cursors: HashMap<(String, TenantId), u64>,
    leases: HashMap<RequestId, (String, Instant)>,
}

impl Catalog {
    fn append_events(&mut self, tenant: &TenantId, events: Vec<NewEvent>) {
        let log = self.events.entry(tenant.clone()).or_default();
        let now = Utc::now();
        for event in events {
            let sequence = log.len() as u64 + 1;
            log.push(TenantEvent::stored(tenant.clone(), sequence, now, event));
        }
    }
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Catalog> {
        // Every write completes under the lock before it is released, so a
        // poisoned lock still guards consistent data.
        self.catalog.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl SagaJournal for InMemoryStore {
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
impl TenantStore for InMemoryStore {
    fn fleet(&self) -> Option<&dyn crate::fleet::FleetStore> {
        Some(self)
    }

    async fn submit(&self, submission: Submission) -> Result<SubmitOutcome> {
        let mut catalog = self.lock();
        if let Some(existing) = catalog.requests.get(&submission.request.request_id) {
            return Ok(SubmitOutcome::Duplicate(existing.clone()));
        }
        if let Some((tenant, event)) = submission.new_tenant {
            if let Some(existing) = catalog.tenants.get(&tenant.tenant_id) {
                return Err(Error::Conflict {
                    kind: Entity::Tenant,
                    id: tenant.tenant_id.to_string(),
                    reason: format!(
                        "tenant exists (state {}, created by request {})",
                        existing.state, existing.request_id
                    ),
                });
            }
            let id = tenant.tenant_id.clone();
            catalog.tenants.insert(id.clone(), tenant);
            catalog.append_events(&id, vec![event]);
        }
        if let Some(lease) = submission.lease {
            let until = Instant::now() + lease.duration;
            catalog
                .leases
                .insert(submission.request.request_id, (lease.owner, until));
        }
        catalog
            .requests
            .insert(submission.request.request_id, submission.request);
        Ok(SubmitOutcome::Accepted)
    }

    async fn request(&self, request_id: RequestId) -> Result<Option<RequestRecord>> {
        Ok(self.lock().requests.get(&request_id).cloned())
    }

    async fn finish_request(
        &self,
        request_id: RequestId,
        status: RequestStatus,
        failure: Option<FailureInfo>,
    ) -> Result<()> {
        let mut catalog = self.lock();
        let request = catalog
            .requests
            .get_mut(&request_id)
            .ok_or_else(|| Error::NotFound {
                kind: Entity::Request,
                id: request_id.to_string(),
            })?;
        request.status = status;
        request.failure = failure;
        request.finished_at = status.is_finished().then(Utc::now);
        Ok(())
    }

    async fn unfinished_requests(&self) -> Result<Vec<RequestRecord>> {
        let catalog = self.lock();
        let mut pending: Vec<RequestRecord> = catalog
            .requests
            .values()
            .filter(|r| !r.status.is_finished())
            .cloned()
            .collect();
        pending.sort_by_key(|r| (r.submitted_at, r.request_id));
        Ok(pending)
    }

    async fn tenant(&self, tenant_id: &TenantId) -> Result<Option<TenantRecord>> {
        Ok(self.lock().tenants.get(tenant_id).cloned())
    }

    async fn update_tenant(
        &self,
        mut record: TenantRecord,
        expected_version: u64,
        events: Vec<NewEvent>,
    ) -> Result<TenantRecord> {
        let mut catalog = self.lock();
        let stored = catalog
            .tenants
            .get(&record.tenant_id)
            .ok_or_else(|| Error::NotFound {
                kind: Entity::Tenant,
                id: record.tenant_id.to_string(),
            })?;
        if stored.version != expected_version {
            return Err(Error::Conflict {
                kind: Entity::Tenant,
                id: record.tenant_id.to_string(),
                reason: format!(
                    "version {expected_version} expected, {} stored",
                    stored.version
                ),
            });
        }
        record.version = expected_version + 1;
        record.updated_at = Utc::now();
        let id = record.tenant_id.clone();
        catalog.tenants.insert(id.clone(), record.clone());
        catalog.append_events(&id, events);
        Ok(record)
    }

    async fn list_tenants(&self, filter: &TenantFilter) -> Result<Vec<TenantRecord>> {
        let catalog = self.lock();
        Ok(catalog
            .tenants
            .values()
            .filter(|r| filter.matches(r))
            .take(filter.effective_limit())
            .cloned()
            .collect())
    }

    async fn tenant_events(&self, tenant_id: &TenantId) -> Result<Vec<TenantEvent>> {
        Ok(self
            .lock()
            .events
            .get(tenant_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn undelivered_events(&self, subscriber: &str, limit: usize) -> Result<Vec<TenantEvent>> {
        let catalog = self.lock();
        let mut out = Vec::new();
        for (tenant, events) in &catalog.events {
            let acked = catalog
                .cursors
                .get(&(subscriber.to_owned(), tenant.clone()))
                .copied()
                .unwrap_or(0);
            for event in events.iter().filter(|e| e.sequence > acked) {
                if out.len() == limit {
                    return Ok(out);
                }
                out.push(event.clone());
            }
        }
        Ok(out)
    }

    async fn claim_requests(
        &self,
        worker: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<RequestRecord>> {
        let now = Instant::now();
        let mut catalog = self.lock();
        let mut free: Vec<RequestRecord> = catalog
            .requests
            .values()
            .filter(|r| !r.status.is_finished())
            .filter(|r| {
                catalog
                    .leases
                    .get(&r.request_id)
                    .is_none_or(|(_, until)| *until <= now)
            })
            .cloned()
            .collect();
        free.sort_by_key(|r| (r.submitted_at, r.request_id));
        free.truncate(limit);
        for request in &free {
            catalog
                .leases
                .insert(request.request_id, (worker.to_owned(), now + lease));
        }
        Ok(free)
    }

    async fn renew_lease(
        &self,
        worker: &str,
        request_id: RequestId,
        lease: Duration,
    ) -> Result<bool> {
        let now = Instant::now();
        let mut catalog = self.lock();
        match catalog.leases.get_mut(&request_id) {
            Some((owner, until)) if owner == worker && *until > now => {
                *until = now + lease;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release_lease(&self, worker: &str, request_id: RequestId) -> Result<()> {
        let mut catalog = self.lock();
        if catalog
            .leases
            .get(&request_id)
            .is_some_and(|(owner, _)| owner == worker)
        {
            catalog.leases.remove(&request_id);
        }
        Ok(())
    }

    async fn ack_event(&self, subscriber: &str, tenant: &TenantId, sequence: u64) -> Result<()> {
        let mut catalog = self.lock();
        let cursor = catalog
            .cursors
            .entry((subscriber.to_owned(), tenant.clone()))
            .or_insert(0);
        *cursor = (*cursor).max(sequence);
        Ok(())
    }
}
