//! The suspend, resume and delete workflows.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::events::{EventKind, NewEvent};
use crate::model::{Placement, RequestId, TenantId, TenantState};
use crate::orchestrator::Parts;
use crate::orchestrator::transition::{load, step_error, transition};
use crate::saga::{Step, StepError};
use crate::traits::{DropReason, RemovalMode};

/// The name of the suspend workflow.
pub const SUSPEND_TENANT: &str = "suspend-tenant";
/// The name of the resume workflow.
pub const RESUME_TENANT: &str = "resume-tenant";
/// The name of the delete workflow.
pub const DELETE_TENANT: &str = "delete-tenant";

/// The context of a suspend, resume or delete run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LifecycleContext {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The request being carried out.
    pub request_id: RequestId,
    /// For delete: archive or purge the storage.
    pub removal: Option<RemovalMode>,
}

impl LifecycleContext {
    pub(crate) fn new(
        tenant_id: TenantId,
        request_id: RequestId,
        removal: Option<RemovalMode>,
    ) -> Self {
        LifecycleContext {
            tenant_id,
            request_id,
            removal,
        }
    }
}

/// The placement recorded on the tenant (none for a tenant that failed
/// before it was placed).
async fn placement(parts: &Parts, tenant: &TenantId) -> Result<Option<Placement>, StepError> {
    Ok(load(&*parts.store, tenant)
        .await
        .map_err(step_error)?
        .placement)
}

/// Calls `f` with the placement, if the tenant has one.
macro_rules! with_placement {
    ($parts:expr, $ctx:expr, |$plan:ident| $body:expr) => {{
        if let Some($plan) = placement(&$parts, &$ctx.tenant_id).await? {
            $body.await.map_err(step_error)?;
        }
        Ok(())
    }};
}

/// A lifecycle step: a name, what it does, and what undoes it.
pub(crate) struct LifecycleStep {
    pub(crate) name: &'static str,
    pub(crate) parts: Arc<Parts>,
    pub(crate) action: Action,
}

#[derive(Clone, Copy)]
pub(crate) enum Action {
    SuspendStorage,
    SuspendDatabase,
    MarkSuspended,
    ResumeDatabase,
    ResumeStorage,
    MarkResumed,
    MarkDeleting,
    RemoveStorage,
    DropDatabase,
    ReleaseShard,
    MarkDeleted,
}

impl LifecycleStep {
    pub(crate) fn new(name: &'static str, parts: &Arc<Parts>, action: Action) -> Self {
        LifecycleStep {
            name,
            parts: Arc::clone(parts),
            action,
        }
    }

    async fn mark(
        &self,
        ctx: &LifecycleContext,
        from: &[TenantState],
        to: TenantState,
        event: Option<EventKind>,
    ) -> Result<(), StepError> {
        let request_id = ctx.request_id;
        transition(
            &self.parts,
            &ctx.tenant_id,
            from,
            to,
            |_| {},
            || {
                event
                    .iter()
                    .map(|kind| NewEvent::new(kind.clone(), request_id, serde_json::json!({})))
                    .collect()
            },
        )
        .await
        .map_err(step_error)?;
        Ok(())
    }
}

#[async_trait]
impl Step<LifecycleContext> for LifecycleStep {
    fn name(&self) -> &str {
        self.name
    }

    async fn execute(&self, ctx: &mut LifecycleContext) -> Result<(), StepError> {
        let p = &*self.parts;
        match self.action {
            Action::SuspendStorage => with_placement!(p, ctx, |plan| p.storage.suspend(&plan)),
            Action::SuspendDatabase => with_placement!(p, ctx, |plan| p.schema.suspend(&plan)),
            Action::ResumeDatabase => with_placement!(p, ctx, |plan| p.schema.resume(&plan)),
            Action::ResumeStorage => with_placement!(p, ctx, |plan| p.storage.resume(&plan)),
            Action::RemoveStorage => {
                let mode = ctx.removal.unwrap_or_default();
                with_placement!(p, ctx, |plan| p.storage.remove(&plan, mode))
            }
            Action::DropDatabase => {
                with_placement!(p, ctx, |plan| p
                    .schema
                    .drop_tenant(&plan, DropReason::Delete))
            }
            Action::ReleaseShard => {
                with_placement!(p, ctx, |plan| p
                    .resolver
                    .release(&plan.tenant_id, &plan.shard))
            }
            Action::MarkSuspended => {
                self.mark(
                    ctx,
                    &[TenantState::Active],
                    TenantState::Suspended,
                    Some(EventKind::TenantSuspended),
                )
                .await
            }
            Action::MarkResumed => {
                self.mark(
                    ctx,
                    &[TenantState::Suspended],
                    TenantState::Active,
                    Some(EventKind::TenantResumed),
                )
                .await
            }
            Action::MarkDeleting => self.mark(ctx, DELETABLE, TenantState::Deleting, None).await,
            Action::MarkDeleted => {
                self.mark(
                    ctx,
                    &[TenantState::Deleting],
                    TenantState::Deleted,
                    Some(EventKind::TenantDeleted),
                )
                .await
            }
        }
    }

    /// Suspend and resume undo their hooks; delete goes only forward (a
    /// dropped database cannot be undone), so a failed delete leaves the
    /// tenant Deleting, and deleting again finishes it.
    async fn compensate(&self, ctx: &mut LifecycleContext) -> Result<(), StepError> {
        let p = &*self.parts;
        match self.action {
            Action::SuspendStorage => with_placement!(p, ctx, |plan| p.storage.resume(&plan)),
            Action::SuspendDatabase => with_placement!(p, ctx, |plan| p.schema.resume(&plan)),
            Action::ResumeDatabase => with_placement!(p, ctx, |plan| p.schema.suspend(&plan)),
            Action::ResumeStorage => with_placement!(p, ctx, |plan| p.storage.suspend(&plan)),
            _ => Ok(()),
        }
    }
}

/// The states a tenant may be deleted from (Deleting: finishing a delete that
/// stopped).
pub(crate) const DELETABLE: &[TenantState] = &[
    TenantState::Active,
    TenantState::Suspended,
    TenantState::Failed,
    TenantState::Deleting,
];
