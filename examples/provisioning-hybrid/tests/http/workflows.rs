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
    assert_error(&answer, StatusCode::CONFLICT, "tenant_not_active");
    assert!(
        answer.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tenant acme is suspended: workflow \"user\" needs an Active tenant"),
        "{}",
        answer.1
    );

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

/// The four workflow endpoints as the Provisioning Service design names
/// them: `tenant`, `service`, `user` and `resource` under
/// `/api/v1/provisioning/`, each idempotent by its request id, all but
/// `tenant` naming the tenant in `X-Tenant-ID`; a resource past its quota
/// refused with nothing allocated; a resource step failing leaves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_four_workflow_endpoints_track_by_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(d);
    let post = |workflow: &str, tenant: Option<&str>, body: &serde_json::Value| {
        let path = format!("/api/v1/provisioning/{workflow}?wait=true");
        let mut request = server.req(Method::POST, &path).json(body);
        if let Some(tenant) = tenant {
            request = request.header("X-Tenant-ID", tenant);
        }
        request
    };
    let twice = async |workflow: &str, tenant: Option<&str>, body: serde_json::Value| {
        let (status, first) = send(post(workflow, tenant, &body)).await;
        assert_eq!(status, StatusCode::OK, "{workflow}: {first}");
        assert_eq!(first["status"], "succeeded", "{workflow}: {first}");
        let (status, again) = send(post(workflow, tenant, &body)).await;
        assert_eq!(status, StatusCode::OK, "{workflow}: {again}");
        assert_eq!(
            again, first,
            "{workflow}: the same request id, the same receipt"
        );
        first
    };

    // `tenant` is `POST /api/v1/tenants` by another path: same body, no header.
    let tenant = json!({
        "tenant_id": "acme", "plan": "standard", "region": "eu-west",
        "request_id": "0190a5c4-0000-7000-8000-00000000a001"
    });
    let created = twice("tenant", None, tenant).await;
    assert_eq!(created["workflow"], "create-tenant");
    assert_eq!(server.tenant("acme").await["state"], "active");
    let service = json!({
        "service": "billing", "tier": "basic",
        "request_id": "0190a5c4-0000-7000-8000-00000000a002"
    });
    twice("service", Some("acme"), service).await;
    let user = json!({
        "email": "ada@example.com", "role": "owner",
        "request_id": "0190a5c4-0000-7000-8000-00000000a003"
    });
    twice("user", Some("acme"), user).await;
    let storage = json!({
        "service": "billing", "type": "storage", "spec": { "size_gb": 5 },
        "request_id": "0190a5c4-0000-7000-8000-00000000a004"
    });
    let allocated = twice("resource", Some("acme"), storage).await;
    assert_eq!(allocated["workflow"], "resource");
    let resources = d.join("storage/eu-west/tenants/acme/resources");
    let held = || std::fs::read_dir(&resources).unwrap().count();
    assert_eq!(held(), 1);

    // Without X-Tenant-ID: 400 naming the header, for each but `tenant`.
    for (workflow, body) in [
        ("service", json!({ "service": "search", "tier": "basic" })),
        (
            "user",
            json!({ "email": "bob@example.com", "role": "member" }),
        ),
        (
            "resource",
            json!({ "service": "billing", "type": "compute" }),
        ),
    ] {
        let answer = send(post(workflow, None, &body)).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_input");
        assert_eq!(answer.1["error"]["field"], "X-Tenant-ID", "{workflow}");
    }

    // Basic allows one storage resource per service: the next is refused.
    let more = json!({ "service": "billing", "type": "storage" });
    let answer = send(post("resource", Some("acme"), &more)).await;
    assert_error(&answer, StatusCode::CONFLICT, "conflict");
    let message = answer.1["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("tier basic allows 1 storage resource(s) per service"),
        "{message}"
    );
    // No subscription to the service: 400 naming the field.
    let unsubscribed = json!({ "service": "search", "type": "compute" });
    let answer = send(post("resource", Some("acme"), &unsubscribed)).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(answer.1["error"]["field"], "service");
    assert_eq!(held(), 1, "nothing more allocated");
    let kinds = event_kinds(d, "acme");
    assert_eq!(
        kinds,
        [
            "TenantCreated",
            "TenantProvisioned",
            "ServiceProvisioned",
            "UserProvisioned",
            "ResourceProvisioned"
        ]
    );
}

/// A server whose resource step fails for good, for each step in turn: the
/// run is rolled back, its receipt names the step, nothing is allocated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_step_failing_over_http_allocates_nothing() {
    for step in [
        "check-subscription",
        "reserve-quota",
        "allocate",
        "record-billing",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let fault = format!("{step}:permanent");
        let server = Server::start_with(d, &[], &[("PROVISIONING_INJECT_FAILURE", &fault)]);
        server.create("acme", "premium", "eu-west").await;
        let (status, _) = send(
            server
                .req(Method::POST, "/api/v1/provisioning/service?wait=true")
                .header("X-Tenant-ID", "acme")
                .json(&json!({ "service": "billing", "tier": "standard" })),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let (status, receipt) = send(
            server
                .req(Method::POST, "/api/v1/provisioning/resource?wait=true")
                .header("X-Tenant-ID", "acme")
                .json(&json!({ "service": "billing", "type": "database" })),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{step}: {receipt}");
        assert_eq!(receipt["status"], "failed", "{step}: {receipt}");
        assert_eq!(receipt["failure"]["step"], step);
        let resources = d.join("storage/eu-west/tenants/acme/resources");
        assert!(
            !resources.exists() || std::fs::read_dir(&resources).unwrap().count() == 0,
            "{step}: something was allocated"
        );
        // No reservation, compute row or billing record in its database.
        let db = d.join("databases/eu-west/eu-west-dedicated-1/acme.sqlite");
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&db);
        let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&options)
            .await
            .unwrap();
        let left: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM settings WHERE key LIKE 'resource.%' OR key LIKE 'compute.%') \
             + (SELECT COUNT(*) FROM audit_log WHERE action LIKE 'resource.%')",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(left, 0, "{step}: rows left in the tenant's database");
        assert_eq!(server.tenant("acme").await["state"], "active", "{step}");
        assert!(
            !event_kinds(d, "acme").contains(&"ResourceProvisioned".to_owned()),
            "{step}"
        );
    }
}
