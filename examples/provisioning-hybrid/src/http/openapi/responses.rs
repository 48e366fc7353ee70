//! (5) The responses many operations share, as `utoipa::IntoResponses`
//! groups that a `#[utoipa::path]` lists beside its own: the answers of an
//! endpoint that starts a run, and the errors of the extractors, the token
//! check and the backend. Each status says which `code`s it carries; the
//! body is always the [`Envelope`] schema.

use std::collections::BTreeMap;

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::{IntoResponses, ToSchema};

use crate::http::accept::Answer;
use crate::http::error::Envelope;

/// A JSON response with `description` whose body is the schema `T`.
fn json<T: ToSchema>(description: &str) -> ResponseBuilder {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(T::name())))
        .build();
    ResponseBuilder::new()
        .description(description)
        .content("application/json", content)
}

/// A response header whose value is a `kind` string or integer.
fn header(kind: Type, description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(kind))
        .description(Some(description))
        .build()
}

fn responses<const N: usize>(
    entries: [(&str, ResponseBuilder); N],
) -> BTreeMap<String, RefOr<Response>> {
    entries
        .into_iter()
        .map(|(status, response)| (status.to_owned(), response.build().into()))
        .collect()
}

/// What a receipt leads to: its request's status, and the operations on its
/// tenant (links name them by `operationId`, the handler's name), so that a
/// client, or a fuzzer's stateful phase, can follow a create with the rest
/// of the lifecycle.
fn with_links(response: ResponseBuilder) -> ResponseBuilder {
    let tenant = |operation: &str, description: &str| {
        LinkBuilder::new()
            .operation_id(operation)
            .parameter("id", "$response.body#/tenant_id")
            .description(description)
            .build()
    };
    let workflow = |name: &str| {
        LinkBuilder::new()
            .operation_id("provision")
            .parameter("workflow", name)
            .parameter("header.X-Tenant-ID", "$response.body#/tenant_id")
            .description(format!("Runs the `{name}` workflow for the tenant"))
            .build()
    };
    let status = LinkBuilder::new()
        .operation_id("status")
        .parameter("request_id", "$response.body#/request_id")
        .description("The request's receipt")
        .build();
    response
        .link("status", status)
        .link("tenant", tenant("get_tenant", "The tenant's record"))
        .link("suspend", tenant("suspend", "Suspends the tenant"))
        .link("resume", tenant("resume", "Resumes the tenant"))
        .link(
            "change_plan",
            tenant("change_plan", "Changes the tenant's plan"),
        )
        .link("move", tenant("move_tenant", "Moves the tenant to a shard"))
        .link("delete", tenant("delete_tenant", "Deletes the tenant"))
        .link("service", workflow("service"))
        .link("user", workflow("user"))
}

/// 200 and 202: the answers of an endpoint that starts a run (create, the
/// lifecycle, plan changes, moves, the generic workflows).
pub(crate) struct RunAnswers;

impl IntoResponses for RunAnswers {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses([
            (
                "200",
                with_links(json::<Answer>(
                    "With `?wait=true`: the run has ended; the final receipt (also when the \
                     run failed: the receipt then names the failure)",
                )),
            ),
            (
                "202",
                with_links(json::<Answer>(
                    "The run is accepted (or the request id names a request already \
                     made): the receipt so far and the link to follow it",
                ))
                .header(
                    "Location",
                    header(Type::String, "The request's status link, as `status_url`"),
                ),
            ),
        ])
    }
}

/// 400, 413 and 415: what the extractors refuse in an endpoint that takes a
/// JSON body (and, like every endpoint, its path and query).
pub(crate) struct BodyErrors;

impl IntoResponses for BodyErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses([
            (
                "400",
                json::<Envelope>(
                    "Bad input: a value breaking its rule (`invalid_input`, naming the \
                     field and rule), a body that is not this endpoint's JSON: malformed, \
                     a wrong type, an unknown or missing field (`invalid_body`), or a \
                     query string or path segment that does not fit (`invalid_query`, \
                     `invalid_path`)",
                ),
            ),
            (
                "413",
                json::<Envelope>("The body is over 64 KiB (`payload_too_large`)"),
            ),
            (
                "415",
                json::<Envelope>(
                    "A body not sent as `application/json` (`unsupported_media_type`)",
                ),
            ),
        ])
    }
}

/// 400: a path or query parameter of an endpoint without a body breaks its
/// rule.
pub(crate) struct ParameterErrors;

impl IntoResponses for ParameterErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses([(
            "400",
            json::<Envelope>(
                "Bad input: a parameter breaking its rule (`invalid_input`, naming the \
                 field and rule), or a query string or path segment that does not fit \
                 (`invalid_query`, `invalid_path`)",
            ),
        )])
    }
}

/// 401: the endpoint is protected and the token is missing or wrong.
pub(crate) struct Unauthorized;

impl IntoResponses for Unauthorized {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses([(
            "401",
            json::<Envelope>(
                "The server has a token and the request does not carry it as \
                 `Authorization: Bearer <token>` (`unauthorized`)",
            )
            .header(
                "WWW-Authenticate",
                header(Type::String, "`Bearer`: the scheme to authenticate with"),
            ),
        )])
    }
}

/// 500 and 503: the backend failed.
pub(crate) struct ServerErrors;

impl IntoResponses for ServerErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses([
            (
                "500",
                json::<Envelope>(
                    "An unexpected failure (`internal`): a generic message; the details \
                     are in the server's log",
                ),
            ),
            (
                "503",
                json::<Envelope>(
                    "A transient backend failure, such as a busy database (`unavailable`); \
                     retry after `Retry-After`",
                )
                .header(
                    "Retry-After",
                    header(Type::Integer, "Seconds to wait before retrying"),
                ),
            ),
        ])
    }
}
