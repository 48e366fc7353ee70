//! (5) How the API answers a request that starts a run: at once with 202 and
//! a status link, or with `?wait=true` when the run has ended (within the
//! server's `--wait-timeout`; a longer run is answered 202 then). A request
//! that would start more runs than `--max-runs` is answered 503 with
//! `Retry-After`, nothing started.
//!
//! Every run is spawned on a tracked task, so that a client hanging up does
//! not cancel a saga half-way, and shutdown waits for the runs it started.
//! The handler then waits for whichever comes first: the task ending (an
//! error is answered with its status code, so bad input, a missing tenant and
//! a conflict are still answered synchronously, nothing written) or the
//! request becoming visible in the catalog (202).
//!
//! Where `serve` queues requests for workers (a shared catalog, or
//! `--worker`), the task only records the request, and `?wait=true` then
//! waits for the outcome a worker writes, woken by the catalog's notices
//! (PostgreSQL `LISTEN`/`NOTIFY`) rather than by reading it in a loop.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use provisioning_core::{Entity, Error, Receipt, RequestId, RequestStatus, Result, TenantId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use tokio::sync::TryAcquireError;
use tokio::task::JoinHandle;

use super::error::{ApiError, ErrorCode};

/// First pause between two looks at the catalog; it doubles up to [`POLL_MAX`].
const POLL_MIN: Duration = Duration::from_millis(2);
/// Longest pause between two looks at the catalog.
const POLL_MAX: Duration = Duration::from_millis(50);

/// The `?wait=true` query of the endpoints that start a run.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct WaitQuery {
    /// Answer when the run has ended (200 with the receipt) instead of at
    /// once (202 with a status link).
    #[serde(default)]
    pub(crate) wait: bool,
}

/// What a request asks for, to tell a repeat of it (answered with its
/// receipt) from another request under the same id (a conflict).
pub(crate) struct Expected {
    /// The idempotency key.
    pub(crate) request_id: RequestId,
    /// The tenant it is for.
    pub(crate) tenant_id: TenantId,
    /// The workflow it runs.
    pub(crate) workflow: String,
}

impl Expected {
    /// Whether `receipt` is this request's; a conflict error if another
    /// request holds the id. (Parameters beyond tenant and workflow are
    /// compared by the orchestrator, for a request that has finished.)
    fn check(&self, receipt: &Receipt) -> Result<()> {
        if receipt.tenant_id == self.tenant_id && receipt.workflow == self.workflow {
            return Ok(());
        }
        Err(Error::Conflict {
            kind: Entity::Request,
            id: self.request_id.to_string(),
            reason: format!(
                "request id already used for {} of tenant {}",
                receipt.workflow, receipt.tenant_id
            ),
        })
    }
}

/// A receipt with the link to follow it; the body of 202 and of `?wait=true`.
#[derive(Serialize, ToSchema)]
#[schema(as = LinkedReceipt)]
pub(crate) struct Answer {
    #[serde(flatten)]
    receipt: Receipt,
    /// Where the request's receipt is served (`GET` it to follow the run).
    #[schema(example = "/api/v1/provisioning/0190c1a2-7b3e-7c4d-9e5f-0123456789ab/status")]
    status_url: String,
}

/// Where a request's receipt is served.
pub(crate) fn status_url(request_id: RequestId) -> String {
    format!("/api/v1/provisioning/{request_id}/status")
}

/// Runs `run` (the orchestrator call carrying out `expected`) and answers as
/// the module docs describe: with `wait`, 200 and the final receipt (a run
/// that ended `failed` is still 200: the receipt names the failure);
/// otherwise 202, a `Location` header and the receipt so far.
pub(crate) async fn accept<F>(
    state: &AppState,
    expected: Expected,
    wait: bool,
    run: F,
) -> Result<Response, ApiError>
where
    F: Future<Output = Result<Receipt>> + Send + 'static,
{
    let request_id = expected.request_id;
    // A backend fault (not bad input, not a conflict) interrupted the run or
    // its submission: a retryable answer naming the request.
    let settle = |ended: Result<Receipt>| {
        ended.map_err(|error| match error {
            Error::Backend { .. } => ApiError::interrupted(request_id, &error),
            error => error.into(),
        })
    };
    let existing = match state.orchestrator.status(request_id).await {
        Ok(existing) => Some(existing),
        Err(Error::NotFound { .. }) => None,
        Err(error) => return Err(error.into()),
    };
    if let Some(existing) = existing {
        // A repeat of a finished request (or another request under its id):
        // the orchestrator answers that at once, without running anything
        // and without taking a run's place.
        if existing.status.is_finished() {
            let status = if wait {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            };
            return Ok(answer(status, settle(run.await)?));
        }
        // Still running, and not to be waited for: here, under the
        // orchestrator's lock for its id, which a new call would wait for.
        if !wait {
            expected.check(&existing)?;
            return Ok(answer(StatusCode::ACCEPTED, existing));
        }
    }
    let mut task = spawn(state, run)?;
    if wait {
        let started = std::time::Instant::now();
        if let Ok(ended) = tokio::time::timeout(state.limits.wait_timeout, &mut task).await {
            let accepted = settle(ended?)?;
            if !state.orchestrator.is_queued() || accepted.status != RequestStatus::Running {
                return Ok(answer(StatusCode::OK, accepted));
            }
            // Queued: a worker runs it. Its outcome is waited for, woken by
            // the catalog's notices, for what is left of the wait.
            let left = state.limits.wait_timeout.saturating_sub(started.elapsed());
            let waited = state
                .orchestrator
                .wait_until_finished(request_id, left)
                .await;
            return Ok(match waited {
                Ok(receipt) if receipt.status != RequestStatus::Running => {
                    answer(StatusCode::OK, receipt)
                }
                Ok(receipt) => answer(StatusCode::ACCEPTED, receipt),
                // Recorded all the same: the client follows the status link
                // rather than sending it again.
                Err(error) => {
                    tracing::warn!(%request_id, error = %error, "waiting for a queued request failed; answered 202");
                    answer(StatusCode::ACCEPTED, accepted)
                }
            });
        }
        // Still running after the wait: the task goes on, and the answer is
        // as without `wait`, once the request is visible.
    }
    let mut pause = POLL_MIN;
    loop {
        tokio::select! {
            biased;
            ended = &mut task => {
                let status = if wait { StatusCode::OK } else { StatusCode::ACCEPTED };
                return Ok(answer(status, settle(ended?)?));
            }
            () = tokio::time::sleep(pause) => {}
        }
        match state.orchestrator.status(expected.request_id).await {
            Ok(receipt) => {
                expected.check(&receipt)?;
                return Ok(answer(StatusCode::ACCEPTED, receipt));
            }
            Err(Error::NotFound { .. }) => {}
            // The task reports the store's failures itself; keep waiting for it.
            Err(error) => {
                tracing::debug!(request_id = %expected.request_id, error = %error, "status poll failed")
            }
        }
        pause = (pause * 2).min(POLL_MAX);
    }
}

/// Spawns `run` on a tracked task holding one of the server's run permits,
/// or refuses with 503 (nothing started, nothing written) when all are
/// taken: more runs would only queue on the catalog and the disk.
fn spawn<F>(state: &AppState, run: F) -> Result<JoinHandle<Result<Receipt>>, ApiError>
where
    F: Future<Output = Result<Receipt>> + Send + 'static,
{
    let permit = match Arc::clone(&state.run_permits).try_acquire_owned() {
        Ok(permit) => permit,
        Err(TryAcquireError::NoPermits) => {
            metrics::counter!("provisioning_http_runs_refused_total").increment(1);
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                format!(
                    "the server is running its limit of {} runs; retry shortly",
                    state.limits.max_runs
                ),
            ));
        }
        Err(TryAcquireError::Closed) => {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                "the server is shutting down; retry on another instance or after its restart",
            ));
        }
    };
    Ok(state.runs.spawn(async move {
        let _permit = permit;
        run.await
    }))
}

fn answer(status: StatusCode, receipt: Receipt) -> Response {
    let url = status_url(receipt.request_id);
    let location = HeaderValue::from_str(&url).ok();
    let mut response = (
        status,
        Json(Answer {
            receipt,
            status_url: url,
        }),
    )
        .into_response();
    if status == StatusCode::ACCEPTED {
        if let Some(location) = location {
            response.headers_mut().insert(header::LOCATION, location);
        }
    }
    response
}
