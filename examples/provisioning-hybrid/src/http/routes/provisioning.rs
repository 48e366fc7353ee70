//! (5) A request's status, and the generic workflows (`service`, `user`,
//! `resource`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use provisioning_core::{Entity, Receipt, RequestId, TenantId};
use utoipa::openapi::schema::{AdditionalProperties, AnyOfBuilder, ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use super::{request_id, tenant_id};
use crate::http::AppState;
use crate::http::accept::{Expected, WaitQuery, accept};
use crate::http::error::{ApiError, Envelope};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::openapi::responses::{
    BodyErrors, ParameterErrors, RunAnswers, ServerErrors, Unauthorized,
};
use crate::workflows::{self, ResourceInput, ServiceInput, UserInput};

/// The header that names the tenant a generic workflow runs for.
pub(crate) const TENANT_HEADER: &str = "x-tenant-id";

/// `GET /api/v1/provisioning/{request_id}/status`: the request's receipt.
#[utoipa::path(
    get,
    path = "/api/v1/provisioning/{request_id}/status",
    tag = "provisioning",
    params(("request_id" = RequestId, Path, description = "The request's idempotency key")),
    responses(
        (status = 200, description = "The request's receipt: `status` is `running` until \
            its run has ended", body = Receipt),
        ParameterErrors,
        Unauthorized,
        (status = 404, description = "No request with this id", body = Envelope),
        ServerErrors,
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn status(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath,
) -> Result<Response, ApiError> {
    let receipt = state.orchestrator.status(request_id(Some(&id))?).await?;
    Ok(Json(receipt).into_response())
}

/// The `{workflow}` of `POST /api/v1/provisioning/{workflow}`, in the
/// document: one of the registered generic workflows.
pub(crate) struct WorkflowName;

impl PartialSchema for WorkflowName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("A registered generic workflow"))
            .enum_values(Some(workflows::WORKFLOWS))
            .into()
    }
}

impl ToSchema for WorkflowName {}

/// The body of `POST /api/v1/provisioning/{workflow}`, in the document: the
/// input of one of the workflows, with an optional `request_id` (the
/// idempotency key). The handler reads it as JSON and the workflow parses
/// its input; this only describes what they accept.
pub(crate) struct WorkflowBody;

impl PartialSchema for WorkflowBody {
    fn schema() -> RefOr<Schema> {
        workflows::WORKFLOWS
            .into_iter()
            .fold(
                AnyOfBuilder::new().description(Some(
                    "The input of the workflow in the path (`service`: {service, tier}; \
                     `user`: {email, role}; `resource`: {service, type, spec}), with an \
                     optional `request_id`",
                )),
                |any_of, workflow| {
                    let input = input_schema(workflow)
                        .title(Some(workflow))
                        .property("request_id", RequestId::schema());
                    any_of.item(input)
                },
            )
            .into()
    }
}

impl ToSchema for WorkflowBody {}

/// What workflow `name` takes, as its parser says; closed (no other field)
/// where the parser refuses unknown fields. A workflow without a schema here
/// is described as any object.
fn input_schema(name: &str) -> ObjectBuilder {
    let closed = |input: ObjectBuilder| {
        input.additional_properties(Some(AdditionalProperties::FreeForm(false)))
    };
    match name {
        workflows::SERVICE => closed(ServiceInput::schema()),
        workflows::USER => closed(UserInput::schema()),
        workflows::RESOURCE => closed(ResourceInput::schema()),
        _ => ObjectBuilder::new().schema_type(Type::Object),
    }
}

/// `POST /api/v1/provisioning/{workflow}` with `X-Tenant-ID`: runs a generic
/// workflow (`service`, `user`, `resource`) for an Active tenant with the body as its
/// input; the body's optional `request_id` is the idempotency key.
#[utoipa::path(
    post,
    path = "/api/v1/provisioning/{workflow}",
    tag = "provisioning",
    params(
        ("workflow" = WorkflowName, Path, description = "The workflow to run"),
        ("X-Tenant-ID" = TenantId, Header, description = "The tenant the workflow runs for"),
        WaitQuery,
    ),
    request_body(content = WorkflowBody, description = "The workflow's input"),
    responses(
        RunAnswers,
        BodyErrors,
        Unauthorized,
        (status = 404, description = "No such workflow, or no such tenant", body = Envelope),
        (status = 409, description = "The tenant is not Active (`tenant_not_active`), the \
            request id was used for other work, or a resource would exceed its quota \
            (`conflict`, naming the limit)", body = Envelope),
        ServerErrors,
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn provision(
    State(state): State<Arc<AppState>>,
    ApiPath(workflow): ApiPath,
    ApiQuery(query): ApiQuery<WaitQuery>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Response, ApiError> {
    if !workflows::WORKFLOWS.contains(&workflow.as_str()) {
        return Err(provisioning_core::Error::NotFound {
            kind: Entity::Workflow,
            id: workflow,
        }
        .into());
    }
    let raw = headers
        .get(TENANT_HEADER)
        .ok_or_else(|| {
            ApiError::invalid("X-Tenant-ID", "the header naming the tenant is required")
        })?
        .to_str()
        .map_err(|_| ApiError::invalid("X-Tenant-ID", "must be visible ASCII"))?;
    let tenant = tenant_id(raw).map_err(|e| e.for_field("X-Tenant-ID"))?;
    let serde_json::Value::Object(mut input) = body else {
        return Err(ApiError::invalid_body("the body must be a JSON object"));
    };
    let request_id = match input.remove("request_id") {
        None => RequestId::new(),
        Some(serde_json::Value::String(id)) => request_id(Some(&id))?,
        Some(_) => return Err(ApiError::invalid("request_id", "must be a UUID string")),
    };
    let expected = Expected {
        request_id,
        tenant_id: tenant.clone(),
        workflow: workflow.clone(),
    };
    let provisioner = state.provisioner.clone();
    let input = serde_json::Value::Object(input);
    accept(&state, expected, query.wait, async move {
        provisioner
            .provision(&workflow, &tenant, request_id, input)
            .await
    })
    .await
}
