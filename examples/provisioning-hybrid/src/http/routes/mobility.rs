//! (5) Moving a tenant's data: a plan change that needs another isolation,
//! or an operator's move to a chosen shard; both the `move-tenant` workflow,
//! with the same receipts, 202 and status link as create.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use provisioning_core::{MOVE_TENANT, ProvisioningOrchestrator, Receipt, RequestId, TenantId};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{request_id, tenant_id};
use crate::http::AppState;
use crate::http::accept::{Expected, WaitQuery, accept};
use crate::http::error::{ApiError, Envelope};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::openapi::responses::{BodyErrors, RunAnswers, ServerErrors, Unauthorized};

/// The 409 of a plan change or a move, in the document.
const MOVE_CONFLICT: &str = "The tenant is not Active, is being moved by another \
    request, or the request id was used for other work";

/// The body of `POST /api/v1/tenants/{id}/plan`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"plan": "premium"}))]
pub(crate) struct PlanBody {
    /// The new plan: one of the configured plans, not the tenant's own.
    #[schema(value_type = provisioning_core::PlanName)]
    plan: String,
    /// The idempotency key; a new one when absent.
    #[serde(default)]
    #[schema(value_type = Option<RequestId>)]
    request_id: Option<String>,
}

/// The body of `POST /api/v1/tenants/{id}/move`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"shard": "eu-west-shared-1"}))]
pub(crate) struct MoveBody {
    /// The shard to move to: of the tenant's pool, in its region or (for a
    /// flexible tenant) a configured fallback region.
    #[schema(value_type = provisioning_core::ShardId)]
    shard: String,
    /// The idempotency key; a new one when absent.
    #[serde(default)]
    #[schema(value_type = Option<RequestId>)]
    request_id: Option<String>,
}

/// `POST /api/v1/tenants/{id}/plan` `{"plan": "premium"}`: changes an Active
/// tenant's plan, moving its data when the plan needs another isolation;
/// the same receipts, 202 and status link as create.
#[utoipa::path(
    post,
    path = "/api/v1/tenants/{id}/plan",
    tag = "tenants",
    params(("id" = TenantId, Path, description = "The tenant"), WaitQuery),
    request_body(content = PlanBody, description = "The new plan"),
    responses(
        RunAnswers,
        BodyErrors,
        Unauthorized,
        (status = 404, description = "No such tenant", body = Envelope),
        (status = 409, description = MOVE_CONFLICT, body = Envelope),
        (status = 422, description = "No shard can take the tenant on the new plan",
            body = Envelope),
        ServerErrors,
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn change_plan(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath,
    ApiQuery(query): ApiQuery<WaitQuery>,
    ApiJson(body): ApiJson<PlanBody>,
) -> Result<Response, ApiError> {
    let tenant = tenant_id(&id)?;
    let plan = parse_field(&body.plan, "plan")?;
    accept_move(
        &state,
        tenant,
        body.request_id.as_deref(),
        query.wait,
        |o, t, r| async move { o.change_plan(&t, plan, r).await },
    )
    .await
}

/// `POST /api/v1/tenants/{id}/move` `{"shard": "eu-west-shared-2"}`: moves
/// an Active tenant's data to a chosen shard of its pool, in its region or,
/// for a flexible tenant, a fallback region of the config.
#[utoipa::path(
    post,
    path = "/api/v1/tenants/{id}/move",
    tag = "tenants",
    params(("id" = TenantId, Path, description = "The tenant"), WaitQuery),
    request_body(content = MoveBody, description = "The shard to move to"),
    responses(
        RunAnswers,
        BodyErrors,
        Unauthorized,
        (status = 404, description = "No such tenant or shard", body = Envelope),
        (status = 409, description = MOVE_CONFLICT, body = Envelope),
        (status = 422, description = "The shard cannot take the tenant: its residency \
            forbids it, of the wrong pool, draining or full", body = Envelope),
        ServerErrors,
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn move_tenant(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath,
    ApiQuery(query): ApiQuery<WaitQuery>,
    ApiJson(body): ApiJson<MoveBody>,
) -> Result<Response, ApiError> {
    let tenant = tenant_id(&id)?;
    let shard = parse_field(&body.shard, "shard")?;
    accept_move(
        &state,
        tenant,
        body.request_id.as_deref(),
        query.wait,
        |o, t, r| async move { o.move_tenant(&t, shard, r).await },
    )
    .await
}

/// `text` parsed as a body field, or an error naming `field`.
fn parse_field<T>(text: &str, field: &'static str) -> Result<T, ApiError>
where
    T: std::str::FromStr<Err = provisioning_core::Error>,
{
    text.parse()
        .map_err(|e: provisioning_core::Error| ApiError::from(e).for_field(field))
}

/// Accepts a move of `tenant` (a plan change or an operator's move) under
/// the body's request id: `run` starts it on the orchestrator; the same
/// receipts, 202 and status link as create.
async fn accept_move<F, Fut>(
    state: &AppState,
    tenant: TenantId,
    raw_request_id: Option<&str>,
    wait: bool,
    run: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(ProvisioningOrchestrator, TenantId, RequestId) -> Fut,
    Fut: Future<Output = provisioning_core::Result<Receipt>> + Send + 'static,
{
    let request_id = request_id(raw_request_id)?;
    let expected = Expected {
        request_id,
        tenant_id: tenant.clone(),
        workflow: MOVE_TENANT.to_owned(),
    };
    let started = run(state.orchestrator.clone(), tenant, request_id);
    accept(state, expected, wait, started).await
}
