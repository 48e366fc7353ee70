//! (5) The HTTP server itself: hyper's HTTP/1 connections with a header read
//! timeout, a bound on open connections, and a shutdown that drains for a
//! bounded time; the limits are [`Limits`], set by `serve`'s flags.
//!
//! `axum::serve` has no timers and no bound on connections, so a few hundred
//! clients that send half a header hold the server; this accept loop is
//! axum's documented way to serve a router with hyper's own settings.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::error::{ApiError, ErrorCode};

/// The server's timeouts and limits (`serve --help` lists the flags).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Limits {
    /// How long a client may take to send a request's headers (also how long
    /// an idle keep-alive connection stays open).
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub(crate) header_timeout: Duration,
    /// How long a client may pause while sending a request's body (between
    /// two pieces of it; a body trickled slower still ends at
    /// --request-timeout).
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub(crate) body_timeout: Duration,
    /// How long a request may take to be answered, its body included; a
    /// slower one is answered 504 (a run it started goes on: send it again
    /// with the same request_id for its receipt).
    #[arg(long, default_value = "40s", value_parser = duration)]
    pub(crate) request_timeout: Duration,
    /// How long `?wait=true` waits for a run to end before answering 202 with
    /// the status link instead; with --body-timeout, less than
    /// --request-timeout.
    #[arg(long, default_value = "20s", value_parser = duration)]
    pub(crate) wait_timeout: Duration,
    /// Open connections at most; one more is answered 503 with Retry-After
    /// and closed.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub(crate) max_connections: u32,
    /// Runs in flight at most; a request that would start one more is
    /// answered 503 with Retry-After, nothing written.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) max_runs: u32,
    /// On SIGTERM or Ctrl-C, how long answering requests may go on before
    /// their connections are closed (the runs they started are waited for
    /// after that; a second signal stops at once).
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub(crate) drain_timeout: Duration,
    /// How often the server resumes requests whose run a fault (a full
    /// disk, a database locked too long) interrupted, once the fault is gone.
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub(crate) resume_every: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(40),
            wait_timeout: Duration::from_secs(20),
            max_connections: 256,
            max_runs: 64,
            drain_timeout: Duration::from_secs(10),
            resume_every: Duration::from_secs(10),
        }
    }
}

/// The longest any timeout may be: beyond it a stalled client is as good as
/// no timeout at all.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

impl Limits {
    /// Checks the rules the flags' parsers cannot: each timeout within
    /// (0, 1 h], and the wait and a body read within the request timeout.
    pub(crate) fn check(&self) -> Result<(), String> {
        for (flag, value) in [
            ("--header-timeout", self.header_timeout),
            ("--body-timeout", self.body_timeout),
            ("--request-timeout", self.request_timeout),
            ("--wait-timeout", self.wait_timeout),
            ("--drain-timeout", self.drain_timeout),
            ("--resume-every", self.resume_every),
        ] {
            if value.is_zero() || value > MAX_TIMEOUT {
                return Err(format!(
                    "invalid {flag}: must be more than 0 and at most 1h, got {}",
                    humantime::format_duration(value)
                ));
            }
        }
        // The request timeout's clock runs while the body is read too.
        if self.wait_timeout + self.body_timeout >= self.request_timeout {
            return Err(format!(
                "invalid --wait-timeout: with --body-timeout ({}) it must be less than \
                 --request-timeout ({}), got {}",
                humantime::format_duration(self.body_timeout),
                humantime::format_duration(self.request_timeout),
                humantime::format_duration(self.wait_timeout)
            ));
        }
        Ok(())
    }
}

/// `10s`, `500ms`, `2m`...
fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (write it as 10s, 500ms or 2m)"))
}

/// How many connections beyond the limit are still answered 503 (each held
/// at most the header timeout); past that they are closed unanswered, so
/// that a flood cannot grow the 503 answers without bound either.
const BUSY_ANSWERS: usize = 64;

/// Serves `app` on `listener` until `stop` resolves; then stops accepting,
/// lets open requests finish for at most the drain timeout (or until
/// `again` resolves: a second signal) and closes what is left.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &Limits,
    stop: impl Future<Output = ()>,
    again: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    // Cancelled when the drain ends: what is still open is closed then.
    let closing = CancellationToken::new();
    let open = Arc::new(Semaphore::new(limits.max_connections as usize));
    let busy = Arc::new(Semaphore::new(BUSY_ANSWERS));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let service = TowerToHyperService::new(app);
    tokio::pin!(stop);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, most likely: wait for some to
                    // close instead of spinning.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let io = TokioIo::new(stream);
        if let Ok(permit) = Arc::clone(&open).try_acquire_owned() {
            let connection = graceful.watch(http.serve_connection(io, service.clone()));
            let closing = closing.clone();
            tokio::spawn(async move {
                tokio::select! {
                    ended = connection => if let Err(error) = ended {
                        tracing::debug!(%error, "connection ended with an error");
                    },
                    () = closing.cancelled() => {}
                }
                drop(permit);
            });
        } else if let Ok(permit) = Arc::clone(&busy).try_acquire_owned() {
            metrics::counter!("provisioning_http_connections_refused_total").increment(1);
            let mut answer = http1::Builder::new();
            answer
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .keep_alive(false);
            let closing = closing.clone();
            tokio::spawn(async move {
                let refuse = hyper::service::service_fn(|_: Request<Incoming>| async {
                    Ok::<_, std::convert::Infallible>(too_many_connections())
                });
                tokio::select! {
                    _ = answer.serve_connection(io, refuse) => {}
                    () = closing.cancelled() => {}
                }
                drop(permit);
            });
        } else {
            metrics::counter!("provisioning_http_connections_refused_total").increment(1);
            drop(io);
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.drain_timeout) => {
            tracing::warn!(
                drain_timeout = %humantime::format_duration(limits.drain_timeout),
                "connections still open after the drain timeout; closing them"
            );
        }
        () = again => tracing::warn!("second signal: closing the open connections now"),
    }
    closing.cancel();
}

/// 503 with `Retry-After`, in the API's error format, closing the connection.
fn too_many_connections() -> Response<Body> {
    let mut response = axum::response::IntoResponse::into_response(ApiError::new(
        ErrorCode::Unavailable,
        "too many open connections; retry shortly",
    ));
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
