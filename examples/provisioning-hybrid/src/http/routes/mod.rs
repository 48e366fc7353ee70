//! (5) The endpoints, one file per concern: [`tenants`] (create, read,
//! suspend, resume, delete), [`mobility`] (change plan, move),
//! [`provisioning`] (a request's status, the generic workflows), [`fleet`]
//! (roll-out status, drift); here (8) `/metrics`, `/healthz` and `/readyz`, the
//! fallbacks, and the parsing they share.
//!
//! Each handler carries its `#[utoipa::path]`: the parameters, body and
//! every status it can answer, which [`super::openapi`] gathers into the
//! OpenAPI document.

pub(crate) mod fleet;
pub(crate) mod mobility;
pub(crate) mod provisioning;
pub(crate) mod tenants;

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use provisioning_core::{RequestId, TenantId};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, Envelope, ErrorCode};

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

/// (8) `GET /metrics`: the SDK's metrics in the Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "The metrics, Prometheus text format 0.0.4",
            body = String, content_type = "text/plain"),
    ),
)]
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

/// The body of `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `ok`: an answer at all is the news.
    #[schema(value_type = String, pattern = "^ok$")]
    status: &'static str,
}

/// `GET /healthz`: the process serves requests.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "The process serves requests", body = Health)),
)]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// A request recovery left unfinished.
#[derive(Serialize, ToSchema)]
pub(crate) struct Unrecovered {
    /// The request.
    #[schema(value_type = String, format = Uuid)]
    request_id: RequestId,
    /// Why it was left: an unknown workflow, a journal of another version,
    /// or the error recovering it met.
    reason: String,
}

/// The body of `GET /readyz`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Readiness {
    /// Always `ready`: the catalog answers, so the server can take requests.
    #[schema(value_type = String, pattern = "^ready$")]
    status: &'static str,
    /// The requests recovery left unfinished (at start, or in the last of
    /// the passes that resume interrupted runs), for an operator; empty
    /// when it finished everything. They do not keep the server from serving.
    unrecovered: Vec<Unrecovered>,
}

/// How long `/readyz` waits for the catalog before calling it unreachable.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// `GET /readyz`: the catalog answers a read (within 2 s), so the server can
/// take requests (503 otherwise, so that a load balancer sends them
/// elsewhere); the requests recovery could not finish are listed, and do not
/// keep it from serving.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "The catalog answers; what recovery left", body = Readiness),
        (status = 503, description = "The catalog does not answer (`unavailable`)", body = Envelope),
    ),
)]
pub(crate) async fn readyz(
    State(state): State<Arc<AppState>>,
) -> Result<Json<Readiness>, ApiError> {
    let probe = state.orchestrator.store().request(RequestId::new());
    let unreachable = match tokio::time::timeout(READY_TIMEOUT, probe).await {
        Ok(Ok(_)) => None,
        Ok(Err(error)) => Some(format!("the catalog failed a read: {error}")),
        Err(_) => Some(format!(
            "the catalog did not answer within {} s",
            READY_TIMEOUT.as_secs()
        )),
    };
    if let Some(why) = unreachable {
        return Err(ApiError::new(ErrorCode::Unavailable, why));
    }
    Ok(Json(Readiness {
        status: "ready",
        unrecovered: state
            .unrecovered()
            .into_iter()
            .map(|(request_id, reason)| Unrecovered { request_id, reason })
            .collect(),
    }))
}

/// Any path no route serves: a JSON 404.
pub(crate) async fn no_route(uri: Uri) -> ApiError {
    ApiError::no_route(uri.path())
}

/// A route that exists, with a method it does not take: a JSON 405.
pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{method} is not allowed on {}", uri.path()),
    )
}
