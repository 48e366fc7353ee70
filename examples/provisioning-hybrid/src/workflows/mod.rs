//! (5) The Provisioning Service pattern's other kinds of request, as generic
//! workflows on the same executor as the tenant lifecycle, so they get the same
//! idempotency by request id, journal, audit trail, metrics and compensation:
//!
//! - `service`: enable a named service for an Active tenant at an SLA tier: a
//!   subscription row and its rate limits in the tenant's database
//!   (`ServiceProvisioned`);
//! - `user`: add a user holding a role in the tenant's database (`UserProvisioned`).
//!
//! Each step writes its rows and an `audit_log` row naming the request in one
//! transaction. That row makes the step idempotent (a retried or resumed step
//! that finds it has nothing to do) and its compensation exact (it undoes only
//! what this request wrote, restoring any value it replaced).

mod input;
mod steps;

use std::sync::Arc;

use provisioning_core::{
    Error, Placement, ProvisioningOrchestrator, ProvisioningOrchestratorBuilder, Receipt,
    RequestId, Result, Saga, TenantId, TenantState,
};
use provisioning_sqlx::SqliteSchemaManager;
use serde::{Deserialize, Serialize};

pub(crate) use input::{ServiceInput, UserInput};
use steps::{CreateUser, GrantRole, WriteSetting};

/// The `service` workflow's name.
pub(crate) const SERVICE: &str = "service";
/// The `user` workflow's name.
pub(crate) const USER: &str = "user";
/// The registered generic workflows.
pub(crate) const WORKFLOWS: [&str; 2] = [SERVICE, USER];

/// A `service` run's context: who, where, and what to enable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ServiceContext {
    request_id: RequestId,
    placement: Placement,
    service: String,
    tier: input::Tier,
}

/// A `user` run's context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct UserContext {
    request_id: RequestId,
    placement: Placement,
    email: String,
    role: String,
}

/// Where a run writes: the tenant's placement, and the request it carries out.
pub(crate) trait Target {
    fn placement(&self) -> &Placement;
    fn request_id(&self) -> RequestId;
}

impl Target for ServiceContext {
    fn placement(&self) -> &Placement {
        &self.placement
    }
    fn request_id(&self) -> RequestId {
        self.request_id
    }
}

impl Target for UserContext {
    fn placement(&self) -> &Placement {
        &self.placement
    }
    fn request_id(&self) -> RequestId {
        self.request_id
    }
}

/// Registers `service` and `user` on the orchestrator being built.
pub(crate) fn register(
    builder: ProvisioningOrchestratorBuilder,
    schema: &Arc<SqliteSchemaManager>,
) -> Result<ProvisioningOrchestratorBuilder> {
    let service = Saga::<ServiceContext>::builder(SERVICE)
        .step(WriteSetting::subscription(schema.clone()))
        .step(WriteSetting::rate_limits(schema.clone()))
        .build()?;
    let user = Saga::<UserContext>::builder(USER)
        .step(CreateUser::new(schema.clone()))
        .step(GrantRole::new(schema.clone()))
        .build()?;
    Ok(builder
        .workflow_with_event(service, "ServiceProvisioned")
        .workflow_with_event(user, "UserProvisioned"))
}

/// Runs workflow `name` for `tenant` with `input` (a JSON object: for
/// `service`, `{"service": "...", "tier": "..."}`; for `user`, `{"email":
/// "...", "role": "..."}`) and returns its receipt when the run has ended.
///
/// # Errors
/// [`Error::InvalidInput`] naming the field for bad input (unknown fields
/// included); [`Error::NotFound`] for an unknown workflow or tenant;
/// [`Error::IllegalTransition`] when the tenant is not Active;
/// [`Error::Conflict`] when the request id was used for another request.
pub(crate) async fn provision(
    orchestrator: &ProvisioningOrchestrator,
    name: &str,
    tenant: &TenantId,
    request_id: RequestId,
    input: serde_json::Value,
) -> Result<Receipt> {
    match name {
        SERVICE => {
            let input = ServiceInput::parse(input)?;
            let placement = placement(orchestrator, tenant).await?;
            let context = ServiceContext {
                request_id,
                placement,
                service: input.service,
                tier: input.tier,
            };
            orchestrator
                .run_workflow(SERVICE, tenant, request_id, context)
                .await
        }
        USER => {
            let input = UserInput::parse(input)?;
            let placement = placement(orchestrator, tenant).await?;
            let context = UserContext {
                request_id,
                placement,
                email: input.email,
                role: input.role,
            };
            orchestrator
                .run_workflow(USER, tenant, request_id, context)
                .await
        }
        other => Err(Error::NotFound {
            kind: "workflow",
            id: other.to_owned(),
        }),
    }
}

/// The tenant's placement, whatever its state: the orchestrator then answers
/// a repeated request id with its receipt (even after the tenant was deleted)
/// and refuses a new request for a tenant that is not Active, with the same
/// error as any other request.
async fn placement(
    orchestrator: &ProvisioningOrchestrator,
    tenant: &TenantId,
) -> Result<Placement> {
    let record = orchestrator.tenant(tenant).await?;
    record.placement.ok_or(Error::IllegalTransition {
        from: record.state,
        to: TenantState::Active,
    })
}
