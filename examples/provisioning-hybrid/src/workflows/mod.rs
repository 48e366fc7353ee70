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
mod resource;
mod steps;
mod tenant_db;

use provisioning_core::Entity;
use std::sync::Arc;

use provisioning_core::{
    Error, ProvisioningOrchestrator, ProvisioningOrchestratorBuilder, Receipt, RequestId, Result,
    Saga, TenantId, TenantState, WorkflowContext,
};
use provisioning_storage::ObjectStoreInitializer;

pub(crate) use input::{ServiceInput, UserInput};
use resource::{Allocate, CheckSubscription, RecordBilling, ReserveQuota};
pub(crate) use resource::{
    Quotas, RESOURCE, ResourceInput, ResourceType, resource_id, resource_prefix,
};
use steps::{CreateUser, GrantRole, WriteSetting};
pub(crate) use tenant_db::TenantData;

/// The `service` workflow's name.
pub(crate) const SERVICE: &str = "service";
/// The `user` workflow's name.
pub(crate) const USER: &str = "user";
/// The registered generic workflows.
pub(crate) const WORKFLOWS: [&str; 3] = [SERVICE, USER, RESOURCE];

/// A `service` run's context: the tenant (with its placement) and the
/// request from the orchestrator, and what to enable.
pub(crate) type ServiceContext = WorkflowContext<ServiceInput>;

/// A `user` run's context.
pub(crate) type UserContext = WorkflowContext<UserInput>;

/// What the generic workflows write through besides the tenant databases.
pub(crate) struct Resources {
    /// The tenants' storage, for database and storage resources.
    pub(crate) storage: Arc<ObjectStoreInitializer>,
    /// The resource quotas by tier.
    pub(crate) quotas: Quotas,
    /// A scratch folder where new resource databases are built.
    pub(crate) scratch: std::path::PathBuf,
}

/// Registers `service`, `user` and `resource` on the orchestrator being built.
pub(crate) fn register(
    builder: ProvisioningOrchestratorBuilder,
    data: &TenantData,
    resources: &Resources,
) -> Result<ProvisioningOrchestratorBuilder> {
    let service = Saga::<ServiceContext>::builder(SERVICE)
        .step(WriteSetting::subscription(data.clone()))
        .step(WriteSetting::rate_limits(data.clone()))
        .build()?;
    let user = Saga::<UserContext>::builder(USER)
        .step(CreateUser::new(data.clone()))
        .step(GrantRole::new(data.clone()))
        .build()?;
    let resource = Saga::builder(RESOURCE)
        .step(CheckSubscription { data: data.clone() })
        .step(ReserveQuota {
            data: data.clone(),
            quotas: resources.quotas.clone(),
        })
        .step(Allocate {
            data: data.clone(),
            storage: resources.storage.clone(),
            scratch: resources.scratch.clone(),
        })
        .step(RecordBilling { data: data.clone() })
        .build()?;
    Ok(builder
        .workflow_with_event(service, "ServiceProvisioned")
        .workflow_with_event(user, "UserProvisioned")
        .workflow_with_event(resource, "ResourceProvisioned"))
}

/// Runs the generic workflows: the orchestrator, and what the `resource`
/// workflow's early refusals read (the tenant databases and the quotas).
/// Cheap to clone.
#[derive(Clone)]
pub(crate) struct Provisioner {
    pub(crate) orchestrator: ProvisioningOrchestrator,
    pub(crate) data: TenantData,
    pub(crate) quotas: Quotas,
}

impl Provisioner {
    /// Runs workflow `name` for `tenant` with `input` (a JSON object: for
    /// `service`, `{"service": "...", "tier": "..."}`; for `user`,
    /// `{"email": "...", "role": "..."}`; for `resource`, `{"service": "...",
    /// "type": "database|storage|compute", "spec": {...}}`) and returns its
    /// receipt when the run has ended.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the field for bad input (unknown fields
    /// included), or for a resource of a service the tenant does not
    /// subscribe to; [`Error::NotFound`] for an unknown workflow or tenant;
    /// [`Error::NotActive`] when the tenant is not Active;
    /// [`Error::Conflict`] when the request id was used for another request,
    /// or (kind `quota`) when the resource would exceed the quota.
    pub(crate) async fn provision(
        &self,
        name: &str,
        tenant: &TenantId,
        request_id: RequestId,
        input: serde_json::Value,
    ) -> Result<Receipt> {
        let orchestrator = &self.orchestrator;
        match name {
            SERVICE => {
                let input = ServiceInput::parse(input)?;
                orchestrator
                    .run_workflow(SERVICE, tenant, request_id, input)
                    .await
            }
            USER => {
                let input = UserInput::parse(input)?;
                orchestrator
                    .run_workflow(USER, tenant, request_id, input)
                    .await
            }
            RESOURCE => {
                let input = ResourceInput::parse(input)?;
                // A request id seen before gets its receipt, whatever the
                // quota says now; a new one is refused early when it cannot fit.
                let known = match orchestrator.status(request_id).await {
                    Ok(_) => true,
                    Err(Error::NotFound { .. }) => false,
                    Err(error) => return Err(error),
                };
                if !known {
                    let record = orchestrator.tenant(tenant).await?;
                    if let (TenantState::Active, Some(placement)) =
                        (record.state, &record.placement)
                    {
                        let (data, quotas) = (&self.data, &self.quotas);
                        resource::precheck(data, quotas, placement, &input, request_id).await?;
                    }
                }
                orchestrator
                    .run_workflow(RESOURCE, tenant, request_id, input)
                    .await
            }
            other => Err(Error::NotFound {
                kind: Entity::Workflow,
                id: other.to_owned(),
            }),
        }
    }
}
