//! Plan changes and moves over HTTP: 202 with a status link, `?wait=true`,
//! idempotent receipts, and clear errors with nothing changed.

use reqwest::{Method, StatusCode, header};
use serde_json::json;

use crate::server::{Server, assert_error, cli, event_kinds, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_upgrade_answers_202_and_moves_the_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(d);
    server.create("acme", "standard", "eu-west").await;

    let response = server
        .req(Method::POST, "/api/v1/tenants/acme/plan")
        .json(&json!({ "plan": "premium" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert!(response.headers().contains_key(header::LOCATION));
    let accepted: serde_json::Value = response.json().await.unwrap();
    assert_eq!(accepted["workflow"], "move-tenant");
    let receipt = server
        .finished(accepted["request_id"].as_str().unwrap())
        .await;
    assert_eq!(receipt["status"], "succeeded", "{receipt}");
    let tenant = server.tenant("acme").await;
    assert_eq!(tenant["plan"], "premium");
    assert_eq!(tenant["placement"]["isolation"], "dedicated");
    assert!(
        d.join("databases/eu-west/eu-west-dedicated-1/acme.sqlite")
            .exists()
    );
    assert_eq!(event_kinds(d, "acme").last().unwrap(), "TenantMoved");

    // Back down, waiting, under a request id sent twice: one receipt.
    let body = json!({ "plan": "standard", "request_id": "0190a5c4-0000-7000-8000-0000000000aa" });
    let first = send(
        server
            .req(Method::POST, "/api/v1/tenants/acme/plan?wait=true")
            .json(&body),
    )
    .await;
    assert_eq!(first.0, StatusCode::OK, "{}", first.1);
    assert_eq!(first.1["status"], "succeeded");
    let again = send(
        server
            .req(Method::POST, "/api/v1/tenants/acme/plan?wait=true")
            .json(&body),
    )
    .await;
    assert_eq!(again.1, first.1);
    assert_eq!(
        server.tenant("acme").await["placement"]["isolation"],
        "shared"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_moves_are_json_errors_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.create("acme", "standard", "eu-west").await;
    let version = server.tenant("acme").await["version"].clone();
    let post = |path: &str, body: serde_json::Value| server.req(Method::POST, path).json(&body);
    let answer = send(post(
        "/api/v1/tenants/acme/move",
        json!({ "shard": "nowhere-1" }),
    ))
    .await;
    assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
    let answer = send(post(
        "/api/v1/tenants/acme/move",
        json!({ "shard": "eu-west-shared-1" }),
    ))
    .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(answer.1["error"]["field"], "shard", "{}", answer.1);
    let answer = send(post(
        "/api/v1/tenants/acme/plan",
        json!({ "plan": "Gold Plan" }),
    ))
    .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(answer.1["error"]["field"], "plan", "{}", answer.1);
    let answer = send(post(
        "/api/v1/tenants/acme/plan",
        json!({ "plan": "standard" }),
    ))
    .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_input");
    let answer = send(post(
        "/api/v1/tenants/acme/plan",
        json!({ "plans": "premium" }),
    ))
    .await;
    assert_eq!(answer.0, StatusCode::BAD_REQUEST, "{}", answer.1);
    assert_eq!(server.tenant("acme").await["version"], version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_server_stops_placing_tenants_on_a_shard_drained_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = d.join("hybrid.toml");
    let shard = |id: &str| {
        format!(
            "[[shards]]\nid = \"{id}\"\nregion = \"eu-west\"\ncapacity = 1000\n\
             connection = \"sqlite:databases/eu-west/{id}/_shared.sqlite\"\n\n"
        )
    };
    std::fs::write(
        &config,
        shard("eu-west-shared-1") + &shard("eu-west-shared-2"),
    )
    .unwrap();
    let config = config.display().to_string();
    let server = Server::start_with(d, &["--config", &config], &[]);
    let on_shard =
        |record: &serde_json::Value| record["placement"]["shard"].as_str().unwrap().to_owned();
    // Until one lands on shared-1 (rendezvous spreads them).
    let mut first = Vec::new();
    for i in 0..20 {
        let tenant = format!("early-{i:02}");
        server.create(&tenant, "free", "eu-west").await;
        first.push(tenant.clone());
        if on_shard(&server.tenant(&tenant).await) == "eu-west-shared-1" {
            break;
        }
    }

    // An operator drains shared-1 from the CLI while the server runs.
    let report = cli(
        d,
        &["drain", "--shard", "eu-west-shared-1", "--config", &config],
    );
    let outcomes = report["tenants"].as_array().unwrap();
    assert!(!outcomes.is_empty(), "{report}");
    assert!(outcomes.iter().all(|t| t["outcome"] == "moved"), "{report}");
    for tenant in &first {
        assert_eq!(on_shard(&server.tenant(tenant).await), "eu-west-shared-2");
    }
    // The server reads the drain within its upkeep tick.
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    for i in 0..12 {
        let tenant = format!("late-{i:02}");
        server.create(&tenant, "free", "eu-west").await;
        assert_eq!(
            on_shard(&server.tenant(&tenant).await),
            "eu-west-shared-2",
            "{tenant} went to the drained shard"
        );
    }
}
