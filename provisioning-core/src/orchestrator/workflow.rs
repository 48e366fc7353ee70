//! Workflows as the orchestrator runs them: a saga, and how its outcome settles
//! the tenant and the request. Type-erased so that built-in and user workflows
//! (each over its own context type) sit in one registry, for `recover`.

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Entity, Error, Result};
use crate::events::{EventKind, NewEvent};
use crate::model::{
    FailureInfo, FailureKind, Placement, RequestId, TenantId, TenantRecord, TenantState,
};
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

/// What the steps of a workflow of yours run over: the tenant as the catalog
/// holds it when the run starts, the request being carried out, and your
/// input.
///
/// The orchestrator builds it: the tenant comes from the store (checked
/// Active, with its placement), never from a copy in the input, so a step
/// cannot act on another tenant than the one the request names. It is
/// journaled with the run, so a run resumed after a crash sees the same
/// tenant its earlier steps saw.
///
/// ```
/// # use async_trait::async_trait;
/// # use provisioning_core::{Step, StepError, WorkflowContext};
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Invite { email: String, invited: bool }
///
/// struct SendInvite;
///
/// #[async_trait]
/// impl Step<WorkflowContext<Invite>> for SendInvite {
///     fn name(&self) -> &str { "send-invite" }
///     async fn execute(&self, ctx: &mut WorkflowContext<Invite>) -> Result<(), StepError> {
///         // Where the tenant's data lives: its shard, region and database.
///         let placement = ctx.placement();
///         let _ = (&placement.shard, &placement.region, &placement.database);
///         ctx.input.invited = true; // journaled after the step
///         Ok(())
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowContext<I> {
    tenant: TenantRecord,
    placement: Placement,
    request_id: RequestId,
    /// The input given to
    /// [`run_workflow`](crate::ProvisioningOrchestrator::run_workflow).
    /// Steps may record what they did here for the steps after them and for
    /// their compensation: it is journaled after each step.
    pub input: I,
}

impl<I> WorkflowContext<I> {
    /// The tenant's record when the run started (state Active).
    pub fn tenant(&self) -> &TenantRecord {
        &self.tenant
    }

    /// The tenant's id.
    pub fn tenant_id(&self) -> &TenantId {
        &self.tenant.tenant_id
    }

    /// Where the tenant lives: plan, isolation, region, shard and, when the
    /// schema manager records one, its database
    /// ([`Placement::database`]). With provisioning-sqlx's SQLite manager
    /// that is the file to open (`SqliteSchemaManager::database_path` gives
    /// it too); with its PostgreSQL manager, a URL with the password
    /// redacted: connect with your own credentials to the database (and
    /// `?schema=`) it names. In a shared database (`isolation` shared)
    /// other tenants' rows sit beside this one's: scope every statement to
    /// [`tenant_id`](Self::tenant_id).
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// The request this run carries out (the idempotency key: a step that
    /// writes can tag its rows with it to find them again on a retry).
    pub fn request_id(&self) -> RequestId {
        self.request_id
    }

    /// The context for `tenant`'s run of `request_id` over `input`.
    ///
    /// # Errors
    /// [`Error::NotActive`] when the tenant is not Active;
    /// [`Error::Conflict`] when an Active tenant has no placement (a catalog
    /// written by something else than the orchestrator).
    pub fn new(tenant: TenantRecord, request_id: RequestId, input: I) -> Result<Self> {
        require_active(&tenant, "a workflow")?;
        let placement = tenant.placement.clone().ok_or_else(|| Error::Conflict {
            kind: Entity::Tenant,
            id: tenant.tenant_id.to_string(),
            reason: "an Active tenant has no placement".to_owned(),
        })?;
        Ok(WorkflowContext {
            tenant,
            placement,
            request_id,
            input,
        })
    }
}

/// `Ok` for an Active tenant, else [`Error::NotActive`] naming `what` needed it.
pub(crate) fn require_active(tenant: &TenantRecord, what: &str) -> Result<()> {
    if tenant.state == TenantState::Active {
        Ok(())
    } else {
        Err(Error::NotActive {
            tenant: tenant.tenant_id.clone(),
            state: tenant.state,
            what: what.to_owned(),
        })
    }
}

/// Builds a run's first context from its request and, for a workflow of the
/// user's, the tenant's record as the catalog holds it now.
type Begin<C> = fn(&RequestRecord, Option<TenantRecord>) -> Result<C>;

/// A saga over context `C` with its settlement rule.
pub(crate) struct Typed<C> {
    pub(crate) saga: Saga<C>,
    pub(crate) kind: Kind,
    begin: Begin<C>,
}

impl<C: DeserializeOwned> Typed<C> {
    /// A built-in workflow: its context is the request's payload.
    pub(crate) fn builtin(saga: Saga<C>, kind: Kind) -> Self {
        Typed {
            saga,
            kind,
            begin: |request, _| payload(request),
        }
    }
}

impl<I: DeserializeOwned> Typed<WorkflowContext<I>> {
    /// A workflow of the user's: the payload is its input, and the tenant
    /// comes from the catalog.
    pub(crate) fn custom(saga: Saga<WorkflowContext<I>>, success_event: Option<String>) -> Self {
        Typed {
            saga,
            kind: Kind::Custom { success_event },
            begin: |request, tenant| {
                let tenant = tenant.ok_or_else(|| Error::NotFound {
                    kind: Entity::Tenant,
                    id: request.tenant_id.to_string(),
                })?;
                WorkflowContext::new(tenant, request.request_id, payload(request)?)
            },
        }
    }
}

impl<C> Typed<C> {
    /// Whether `error` from `begin` fails the request without a run.
    fn refuses_at_start(&self, error: &Error) -> bool {
        matches!(self.kind, Kind::Custom { .. })
            && matches!(error, Error::NotActive { .. } | Error::NotFound { .. })
    }
}

fn payload<T: DeserializeOwned>(request: &RequestRecord) -> Result<T> {
    serde_json::from_value(request.payload.clone()).map_err(|source| Error::Serialization {
        what: "request payload",
        source,
    })
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
            let tenant = match self.kind {
                Kind::Custom { .. } => parts.store.tenant(&request.tenant_id).await?,
                Kind::Create | Kind::Lifecycle => None,
            };
            let context = match (self.begin)(request, tenant) {
                Ok(context) => context,
                // A workflow of the user's whose tenant left Active (or
                // vanished) between submission and start: nothing ran, the
                // request fails. A built-in's payload that cannot be read
                // stays an error, its request unfinished for an operator.
                Err(error) if self.refuses_at_start(&error) => return Ok(Err(error)),
                Err(error) => return Err(error),
            };
            executor
                .start(&self.saga, request.run_id, context, &token)
                .await
                .map(Ok)
        };
        let started = if fresh {
            start().await?
        } else {
            match executor.resume(&self.saga, request.run_id, &token).await {
                Err(Error::NotFound {
                    kind: Entity::Run, ..
                }) => start().await?,
                other => Ok(other?),
            }
        };
        let report = match started {
            Ok(report) => report,
            Err(refused) => {
                tracing::error!(error = %Error::log_report_of(&refused), "the run was refused before its first step");
                let reason = Error::record_report_of(&refused);
                let failure = FailureInfo::new("start", FailureKind::Refused, reason);
                return parts
                    .store
                    .finish_request(request.request_id, RequestStatus::Failed, Some(failure))
                    .await;
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
            .map(|f| FailureInfo::new(f.step.clone(), f.cause.into(), f.error.clone()));
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
                        FailureKind::CompensationFailed,
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
                kind: Entity::Run,
                id: report.run_id.to_string(),
                reason: "the executor returned an unfinished run".to_owned(),
            }),
        }
    }
}

/// Moves a tenant whose provisioning was rolled back to Failed, with
/// `TenantProvisioningFailed` naming the step, the kind and the reason.
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
                serde_json::json!({
                    "step": failure.step, "kind": failure.kind, "reason": failure.reason,
                }),
            )]
        },
    )
    .await?;
    Ok(())
}
