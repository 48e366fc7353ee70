//! (5) The endpoints: tenants (create, read, suspend, resume, delete), a
//! request's status, the generic workflows; (8) `/metrics` and `/healthz`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use provisioning_core::{
    CREATE_TENANT, DELETE_TENANT, MOVE_TENANT, ProvisioningOrchestrator, RESUME_TENANT, Receipt,
    RemovalMode, RequestId, SUSPEND_TENANT, TenantId, TenantRecord, TenantRequest,
};
use serde::Deserialize;

use super::AppState;
use super::accept::{Expected, WaitQuery, accept};
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery, OptionalJson};
use crate::workflows;

/// The header that names the tenant a generic workflow runs for.
pub(crate) const TENANT_HEADER: &str = "x-tenant-id";

/// The body of `POST /api/v1/tenants`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    tenant_id: String,
    plan: String,
    region: String,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
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
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RequestIdBody {
    #[serde(default)]
    request_id: Option<String>,
}

/// The query of `DELETE /api/v1/tenants/{id}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeleteQuery {
    /// `archive` (the default) or `purge`.
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    wait: bool,
}

/// What happens to a deleted tenant's storage.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    /// Objects move under `archive/`.
    #[default]
    Archive,
    /// Objects are deleted.
    Purge,
}

/// The given idempotency key, or a new one.
fn request_id(given: Option<&str>) -> Result<RequestId, ApiError> {
    Ok(match given {
        Some(id) => id.parse()?,
        None => RequestId::new(),
    })
}

fn tenant_id(raw: &str) -> Result<TenantId, ApiError> {
    Ok(raw.parse()?)
}

/// `POST /api/v1/tenants`: creates a tenant; idempotent by `request_id`.
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

/// `GET /api/v1/tenants/{id}`: the tenant record (tombstones included).
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

/// The body of `POST /api/v1/tenants/{id}/plan`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlanBody {
    plan: String,
    #[serde(default)]
    request_id: Option<String>,
}

/// The body of `POST /api/v1/tenants/{id}/move`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MoveBody {
    shard: String,
    #[serde(default)]
    request_id: Option<String>,
}

/// `POST /api/v1/tenants/{id}/plan` `{"plan": "premium"}`: changes an Active
/// tenant's plan, moving its data when the plan needs another isolation;
/// the same receipts, 202 and status link as create.
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

/// `GET /api/v1/provisioning/{request_id}/status`: the request's receipt.
pub(crate) async fn status(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath,
) -> Result<Response, ApiError> {
    let receipt = state.orchestrator.status(request_id(Some(&id))?).await?;
    Ok(Json(receipt).into_response())
}

/// `POST /api/v1/provisioning/{workflow}` with `X-Tenant-ID`: runs a generic
/// workflow (`service`, `user`) for an Active tenant with the body as its
/// input; the body's optional `request_id` is the idempotency key.
pub(crate) async fn provision(
    State(state): State<Arc<AppState>>,
    ApiPath(workflow): ApiPath,
    ApiQuery(query): ApiQuery<WaitQuery>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Response, ApiError> {
    if !workflows::WORKFLOWS.contains(&workflow.as_str()) {
        return Err(provisioning_core::Error::NotFound {
            kind: "workflow",
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
    let orchestrator = state.orchestrator.clone();
    let input = serde_json::Value::Object(input);
    accept(&state, expected, query.wait, async move {
        workflows::provision(&orchestrator, &workflow, &tenant, request_id, input).await
    })
    .await
}

/// (8) `GET /metrics`: the SDK's metrics in the Prometheus text format.
pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// `GET /healthz`: the process serves requests.
pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// `GET /api/v1/fleet/status`: the last fleet roll-out, as `fleet status
/// --json` prints it (`{"rollout": null}` before the first).
pub(crate) async fn fleet_status(
    State(state): State<Arc<AppState>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let status = state.orchestrator.fleet_status().await?;
    Ok(Json(crate::commands::fleet::status_json(status.as_ref())))
}

/// The query of `GET /api/v1/fleet/drift`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DriftQuery {
    #[serde(default)]
    tenant: Option<String>,
}

/// `GET /api/v1/fleet/drift[?tenant=ID]`: every Active and Suspended
/// tenant's database (or one) compared with the release, as `drift --json`
/// prints it. Read only: repairs are the CLI's `drift --repair`.
pub(crate) async fn fleet_drift(
    State(state): State<Arc<AppState>>,
    ApiQuery(query): ApiQuery<DriftQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut options = provisioning_core::DriftOptions::new();
    if let Some(tenant) = query.tenant.as_deref() {
        options = options.tenant(tenant_id(tenant)?);
    }
    let report = state.orchestrator.check_drift(options).await?;
    Ok(Json(crate::commands::fleet::drift_json(&report)))
}

/// Any path no route serves: a JSON 404.
pub(crate) async fn no_route(uri: Uri) -> ApiError {
    ApiError::no_route(uri.path())
}

/// A route that exists, with a method it does not take: a JSON 405.
pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}
