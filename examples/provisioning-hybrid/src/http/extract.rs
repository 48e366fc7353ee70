//! (5) Extractors that answer bad input with the API's JSON error instead of
//! axum's plain-text rejections: a JSON body (required or optional), a query
//! string and a path segment.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use super::error::{ApiError, ErrorCode};

/// The largest request body accepted; a larger one is answered 413.
pub(crate) const BODY_LIMIT: usize = 64 * 1024;

/// A JSON body of type `T`. A body that is not JSON (by content type) is
/// 415; malformed JSON, a wrong type or an unknown field (the body types deny
/// them) is 400 `invalid_body`; a body over [`BODY_LIMIT`] is 413.
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        require_json(request.headers())?;
        let bytes = body(request, state).await?;
        parse(&bytes).map(ApiJson)
    }
}

/// An optional JSON body: no body (or an empty one) is `T::default()`;
/// otherwise as [`ApiJson`]. For endpoints whose body only carries an
/// optional idempotency key.
pub(crate) struct OptionalJson<T>(pub(crate) T);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let headers = request.headers().clone();
        let bytes = body(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        require_json(&headers)?;
        parse(&bytes).map(OptionalJson)
    }
}

/// A query string of type `T`; one that does not fit is 400 `invalid_query`.
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection| ApiError::new(ErrorCode::InvalidQuery, rejection.body_text()))
    }
}

/// The route's one path parameter, percent-decoded; still to be parsed (a
/// tenant id, a request id, a workflow name) by the handler.
pub(crate) struct ApiPath(pub(crate) String);

impl<S> FromRequestParts<S> for ApiPath
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            .map_err(|rejection| ApiError::new(ErrorCode::InvalidPath, rejection.body_text()))
    }
}

/// `Content-Type: application/json` (or `application/*+json`), else 415.
fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase());
    match essence.as_deref() {
        Some("application/json") => Ok(()),
        Some(other) if other.starts_with("application/") && other.ends_with("+json") => Ok(()),
        _ => Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "the body must be JSON, sent with Content-Type: application/json",
        )),
    }
}

/// The whole body, within the router's `DefaultBodyLimit` and its body
/// read timeout (a client that stalls mid-body is answered 408).
async fn body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("the body must be at most {BODY_LIMIT} bytes"),
                )
            } else if timed_out(&rejection) {
                ApiError::new(
                    ErrorCode::RequestTimeout,
                    "the body was not sent within the server's body timeout",
                )
            } else {
                ApiError::new(ErrorCode::InvalidBody, rejection.body_text())
            }
        })
}

/// Whether `error` comes from the body read timeout.
fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|error| ApiError::invalid_body(error.to_string()))
}
