//! Moving a tenant along the lifecycle from inside a step: idempotent (a tenant
//! already in the target state is left alone, so a re-run step is harmless) and
//! safe under concurrency (optimistic versions, re-read on conflict).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::Entity;
use crate::error::Error;
use crate::events::NewEvent;
use crate::model::{TenantId, TenantRecord, TenantState};
use crate::orchestrator::Parts;
use crate::saga::StepError;
use crate::store::TenantStore;

/// The records this process last wrote for the tenants whose runs are in
/// flight here, so that a run's next transition need not read its tenant
/// back: a create moves it three times. Only a guess to write from: every
/// write is version-checked, so a stale record costs a conflict and a fresh
/// read, never a wrong write; a transition that would write nothing decides
/// on a fresh read. Entries go when their run's drive ends.
#[derive(Debug, Default)]
pub(crate) struct RecentRecords(Mutex<HashMap<TenantId, TenantRecord>>);

impl RecentRecords {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, TenantRecord>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, tenant: &TenantId) -> Option<TenantRecord> {
        self.map().get(tenant).cloned()
    }

    /// Remembers `record` as stored.
    pub(crate) fn put(&self, record: TenantRecord) {
        self.map().insert(record.tenant_id.clone(), record);
    }

    /// Forgets `tenant` (its run's drive ended, or a write's outcome is unknown).
    pub(crate) fn forget(&self, tenant: &TenantId) {
        self.map().remove(tenant);
    }

    /// Forgets `tenant` when the guard is dropped: when its run's drive
    /// ends, also when the caller stopped waiting for it (a dropped future
    /// never reaches the code after its last `await`).
    pub(crate) fn forget_on_drop<'a>(&'a self, tenant: &'a TenantId) -> ForgetOnDrop<'a> {
        ForgetOnDrop {
            records: self,
            tenant,
        }
    }
}

/// See [`RecentRecords::forget_on_drop`].
pub(crate) struct ForgetOnDrop<'a> {
    records: &'a RecentRecords,
    tenant: &'a TenantId,
}

impl Drop for ForgetOnDrop<'_> {
    fn drop(&mut self) {
        self.records.forget(self.tenant);
    }
}

/// How often a version conflict is re-read and retried before giving up.
const CONFLICT_RETRIES: usize = 8;

/// Moves `tenant` to `to` if it is in one of `from`, applying `update` to the
/// record and writing `events` in the same atomic write. A tenant already in
/// `to` is returned unchanged (its events were written with that state).
pub(crate) async fn transition(
    parts: &Parts,
    tenant: &TenantId,
    from: &[TenantState],
    to: TenantState,
    update: impl Fn(&mut TenantRecord),
    events: impl Fn() -> Vec<NewEvent>,
) -> Result<TenantRecord, Error> {
    let store = &*parts.store;
    let mut record = match parts.records.get(tenant) {
        Some(known) if known.state != to && from.contains(&known.state) => known,
        _ => load(store, tenant).await?,
    };
    let mut attempts = 0;
    loop {
        if record.state == to {
            return Ok(record);
        }
        if !from.contains(&record.state) {
            return Err(Error::IllegalTransition {
                from: record.state,
                to,
            });
        }
        record.state.transition_to(to)?;
        let mut next = record.clone();
        next.state = to;
        update(&mut next);
        match write(parts, next, record.version, events()).await {
            Err(Error::Conflict { .. }) if attempts < CONFLICT_RETRIES => {
                attempts += 1;
                record = load(store, tenant).await?;
            }
            other => return other,
        }
    }
}

/// `update_tenant`, keeping [`RecentRecords`] in step with what it did.
async fn write(
    parts: &Parts,
    record: TenantRecord,
    expected_version: u64,
    events: Vec<NewEvent>,
) -> Result<TenantRecord, Error> {
    let tenant = record.tenant_id.clone();
    match parts
        .store
        .update_tenant(record, expected_version, events)
        .await
    {
        Ok(stored) => {
            parts.records.put(stored.clone());
            Ok(stored)
        }
        Err(e) => {
            parts.records.forget(&tenant);
            Err(e)
        }
    }
}

/// The tenant's record, or [`Error::NotFound`].
pub(crate) async fn load(
    store: &dyn TenantStore,
    tenant: &TenantId,
) -> Result<TenantRecord, Error> {
    store.tenant(tenant).await?.ok_or_else(|| Error::NotFound {
        kind: Entity::Tenant,
        id: tenant.to_string(),
    })
}

/// A step's view of a core error: transient ones are retried by the executor.
pub(crate) fn step_error(error: Error) -> StepError {
    StepError::from(error)
}

/// Appends `events` to `tenant` without changing its state (a version bump
/// keeps the write ordered with every other write to the tenant).
pub(crate) async fn emit(
    parts: &Parts,
    tenant: &TenantId,
    events: impl Fn() -> Vec<NewEvent>,
) -> Result<TenantRecord, Error> {
    rewrite(parts, tenant, |_| {}, events).await
}

/// Applies `update` to `tenant` and appends `events` in one write, without
/// changing its state; re-read and retried on a version conflict.
pub(crate) async fn rewrite(
    parts: &Parts,
    tenant: &TenantId,
    update: impl Fn(&mut TenantRecord),
    events: impl Fn() -> Vec<NewEvent>,
) -> Result<TenantRecord, Error> {
    let mut record = match parts.records.get(tenant) {
        Some(known) => known,
        None => load(&*parts.store, tenant).await?,
    };
    let mut attempts = 0;
    loop {
        let version = record.version;
        let mut next = record.clone();
        update(&mut next);
        match write(parts, next, version, events()).await {
            Err(Error::Conflict { .. }) if attempts < CONFLICT_RETRIES => {
                attempts += 1;
                record = load(&*parts.store, tenant).await?;
            }
            other => return other,
        }
    }
}

/// The metadata key naming the request that holds a tenant for a move.
pub(crate) const MOVE_CLAIM: &str = "move.request";

/// Claims `tenant` for the move of `request`: records the request under
/// [`MOVE_CLAIM`] unless another request holds it (a
/// [`Conflict`](Error::Conflict) naming it). Idempotent for the holder.
/// Decided on a fresh read and written version-checked, so two moves of one
/// tenant never both hold it.
pub(crate) async fn claim_move(
    parts: &Parts,
    tenant: &TenantId,
    request: &str,
) -> Result<TenantRecord, Error> {
    let mut attempts = 0;
    loop {
        let record = load(&*parts.store, tenant).await?;
        match record.metadata.get(MOVE_CLAIM) {
            Some(holder) if holder == request => return Ok(record),
            Some(holder) => {
                return Err(Error::Conflict {
                    kind: Entity::Tenant,
                    id: tenant.to_string(),
                    reason: format!("tenant {tenant} is being moved by request {holder}"),
                });
            }
            None => {}
        }
        let version = record.version;
        let mut next = record.clone();
        next.metadata
            .insert(MOVE_CLAIM.to_owned(), request.to_owned());
        match write(parts, next, version, Vec::new()).await {
            Err(Error::Conflict { .. }) if attempts < CONFLICT_RETRIES => attempts += 1,
            other => return other,
        }
    }
}

/// Gives up `request`'s claim on `tenant`, if it holds it; anyone else's
/// stays.
pub(crate) async fn release_move(
    parts: &Parts,
    tenant: &TenantId,
    request: &str,
) -> Result<(), Error> {
    let mut attempts = 0;
    loop {
        let record = load(&*parts.store, tenant).await?;
        if record.metadata.get(MOVE_CLAIM).map(String::as_str) != Some(request) {
            return Ok(());
        }
        let version = record.version;
        let mut next = record.clone();
        next.metadata.remove(MOVE_CLAIM);
        match write(parts, next, version, Vec::new()).await {
            Err(Error::Conflict { .. }) if attempts < CONFLICT_RETRIES => attempts += 1,
            other => return other.map(|_| ()),
        }
    }
}
