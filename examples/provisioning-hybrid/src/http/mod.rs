//! (5) `serve`: the commands as an HTTP API, and the lifecycle events they
//! publish; (8) monitoring at `/metrics`.
//!
//! | method and path | does |
//! |---|---|
//! | `POST /api/v1/tenants` | create: `{"tenant_id", "plan", "region", "request_id"?, "attributes"?}` |
//! | `GET /api/v1/tenants/{id}` | the tenant record |
//! | `POST /api/v1/tenants/{id}/suspend`, `/resume` | suspend, resume (`{"request_id"?}`) |
//! | `DELETE /api/v1/tenants/{id}?mode=archive\|purge` | delete (`{"request_id"?}`) |
//! | `POST /api/v1/tenants/{id}/plan`, `/move` | change plan (`{"plan"}`), move (`{"shard"}`) |
//! | `GET /api/v1/provisioning/{request_id}/status` | a request's receipt |
//! | `POST /api/v1/provisioning/tenant` | create, as `POST /api/v1/tenants` (one handler) |
//! | `POST /api/v1/provisioning/{workflow}` | a generic workflow (`service`, `user`, `resource`) for the tenant in `X-Tenant-ID` |
//! | `GET /api/v1/fleet/status`, `/drift` | the last roll-out, drift from the release |
//! | `GET /api/v1/openapi.json` | this API's OpenAPI 3.1 document (no token needed) |
//! | `GET /metrics`, `GET /healthz` | Prometheus metrics, liveness (no token needed) |
//! | `GET /readyz` | readiness, with the requests recovery left unfinished (no token needed) |
//!
//! Requests that start a run answer 202 at once with the receipt so far and
//! a status link, or with `?wait=true` 200 and the final receipt; see
//! [`accept`]. Errors are JSON, `{"error": {"code", "message", "field"?,
//! "rule"?}}`; see [`error`]. With a token every endpoint but `/metrics`,
//! `/healthz`, `/readyz` and the OpenAPI document needs `Authorization: Bearer
//! <token>`; see [`auth`]. The document is generated from the handlers'
//! annotations; see [`openapi`].

mod accept;
mod auth;
mod error;
mod extract;
mod openapi;
mod routes;
mod server;

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use provisioning_core::ProvisioningOrchestrator;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

pub(crate) use auth::Token;
pub(crate) use server::Limits;

use crate::commands::BoxResult;
use crate::wiring::Release;

/// Creates the failure series at zero for every workflow, so that
/// `increase()` in the alert rules sees the first failure after a start (a
/// series born at 1 has no increase to show).
fn zero_failure_counters(orchestrator: &ProvisioningOrchestrator) {
    use provisioning_core::saga::metrics as m;
    for workflow in orchestrator.workflows() {
        for outcome in ["compensated", "compensation_failed", "error"] {
            metrics::counter!(m::REQUESTS_TOTAL, "workflow" => workflow.clone(), "outcome" => outcome)
                .absolute(0);
        }
    }
}

/// Duration buckets in seconds: from a fast step on local disk (5 ms) to a
/// slow dedicated-database provisioning (5 min).
const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// How often the Prometheus recorder drains its histograms and the shard
/// statuses operators set are read again.
const UPKEEP_EVERY: Duration = crate::config::STATUS_REFRESH;

/// What every handler shares.
pub(crate) struct AppState {
    /// The wired SDK (an `Arc` inside: cheap to clone into a run's task).
    orchestrator: ProvisioningOrchestrator,
    /// The generic workflows on it (cheap to clone too).
    provisioner: crate::workflows::Provisioner,
    /// The runs spawned by requests; shutdown waits for them.
    runs: TaskTracker,
    /// The bearer token, when the API is protected.
    token: Option<Token>,
    /// Renders the global metrics recorder.
    metrics: PrometheusHandle,
    /// The OpenAPI document, serialized once.
    document: Bytes,
    /// The timeouts and limits `serve` was given.
    limits: Limits,
    /// One permit per run in flight, `limits.max_runs` in all.
    run_permits: Arc<tokio::sync::Semaphore>,
    /// The requests the last recovery pass left unfinished, with why.
    unrecovered: std::sync::RwLock<Vec<(provisioning_core::RequestId, String)>>,
}

impl AppState {
    /// What the last recovery pass left unfinished.
    pub(crate) fn unrecovered(&self) -> Vec<(provisioning_core::RequestId, String)> {
        self.unrecovered
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Records what a recovery pass left: for /readyz, the gauge and the log
/// (each request logged once, when it first shows up).
fn publish_unrecovered(
    slot: &std::sync::RwLock<Vec<(provisioning_core::RequestId, String)>>,
    now: Vec<(provisioning_core::RequestId, String)>,
) {
    let mut slot = slot
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for (request_id, why) in &now {
        if !slot.iter().any(|(known, _)| known == request_id) {
            tracing::error!(%request_id, why, "request left unfinished by recovery; see `recover` and GET /readyz");
        }
    }
    metrics::gauge!("provisioning_unrecovered_requests").set(now.len() as f64);
    *slot = now;
}

/// Every `every`, until `stop` resolves, resumes the requests a fault
/// interrupted in this process (a full disk, a database locked past its
/// timeout): runs that ended in an error with their request still
/// running, which nothing else would pick up before a restart. Each pass
/// runs as a tracked run, so shutdown waits for it.
async fn resume_interrupted(state: Arc<AppState>, every: Duration, stop: impl Future<Output = ()>) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = &mut stop => return,
        }
        let pass = {
            let state = Arc::clone(&state);
            state.runs.clone().spawn(async move {
                match state.orchestrator.recover().await {
                    Ok(report) => {
                        for receipt in &report.recovered {
                            tracing::info!(request_id = %receipt.request_id, status = receipt.status.as_str(), "resumed an interrupted request");
                        }
                        publish_unrecovered(&state.unrecovered, report.unrecovered());
                    }
                    Err(error) => {
                        tracing::warn!(error = %error.report(), "resuming interrupted requests failed; trying again later");
                    }
                }
            })
        };
        let _ = pass.await;
    }
}

/// Where `serve` listens and who may call it.
pub(crate) struct Access {
    /// The address to bind.
    pub(crate) addr: SocketAddr,
    /// The bearer token, when given on the command line.
    pub(crate) token: Option<Token>,
    /// Whether a non-loopback address may go without a token.
    pub(crate) allow_unauthenticated: bool,
}

/// How `serve` carries out the requests it accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Runs {
    /// Runs them itself, recovering at start what a previous process left
    /// and resuming what faults interrupt: one process owns the catalog
    /// (the SQLite default).
    Here,
    /// Records them for workers (the answer is 202, or with `?wait=true`
    /// the outcome a worker reached), with an in-process worker of this
    /// concurrency or none: a catalog many processes share.
    Queued { worker: Option<usize> },
}

/// `serve`: wires the SDK over `data_dir` and serves the API on
/// `access.addr` until Ctrl-C or SIGTERM. Prints `listening on
/// http://ADDR` once bound (so `--addr 127.0.0.1:0` tells its port).
/// `access.token` (or `PROVISIONING_HYBRID_TOKEN`) protects the API;
/// `PROVISIONING_INJECT_FAILURE` injects step failures, for drills.
///
/// With `worker` (`--worker`) requests are queued and an in-process worker
/// runs them, beside any `worker` processes on the same catalog; without
/// it, a server on a PostgreSQL catalog only queues them (an API process),
/// and one on the SQLite catalog runs them itself, finishing first what a
/// previous process left in flight.
///
/// On shutdown it stops accepting (and its worker stops claiming), lets the
/// requests being answered finish for at most `limits.drain_timeout`, then
/// waits for the runs it holds; a second signal stops at once, leaving those
/// runs to the next start's recovery or, queued, to other workers once
/// their leases lapse.
///
/// # Errors
/// Bad settings, the catalog failing to open or recover, the address not
/// binding, or a metrics recorder already installed.
pub(crate) async fn serve(
    data_dir: &Path,
    release: Release,
    access: Access,
    worker: Option<usize>,
    limits: Limits,
) -> BoxResult<()> {
    limits.check()?;
    // Listening from the start: a signal during recovery stops it cleanly.
    let signals = signals()?;
    let token = match access.token {
        Some(token) => Some(token),
        None => Token::from_env()?,
    };
    let addr = access.addr;
    // An open API on a reachable address lets anyone purge tenants.
    if token.is_none() && !addr.ip().is_loopback() && !access.allow_unauthenticated {
        return Err(format!(
            "refusing to serve {addr} without a token: set --token or \
             PROVISIONING_HYBRID_TOKEN (or pass --allow-unauthenticated)"
        )
        .into());
    }
    let faults = crate::commands::faults(None)?;
    // (8) Before the SDK records anything, so that no metric is lost. Buckets
    // make the durations Prometheus histograms (`_bucket` series, which
    // `histogram_quantile` in ops/ needs) rather than client-side summaries.
    let metrics = PrometheusBuilder::new()
        .set_buckets(&DURATION_BUCKETS)?
        .install_recorder()?;
    let hybrid = crate::wiring::hybrid(data_dir, release, faults).await?;
    let runs = match (worker, hybrid.shared_catalog) {
        (Some(concurrency), _) => Runs::Queued {
            worker: Some(concurrency),
        },
        (None, true) => Runs::Queued { worker: None },
        (None, false) => Runs::Here,
    };
    let document = openapi::serve_bytes(&crate::config::load()?)?;
    let (runner, mut provisioner, directory) =
        (hybrid.orchestrator, hybrid.provisioner, hybrid.directory);
    zero_failure_counters(&runner);
    let unrecovered = std::sync::RwLock::new(Vec::new());
    let orchestrator = if runs == Runs::Here {
        let report = runner.recover().await?;
        tracing::info!(
            recovered = report.recovered.len(),
            unknown_workflows = report.unknown_workflows.len(),
            mismatched = report.mismatched.len(),
            failed = report.failed.len(),
            "recovered in-flight requests"
        );
        // What recovery left is reported, not fatal: the server starts, and
        // operators see it here, in the log and at /readyz.
        publish_unrecovered(&unrecovered, report.unrecovered());
        runner.clone()
    } else {
        // Workers (this process's, with --worker) take over what dead
        // processes left once their leases lapse: recovering here, leases
        // unconsulted, could drive a live worker's run twice.
        provisioner.orchestrator = runner.queued();
        runner.queued()
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    announce(local)?;
    tracing::info!(addr = %local, protected = token.is_some(), runs = ?runs, "serving the HTTP API");

    let upkeep = {
        let metrics = metrics.clone();
        let data_dir = data_dir.to_owned();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(UPKEEP_EVERY);
            loop {
                every.tick().await;
                metrics.run_upkeep();
                // A `drain` run beside the server marks its shard in the data
                // directory: new tenants must stop going there here too.
                if let Err(error) = crate::config::apply_statuses(&data_dir, &directory) {
                    tracing::warn!(%error, "reading shard statuses failed; keeping the last ones");
                }
            }
        })
    };
    let state = Arc::new(AppState {
        orchestrator,
        provisioner,
        runs: TaskTracker::new(),
        token,
        metrics,
        document,
        limits: limits.clone(),
        run_permits: Arc::new(tokio::sync::Semaphore::new(limits.max_runs as usize)),
        unrecovered,
    });
    let resumer = (runs == Runs::Here).then(|| {
        tokio::spawn(resume_interrupted(
            state.clone(),
            limits.resume_every,
            signalled(signals.clone(), 1),
        ))
    });
    let worker = match runs {
        Runs::Queued {
            worker: Some(concurrency),
        } => Some(spawn_worker(runner, concurrency, signals.clone())),
        _ => None,
    };
    server::serve(
        listener,
        router(state.clone()),
        &limits,
        signalled(signals.clone(), 1),
        signalled(signals.clone(), 2),
    )
    .await;
    upkeep.abort();
    // Its pass in flight is a tracked run: waited for below.
    if let Some(resumer) = resumer {
        let _ = resumer.await;
    }
    // No run starts from here on (a request still answered gets 503), so
    // the wait below is for every run there will be.
    state.run_permits.close();
    state.runs.close();
    if !state.runs.is_empty() {
        tracing::info!(runs = state.runs.len(), "waiting for runs in flight");
    }
    let held = async {
        state.runs.wait().await;
        if let Some(worker) = worker {
            let _ = worker.await;
        }
    };
    tokio::select! {
        () = held => {}
        () = signalled(signals, 2) => {
            tracing::warn!(runs = state.runs.len(), "stopping now; the runs left are recovered or taken over later");
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// The in-process worker of `serve --worker`: claims until the first
/// signal, then finishes the runs it holds.
fn spawn_worker(
    orchestrator: ProvisioningOrchestrator,
    concurrency: usize,
    signals: watch::Receiver<u32>,
) -> tokio::task::JoinHandle<()> {
    let name = crate::commands::unique_name("serve");
    let options = provisioning_core::WorkerOptions::default().with_concurrency(concurrency);
    let cancel = provisioning_core::CancellationToken::new();
    tokio::spawn({
        let cancel = cancel.clone();
        async move {
            signalled(signals, 1).await;
            cancel.cancel();
        }
    });
    tokio::spawn(async move {
        tracing::info!(worker = %name, concurrency, "in-process worker started");
        let report = crate::commands::drive_queue(&orchestrator, &name, &options, &cancel).await;
        tracing::info!(
            worker = %name,
            succeeded = report.succeeded,
            failed = report.failed,
            lost_leases = report.lost_leases,
            "in-process worker stopped"
        );
    })
}

/// Tells the bound address on stdout, where scripts and tests read it.
#[allow(
    clippy::print_stdout,
    reason = "the bound address is the command's output"
)]
fn announce(addr: SocketAddr) -> std::io::Result<()> {
    println!("listening on http://{addr}");
    std::io::stdout().flush()
}

/// The API's routes, protected by the token where the module docs say,
/// behind the layers that bound what a client can hold: a body over the
/// limit is refused from its `Content-Length` at once, a body read and an
/// answer each have a timeout, and every request is logged.
fn router(state: Arc<AppState>) -> Router {
    let limits = state.limits.clone();
    use routes::{fleet, mobility, provisioning, tenants};
    let api = Router::new()
        .route("/api/v1/tenants", post(tenants::create_tenant))
        .route(
            "/api/v1/tenants/{id}",
            get(tenants::get_tenant).delete(tenants::delete_tenant),
        )
        .route("/api/v1/tenants/{id}/suspend", post(tenants::suspend))
        .route("/api/v1/tenants/{id}/resume", post(tenants::resume))
        .route("/api/v1/tenants/{id}/plan", post(mobility::change_plan))
        .route("/api/v1/tenants/{id}/move", post(mobility::move_tenant))
        .route(
            "/api/v1/provisioning/tenant",
            post(tenants::provision_tenant),
        )
        .route(
            "/api/v1/provisioning/{request_id}/status",
            get(provisioning::status),
        )
        .route(
            "/api/v1/provisioning/{workflow}",
            post(provisioning::provision),
        )
        .route("/api/v1/fleet/status", get(fleet::fleet_status))
        .route("/api/v1/fleet/drift", get(fleet::fleet_drift))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .route("/metrics", get(routes::metrics))
        .route("/api/v1/openapi.json", get(openapi::openapi_json))
        .merge(api)
        .fallback(routes::no_route)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(extract::BODY_LIMIT))
        .layer(RequestBodyTimeoutLayer::new(limits.body_timeout))
        .layer(RequestBodyLimitLayer::new(extract::BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(middleware::from_fn(json_errors))
        .layer(
            // Method and path only: not the query, not the headers, so no
            // token reaches the log.
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    tracing::info_span!(
                        "http request",
                        method = %request.method(),
                        path = request.uri().path()
                    )
                })
                .on_request(())
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .with_state(state)
}

/// The answers the layers make themselves (413 from the body limit, 504
/// from the request timeout) in the API's JSON error format, like every
/// other error; and `Connection: close` on answers given before the body
/// was read (413, 408, 504), so that no client sends its next request on a
/// connection still carrying the unread body.
async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let mut response = if is_json || !(status.is_client_error() || status.is_server_error()) {
        response
    } else {
        layer_error(status).into_response()
    };
    if matches!(
        status,
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT
    ) {
        response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    response
}

/// The API error for an answer a layer made with `status` and no body.
fn layer_error(status: StatusCode) -> error::ApiError {
    use error::{ApiError, ErrorCode};
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the body must be at most {} bytes", extract::BODY_LIMIT),
        ),
        StatusCode::GATEWAY_TIMEOUT => ApiError::new(
            ErrorCode::Timeout,
            "the answer took longer than the server's request timeout; a run \
             the request started goes on: send it again with the same request_id \
             for its receipt",
        ),
        StatusCode::REQUEST_TIMEOUT => ApiError::new(
            ErrorCode::RequestTimeout,
            "the request was not sent within the server's timeout",
        ),
        _ => {
            tracing::error!(status = status.as_u16(), "an error answer without a body");
            ApiError::new(
                ErrorCode::Internal,
                "internal error; the server log has the details",
            )
        }
    }
}

/// Counts SIGTERMs and Ctrl-Cs for the whole process, so that a second one
/// is seen wherever shutdown is when it arrives. The listeners are made
/// once: a signal between two waits is not lost.
pub(crate) fn signals() -> std::io::Result<watch::Receiver<u32>> {
    let (count, signals) = watch::channel(0);
    let bump = move || {
        count.send_modify(|n| *n += 1);
        tracing::info!(signal = *count.borrow(), "shutting down");
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                bump();
            }
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            bump();
        }
    });
    Ok(signals)
}

/// Resolves once `n` signals have arrived.
pub(crate) async fn signalled(mut signals: watch::Receiver<u32>, n: u32) {
    if signals.wait_for(|count| *count >= n).await.is_err() {
        std::future::pending::<()>().await;
    }
}
