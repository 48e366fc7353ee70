//! `GET /api/v1/fleet/status`: the last roll-out, as `fleet status --json`
//! prints it, behind the token like the rest of the API.

use reqwest::{Method, StatusCode};

use crate::server::{Server, cli, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_status_shows_the_last_roll_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start_with(d, &["--token", "fleet-secret"], &[]);
    let (code, body) = send(server.req(Method::GET, "/api/v1/fleet/status")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body, serde_json::json!({ "rollout": null }));
    let (code, _) = send(server.anon(Method::GET, "/api/v1/fleet/status")).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);

    server.create("acme", "premium", "eu-west").await;
    server.create("initech", "free", "eu-west").await;
    let report = cli(d, &["migrate-all"]);
    let (code, body) = send(server.req(Method::GET, "/api/v1/fleet/status")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body["rollout"]["id"], report["rollout"]["id"]);
    assert_eq!(body["rollout"]["status"], "completed");
    assert_eq!(body["counts"]["total"], 2);
    assert_eq!(body["counts"]["migrated"], 2);
    assert_eq!(body["failures"], serde_json::json!([]));
    assert_eq!(body, cli(d, &["fleet", "status"]));
}
