//! (5) Bearer-token authentication for the API: the token, which never shows
//! in logs or `Debug` output, and the middleware that checks it in constant
//! time.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;

/// The environment variable that supplies the token when `--token` is not given.
pub(crate) const TOKEN_ENV: &str = "PROVISIONING_HYBRID_TOKEN";

/// The bearer token clients must send. Its `Debug` is redacted, so it cannot
/// leak through a log line or an error message.
#[derive(Clone)]
pub(crate) struct Token(String);

impl Token {
    /// The token from [`TOKEN_ENV`], if set.
    ///
    /// # Errors
    /// A set but unusable value (empty, or not visible ASCII): refusing to
    /// start beats serving without the protection that was asked for.
    pub(crate) fn from_env() -> Result<Option<Token>, String> {
        match std::env::var(TOKEN_ENV) {
            Ok(value) => value
                .parse()
                .map(Some)
                .map_err(|e| format!("{TOKEN_ENV}: {e}")),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(format!("{TOKEN_ENV}: the token must be visible ASCII"))
            }
        }
    }

    /// Whether `given` is the token, compared in constant time (for tokens
    /// of the same length; the length itself is not secret-dependent work).
    pub(crate) fn matches(&self, given: &str) -> bool {
        self.0.as_bytes().ct_eq(given.as_bytes()).into()
    }
}

impl FromStr for Token {
    type Err = String;

    /// A token is at least one visible ASCII character (what an HTTP header
    /// can carry after `Bearer `).
    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("the token must not be empty".to_owned());
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the token must be visible ASCII without spaces".to_owned());
        }
        Ok(Token(s.to_owned()))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Lets a request through when no token is configured or when it carries
/// `Authorization: Bearer <token>`; answers 401 with `WWW-Authenticate:
/// Bearer` otherwise.
pub(crate) async fn require_token(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &state.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(bearer);
        if !given.is_some_and(|given| token.matches(given)) {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(request).await
}

/// The credentials of a `Bearer` authorization (the scheme is
/// case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, credentials) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn tokens_compare_exactly_and_never_print() {
        let token: Token = "s3cret".parse().unwrap();
        assert!(token.matches("s3cret"));
        assert!(!token.matches("s3cre"));
        assert!(!token.matches("s3cret!"));
        assert!(!format!("{token:?}").contains("s3cret"));
        assert!("".parse::<Token>().is_err());
        assert!("two words".parse::<Token>().is_err());
    }

    #[test]
    fn bearer_credentials() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
    }
}
