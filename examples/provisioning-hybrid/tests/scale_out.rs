//! Scale-out on one PostgreSQL catalog: API processes (`serve --catalog`,
//! which queue requests) and `worker` processes (which run them under
//! leases), killed and stopped mid-run, losing nothing and running nothing
//! twice; lifecycle operations and workflows queued, answered at once or,
//! with `?wait=true`, when a worker has finished them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/scratch.rs"]
mod scratch;
#[allow(dead_code)]
#[path = "http/server.rs"]
mod server;
#[path = "support/worker.rs"]
mod worker;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use scratch::Scratch;
use serde_json::{Value, json};
use server::{Server, send};
use worker::Worker;

/// An API process (`serve`) on the catalog, with `extra` arguments.
fn api(dir: &Path, url: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--catalog", url];
    args.extend(extra);
    Server::start_with(dir, &args, &[])
}

/// The CLI with `--json` on the catalog.
fn cli(dir: &Path, url: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--catalog", url]);
    server::cli(dir, &all)
}

/// A tenant's events as `sequence:kind`, in order.
fn events(dir: &Path, url: &str, tenant: &str) -> Vec<String> {
    cli(dir, url, &["events", tenant])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{}:{}", e["sequence"], e["kind"].as_str().unwrap()))
        .collect()
}

/// Creates `tenant` through `server` without waiting; the request id.
async fn submit(server: &Server, tenant: &str, plan: &str) -> String {
    let body = json!({ "tenant_id": tenant, "plan": plan, "region": "eu-west" });
    let (status, answer) = send(server.req(Method::POST, "/api/v1/tenants").json(&body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["status"], "running", "{answer}");
    answer["request_id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn sixty_creates_through_an_api_run_once_each_on_three_workers_one_killed() {
    let db = Scratch::new("scale");
    let tmp = tempfile::tempdir().unwrap();
    let (dir, url) = (tmp.path(), db.url.as_str());
    let server = api(dir, url, &[]);
    let tenants: Vec<String> = (0..60).map(|i| format!("t{i:02}")).collect();
    let requests = futures_util::future::join_all(tenants.iter().enumerate().map(|(i, t)| {
        let plan = if i % 3 == 0 { "premium" } else { "free" };
        submit(&server, t, plan)
    }))
    .await;
    // An API process runs nothing itself.
    assert_eq!(
        db.column("SELECT status FROM provisioning.requests GROUP BY status"),
        ["running"]
    );

    let mut doomed = Worker::start(dir, url, "doomed", "2");
    let _second = Worker::start(dir, url, "second", "2");
    let _third = Worker::start(dir, url, "third", "2");
    let held = db.until_holding("doomed", Duration::from_secs(60));
    doomed.child.kill().unwrap(); // SIGKILL, mid-run
    doomed.child.wait().unwrap();
    // An operator's `recover` beside the live workers takes only runs whose
    // lease is free or has lapsed: nothing is driven twice (checked below).
    let report = cli(dir, url, &["recover"]);
    assert!(report["recovered"].is_array(), "{report}");

    for request_id in &requests {
        let receipt = server.finished(request_id).await;
        assert_eq!(receipt["status"], "succeeded", "{receipt}");
    }
    for request_id in &held {
        assert!(requests.contains(request_id), "{request_id}");
    }
    for tenant in &tenants {
        assert_eq!(server.tenant(tenant).await["state"], "active", "{tenant}");
        assert_eq!(
            events(dir, url, tenant),
            ["1:TenantCreated", "2:TenantProvisioned"],
            "{tenant}: provisioned once, gapless"
        );
    }
    assert_eq!(
        db.column("SELECT count(*)::text FROM provisioning.requests"),
        ["60"]
    );
    assert_eq!(
        db.column("SELECT status FROM provisioning.requests GROUP BY status"),
        ["succeeded"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn identical_and_distinct_requests_on_two_api_processes() {
    let db = Scratch::new("twoapis");
    let tmp = tempfile::tempdir().unwrap();
    let (dir, url) = (tmp.path(), db.url.as_str());
    // One API process only queues; the other runs an in-process worker.
    let apis = [api(dir, url, &[]), api(dir, url, &["--worker"])];
    let request_id = "0190a5c4-0000-7000-8000-0000000000aa";
    let same = json!({
        "tenant_id": "swarm", "plan": "premium", "region": "eu-west", "request_id": request_id,
    });
    let identical = (0..64).map(|i| {
        let path = if i % 4 < 2 {
            "/api/v1/tenants"
        } else {
            "/api/v1/tenants?wait=true"
        };
        send(apis[i % 2].req(Method::POST, path).json(&same))
    });
    let answers = futures_util::future::join_all(identical).await;
    let mut run_ids = BTreeSet::new();
    for (i, (status, answer)) in answers.iter().enumerate() {
        assert_eq!(answer["request_id"], request_id, "copy {i}: {answer}");
        run_ids.insert(answer["run_id"].as_str().unwrap().to_owned());
        if i % 4 < 2 {
            assert_eq!(*status, StatusCode::ACCEPTED, "copy {i}: {answer}");
        } else {
            // Waited for on either process: the worker's outcome, woken by
            // the catalog's notice.
            assert_eq!(*status, StatusCode::OK, "copy {i}: {answer}");
            assert_eq!(answer["status"], "succeeded", "copy {i}: {answer}");
        }
    }
    assert_eq!(run_ids.len(), 1, "{run_ids:?}");

    let distinct = (0..32).map(|i| {
        let body = json!({ "tenant_id": format!("d{i:02}"), "plan": "free", "region": "eu-west" });
        send(apis[i % 2].req(Method::POST, "/api/v1/tenants").json(&body))
    });
    let answers = futures_util::future::join_all(distinct).await;
    for (i, (status, answer)) in answers.iter().enumerate() {
        assert_eq!(*status, StatusCode::ACCEPTED, "{i}: {answer}");
        let receipt = apis[(i + 1) % 2]
            .finished(answer["request_id"].as_str().unwrap())
            .await;
        assert_eq!(receipt["status"], "succeeded", "{receipt}");
    }
    let listed = cli(dir, url, &["list"]);
    let names: BTreeSet<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            assert_eq!(t["state"], "active", "{t}");
            t["tenant_id"].as_str().unwrap()
        })
        .collect();
    assert_eq!(names.len(), 33, "{names:?}");
    assert!(names.contains("swarm"));
    assert_eq!(
        events(dir, url, "swarm"),
        ["1:TenantCreated", "2:TenantProvisioned"]
    );
    assert_eq!(
        db.column("SELECT count(*)::text FROM provisioning.requests"),
        ["33"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn a_worker_stopped_by_sigterm_finishes_its_runs_and_exits_0() {
    let db = Scratch::new("sigterm");
    let tmp = tempfile::tempdir().unwrap();
    let (dir, url) = (tmp.path(), db.url.as_str());
    let server = api(dir, url, &[]);
    let tenants: Vec<String> = (0..30).map(|i| format!("s{i:02}")).collect();
    let requests =
        futures_util::future::join_all(tenants.iter().map(|t| submit(&server, t, "premium"))).await;

    let mut worker = Worker::start(dir, url, "stopping", "4");
    let held = db.until_holding("stopping", Duration::from_secs(60));
    worker.sigterm();
    let (status, report) = worker.exited();
    assert!(status.success(), "{status:?}");
    assert!(report.starts_with("worker stopping: "), "{report}");
    // What it held when told to stop, it finished before exiting.
    for request_id in &held {
        let path = format!("/api/v1/provisioning/{request_id}/status");
        let (_, receipt) = send(server.req(Method::GET, &path)).await;
        assert_eq!(receipt["status"], "succeeded", "{receipt}");
    }
    assert!(db.held_by("stopping").is_empty());

    // The rest is another worker's to run: nothing is stuck.
    let _next = Worker::start(dir, url, "next", "4");
    for request_id in &requests {
        let receipt = server.finished(request_id).await;
        assert_eq!(receipt["status"], "succeeded", "{receipt}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn lifecycle_operations_and_workflows_are_queued_for_a_worker() {
    let db = Scratch::new("queued");
    let tmp = tempfile::tempdir().unwrap();
    let (dir, url) = (tmp.path(), db.url.as_str());
    let server = api(dir, url, &[]);
    let _worker = Worker::start(dir, url, "w", "2");

    // Waited for: 200 with the outcome a worker reached.
    server.create("acme", "standard", "eu-west").await;

    // Not waited for: 202 and a status link, the run a worker's.
    let (status, accepted) = send(
        server
            .req(Method::POST, "/api/v1/tenants/acme/suspend")
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(accepted["status"], "running", "{accepted}");
    let receipt = server
        .finished(accepted["request_id"].as_str().unwrap())
        .await;
    assert_eq!(receipt["status"], "succeeded", "{receipt}");
    assert_eq!(server.tenant("acme").await["state"], "suspended");

    // Refused at once, nothing queued: a suspended tenant is not suspended again.
    let (status, refused) = send(
        server
            .req(Method::POST, "/api/v1/tenants/acme/suspend")
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");

    let (status, resumed) = send(
        server
            .req(Method::POST, "/api/v1/tenants/acme/resume?wait=true")
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["status"], "succeeded", "{resumed}");

    let (status, service) = send(
        server
            .req(Method::POST, "/api/v1/provisioning/service?wait=true")
            .header("X-Tenant-ID", "acme")
            .json(&json!({ "service": "billing", "tier": "standard" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{service}");
    assert_eq!(service["status"], "succeeded", "{service}");

    let (status, user) = send(
        server
            .req(Method::POST, "/api/v1/provisioning/user")
            .header("X-Tenant-ID", "acme")
            .json(&json!({ "email": "ada@acme.test", "role": "owner" })),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{user}");
    let receipt = server.finished(user["request_id"].as_str().unwrap()).await;
    assert_eq!(receipt["status"], "succeeded", "{receipt}");

    let (status, deleted) = send(
        server
            .req(Method::DELETE, "/api/v1/tenants/acme?mode=purge&wait=true")
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["status"], "succeeded", "{deleted}");
    assert_eq!(server.tenant("acme").await["state"], "deleted");

    let kinds: Vec<String> = events(dir, url, "acme");
    assert_eq!(
        kinds,
        [
            "1:TenantCreated",
            "2:TenantProvisioned",
            "3:TenantSuspended",
            "4:TenantResumed",
            "5:ServiceProvisioned",
            "6:UserProvisioned",
            "7:TenantDeleted"
        ]
    );
    assert_eq!(
        db.column("SELECT count(*)::text FROM provisioning.requests"),
        ["6"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn readiness_follows_the_catalog() {
    let db = Scratch::new("ready");
    let tmp = tempfile::tempdir().unwrap();
    let server = api(tmp.path(), &db.url, &[]);
    let (status, ready) = send(server.anon(Method::GET, "/readyz")).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["status"], "ready");

    db.drop_now();
    let (status, answer) = send(server.anon(Method::GET, "/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["error"]["code"], "unavailable", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("catalog"),
        "{answer}"
    );
    // Alive all the same: it answers, and would serve again with its catalog.
    let (status, _) = send(server.anon(Method::GET, "/healthz")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn a_queued_wait_with_no_worker_running_is_answered_202_at_its_timeout() {
    let db = Scratch::new("nowork");
    let tmp = tempfile::tempdir().unwrap();
    let (dir, url) = (tmp.path(), db.url.as_str());
    let server = api(dir, url, &["--wait-timeout", "1s"]);
    let body = json!({ "tenant_id": "lonely", "plan": "free", "region": "eu-west" });
    let (status, answer) = send(
        server
            .req(Method::POST, "/api/v1/tenants?wait=true")
            .json(&body),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["status"], "running", "{answer}");
    assert!(answer["status_url"].is_string(), "{answer}");
    // Recorded once: a worker started later runs it.
    let _worker = Worker::start(dir, url, "late", "1");
    let receipt = server
        .finished(answer["request_id"].as_str().unwrap())
        .await;
    assert_eq!(receipt["status"], "succeeded", "{receipt}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn a_catalog_password_never_reaches_the_logs_of_api_and_worker_processes() {
    let db = Scratch::new("secret");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The test server trusts local connections, so any password works: it
    // is only there to be looked for.
    let (scheme, rest) = db.url.split_once("://").unwrap();
    let (user, host) = rest.split_once('@').unwrap();
    let user = user.split(':').next().unwrap();
    let url = format!("{scheme}://{user}:hunter2secret@{host}");
    let server = Server::start_with(dir, &["--catalog", &url], &[("RUST_LOG", "debug")]);
    let mut worker = Worker::start(dir, &url, "w", "1");
    server.create("acme", "free", "eu-west").await;
    let (status, _) = send(server.anon(Method::GET, "/readyz")).await;
    assert_eq!(status, StatusCode::OK);
    worker.sigterm();
    let (status, report) = worker.exited();
    assert!(status.success());
    assert!(!report.contains("hunter2secret"), "{report}");
    let worker_log = std::fs::read_to_string(&worker.log).unwrap();
    assert!(worker_log.contains("worker started"), "{worker_log}");
    assert!(!worker_log.contains("hunter2secret"), "{worker_log}");
    let server_log = server.log_text();
    assert!(server_log.contains("serving the HTTP API"), "{server_log}");
    assert!(!server_log.contains("hunter2secret"), "{server_log}");
}
