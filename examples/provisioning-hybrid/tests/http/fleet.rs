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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_drift_reports_per_tenant_and_names_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(d);
    server.create("acme", "premium", "eu-west").await;
    server.create("globex", "premium", "eu-west").await;
    let (code, body) = send(server.req(Method::GET, "/api/v1/fleet/drift")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body["clean"], true, "{body}");
    assert_eq!(body["databases"], 2);

    // globex's index dropped behind the SDK's back.
    let db = d.join("databases/eu-west/eu-west-dedicated-1/globex.sqlite");
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(db);
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&options)
        .await
        .unwrap();
    sqlx::query("DROP INDEX comments_task_idx")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::Connection::close(conn).await.unwrap();

    let (code, body) = send(server.req(Method::GET, "/api/v1/fleet/drift")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body["clean"], false);
    let globex = body["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == "globex")
        .unwrap();
    assert_eq!(globex["drifts"][0]["kind"], "missing_index");
    assert_eq!(globex["drifts"][0]["object"], "comments_task_idx");
    let (_, one) = send(server.req(Method::GET, "/api/v1/fleet/drift?tenant=acme")).await;
    assert_eq!(one["clean"], true, "{one}");
    assert_eq!(one["tenants"].as_array().unwrap().len(), 1);

    let (code, body) = send(server.req(Method::GET, "/api/v1/fleet/drift?tenant=No_Such")).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "tenant_id");
    let (code, _) = send(server.req(Method::GET, "/api/v1/fleet/drift?tenant=nobody")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, body) = send(server.req(Method::GET, "/api/v1/fleet/drift?repair=true")).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "read only: {body}");
}
