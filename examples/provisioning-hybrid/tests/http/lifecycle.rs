//! A tenant's life over HTTP: 202 and a status link, `?wait=true`, suspend,
//! resume, delete, a failed run rolled back, recovery of a run a crash left in
//! flight, graceful shutdown, and `/metrics`.

use std::time::Duration;

use reqwest::{Method, StatusCode, header};
use serde_json::json;

use crate::server::{Server, cli, event_kinds, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_answers_202_with_a_status_link_to_the_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let response = server
        .req(Method::POST, "/api/v1/tenants")
        .json(&json!({ "tenant_id": "acme", "plan": "premium", "region": "eu-west" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    let accepted: serde_json::Value = response.json().await.unwrap();
    let request_id = accepted["request_id"].as_str().unwrap();
    assert_eq!(
        location,
        format!("/api/v1/provisioning/{request_id}/status")
    );
    assert_eq!(accepted["status_url"], location);
    assert_eq!(accepted["tenant_id"], "acme");
    assert_eq!(accepted["workflow"], "create-tenant");
    assert!(
        ["running", "succeeded"].contains(&accepted["status"].as_str().unwrap()),
        "{accepted}"
    );

    let receipt = server.finished(request_id).await;
    assert_eq!(receipt["status"], "succeeded", "{receipt}");
    assert_eq!(receipt["run_id"], accepted["run_id"]);
    assert!(receipt["finished_at"].is_string());
    let tenant = server.tenant("acme").await;
    assert_eq!(tenant["state"], "active");
    assert_eq!(tenant["placement"]["isolation"], "dedicated");
    assert!(
        dir.path()
            .join("databases/eu-west/eu-west-dedicated-1/acme.sqlite")
            .exists()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_returns_final_receipts_through_the_whole_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(d);
    let request_id = "0190a5c4-0000-7000-8000-000000000001";
    let body = json!({
        "tenant_id": "globex", "plan": "standard", "region": "us-east",
        "request_id": request_id, "attributes": { "team": "infra" },
    });
    let (status, created) = send(
        server
            .req(Method::POST, "/api/v1/tenants?wait=true")
            .json(&body),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["request_id"], request_id);
    assert_eq!(created["status"], "succeeded");
    assert_eq!(created["failure"], serde_json::Value::Null);
    let tenant = server.tenant("globex").await;
    assert_eq!(tenant["state"], "active");
    assert_eq!(tenant["metadata"]["team"], "infra", "{tenant}");
    assert!(
        d.join("storage/us-east/tenants/globex/.tenant.json")
            .exists()
    );

    // The same request again, waiting or not: the same receipt, nothing rerun.
    let (status, again) = send(
        server
            .req(Method::POST, "/api/v1/tenants?wait=true")
            .json(&body),
    )
    .await;
    assert_eq!((status, &again), (StatusCode::OK, &created));
    let (status, again) = send(server.req(Method::POST, "/api/v1/tenants").json(&body)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(again["finished_at"], created["finished_at"]);

    let suspend_id = "0190a5c4-0000-7000-8000-000000000002";
    let (status, suspended) = send(
        server
            .req(Method::POST, "/api/v1/tenants/globex/suspend?wait=true")
            .json(&json!({ "request_id": suspend_id })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{suspended}");
    assert_eq!(
        (
            &suspended["request_id"],
            &suspended["workflow"],
            &suspended["status"]
        ),
        (
            &json!(suspend_id),
            &json!("suspend-tenant"),
            &json!("succeeded")
        )
    );
    assert_eq!(server.tenant("globex").await["state"], "suspended");

    // No body at all is fine: a new request id.
    let (status, resumed) =
        send(server.req(Method::POST, "/api/v1/tenants/globex/resume?wait=true")).await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["status"], "succeeded");
    assert_eq!(server.tenant("globex").await["state"], "active");

    // Delete asynchronously: 202, then the status link.
    let (status, deleting) =
        send(server.req(Method::DELETE, "/api/v1/tenants/globex?mode=purge")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{deleting}");
    assert_eq!(deleting["workflow"], "delete-tenant");
    let deleted = server
        .finished(deleting["request_id"].as_str().unwrap())
        .await;
    assert_eq!(deleted["status"], "succeeded", "{deleted}");
    assert_eq!(server.tenant("globex").await["state"], "deleted");
    assert!(!d.join("storage/us-east/tenants/globex").exists());

    assert_eq!(
        event_kinds(d, "globex"),
        [
            "TenantCreated",
            "TenantProvisioned",
            "TenantSuspended",
            "TenantResumed",
            "TenantDeleted"
        ]
    );

    // (8) The runs left their metrics, labelled by workflow.
    let response = server.anon(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let metrics = response.text().await.unwrap();
    for name in [
        "provisioning_requests_total",
        "provisioning_duration_seconds_bucket",
        "provisioning_step_duration_seconds_bucket",
        "provisioning_in_flight",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
    for workflow in [
        "create-tenant",
        "suspend-tenant",
        "resume-tenant",
        "delete-tenant",
    ] {
        assert!(
            metrics.contains(&format!("workflow=\"{workflow}\"")),
            "{workflow} missing from:\n{metrics}"
        );
    }
    // Each request was logged with method, path and status.
    let log = server.log_text();
    assert!(
        log.contains("http request") && log.contains("/api/v1/tenants/globex/suspend"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_is_still_a_receipt_and_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start_with(d, &[], &[("PROVISIONING_INJECT_FAILURE", "seed:permanent")]);
    let body = json!({ "tenant_id": "zed", "plan": "regulated", "region": "us-east" });
    let (status, receipt) = send(
        server
            .req(Method::POST, "/api/v1/tenants?wait=true")
            .json(&body),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{receipt}");
    assert_eq!(receipt["status"], "failed");
    assert_eq!(receipt["failure"]["step"], "seed", "{receipt}");
    assert_eq!(server.tenant("zed").await["state"], "failed");
    assert!(
        !d.join("databases/us-east/us-east-dedicated-1/zed.sqlite")
            .exists()
    );
    assert!(!d.join("storage/us-east/tenants/zed").exists());

    // Asynchronously: 202, and the status link tells the failure.
    let body = json!({ "tenant_id": "zed-two", "plan": "free", "region": "eu-west" });
    let (status, accepted) = send(server.req(Method::POST, "/api/v1/tenants").json(&body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let receipt = server
        .finished(accepted["request_id"].as_str().unwrap())
        .await;
    assert_eq!(receipt["status"], "failed");
    assert_eq!(receipt["failure"]["step"], "seed");
    assert_eq!(
        event_kinds(d, "zed-two"),
        ["TenantCreated", "TenantProvisioningFailed"]
    );
    // (8) The rollbacks show in the metrics.
    let metrics = server
        .anon(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("provisioning_compensations_total")
            && metrics.contains("outcome=\"compensated\""),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_a_crash_left_in_flight_is_finished_on_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Four transient seed failures keep the run retrying for about 1.5 s.
    let server = Server::start_with(
        d,
        &[],
        &[("PROVISIONING_INJECT_FAILURE", "seed:transient=4")],
    );
    let body = json!({ "tenant_id": "phoenix", "plan": "free", "region": "eu-west" });
    let (status, accepted) = send(server.req(Method::POST, "/api/v1/tenants").json(&body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let request_id = accepted["request_id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let path = format!("/api/v1/provisioning/{request_id}/status");
    let (_, before) = send(server.req(Method::GET, &path)).await;
    assert_eq!(before["status"], "running", "{before}");
    server.kill();

    let server = Server::start(d);
    // Recovery runs before the server listens: the run has ended by now.
    let (status, after) = send(server.req(Method::GET, &path)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(after["status"], "succeeded", "{after}");
    assert_eq!(server.tenant("phoenix").await["state"], "active");
    assert_eq!(
        event_kinds(d, "phoenix"),
        ["TenantCreated", "TenantProvisioned"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_recovery_cannot_finish_does_not_keep_serve_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start_with(
        d,
        &[],
        &[("PROVISIONING_INJECT_FAILURE", "seed:transient=4")],
    );
    let body = json!({ "tenant_id": "relic", "plan": "free", "region": "eu-west" });
    let (status, accepted) = send(server.req(Method::POST, "/api/v1/tenants").json(&body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let request_id = accepted["request_id"].as_str().unwrap().to_owned();
    server.kill();
    // As if another build had run it: a workflow this binary does not have.
    let catalog = format!("sqlite:{}", d.join("catalog.sqlite").display());
    let pool = sqlx::SqlitePool::connect(&catalog).await.unwrap();
    let renamed = sqlx::query(
        "UPDATE requests SET record = json_set(record, '$.workflow', 'retired-workflow') \
         WHERE request_id = ?1 AND status = 'running'",
    )
    .bind(&request_id)
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(
        renamed.rows_affected(),
        1,
        "the run had ended before the kill"
    );
    pool.close().await;

    let server = Server::start(d);
    let (status, ready) = send(server.req(Method::GET, "/readyz")).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["status"], "ready");
    let left = ready["unrecovered"].as_array().unwrap();
    assert_eq!(left.len(), 1, "{ready}");
    assert_eq!(left[0]["request_id"], request_id.as_str());
    assert!(
        left[0]["reason"]
            .as_str()
            .unwrap()
            .contains("not registered"),
        "{ready}"
    );
    // The rest of the server works.
    server.create("fresh", "free", "eu-west").await;
    let metrics = server
        .anon(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("provisioning_unrecovered_requests 1"),
        "{metrics}"
    );
    assert!(server.log_text().contains("left unfinished by recovery"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_waits_for_the_runs_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Three transient seed failures: about 0.7 s of retries.
    let server = Server::start_with(
        d,
        &[],
        &[("PROVISIONING_INJECT_FAILURE", "seed:transient=3")],
    );
    let body = json!({ "tenant_id": "calm", "plan": "free", "region": "eu-west" });
    let (status, accepted) = send(server.req(Method::POST, "/api/v1/tenants").json(&body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let exit = server.terminate(Duration::from_secs(60));
    assert!(exit.success(), "{exit:?}");
    let receipt = cli(
        d,
        &[
            "status",
            "--request",
            accepted["request_id"].as_str().unwrap(),
        ],
    );
    assert_eq!(receipt["status"], "succeeded", "{receipt}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_worker_requests_are_queued_and_run_by_the_in_process_worker() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start_with(d, &["--worker", "--worker-concurrency", "2"], &[]);
    // Waited for: the in-process worker's outcome.
    server.create("initech", "premium", "eu-west").await;
    let (status, accepted) = send(
        server
            .req(Method::POST, "/api/v1/tenants/initech/suspend")
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let receipt = server
        .finished(accepted["request_id"].as_str().unwrap())
        .await;
    assert_eq!(receipt["status"], "succeeded", "{receipt}");
    assert_eq!(server.tenant("initech").await["state"], "suspended");
    assert!(
        server.log_text().contains("in-process worker started"),
        "{}",
        server.log_text()
    );
    // SIGTERM: the worker stops claiming, the server exits 0.
    let status = server.terminate(Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
    assert_eq!(
        event_kinds(d, "initech"),
        ["TenantCreated", "TenantProvisioned", "TenantSuspended"]
    );
}
