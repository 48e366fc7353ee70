//! (4) The fleet: the last roll-out, and drift from the release (read only:
//! roll-outs and repairs are the CLI's).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

use super::tenant_id;
use crate::commands::fleet::json::{DriftView, FleetStatusView};
use crate::http::AppState;
use crate::http::error::{ApiError, Envelope};
use crate::http::extract::ApiQuery;
use crate::http::openapi::responses::{ParameterErrors, ServerErrors, Unauthorized};

/// `GET /api/v1/fleet/status`: the last fleet roll-out, as `fleet status
/// --json` prints it (`{"rollout": null}` before the first).
#[utoipa::path(
    get,
    path = "/api/v1/fleet/status",
    tag = "fleet",
    responses(
        (status = 200, description = "The last roll-out, its counts, failures and workers",
            body = FleetStatusView),
        Unauthorized,
        ServerErrors,
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn fleet_status(
    State(state): State<Arc<AppState>>,
) -> Result<Json<FleetStatusView>, ApiError> {
    let status = state.orchestrator.fleet_status().await?;
    Ok(Json(FleetStatusView::new(status.as_ref())))
}

/// The query of `GET /api/v1/fleet/drift`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DriftQuery {
    /// Check only this tenant's database.
    #[serde(default)]
    #[param(value_type = Option<provisioning_core::TenantId>)]
    tenant: Option<String>,
}

/// `GET /api/v1/fleet/drift[?tenant=ID]`: every Active and Suspended
/// tenant's database (or one) compared with the release, as `drift --json`
/// prints it. Read only: repairs are the CLI's `drift --repair`.
#[utoipa::path(
    get,
    path = "/api/v1/fleet/drift",
    tag = "fleet",
    params(DriftQuery),
    responses(
        (status = 200, description = "Each database compared with the release",
            body = DriftView),
        ParameterErrors,
        Unauthorized,
        (status = 404, description = "No such tenant", body = Envelope),
        ServerErrors,
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn fleet_drift(
    State(state): State<Arc<AppState>>,
    ApiQuery(query): ApiQuery<DriftQuery>,
) -> Result<Json<DriftView>, ApiError> {
    let mut options = provisioning_core::DriftOptions::new();
    if let Some(tenant) = query.tenant.as_deref() {
        options = options.tenant(tenant_id(tenant)?);
    }
    let report = state.orchestrator.check_drift(options).await?;
    Ok(Json(DriftView::new(&report)))
}
