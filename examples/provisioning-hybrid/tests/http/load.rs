//! Under load: many copies of one request make one tenant and one run; many
//! distinct tenants created at once all end Active.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::server::{Server, event_kinds, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_copies_of_one_request_make_one_tenant_and_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let request_id = "0190a5c4-0000-7000-8000-000000000064";
    let body = json!({
        "tenant_id": "swarm", "plan": "premium", "region": "eu-west", "request_id": request_id,
    });
    let answers = futures_util::future::join_all((0..64).map(|i| {
        // Half answer at once, half wait for the run.
        let path = if i % 2 == 0 {
            "/api/v1/tenants"
        } else {
            "/api/v1/tenants?wait=true"
        };
        send(server.req(Method::POST, path).json(&body))
    }))
    .await;
    let mut run_ids = BTreeSet::new();
    for (i, (status, answer)) in answers.iter().enumerate() {
        let expected = if i % 2 == 0 {
            StatusCode::ACCEPTED
        } else {
            StatusCode::OK
        };
        assert_eq!(*status, expected, "copy {i}: {answer}");
        assert_eq!(answer["request_id"], request_id, "copy {i}: {answer}");
        run_ids.insert(answer["run_id"].as_str().unwrap().to_owned());
        if i % 2 == 1 {
            assert_eq!(answer["status"], "succeeded", "copy {i}: {answer}");
        }
    }
    assert_eq!(run_ids.len(), 1, "{run_ids:?}");
    let receipt = server.finished(request_id).await;
    assert_eq!(receipt["status"], "succeeded");
    assert_eq!(server.tenant("swarm").await["state"], "active");
    assert_eq!(
        event_kinds(dir.path(), "swarm"),
        ["TenantCreated", "TenantProvisioned"]
    );
    let audit = crate::server::cli(dir.path(), &["audit", request_id]);
    let seeds = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["step"] == "seed" && e["outcome"] == "completed")
        .count();
    assert_eq!(seeds, 1, "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_tenants_created_at_once_all_end_active() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let plans = ["free", "standard", "premium", "regulated"];
    let regions = ["eu-west", "us-east"];
    let tenants: Vec<String> = (0..32).map(|i| format!("crowd-{i}")).collect();
    let answers = futures_util::future::join_all(tenants.iter().enumerate().map(|(i, tenant)| {
        let body = json!({
            "tenant_id": tenant, "plan": plans[i % plans.len()], "region": regions[i % regions.len()],
        });
        send(server.req(Method::POST, "/api/v1/tenants").json(&body))
    }))
    .await;
    let mut request_ids = Vec::new();
    for (tenant, (status, answer)) in tenants.iter().zip(&answers) {
        assert_eq!(*status, StatusCode::ACCEPTED, "{tenant}: {answer}");
        assert_eq!(answer["tenant_id"], tenant.as_str());
        request_ids.push(answer["request_id"].as_str().unwrap().to_owned());
    }
    for (tenant, request_id) in tenants.iter().zip(&request_ids) {
        let receipt = server.finished(request_id).await;
        assert_eq!(receipt["status"], "succeeded", "{tenant}: {receipt}");
        assert_eq!(server.tenant(tenant).await["state"], "active", "{tenant}");
    }
    let listed = crate::server::cli(dir.path(), &["list", "--state", "active"]);
    assert_eq!(listed.as_array().unwrap().len(), 32, "{listed}");
}
