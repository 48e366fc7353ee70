//! Bad input gets a JSON error naming what is wrong, and writes nothing:
//! invalid ids, unknown fields, malformed or oversized bodies, duplicates,
//! unknown tenants, and transitions the state machine forbids.

use reqwest::{Method, StatusCode, header};
use serde_json::json;

use crate::server::{Server, assert_error, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_json_error_naming_the_field_and_rule() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let post = |body: serde_json::Value| server.req(Method::POST, "/api/v1/tenants").json(&body);

    let answer = send(post(
        json!({ "tenant_id": "Tenant_1", "plan": "free", "region": "eu-west" }),
    ))
    .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(answer.1["error"]["field"], "tenant_id");
    let rule = answer.1["error"]["rule"].as_str().unwrap();
    assert!(rule.contains("lowercase") && rule.contains("'T'"), "{rule}");

    let answer = send(server.req(Method::GET, "/api/v1/tenants/Tenant_1")).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(answer.1["error"]["field"], "tenant_id");

    let answer = send(post(json!({
        "tenant_id": "ok-id", "plan": "free", "region": "eu-west", "colour": "red",
    })))
    .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_body");
    assert_eq!(answer.1["error"]["field"], "colour");

    let answer = send(post(json!({ "tenant_id": "ok-id", "plan": "free" }))).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_body");
    assert_eq!(answer.1["error"]["field"], "region");

    let answer = send(post(
        json!({ "tenant_id": "ok-id", "plan": "gold", "region": "eu-west" }),
    ))
    .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(answer.1["error"]["field"], "plan");

    let answer = send(post(json!({
        "tenant_id": "ok-id", "plan": "free", "region": "eu-west", "request_id": "not-a-uuid",
    })))
    .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(answer.1["error"]["field"], "request_id");

    let malformed = server
        .req(Method::POST, "/api/v1/tenants")
        .header(header::CONTENT_TYPE, "application/json")
        .body(r#"{"tenant_id": "ok-id", "plan": "#);
    assert_error(
        &send(malformed).await,
        StatusCode::BAD_REQUEST,
        "invalid_body",
    );

    let not_json = server
        .req(Method::POST, "/api/v1/tenants")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(r#"{"tenant_id": "ok-id", "plan": "free", "region": "eu-west"}"#);
    assert_error(
        &send(not_json).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );

    let huge = json!({
        "tenant_id": "ok-id", "plan": "free", "region": "eu-west",
        "attributes": { "note": "x".repeat(80 * 1024) },
    });
    assert_error(
        &send(post(huge)).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );

    // None of that wrote anything.
    let answer = send(server.req(Method::GET, "/api/v1/tenants/ok-id")).await;
    assert_error(&answer, StatusCode::NOT_FOUND, "not_found");

    let answer = send(server.req(Method::DELETE, "/api/v1/tenants/ok-id?mode=shred")).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_query");
    let answer = send(server.req(Method::GET, "/api/v1/provisioning/nope/status")).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(answer.1["error"]["field"], "request_id");
    let unknown = "/api/v1/provisioning/0190a5c4-0000-7000-8000-0000000000ff/status";
    assert_error(
        &send(server.req(Method::GET, unknown)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &send(server.req(Method::GET, "/api/v2/nothing")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &send(server.req(Method::PUT, "/api/v1/tenants/ok-id")).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_unknown_tenants_and_forbidden_transitions() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let first = server.create("acme", "free", "eu-west").await;

    // The same tenant under another request id: 409, the tenant untouched.
    let answer = send(
        server
            .req(Method::POST, "/api/v1/tenants")
            .json(&json!({ "tenant_id": "acme", "plan": "premium", "region": "us-east" })),
    )
    .await;
    assert_error(&answer, StatusCode::CONFLICT, "conflict");
    let tenant = server.tenant("acme").await;
    assert_eq!(
        (&tenant["plan"], &tenant["state"]),
        (&json!("free"), &json!("active"))
    );

    // The same request id for another tenant: 409 as well.
    let answer = send(server.req(Method::POST, "/api/v1/tenants").json(&json!({
        "tenant_id": "other", "plan": "free", "region": "eu-west",
        "request_id": first["request_id"],
    })))
    .await;
    assert_error(&answer, StatusCode::CONFLICT, "conflict");

    for (method, path) in [
        (Method::GET, "/api/v1/tenants/ghost"),
        (Method::POST, "/api/v1/tenants/ghost/suspend"),
        (Method::POST, "/api/v1/tenants/ghost/resume"),
        (Method::DELETE, "/api/v1/tenants/ghost"),
    ] {
        let answer = send(server.req(method.clone(), path)).await;
        assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
        assert!(
            answer.1["error"]["message"]
                .as_str()
                .unwrap()
                .contains("ghost"),
            "{method} {path}: {}",
            answer.1
        );
    }

    // Resuming an active tenant, suspending a suspended one: 409, nothing changes.
    let answer = send(server.req(Method::POST, "/api/v1/tenants/acme/resume")).await;
    assert_error(&answer, StatusCode::CONFLICT, "illegal_transition");
    let (status, _) =
        send(server.req(Method::POST, "/api/v1/tenants/acme/suspend?wait=true")).await;
    assert_eq!(status, StatusCode::OK);
    let answer = send(server.req(Method::POST, "/api/v1/tenants/acme/suspend")).await;
    assert_error(&answer, StatusCode::CONFLICT, "illegal_transition");
    assert_eq!(server.tenant("acme").await["state"], "suspended");
    assert_eq!(
        crate::server::event_kinds(dir.path(), "acme"),
        ["TenantCreated", "TenantProvisioned", "TenantSuspended"]
    );
}
