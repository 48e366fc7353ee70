//! A permanent failure at any step of a create leaves the tenant Failed,
//! compensates exactly the steps that ran, leaves nothing of the tenant behind,
//! and a retry brings it up clean.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::world::*;
use provisioning_core::*;

async fn fail_at(step: &str, plan: &str) {
    let world = World::new();
    let store = Arc::new(InMemoryStore::new());
    let faults = Arc::new(StepFaults::new().fail(step, FaultKind::Permanent));
    let orchestrator = world
        .orchestrator(store.clone())
        .fault_injector(faults)
        .build()
        .unwrap();
    let request = request("acme", plan, "eu-west");

    let receipt = orchestrator.create(request.clone()).await.unwrap();

    assert_eq!(receipt.status, RequestStatus::Failed, "{step}");
    let failure = receipt.failure.clone().unwrap();
    assert_eq!(failure.step, step);
    assert!(
        failure.reason.contains("injected failure"),
        "{}",
        failure.reason
    );
    let tenant = orchestrator.tenant(&request.tenant_id).await.unwrap();
    assert_eq!(tenant.state, TenantState::Failed, "{step}");
    assert_eq!(tenant.failure.as_ref().unwrap().step, step);

    let events = orchestrator.events(&request.tenant_id).await.unwrap();
    assert_eq!(
        kinds(&events),
        ["TenantCreated", "TenantProvisioningFailed"],
        "{step}"
    );
    assert_gapless(&events);
    assert_eq!(events[1].data["step"], step);

    // Exactly the steps that started are compensated, in reverse.
    let trail = orchestrator.audit_trail(receipt.request_id).await.unwrap();
    let started: Vec<String> = trail
        .entries
        .iter()
        .filter(|e| e.outcome == AuditOutcome::Started)
        .map(|e| e.step.clone().unwrap())
        .collect();
    let compensated: Vec<String> = trail
        .entries
        .iter()
        .filter(|e| e.outcome == AuditOutcome::Compensated)
        .map(|e| e.step.clone().unwrap())
        .collect();
    let mut expected = started.clone();
    expected.reverse();
    assert_eq!(compensated, expected, "{step}");
    assert_eq!(started.last().unwrap(), step);

    assert_eq!(
        world.leftovers("acme"),
        Vec::<String>::new(),
        "{step}: orphans"
    );

    // The same tenant retried later (no fault now) comes up clean.
    let orchestrator = world.orchestrator(store.clone()).build().unwrap();
    let retried = orchestrator
        .retry(&request.tenant_id, RequestId::new())
        .await
        .unwrap();
    assert_eq!(retried.status, RequestStatus::Succeeded, "{step}");
    let tenant = orchestrator.tenant(&request.tenant_id).await.unwrap();
    assert_eq!(tenant.state, TenantState::Active);
    assert!(tenant.failure.is_none());
    let events = orchestrator.events(&request.tenant_id).await.unwrap();
    assert_eq!(
        kinds(&events),
        [
            "TenantCreated",
            "TenantProvisioningFailed",
            "TenantProvisioned"
        ]
    );
    assert_gapless(&events);
}

#[tokio::test]
async fn a_permanent_failure_at_each_step_rolls_back_everything() {
    for plan in ["premium", "free"] {
        for step in [
            "validate",
            "place",
            "prepare-database",
            "migrate",
            "seed",
            "initialize-storage",
            "activate",
        ] {
            fail_at(step, plan).await;
        }
    }
}

#[tokio::test]
async fn transient_failures_are_retried_and_the_tenant_comes_up() {
    let world = World::new();
    let faults: StepFaults = "migrate:transient=2,initialize-storage:transient"
        .parse()
        .unwrap();
    let orchestrator = world
        .orchestrator(Arc::new(InMemoryStore::new()))
        .fault_injector(Arc::new(faults))
        .build()
        .unwrap();
    let receipt = orchestrator
        .create(request("acme", "premium", "eu-west"))
        .await
        .unwrap();
    assert_eq!(receipt.status, RequestStatus::Succeeded);
    let trail = orchestrator.audit_trail(receipt.request_id).await.unwrap();
    let retried: Vec<(String, u32)> = trail
        .entries
        .iter()
        .filter(|e| e.outcome == AuditOutcome::Retrying)
        .map(|e| (e.step.clone().unwrap(), e.attempt.unwrap()))
        .collect();
    assert_eq!(
        retried,
        [
            ("migrate".to_owned(), 1),
            ("migrate".to_owned(), 2),
            ("initialize-storage".to_owned(), 1)
        ]
    );
}
