//! The PostgreSQL server the `#[ignore]`d server tests use.
#![allow(unreachable_pub, dead_code)]

/// The variable naming the server.
pub const URL_VAR: &str = "PROVISIONING_TEST_POSTGRES_URL";

/// The server URL. The tests that call this are `#[ignore]`d: they run only
/// when asked for (`--include-ignored`, as `.ci/run` does), and then a missing
/// server is a failure, never a silent pass.
pub fn url() -> String {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "this test needs a PostgreSQL server: set {URL_VAR} \
             (e.g. postgres://postgres@127.0.0.1:5432/test)"
        ),
    }
}
