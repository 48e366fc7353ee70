//! (5) The HTTP API's one error shape, `{"error": {"code", "message",
//! "field"?, "rule"?}}`, and how the SDK's errors map onto status codes.

use std::borrow::Cow;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use provisioning_core::Error;
use serde::Serialize;
use utoipa::ToSchema;

/// An error answer: a status code and the JSON body that explains it.
///
/// Every error the API gives has this shape, also for bodies axum rejects
/// (malformed JSON, too large, wrong content type) and for unknown routes, so
/// that a client needs one error parser.
#[derive(Debug)]
pub(crate) struct ApiError {
    body: ErrorBody,
}

/// The stable, machine-readable `code` of an error answer; each has one
/// status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ErrorCode {
    /// 400: a value breaks a rule; `field` and `rule` say which.
    InvalidInput,
    /// 400: the body is not the JSON the endpoint takes.
    InvalidBody,
    /// 400: the query string does not fit the endpoint.
    InvalidQuery,
    /// 400: a path segment cannot be decoded.
    InvalidPath,
    /// 401: the bearer token is missing or wrong.
    Unauthorized,
    /// 404: no such tenant, request, workflow or endpoint.
    NotFound,
    /// 405: the endpoint does not take this method.
    MethodNotAllowed,
    /// 408: the client took longer than the server's timeout to send the
    /// request's body.
    RequestTimeout,
    /// 409: the request conflicts with another one.
    Conflict,
    /// 409: the tenant's state forbids the operation.
    IllegalTransition,
    /// 409: a workflow for a tenant that is not Active.
    TenantNotActive,
    /// 413: the body is too large.
    PayloadTooLarge,
    /// 415: the body is not JSON.
    UnsupportedMediaType,
    /// 422: no shard can take the tenant.
    Placement,
    /// 500: anything else; the server log has the details.
    Internal,
    /// 504: the answer took longer than the server's request timeout; a run
    /// the request started goes on (send it again with its request_id).
    Timeout,
    /// 503: a transient backend failure, a run a fault interrupted (with its
    /// `request_id` and `status_url`), or the server at its limit of
    /// connections or runs; retry after `Retry-After`.
    Unavailable,
}

impl ErrorCode {
    /// The status code an error with this code is answered with.
    pub(crate) fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidInput
            | ErrorCode::InvalidBody
            | ErrorCode::InvalidQuery
            | ErrorCode::InvalidPath => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::Conflict | ErrorCode::IllegalTransition | ErrorCode::TenantNotActive => {
                StatusCode::CONFLICT
            }
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::Placement => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// The `error` object of an error answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// A stable, machine-readable code.
    code: ErrorCode,
    /// What went wrong, for people.
    message: String,
    /// The input field at fault, when one is (a body field, a path or query
    /// parameter, or a header such as `X-Tenant-ID`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, value_type = Option<String>)]
    field: Option<Cow<'static, str>>,
    /// The rule the field broke, phrased so that it tells how to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    rule: Option<String>,
    /// The request a fault interrupted: send it again with this id, or
    /// follow `status_url` (set with `unavailable` answers for a run).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, value_type = Option<String>, format = Uuid)]
    request_id: Option<provisioning_core::RequestId>,
    /// Where the interrupted request's receipt is served.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    status_url: Option<String>,
}

/// The JSON document of every error answer: `{"error": {"code", "message",
/// "field"?, "rule"?}}`.
#[derive(Serialize, ToSchema)]
#[schema(as = ErrorResponse)]
pub(crate) struct Envelope {
    /// What went wrong.
    error: ErrorBody,
}

impl ApiError {
    /// An error with `code` (which sets the status) and `message`, naming no
    /// field.
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            body: ErrorBody {
                code,
                message: message.into(),
                field: None,
                rule: None,
                request_id: None,
                status_url: None,
            },
        }
    }

    /// A 503 for request `request_id`, whose run (or its submission) a
    /// backend fault interrupted (`error`: a full disk, a database locked
    /// too long). Retryable: the same request id again is never a second
    /// run, and a run the catalog holds is resumed by the server once the
    /// fault is gone. The cause is named, without paths.
    pub(crate) fn interrupted(request_id: provisioning_core::RequestId, error: &Error) -> Self {
        tracing::error!(%request_id, error = %error.report(), "a backend fault interrupted the request");
        let cause = named_cause(error).unwrap_or("a backend failure");
        let mut answer = ApiError::new(
            ErrorCode::Unavailable,
            format!(
                "request {request_id} was interrupted by {cause}; send it again with \
                 the same request_id, or follow status_url: the server resumes it \
                 once the fault is gone"
            ),
        );
        answer.body.request_id = Some(request_id);
        answer.body.status_url = Some(super::accept::status_url(request_id));
        answer
    }

    /// A 400 `invalid_input` for `field` breaking `rule`.
    pub(crate) fn invalid(field: impl Into<Cow<'static, str>>, rule: impl Into<String>) -> Self {
        let (field, rule) = (field.into(), rule.into());
        let mut error = ApiError::new(ErrorCode::InvalidInput, format!("invalid {field}: {rule}"));
        error.body.field = Some(field);
        error.body.rule = Some(rule);
        error
    }

    /// A 400 `invalid_body`: the body is not the JSON this endpoint takes.
    /// `field` is named when serde's message names it (an unknown or missing
    /// field).
    pub(crate) fn invalid_body(message: impl Into<String>) -> Self {
        let message = message.into();
        let field = ["unknown field `", "missing field `"]
            .iter()
            .find_map(|prefix| message.strip_prefix(prefix))
            .and_then(|rest| rest.split_once('`'))
            .map(|(field, _)| Cow::Owned(field.to_owned()));
        let mut error = ApiError::new(ErrorCode::InvalidBody, message);
        error.body.field = field;
        error
    }

    /// A 401: the bearer token is missing or wrong (the answer carries
    /// `WWW-Authenticate: Bearer`).
    pub(crate) fn unauthorized() -> Self {
        ApiError::new(
            ErrorCode::Unauthorized,
            "this endpoint needs the header Authorization: Bearer <token>",
        )
    }

    /// A 404 for a path no route serves.
    pub(crate) fn no_route(path: &str) -> Self {
        ApiError::new(ErrorCode::NotFound, format!("no endpoint at {path}"))
    }

    /// The same error, naming `field` instead (for a value that came from a
    /// header or the path, where the SDK's field name would mislead).
    pub(crate) fn for_field(mut self, field: &'static str) -> Self {
        if self.body.field.is_some() {
            self.body.field = Some(Cow::Borrowed(field));
        }
        self
    }

    /// The status code.
    pub(crate) fn status(&self) -> StatusCode {
        self.body.code.status()
    }
}

impl From<Error> for ApiError {
    /// Bad input is 400 naming the field and rule; a missing tenant, request
    /// or workflow 404; a conflict, a transition the state machine forbids or
    /// work for a tenant that is not Active 409; a tenant that cannot be
    /// placed 422 (the request is well-formed and valid, the fleet cannot
    /// take it: retrying the same request later may succeed, editing it is
    /// not what is asked); a transient backend failure 503 with
    /// `Retry-After`; anything else 500 with a generic message (the details
    /// go to the log).
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidTenantId { rule, .. } => ApiError::invalid("tenant_id", rule.to_string()),
            Error::InvalidInput { field, rule } => ApiError::invalid(field, rule),
            Error::NotFound { .. } => ApiError::new(ErrorCode::NotFound, error.to_string()),
            Error::Conflict { .. } => ApiError::new(ErrorCode::Conflict, error.to_string()),
            // A tenant whose state forbids what was asked, whether as a
            // transition or as work that needs it Active: the same answer.
            Error::NotActive { .. } => ApiError::new(ErrorCode::TenantNotActive, error.to_string()),
            Error::IllegalTransition { .. } => {
                ApiError::new(ErrorCode::IllegalTransition, error.to_string())
            }
            Error::Placement { .. } => ApiError::new(ErrorCode::Placement, error.to_string()),
            error if error.is_transient() => {
                tracing::warn!(error = %error.report(), "transient backend failure answered 503");
                ApiError::new(ErrorCode::Unavailable, error.to_string())
            }
            // The details (paths, SQL errors) go to the log, not to the
            // client; a cause an operator acts on is named.
            error => {
                tracing::error!(error = %error.report(), "request failed");
                let message = match named_cause(&error) {
                    Some(cause) => {
                        format!("internal error ({cause}); the server log has the details")
                    }
                    None => "internal error; the server log has the details".to_owned(),
                };
                ApiError::new(ErrorCode::Internal, message)
            }
        }
    }
}

/// The cause in `error`'s chain that an operator acts on, named without
/// paths or SQL: a full disk, a read-only file system, a permission.
fn named_cause(error: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::StorageFull => return Some("no space left on device"),
                std::io::ErrorKind::ReadOnlyFilesystem => return Some("read-only file system"),
                std::io::ErrorKind::PermissionDenied => return Some("permission denied"),
                _ => {}
            }
        }
        // SQLite reports these as its own result codes, not as I/O errors.
        let text = e.to_string();
        if text.contains("database or disk is full") {
            return Some("no space left on device");
        }
        if text.contains("readonly database") {
            return Some("read-only database");
        }
        cause = e.source();
    }
    None
}

impl From<tokio::task::JoinError> for ApiError {
    /// A run's task that panicked (or was cancelled at shutdown): a 500; the
    /// request itself is journaled and `recover` finishes it.
    fn from(error: tokio::task::JoinError) -> Self {
        tracing::error!(error = %error, "provisioning task ended abnormally");
        ApiError::new(
            ErrorCode::Internal,
            "the provisioning task ended abnormally; its request is finished on recovery",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, Json(Envelope { error: self.body })).into_response();
        let headers = response.headers_mut();
        match status {
            StatusCode::UNAUTHORIZED => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn sdk_errors_map_to_status_codes() {
        let invalid: ApiError = "Tenant_1"
            .parse::<provisioning_core::TenantId>()
            .unwrap_err()
            .into();
        assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);
        assert_eq!(invalid.body.field.as_deref(), Some("tenant_id"));
        assert!(invalid.body.rule.is_some());
        let inactive: ApiError = Error::NotActive {
            tenant: "acme".parse().unwrap(),
            state: provisioning_core::TenantState::Deleted,
            what: "workflow \"service\"".into(),
        }
        .into();
        assert_eq!(inactive.status(), StatusCode::CONFLICT);
        assert_eq!(inactive.body.code, ErrorCode::TenantNotActive);
        let missing: ApiError = Error::NotFound {
            kind: provisioning_core::Entity::Tenant,
            id: "acme".into(),
        }
        .into();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        let busy: ApiError = Error::Backend {
            component: "sqlite store",
            message: "database is locked".into(),
            transient: true,
            source: None,
        }
        .into();
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn serde_messages_name_the_field() {
        let error = ApiError::invalid_body("unknown field `colour`, expected one of `plan`");
        assert_eq!(error.body.field.as_deref(), Some("colour"));
        let error = ApiError::invalid_body("expected value at line 1 column 2");
        assert_eq!(error.body.field, None);
    }

    #[test]
    fn an_internal_error_names_its_cause_without_paths() {
        let full = std::io::Error::new(std::io::ErrorKind::StorageFull, "write failed");
        let error = Error::backend(
            "sqlite store",
            "appending to /srv/data/catalog.sqlite",
            false,
            full,
        );
        let answer: ApiError = error.into();
        assert_eq!(answer.body.code, ErrorCode::Internal);
        assert_eq!(
            answer.body.message,
            "internal error (no space left on device); the server log has the details"
        );
        let sqlite = Error::backend(
            "sqlite store",
            "opening /srv/data/catalog.sqlite",
            false,
            std::io::Error::other("attempt to write a readonly database"),
        );
        let answer: ApiError = sqlite.into();
        assert!(answer.body.message.contains("(read-only database)"));
        assert!(!answer.body.message.contains("/srv"));
    }
}
