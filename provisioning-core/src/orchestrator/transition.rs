//! Moving a tenant along the lifecycle from inside a step: idempotent (a tenant
//! already in the target state is left alone, so a re-run step is harmless) and
//! safe under concurrency (optimistic versions, re-read on conflict).

use crate::error::Error;
use crate::events::NewEvent;
use crate::model::{TenantId, TenantRecord, TenantState};
use crate::saga::StepError;
use crate::store::TenantStore;

/// How often a version conflict is re-read and retried before giving up.
const CONFLICT_RETRIES: usize = 8;

/// Moves `tenant` to `to` if it is in one of `from`, applying `update` to the
/// record and writing `events` in the same atomic write. A tenant already in
/// `to` is returned unchanged (its events were written with that state).
pub(crate) async fn transition(
    store: &dyn TenantStore,
    tenant: &TenantId,
    from: &[TenantState],
    to: TenantState,
    update: impl Fn(&mut TenantRecord),
    events: impl Fn() -> Vec<NewEvent>,
) -> Result<TenantRecord, Error> {
    let mut attempts = 0;
    loop {
        let record = load(store, tenant).await?;
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
        match store.update_tenant(next, record.version, events()).await {
            Err(Error::Conflict { .. }) if attempts < CONFLICT_RETRIES => attempts += 1,
            other => return other,
        }
    }
}

/// The tenant's record, or [`Error::NotFound`].
pub(crate) async fn load(
    store: &dyn TenantStore,
    tenant: &TenantId,
) -> Result<TenantRecord, Error> {
    store.tenant(tenant).await?.ok_or_else(|| Error::NotFound {
        kind: "tenant",
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
    store: &dyn TenantStore,
    tenant: &TenantId,
    events: impl Fn() -> Vec<NewEvent>,
) -> Result<TenantRecord, Error> {
    let mut attempts = 0;
    loop {
        let record = load(store, tenant).await?;
        let version = record.version;
        match store.update_tenant(record, version, events()).await {
            Err(Error::Conflict { .. }) if attempts < CONFLICT_RETRIES => attempts += 1,
            other => return other,
        }
    }
}
