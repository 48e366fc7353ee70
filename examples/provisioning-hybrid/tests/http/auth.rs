//! With a token, every endpoint but `/metrics` and `/healthz` answers 401
//! without it (doing nothing), and works with it; the token never reaches the
//! log.

use reqwest::{Method, StatusCode, header};
use serde_json::json;

use crate::server::{Server, assert_error, send};

const TOKEN: &str = "t0ken-of-the-test";

/// Every protected endpoint, as (method, path, body), in an order that makes
/// each succeed when the token is given.
fn protected(request_id: &str) -> Vec<(Method, String, Option<serde_json::Value>)> {
    vec![
        (
            Method::POST,
            "/api/v1/tenants?wait=true".into(),
            Some(json!({
                "tenant_id": "acme", "plan": "free", "region": "eu-west", "request_id": request_id,
            })),
        ),
        (Method::GET, "/api/v1/tenants/acme".into(), None),
        (
            Method::GET,
            format!("/api/v1/provisioning/{request_id}/status"),
            None,
        ),
        (
            Method::POST,
            "/api/v1/provisioning/service?wait=true".into(),
            Some(json!({ "service": "billing", "tier": "basic" })),
        ),
        (
            Method::POST,
            "/api/v1/provisioning/user?wait=true".into(),
            Some(json!({ "email": "ada@example.com", "role": "owner" })),
        ),
        (
            Method::POST,
            "/api/v1/tenants/acme/suspend?wait=true".into(),
            None,
        ),
        (
            Method::POST,
            "/api/v1/tenants/acme/resume?wait=true".into(),
            None,
        ),
        (
            Method::DELETE,
            "/api/v1/tenants/acme?wait=true".into(),
            None,
        ),
    ]
}

async fn check_every_endpoint(server: &Server) {
    let request_id = "0190a5c4-0000-7000-8000-0000000000aa";
    // Without the token, or with a wrong one: 401, and nothing happens.
    for (method, path, body) in protected(request_id) {
        for token in [None, Some("wrong"), Some("")] {
            let mut request = server
                .anon(method.clone(), &path)
                .header("X-Tenant-ID", "acme");
            if let Some(token) = token {
                request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
            }
            if let Some(body) = &body {
                request = request.json(body);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path}"
            );
            assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
            let error: serde_json::Value = response.json().await.unwrap();
            assert_eq!(error["error"]["code"], "unauthorized");
        }
    }
    let nothing = send(server.req(Method::GET, "/api/v1/tenants/acme")).await;
    assert_error(&nothing, StatusCode::NOT_FOUND, "not_found");

    // The same requests with the token, in order: each one works.
    for (method, path, body) in protected(request_id) {
        let mut request = server
            .req(method.clone(), &path)
            .header("X-Tenant-ID", "acme");
        if let Some(body) = &body {
            request = request.json(body);
        }
        let (status, answer) = send(request).await;
        assert_eq!(status, StatusCode::OK, "{method} {path}: {answer}");
        if answer.get("workflow").is_some() && answer.get("run_id").is_some() {
            assert_eq!(answer["status"], "succeeded", "{method} {path}: {answer}");
        }
    }
    assert_eq!(server.tenant("acme").await["state"], "deleted");

    // The scheme is case-insensitive.
    let response = server
        .anon(Method::GET, "/api/v1/tenants/acme")
        .header(header::AUTHORIZATION, format!("bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // Monitoring stays open.
    let (status, health) = send(server.anon(Method::GET, "/healthz")).await;
    assert_eq!(
        (status, health),
        (StatusCode::OK, json!({ "status": "ok" }))
    );
    let response = server.anon(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let metrics = response.text().await.unwrap();
    assert!(metrics.contains("provisioning_requests_total"));
    // The failure series exist from the start, so alerts see the first one.
    assert!(
        metrics.contains(
            r#"provisioning_requests_total{workflow="user",outcome="compensation_failed"} 0"#
        ),
        "{metrics}"
    );

    let log = server.log_text();
    assert!(log.contains("http request"), "{log}");
    assert!(
        !log.contains(TOKEN),
        "the token leaked into the log:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_option_guards_every_endpoint_but_monitoring() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--token", TOKEN], &[]);
    check_every_endpoint(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_variable_guards_every_endpoint_but_monitoring() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &[], &[("PROVISIONING_HYBRID_TOKEN", TOKEN)]);
    check_every_endpoint(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_the_api_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (status, _) = send(server.anon(Method::GET, "/api/v1/tenants/nobody")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
