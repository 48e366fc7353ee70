//! Suspend, resume and delete: hooks called, states and events in order,
//! illegal operations refused with nothing changed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::world::*;
use provisioning_core::Entity;
use provisioning_core::*;

async fn active(world: &Arc<World>, tenant: &str) -> ProvisioningOrchestrator {
    let orchestrator = world
        .orchestrator(Arc::new(InMemoryStore::new()))
        .build()
        .unwrap();
    orchestrator
        .create(request(tenant, "premium", "eu-west"))
        .await
        .unwrap();
    orchestrator
}

#[tokio::test]
async fn suspend_resume_delete_events_in_order() {
    let world = World::new();
    let orchestrator = active(&world, "acme").await;
    let id: TenantId = "acme".parse().unwrap();

    let suspended = orchestrator.suspend(&id, RequestId::new()).await.unwrap();
    assert_eq!(suspended.status, RequestStatus::Succeeded);
    assert_eq!(
        orchestrator.tenant(&id).await.unwrap().state,
        TenantState::Suspended
    );
    assert!(world.suspended.lock().unwrap().contains("acme"));

    orchestrator.resume(&id, RequestId::new()).await.unwrap();
    assert_eq!(
        orchestrator.tenant(&id).await.unwrap().state,
        TenantState::Active
    );
    assert!(!world.suspended.lock().unwrap().contains("acme"));

    orchestrator
        .delete(&id, RemovalMode::Archive, RequestId::new())
        .await
        .unwrap();
    let tombstone = orchestrator.tenant(&id).await.unwrap();
    assert_eq!(tombstone.state, TenantState::Deleted);
    assert!(
        world.leftovers("acme").is_empty(),
        "{:?}",
        world.leftovers("acme")
    );
    assert!(world.archived.lock().unwrap().contains("acme"));

    let events = orchestrator.events(&id).await.unwrap();
    assert_eq!(
        kinds(&events),
        [
            "TenantCreated",
            "TenantProvisioned",
            "TenantSuspended",
            "TenantResumed",
            "TenantDeleted"
        ]
    );
    assert_gapless(&events);
    let calls = world.calls();
    let after_create = &calls[5..];
    assert_eq!(
        after_create,
        [
            "storage-suspend:acme",
            "schema-suspend:acme",
            "schema-resume:acme",
            "storage-resume:acme",
            "storage-remove-Archive:acme",
            "drop-Delete:acme",
            "release:acme"
        ]
    );
}

#[tokio::test]
async fn deleting_a_suspended_tenant_purges_everything() {
    let world = World::new();
    let orchestrator = active(&world, "acme").await;
    let id: TenantId = "acme".parse().unwrap();
    orchestrator.suspend(&id, RequestId::new()).await.unwrap();
    let receipt = orchestrator
        .delete(&id, RemovalMode::Purge, RequestId::new())
        .await
        .unwrap();
    assert_eq!(receipt.status, RequestStatus::Succeeded);
    assert_eq!(
        orchestrator.tenant(&id).await.unwrap().state,
        TenantState::Deleted
    );
    assert!(world.leftovers("acme").is_empty());
    assert!(world.archived.lock().unwrap().is_empty());
    let events = orchestrator.events(&id).await.unwrap();
    assert_eq!(
        kinds(&events),
        [
            "TenantCreated",
            "TenantProvisioned",
            "TenantSuspended",
            "TenantDeleted"
        ]
    );
}

#[tokio::test]
async fn illegal_operations_are_typed_errors_that_change_nothing() {
    let world = World::new();
    let orchestrator = active(&world, "acme").await;
    let store = orchestrator.store().clone();
    let id: TenantId = "acme".parse().unwrap();

    // Resume an Active tenant.
    let resume = RequestId::new();
    let err = orchestrator.resume(&id, resume).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::IllegalTransition {
                from: TenantState::Active,
                to: TenantState::Active
            }
        ),
        "{err}"
    );
    assert!(
        store.request(resume).await.unwrap().is_none(),
        "nothing written"
    );

    // Suspend, delete, then suspend and resume a Deleted tenant.
    orchestrator
        .delete(&id, RemovalMode::Purge, RequestId::new())
        .await
        .unwrap();
    let before = orchestrator.tenant(&id).await.unwrap();
    let events_before = orchestrator.events(&id).await.unwrap();
    let err = orchestrator
        .suspend(&id, RequestId::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::IllegalTransition {
                from: TenantState::Deleted,
                to: TenantState::Suspended
            }
        ),
        "{err}"
    );
    let err = orchestrator
        .resume(&id, RequestId::new())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::IllegalTransition {
            from: TenantState::Deleted,
            ..
        }
    ));
    let err = orchestrator
        .delete(&id, RemovalMode::Purge, RequestId::new())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::IllegalTransition {
            from: TenantState::Deleted,
            ..
        }
    ));
    let err = orchestrator.retry(&id, RequestId::new()).await.unwrap_err();
    assert!(matches!(
        err,
        Error::IllegalTransition {
            from: TenantState::Deleted,
            ..
        }
    ));
    assert_eq!(orchestrator.tenant(&id).await.unwrap(), before);
    assert_eq!(orchestrator.events(&id).await.unwrap(), events_before);

    // Unknown tenants are NotFound.
    let err = orchestrator
        .suspend(&"nobody".parse().unwrap(), RequestId::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotFound {
                kind: Entity::Tenant,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_failing_suspend_is_compensated_and_the_tenant_stays_active() {
    let world = World::new();
    let orchestrator = world
        .orchestrator(Arc::new(InMemoryStore::new()))
        .fault_injector(Arc::new("mark-suspended".parse::<StepFaults>().unwrap()))
        .build()
        .unwrap();
    let id: TenantId = "acme".parse().unwrap();
    orchestrator
        .create(request("acme", "free", "eu-west"))
        .await
        .unwrap();
    let receipt = orchestrator.suspend(&id, RequestId::new()).await.unwrap();
    assert_eq!(receipt.status, RequestStatus::Failed);
    assert_eq!(receipt.failure.unwrap().step, "mark-suspended");
    assert_eq!(
        orchestrator.tenant(&id).await.unwrap().state,
        TenantState::Active
    );
    assert!(
        !world.suspended.lock().unwrap().contains("acme"),
        "storage resumed again"
    );
}

#[tokio::test]
async fn listing_filters_by_state_region_and_plan_and_pages() {
    let world = World::new();
    let orchestrator = world
        .orchestrator(Arc::new(InMemoryStore::new()))
        .build()
        .unwrap();
    for (tenant, plan, region) in [
        ("alpha", "free", "eu-west"),
        ("bravo", "premium", "eu-west"),
        ("charlie", "free", "us-east"),
        ("delta", "regulated", "us-east"),
    ] {
        orchestrator
            .create(request(tenant, plan, region))
            .await
            .unwrap();
    }
    orchestrator
        .suspend(&"charlie".parse().unwrap(), RequestId::new())
        .await
        .unwrap();
    let ids = |records: Vec<TenantRecord>| -> Vec<String> {
        records
            .into_iter()
            .map(|r| r.tenant_id.to_string())
            .collect()
    };
    let filter = TenantFilter::all().region("us-east".parse().unwrap());
    assert_eq!(
        ids(orchestrator.list_tenants(&filter).await.unwrap()),
        ["charlie", "delta"]
    );
    let filter = TenantFilter::all().state(TenantState::Suspended);
    assert_eq!(
        ids(orchestrator.list_tenants(&filter).await.unwrap()),
        ["charlie"]
    );
    let filter = TenantFilter::all().plan("free".parse().unwrap());
    assert_eq!(
        ids(orchestrator.list_tenants(&filter).await.unwrap()),
        ["alpha", "charlie"]
    );
    let page = TenantFilter::all().limit(3);
    let first = ids(orchestrator.list_tenants(&page).await.unwrap());
    assert_eq!(first, ["alpha", "bravo", "charlie"]);
    let page = page.after("charlie".parse().unwrap());
    assert_eq!(
        ids(orchestrator.list_tenants(&page).await.unwrap()),
        ["delta"]
    );
}
