//! The generic workflows over HTTP: `POST /api/v1/provisioning/{service,user}`
//! for the tenant in `X-Tenant-ID`, idempotent by the body's `request_id`.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::server::{Server, assert_error, event_kinds, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_and_user_run_for_an_active_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(d);
    server.create("acme", "premium", "eu-west").await;
    let provision = |workflow: &str, tenant: Option<&str>, body: serde_json::Value| {
        let mut request = server
            .req(Method::POST, &format!("/api/v1/provisioning/{workflow}"))
            .json(&body);
        if let Some(tenant) = tenant {
            request = request.header("X-Tenant-ID", tenant);
        }
        request
    };

    // A service, asynchronously: 202 and the status link; with its request id.
    let request_id = "0190a5c4-0000-7000-8000-000000005e01";
    let service = json!({ "service": "billing", "tier": "standard", "request_id": request_id });
    let (status, accepted) = send(provision("service", Some("acme"), service.clone())).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(
        (
            &accepted["request_id"],
            &accepted["workflow"],
            &accepted["tenant_id"]
        ),
        (&json!(request_id), &json!("service"), &json!("acme"))
    );
    let receipt = server.finished(request_id).await;
    assert_eq!(receipt["status"], "succeeded", "{receipt}");
    // The same request again: the same receipt, no second run.
    let (status, again) = send(provision("service", Some("acme"), service)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(again["finished_at"], receipt["finished_at"]);

    // A user, waiting for the run.
    let user = json!({ "email": "ada@example.com", "role": "owner" });
    let (status, receipt) = send(
        server
            .req(Method::POST, "/api/v1/provisioning/user?wait=true")
            .header("X-Tenant-ID", "acme")
            .json(&user),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{receipt}");
    assert_eq!(
        (&receipt["workflow"], &receipt["status"]),
        (&json!("user"), &json!("succeeded"))
    );
    assert_eq!(
        event_kinds(d, "acme"),
        [
            "TenantCreated",
            "TenantProvisioned",
            "ServiceProvisioned",
            "UserProvisioned"
        ]
    );

    // Bad requests, each answered before anything runs.
    let answer = send(provision(
        "service",
        None,
        json!({ "service": "billing", "tier": "basic" }),
    ))
    .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(answer.1["error"]["field"], "X-Tenant-ID");
    let answer = send(provision(
        "service",
        Some("Acme!"),
        json!({ "service": "billing", "tier": "basic" }),
    ))
    .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(answer.1["error"]["field"], "X-Tenant-ID");
    let answer = send(provision(
        "service",
        Some("acme"),
        json!({ "service": "billing", "tier": "gold" }),
    ))
    .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(answer.1["error"]["field"], "tier");
    let answer = send(provision(
        "user",
        Some("acme"),
        json!({ "email": "ada@example.com", "role": "owner", "x": 1 }),
    ))
    .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_input");
    let answer = send(provision("service", Some("acme"), json!(["billing"]))).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_body");
    let answer = send(provision("queue", Some("acme"), json!({}))).await;
    assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
    let answer = send(provision("user", Some("ghost"), user.clone())).await;
    assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
    assert!(
        answer.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ghost")
    );

    // A suspended tenant: 409.
    let (status, _) =
        send(server.req(Method::POST, "/api/v1/tenants/acme/suspend?wait=true")).await;
    assert_eq!(status, StatusCode::OK);
    let other_user = json!({ "email": "bob@example.com", "role": "member" });
    let answer = send(provision("user", Some("acme"), other_user)).await;
    assert_error(&answer, StatusCode::CONFLICT, "illegal_transition");

    assert_eq!(
        event_kinds(d, "acme"),
        [
            "TenantCreated",
            "TenantProvisioned",
            "ServiceProvisioned",
            "UserProvisioned",
            "TenantSuspended"
        ]
    );
    let metrics = server
        .anon(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("workflow=\"service\""), "{metrics}");
    assert!(metrics.contains("workflow=\"user\""), "{metrics}");
}
