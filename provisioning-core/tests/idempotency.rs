//! The same request id yields the same receipt and one run, however often and
//! however concurrently it is sent; conflicting requests are typed errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::world::*;
use provisioning_core::Entity;
use provisioning_core::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_identical_requests_make_one_tenant_and_one_run() {
    let world = World::new();
    let store = Arc::new(InMemoryStore::new());
    let orchestrator = world.orchestrator(store.clone()).build().unwrap();
    let request = request("acme", "premium", "eu-west");

    let handles: Vec<_> = (0..64)
        .map(|_| {
            let orchestrator = orchestrator.clone();
            let request = request.clone();
            tokio::spawn(async move { orchestrator.create(request).await })
        })
        .collect();
    let mut receipts = Vec::new();
    for handle in handles {
        receipts.push(handle.await.unwrap().unwrap());
    }

    assert!(receipts.iter().all(|r| *r == receipts[0]), "{receipts:#?}");
    assert_eq!(receipts[0].status, RequestStatus::Succeeded);
    assert_eq!(
        store
            .list_tenants(&TenantFilter::all())
            .await
            .unwrap()
            .len(),
        1
    );
    let events = orchestrator.events(&request.tenant_id).await.unwrap();
    assert_eq!(kinds(&events), ["TenantCreated", "TenantProvisioned"]);
    // One run: each step ran once.
    let provisions = world.count_calls("provision:");
    assert_eq!(provisions, 1);
    let trail = orchestrator.audit_trail(request.request_id).await.unwrap();
    assert_eq!(
        trail
            .entries
            .iter()
            .filter(|e| e.outcome == AuditOutcome::RunStarted)
            .count(),
        1
    );
}

#[tokio::test]
async fn a_repeated_request_returns_the_same_receipt_without_running() {
    let world = World::new();
    let orchestrator = world
        .orchestrator(Arc::new(InMemoryStore::new()))
        .build()
        .unwrap();
    let request = request("acme", "free", "eu-west");
    let first = orchestrator.create(request.clone()).await.unwrap();
    let calls = world.calls().len();
    let second = orchestrator.create(request.clone()).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(world.calls().len(), calls);
    assert_eq!(
        orchestrator.status(request.request_id).await.unwrap(),
        first
    );
}

#[tokio::test]
async fn the_same_tenant_under_another_request_is_a_conflict_that_changes_nothing() {
    let world = World::new();
    let store = Arc::new(InMemoryStore::new());
    let orchestrator = world.orchestrator(store.clone()).build().unwrap();
    orchestrator
        .create(request("acme", "free", "eu-west"))
        .await
        .unwrap();
    let before = orchestrator.tenant(&"acme".parse().unwrap()).await.unwrap();

    let other = request("acme", "premium", "us-east");
    let err = orchestrator.create(other.clone()).await.unwrap_err();

    assert!(
        matches!(
            err,
            Error::Conflict {
                kind: Entity::Tenant,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        orchestrator.tenant(&"acme".parse().unwrap()).await.unwrap(),
        before
    );
    assert!(store.request(other.request_id).await.unwrap().is_none());
    let events = orchestrator.events(&"acme".parse().unwrap()).await.unwrap();
    assert_eq!(events.len(), 2);
}

#[tokio::test]
async fn a_request_id_reused_for_something_else_is_a_conflict() {
    let world = World::new();
    let orchestrator = world
        .orchestrator(Arc::new(InMemoryStore::new()))
        .build()
        .unwrap();
    let first = request("acme", "free", "eu-west");
    orchestrator.create(first.clone()).await.unwrap();
    let reused = request("globex", "free", "eu-west").with_request_id(first.request_id);
    let err = orchestrator.create(reused).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                kind: Entity::Request,
                ..
            }
        ),
        "{err}"
    );
    let err = orchestrator
        .tenant(&"globex".parse().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }));
    // And a suspend under the create's request id is refused too.
    let err = orchestrator
        .suspend(&"acme".parse().unwrap(), first.request_id)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                kind: Entity::Request,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_deleted_tenants_id_stays_taken() {
    let world = World::new();
    let orchestrator = world
        .orchestrator(Arc::new(InMemoryStore::new()))
        .build()
        .unwrap();
    let id: TenantId = "acme".parse().unwrap();
    orchestrator
        .create(request("acme", "free", "eu-west"))
        .await
        .unwrap();
    orchestrator
        .delete(&id, RemovalMode::Purge, RequestId::new())
        .await
        .unwrap();
    let err = orchestrator
        .create(request("acme", "free", "eu-west"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                kind: Entity::Tenant,
                ..
            }
        ),
        "{err}"
    );
}
