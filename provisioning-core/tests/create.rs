//! Creating tenants: the happy path's state, placement and events; the dry run;
//! bad input refused with nothing written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::world::*;
use provisioning_core::Entity;
use provisioning_core::*;

#[tokio::test]
async fn happy_path_events_are_created_then_provisioned() {
    let world = World::new();
    let store = Arc::new(InMemoryStore::new());
    let orchestrator = world.orchestrator(store.clone()).build().unwrap();
    let request = request("acme", "premium", "eu-west");

    let receipt = orchestrator.create(request.clone()).await.unwrap();

    assert_eq!(receipt.status, RequestStatus::Succeeded);
    assert_eq!(receipt.workflow, CREATE_TENANT);
    assert_eq!(receipt.request_id, request.request_id);
    let tenant = orchestrator.tenant(&request.tenant_id).await.unwrap();
    assert_eq!(tenant.state, TenantState::Active);
    let placement = tenant.placement.clone().unwrap();
    assert_eq!(placement.isolation, Isolation::Dedicated);
    assert_eq!(placement.shard.as_str(), "eu-west-dedicated");
    assert_eq!(tenant.metadata["placement.isolation"], "dedicated");
    assert_eq!(tenant.metadata["placement.region"], "eu-west");
    assert!(tenant.metadata["placement.reason"].contains("premium"));

    let events = orchestrator.events(&request.tenant_id).await.unwrap();
    assert_eq!(kinds(&events), ["TenantCreated", "TenantProvisioned"]);
    assert_gapless(&events);
    assert!(events.iter().all(|e| e.tenant_id == request.tenant_id));
    assert_eq!(events[1].data["placement"]["shard"], "eu-west-dedicated");

    assert!(world.databases.lock().unwrap().contains("acme"));
    assert!(world.storage.lock().unwrap().contains("acme"));
    assert_eq!(
        world.calls(),
        [
            "resolve:acme",
            "provision:acme",
            "migrate:acme",
            "seed:acme",
            "storage-init:acme"
        ]
    );
}

#[tokio::test]
async fn shared_plans_share_and_record_why() {
    let world = World::new();
    let orchestrator = world
        .orchestrator(Arc::new(InMemoryStore::new()))
        .build()
        .unwrap();
    orchestrator
        .create(request("tiny-co", "free", "us-east"))
        .await
        .unwrap();
    let tenant = orchestrator
        .tenant(&"tiny-co".parse().unwrap())
        .await
        .unwrap();
    let placement = tenant.placement.unwrap();
    assert_eq!(placement.isolation, Isolation::Shared);
    assert_eq!(placement.region.as_str(), "us-east");
    assert_eq!(placement.shard.as_str(), "us-east-shared");
    assert!(world.shared_rows.lock().unwrap().contains("tiny-co"));
    assert!(world.databases.lock().unwrap().is_empty());
}

#[tokio::test]
async fn unknown_plan_or_region_is_refused_and_nothing_is_written() {
    let world = World::new();
    let store = Arc::new(InMemoryStore::new());
    let orchestrator = world.orchestrator(store.clone()).build().unwrap();
    let err = orchestrator
        .create(request("acme", "platinum", "eu-west"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput { field: "plan", .. }),
        "{err}"
    );
    let err = orchestrator
        .create(request("acme", "free", "mars-north"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidInput {
                field: "region",
                ..
            }
        ),
        "{err}"
    );
    let mut bad = request("acme", "free", "eu-west");
    bad.attributes.insert("bad key".into(), "v".into());
    let err = orchestrator.create(bad).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidInput {
                field: "attributes",
                ..
            }
        ),
        "{err}"
    );

    assert!(
        store
            .list_tenants(&TenantFilter::all())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.unfinished_requests().await.unwrap().is_empty());
    assert!(world.calls().is_empty());
}

#[tokio::test]
async fn the_dry_run_shows_the_work_and_changes_nothing() {
    let world = World::new();
    let store = Arc::new(InMemoryStore::new());
    let orchestrator = world.orchestrator(store.clone()).build().unwrap();
    let request = request("acme", "regulated", "eu-west");

    let plan = orchestrator.preview(&request).await.unwrap();

    assert_eq!(plan.placement.isolation, Isolation::Dedicated);
    assert_eq!(plan.placement.shard.as_str(), "eu-west-dedicated");
    assert!(plan.schema.will_create);
    assert_eq!(plan.schema.pending_migrations.len(), 2);
    assert_eq!(plan.schema.pending_seeds[0].name, "default-roles");
    assert_eq!(plan.storage.paths, ["tenants/acme/uploads/"]);
    assert_eq!(
        plan.steps,
        [
            "validate",
            "place",
            "prepare-database",
            "migrate",
            "seed",
            "initialize-storage",
            "activate"
        ]
    );
    // No side effect at all: no row, no reservation, no call that changes state.
    assert!(store.tenant(&request.tenant_id).await.unwrap().is_none());
    assert!(store.request(request.request_id).await.unwrap().is_none());
    assert!(world.calls().is_empty());
    assert!(world.leftovers("acme").is_empty());
}

#[tokio::test]
async fn missing_parts_are_named() {
    let err = ProvisioningOrchestrator::builder()
        .store(Arc::new(InMemoryStore::new()))
        .placement_policy(Arc::new(Plans))
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::MissingPart {
                part: "shard resolver",
                ..
            }
        ),
        "{err}"
    );
    let err = ProvisioningOrchestrator::builder().build().unwrap_err();
    assert_eq!(
        err.to_string(),
        "missing store: call `store` on the builder"
    );
}

#[tokio::test]
async fn user_create_steps_run_before_activation_and_see_the_placement() {
    struct RecordShard;
    #[async_trait::async_trait]
    impl Step<CreateContext> for RecordShard {
        fn name(&self) -> &str {
            "register-dns"
        }
        async fn execute(&self, ctx: &mut CreateContext) -> Result<(), StepError> {
            let shard = ctx.placement()?.shard.clone();
            ctx.request
                .attributes
                .insert("dns".into(), format!("{shard}.example"));
            Ok(())
        }
    }
    let world = World::new();
    let orchestrator = world
        .orchestrator(Arc::new(InMemoryStore::new()))
        .create_step(RecordShard)
        .build()
        .unwrap();
    let steps = orchestrator.workflow_steps(CREATE_TENANT).unwrap();
    assert_eq!(steps[steps.len() - 2..], ["register-dns", "activate"]);
    let receipt = orchestrator
        .create(request("acme", "free", "eu-west"))
        .await
        .unwrap();
    let trail = orchestrator.audit_trail(receipt.request_id).await.unwrap();
    let completed: Vec<_> = trail
        .entries
        .iter()
        .filter(|e| e.outcome == AuditOutcome::Completed)
        .map(|e| e.step.clone().unwrap())
        .collect();
    assert_eq!(completed, steps);
}

/// A run's transitions write from the record the run wrote last, without
/// reading it back; a write made meanwhile by someone else is not lost: the
/// version check refuses the stale record, and the transition re-reads.
#[tokio::test]
async fn a_tenant_written_behind_the_runs_back_keeps_that_write() {
    struct Tag(Arc<InMemoryStore>);
    #[async_trait::async_trait]
    impl Step<CreateContext> for Tag {
        fn name(&self) -> &str {
            "tag"
        }
        async fn execute(&self, ctx: &mut CreateContext) -> Result<(), StepError> {
            let id = &ctx.request.tenant_id;
            let mut record = self.0.tenant(id).await?.unwrap();
            let version = record.version;
            record.metadata.insert("tagged".into(), "yes".into());
            self.0.update_tenant(record, version, Vec::new()).await?;
            Ok(())
        }
    }
    let world = World::new();
    let store = Arc::new(InMemoryStore::new());
    let orchestrator = world
        .orchestrator(store.clone())
        .create_step(Tag(store.clone()))
        .build()
        .unwrap();
    let request = request("acme", "premium", "eu-west");
    let receipt = orchestrator.create(request.clone()).await.unwrap();
    assert_eq!(receipt.status, RequestStatus::Succeeded);

    let tenant = orchestrator.tenant(&request.tenant_id).await.unwrap();
    assert_eq!(tenant.state, TenantState::Active);
    assert_eq!(
        tenant.metadata["tagged"], "yes",
        "the tag survived activation"
    );
    assert_eq!(tenant.metadata["placement.isolation"], "dedicated");
    // Created, Validating, Provisioning, the tag, Active.
    assert_eq!(tenant.version, 5);
    let events = orchestrator.events(&request.tenant_id).await.unwrap();
    assert_gapless(&events);
    assert_eq!(kinds(&events), ["TenantCreated", "TenantProvisioned"]);
}

/// Counts the decisions it makes, deciding as [`Plans`] does.
#[derive(Default)]
struct CountingPlans(std::sync::atomic::AtomicUsize);

#[async_trait::async_trait]
impl PlacementPolicy for CountingPlans {
    async fn decide(&self, request: &TenantRequest) -> Result<PlacementDecision> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Plans.decide(request).await
    }
}

#[tokio::test]
async fn a_create_asks_the_placement_policy_once() {
    let world = World::new();
    let plans = Arc::new(CountingPlans::default());
    let orchestrator = world
        .orchestrator(Arc::new(InMemoryStore::new()))
        .placement_policy(plans.clone())
        .build()
        .unwrap();
    let receipt = orchestrator
        .create(request("acme", "premium", "eu-west"))
        .await
        .unwrap();
    assert_eq!(receipt.status, RequestStatus::Succeeded);
    let asked = || plans.0.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(asked(), 1, "the submission's decision is the run's");
    let tenant = orchestrator.tenant(&"acme".parse().unwrap()).await.unwrap();
    assert_eq!(tenant.placement.unwrap().isolation, Isolation::Dedicated);
}

/// Decides as [`Plans`] does, with other words for why.
struct Reworded;

#[async_trait::async_trait]
impl PlacementPolicy for Reworded {
    async fn decide(&self, request: &TenantRequest) -> Result<PlacementDecision> {
        let mut decision = Plans.decide(request).await?;
        decision.reason = "reworded in a later release".to_owned();
        Ok(decision)
    }
}

/// The same create request after an upgrade whose placement policy explains
/// itself otherwise: still the same request, answered with its receipt.
#[tokio::test]
async fn a_create_repeated_under_another_placement_policy_gets_its_receipt() {
    let world = World::new();
    let store = Arc::new(InMemoryStore::new());
    let before = world.orchestrator(store.clone()).build().unwrap();
    let request = request("acme", "premium", "eu-west");
    let receipt = before.create(request.clone()).await.unwrap();
    let after = world
        .orchestrator(store)
        .placement_policy(Arc::new(Reworded))
        .build()
        .unwrap();
    assert_eq!(after.create(request.clone()).await.unwrap(), receipt);
    // Another request under the same id is still refused.
    let mut other = request;
    other.plan = "regulated".parse().unwrap();
    let err = after.create(other).await.unwrap_err();
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
