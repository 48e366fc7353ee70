//! Workflows as the orchestrator runs them: a saga, and how its outcome settles
//! the tenant and the request. Type-erased so that built-in and user workflows
//! (each over its own context type) sit in one registry, for `recover`.

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::events::{EventKind, NewEvent};
use crate::model::{FailureInfo, TenantState};
use crate::orchestrator::Parts;
use crate::orchestrator::transition::{emit, load, transition};
use crate::saga::{CancellationToken, RunReport, RunStatus, Saga, SagaExecutor};
use crate::store::{RequestRecord, RequestStatus};

/// How a run's outcome settles the tenant.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    /// Failure marks the tenant Failed with `TenantProvisioningFailed`.
    Create,
    /// Compensation restored the tenant; nothing more to write.
    Lifecycle,
    /// A user's workflow, with the event to emit on success.
    Custom { success_event: Option<String> },
}

/// A registered workflow, whatever its context type.
#[async_trait]
pub(crate) trait Workflow: Send + Sync {
    /// Its step names.
    fn step_names(&self) -> &[String];

    /// Runs `request`'s saga (from the start when `fresh`, else resuming it, or
    /// starting it if it never started), then settles tenant and request.
    async fn drive(
        &self,
        parts: &Parts,
        executor: &SagaExecutor,
        request: &RequestRecord,
        fresh: bool,
    ) -> Result<()>;
}

/// A saga over context `C` with its settlement rule.
pub(crate) struct Typed<C> {
    pub(crate) saga: Saga<C>,
    pub(crate) kind: Kind,
}

#[async_trait]
impl<C> Workflow for Typed<C>
where
    C: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    fn step_names(&self) -> &[String] {
        self.saga.step_names()
    }

    async fn drive(
        &self,
        parts: &Parts,
        executor: &SagaExecutor,
        request: &RequestRecord,
        fresh: bool,
    ) -> Result<()> {
        // However the drive ends, its run no longer needs the tenant's record.
        let _forget = parts.records.forget_on_drop(&request.tenant_id);
        self.drive_and_settle(parts, executor, request, fresh).await
    }
}

impl<C> Typed<C>
where
    C: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    async fn drive_and_settle(
        &self,
        parts: &Parts,
        executor: &SagaExecutor,
        request: &RequestRecord,
        fresh: bool,
    ) -> Result<()> {
        let token = CancellationToken::new();
        let start = || async {
            let context: C = serde_json::from_value(request.payload.clone()).map_err(|source| {
                Error::Serialization {
                    what: "request payload",
                    source,
                }
            })?;
            executor
                .start(&self.saga, request.run_id, context, &token)
                .await
        };
        let report = if fresh {
            start().await?
        } else {
            match executor.resume(&self.saga, request.run_id, &token).await {
                Err(Error::NotFound { kind: "run", .. }) => start().await?,
                other => other?,
            }
        };
        let (status, failure) = self.settle(parts, request, &report).await?;
        parts
            .store
            .finish_request(request.request_id, status, failure)
            .await
    }
}

impl<C: Send + 'static> Typed<C> {
    async fn settle(
        &self,
        parts: &Parts,
        request: &RequestRecord,
        report: &RunReport<C>,
    ) -> Result<(RequestStatus, Option<FailureInfo>)> {
        let failure = report
            .failure
            .as_ref()
            .map(|f| FailureInfo::new(f.step.clone(), f.error.clone()));
        match report.status {
            RunStatus::Completed => {
                if let Kind::Custom {
                    success_event: Some(kind),
                } = &self.kind
                {
                    let event = || {
                        vec![NewEvent::new(
                            EventKind::from_name(kind),
                            request.request_id,
                            serde_json::json!({ "workflow": request.workflow }),
                        )]
                    };
                    emit(parts, &request.tenant_id, event).await?;
                }
                Ok((RequestStatus::Succeeded, None))
            }
            RunStatus::Compensated => {
                if let (Kind::Create, Some(failure)) = (&self.kind, &failure) {
                    mark_failed(parts, request, failure).await?;
                }
                Ok((RequestStatus::Failed, failure))
            }
            RunStatus::CompensationFailed => {
                let stuck = report.compensation_failure.as_ref().map(|c| {
                    FailureInfo::new(
                        c.step.clone(),
                        format!(
                            "compensation failed: {} (after: {})",
                            c.error,
                            failure.as_ref().map_or("", |f| f.reason.as_str())
                        ),
                    )
                });
                Ok((RequestStatus::CompensationFailed, stuck))
            }
            RunStatus::Running | RunStatus::Compensating => Err(Error::Conflict {
                kind: "run",
                id: report.run_id.to_string(),
                reason: "the executor returned an unfinished run".to_owned(),
            }),
        }
    }
}

/// Moves a tenant whose provisioning was rolled back to Failed, with
/// `TenantProvisioningFailed` naming the step and the reason.
async fn mark_failed(parts: &Parts, request: &RequestRecord, failure: &FailureInfo) -> Result<()> {
    let store = &*parts.store;
    let tenant = &request.tenant_id;
    // A run cancelled before its first step leaves the tenant Requested, from
    // which the lifecycle reaches Failed only through Validating.
    if load(store, tenant).await?.state == TenantState::Requested {
        transition(
            parts,
            tenant,
            &[TenantState::Requested],
            TenantState::Validating,
            |_| {},
            Vec::new,
        )
        .await?;
    }
    transition(
        parts,
        tenant,
        &[TenantState::Validating, TenantState::Provisioning],
        TenantState::Failed,
        |r| r.failure = Some(failure.clone()),
        || {
            vec![NewEvent::new(
                EventKind::TenantProvisioningFailed,
                request.request_id,
                serde_json::json!({ "step": failure.step, "reason": failure.reason }),
            )]
        },
    )
    .await?;
    Ok(())
}
