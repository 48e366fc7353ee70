//! The HTTP API (`provisioning-hybrid serve`) used as a client uses it, over a
//! real socket: authentication, JSON errors for bad input, 202 with a status
//! link or `?wait=true` with the final receipt, the tenant lifecycle, the
//! generic workflows, idempotency and concurrency under load, recovery after a
//! crash, graceful shutdown, the metrics the runs leave, and the OpenAPI
//! document that describes it all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod errors;
mod fleet;
mod lifecycle;
mod limits;
mod load;
mod mobility;
mod openapi;
mod server;
#[path = "../support/mod.rs"]
mod support;
mod workflows;
