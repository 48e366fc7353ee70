//! (5) The tenant lifecycle endpoints: create, read, suspend, resume,
//! delete.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use provisioning_core::model::{ATTRIBUTE_KEY_MAX_LEN, ATTRIBUTE_VALUE_MAX_LEN, ATTRIBUTES_MAX};
use provisioning_core::{
    CREATE_TENANT, DELETE_TENANT, RESUME_TENANT, RemovalMode, RequestId, SUSPEND_TENANT, TenantId,
    TenantRecord, TenantRequest,
};
use serde::Deserialize;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::{IntoParams, ToSchema};

use super::{request_id, tenant_id};
use crate::http::AppState;
use crate::http::accept::{Expected, WaitQuery, accept};
use crate::http::error::{ApiError, Envelope};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, OptionalJson};
use crate::http::openapi::responses::{
    BodyErrors, ParameterErrors, RunAnswers, ServerErrors, Unauthorized,
};

/// The optional body of suspend, resume and delete, in the document.
const OPTIONAL_BODY: &str = "Optional: the idempotency key (no body, or an empty one, \
    is a new key)";

/// The body of `POST /api/v1/tenants`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"tenant_id": "acme", "plan": "standard", "region": "eu-west"}))]
pub(crate) struct CreateBody {
    /// The new tenant's id.
    #[schema(value_type = TenantId)]
    tenant_id: String,
    /// One of the configured plans.
    #[schema(value_type = provisioning_core::PlanName)]
    plan: String,
    /// One of the configured regions.
    #[schema(value_type = provisioning_core::Region)]
    region: String,
    /// The idempotency key; a new one when absent.
    #[serde(default)]
    #[schema(value_type = Option<RequestId>)]
    request_id: Option<String>,
    /// Free-form metadata kept on the tenant (`compliance=hipaa` asks for a
    /// dedicated database in its own region).
    #[serde(default)]
    #[schema(schema_with = attributes_schema)]
    attributes: BTreeMap<String, String>,
}

/// The rules of [`TenantRequest::with_attribute`] as a schema: at most 64
/// keys of ASCII letters, digits, `-`, `_` and `.`, values without control
/// characters. A value may be 1024 bytes; the schema, counting characters,
/// says 256, which no character can take over that.
fn attributes_schema() -> ObjectBuilder {
    let key = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[A-Za-z0-9._-]+$"))
        .max_length(Some(ATTRIBUTE_KEY_MAX_LEN));
    let value = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[^\\u0000-\\u001f\\u007f-\\u009f]*$"))
        .max_length(Some(ATTRIBUTE_VALUE_MAX_LEN / 4));
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "Free-form metadata kept on the tenant (`compliance=hipaa` asks for a dedicated \
             database in its own region): at most 64 keys of ASCII letters, digits, '-', '_' \
             and '.', values of at most 1024 bytes without control characters",
        ))
        .property_names(Some(key))
        .additional_properties(Some(value))
        .max_properties(Some(ATTRIBUTES_MAX))
}

impl CreateBody {
    /// The SDK's request; each field's errors name the field and rule.
    fn into_request(self) -> Result<TenantRequest, ApiError> {
        let mut request = TenantRequest::new(
            self.tenant_id.parse()?,
            self.plan.parse()?,
            self.region.parse()?,
        )
        .with_request_id(request_id(self.request_id.as_deref())?);
        for (key, value) in self.attributes {
            request = request.with_attribute(key, value)?;
        }
        Ok(request)
    }
}

/// The optional body of suspend, resume and delete: the idempotency key.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RequestIdBody {
    /// The idempotency key; a new one when absent.
    #[serde(default)]
    #[schema(value_type = Option<RequestId>)]
    request_id: Option<String>,
}

/// The query of `DELETE /api/v1/tenants/{id}`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeleteQuery {
    /// What happens to the tenant's storage: `archive` (the default) or `purge`.
    #[serde(default)]
    #[param(inline)]
    mode: Mode,
    /// Answer when the run has ended (200 with the receipt) instead of at
    /// once (202 with a status link).
    #[serde(default)]
    wait: bool,
}

/// What happens to a deleted tenant's storage.
#[derive(Debug, Default, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum Mode {
    /// Objects move under `archive/`.
    #[default]
    Archive,
    /// Objects are deleted.
    Purge,
}

/// `POST /api/v1/tenants`: creates a tenant; idempotent by `request_id`.
///
/// The create run (validate, place, database, migrations, seeds, storage,
/// activate) is answered at once with 202 and a status link, or with
/// `?wait=true` when it has ended. A placement no shard can take is not an
/// error of the request: the run fails at its `place` step and the receipt
/// says so.
#[utoipa::path(
    post,
    path = "/api/v1/tenants",
    tag = "tenants",
    params(WaitQuery),
    request_body(content = CreateBody, description = "The tenant to create"),
    responses(
        RunAnswers,
        BodyErrors,
        Unauthorized,
        (status = 409, description = "The tenant exists under another request, or the \
            request id was used for other work", body = Envelope),
        ServerErrors,
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn create_tenant(
    State(state): State<Arc<AppState>>,
    ApiQuery(query): ApiQuery<WaitQuery>,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<Response, ApiError> {
    let request = body.into_request()?;
    let expected = Expected {
        request_id: request.request_id,
        tenant_id: request.tenant_id.clone(),
        workflow: CREATE_TENANT.to_owned(),
    };
    let orchestrator = state.orchestrator.clone();
    accept(&state, expected, query.wait, async move {
        orchestrator.create(request).await
    })
    .await
}

/// `POST /api/v1/provisioning/tenant`: the same operation as
/// `POST /api/v1/tenants` (the same body, answers, idempotency and errors),
/// where the Provisioning Service design names it beside the other
/// workflows; no `X-Tenant-ID`, the body names the tenant.
#[utoipa::path(
    post,
    path = "/api/v1/provisioning/tenant",
    tag = "provisioning",
    params(WaitQuery),
    request_body(content = CreateBody, description = "The tenant to create"),
    responses(
        RunAnswers,
        BodyErrors,
        Unauthorized,
        (status = 409, description = "The tenant exists under another request, or the \
            request id was used for other work", body = Envelope),
        ServerErrors,
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn provision_tenant(
    state: State<Arc<AppState>>,
    query: ApiQuery<WaitQuery>,
    body: ApiJson<CreateBody>,
) -> Result<Response, ApiError> {
    create_tenant(state, query, body).await
}

/// `GET /api/v1/tenants/{id}`: the tenant record (tombstones included).
#[utoipa::path(
    get,
    path = "/api/v1/tenants/{id}",
    tag = "tenants",
    params(("id" = TenantId, Path, description = "The tenant")),
    responses(
        (status = 200, description = "The tenant: state, plan, region, placement, \
            metadata, failure", body = TenantRecord),
        ParameterErrors,
        Unauthorized,
        (status = 404, description = "No such tenant", body = Envelope),
        ServerErrors,
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn get_tenant(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath,
) -> Result<Json<TenantRecord>, ApiError> {
    Ok(Json(state.orchestrator.tenant(&tenant_id(&id)?).await?))
}

/// Which lifecycle workflow a handler starts.
#[derive(Clone, Copy)]
enum Lifecycle {
    Suspend,
    Resume,
    Delete(RemovalMode),
}

/// Starts a lifecycle workflow for tenant `id`.
async fn lifecycle(
    state: Arc<AppState>,
    id: &str,
    op: Lifecycle,
    given: Option<&str>,
    wait: bool,
) -> Result<Response, ApiError> {
    let tenant = tenant_id(id)?;
    let request_id = request_id(given)?;
    let workflow = match op {
        Lifecycle::Suspend => SUSPEND_TENANT,
        Lifecycle::Resume => RESUME_TENANT,
        Lifecycle::Delete(_) => DELETE_TENANT,
    };
    let expected = Expected {
        request_id,
        tenant_id: tenant.clone(),
        workflow: workflow.to_owned(),
    };
    let orchestrator = state.orchestrator.clone();
    accept(&state, expected, wait, async move {
        match op {
            Lifecycle::Suspend => orchestrator.suspend(&tenant, request_id).await,
            Lifecycle::Resume => orchestrator.resume(&tenant, request_id).await,
            Lifecycle::Delete(mode) => orchestrator.delete(&tenant, mode, request_id).await,
        }
    })
    .await
}

/// `POST /api/v1/tenants/{id}/suspend`: suspends an Active tenant (409 otherwise).
#[utoipa::path(
    post,
    path = "/api/v1/tenants/{id}/suspend",
    tag = "tenants",
    params(("id" = TenantId, Path, description = "The tenant"), WaitQuery),
    request_body(content = Option<RequestIdBody>, description = OPTIONAL_BODY),
    responses(
        RunAnswers,
        BodyErrors,
        Unauthorized,
        (status = 404, description = "No such tenant", body = Envelope),
        (status = 409, description = "The tenant is not Active, or the request id was \
            used for other work", body = Envelope),
        ServerErrors,
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn suspend(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath,
    ApiQuery(query): ApiQuery<WaitQuery>,
    OptionalJson(body): OptionalJson<RequestIdBody>,
) -> Result<Response, ApiError> {
    let given = body.request_id.as_deref();
    lifecycle(state, &id, Lifecycle::Suspend, given, query.wait).await
}

/// `POST /api/v1/tenants/{id}/resume`: resumes a Suspended tenant (409 otherwise).
#[utoipa::path(
    post,
    path = "/api/v1/tenants/{id}/resume",
    tag = "tenants",
    params(("id" = TenantId, Path, description = "The tenant"), WaitQuery),
    request_body(content = Option<RequestIdBody>, description = OPTIONAL_BODY),
    responses(
        RunAnswers,
        BodyErrors,
        Unauthorized,
        (status = 404, description = "No such tenant", body = Envelope),
        (status = 409, description = "The tenant is not Suspended, or the request id was \
            used for other work", body = Envelope),
        ServerErrors,
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn resume(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath,
    ApiQuery(query): ApiQuery<WaitQuery>,
    OptionalJson(body): OptionalJson<RequestIdBody>,
) -> Result<Response, ApiError> {
    let given = body.request_id.as_deref();
    lifecycle(state, &id, Lifecycle::Resume, given, query.wait).await
}

/// `DELETE /api/v1/tenants/{id}?mode=archive|purge`: deletes an Active,
/// Suspended or Failed tenant (409 otherwise).
#[utoipa::path(
    delete,
    path = "/api/v1/tenants/{id}",
    tag = "tenants",
    params(("id" = TenantId, Path, description = "The tenant"), DeleteQuery),
    request_body(content = Option<RequestIdBody>, description = OPTIONAL_BODY),
    responses(
        RunAnswers,
        BodyErrors,
        Unauthorized,
        (status = 404, description = "No such tenant", body = Envelope),
        (status = 409, description = "The tenant is not Active, Suspended or Failed, or \
            the request id was used for other work", body = Envelope),
        ServerErrors,
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn delete_tenant(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath,
    ApiQuery(query): ApiQuery<DeleteQuery>,
    OptionalJson(body): OptionalJson<RequestIdBody>,
) -> Result<Response, ApiError> {
    let mode = match query.mode {
        Mode::Archive => RemovalMode::Archive,
        Mode::Purge => RemovalMode::Purge,
    };
    let given = body.request_id.as_deref();
    lifecycle(state, &id, Lifecycle::Delete(mode), given, query.wait).await
}
