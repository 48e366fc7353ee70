//! A small fake world for orchestrator tests: placement policy, shard resolver,
//! schema manager and storage that record what exists, so that tests can
//! assert that nothing of a tenant is left behind.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use provisioning_core::*;

#[derive(Default)]
pub struct World {
    pub databases: Mutex<BTreeSet<String>>,
    pub shared_rows: Mutex<BTreeSet<String>>,
    pub migrated: Mutex<BTreeSet<String>>,
    pub storage: Mutex<BTreeSet<String>>,
    pub archived: Mutex<BTreeSet<String>>,
    pub suspended: Mutex<BTreeSet<String>>,
    pub reservations: Mutex<BTreeMap<String, String>>,
    pub calls: Mutex<Vec<String>>,
}

impl World {
    pub fn new() -> Arc<Self> {
        Arc::new(World::default())
    }

    fn call(&self, what: &str, tenant: &TenantId) {
        self.calls.lock().unwrap().push(format!("{what}:{tenant}"));
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// How many calls start with `prefix` (`"provision:"`: provisions).
    pub fn count_calls(&self, prefix: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.starts_with(prefix))
            .count()
    }

    /// Everything of `tenant` that still exists.
    pub fn leftovers(&self, tenant: &str) -> Vec<String> {
        let mut left = Vec::new();
        let sets = [
            ("database", &self.databases),
            ("shared rows", &self.shared_rows),
            ("storage", &self.storage),
            ("suspended storage", &self.suspended),
        ];
        for (what, set) in sets {
            if set.lock().unwrap().contains(tenant) {
                left.push(what.to_owned());
            }
        }
        if self.reservations.lock().unwrap().contains_key(tenant) {
            left.push("shard reservation".to_owned());
        }
        left
    }

    /// The orchestrator over this world on `store`.
    pub fn orchestrator(
        self: &Arc<Self>,
        store: Arc<dyn TenantStore>,
    ) -> ProvisioningOrchestratorBuilder {
        ProvisioningOrchestrator::builder()
            .store(store)
            .placement_policy(Arc::new(Plans))
            .shard_resolver(Arc::new(Shards(self.clone())))
            .schema_manager(Arc::new(Schemas(self.clone())))
            .storage(Arc::new(Storage(self.clone())))
            .retry_policy(
                RetryPolicy::builder()
                    .initial_interval(std::time::Duration::from_millis(1))
                    .max_interval(std::time::Duration::from_millis(4))
                    .max_attempts(3)
                    .jitter(0.0)
                    .build()
                    .unwrap(),
            )
    }
}

/// free and standard share; premium and regulated get a dedicated database;
/// two regions.
pub struct Plans;

#[async_trait]
impl PlacementPolicy for Plans {
    async fn decide(&self, request: &TenantRequest) -> Result<PlacementDecision> {
        let isolation = match request.plan.as_str() {
            "free" | "standard" => Isolation::Shared,
            "premium" | "regulated" => Isolation::Dedicated,
            other => return Err(Error::invalid("plan", format!("unknown plan {other:?}"))),
        };
        if !["eu-west", "us-east"].contains(&request.region.as_str()) {
            return Err(Error::invalid(
                "region",
                format!("unknown region {:?}", request.region.as_str()),
            ));
        }
        Ok(PlacementDecision::new(
            request.plan.clone(),
            isolation,
            request.region.clone(),
            Residency::Strict,
            format!("plan {} is {isolation}", request.plan),
        ))
    }
}

pub struct Shards(pub Arc<World>);

#[async_trait]
impl ShardResolver for Shards {
    async fn resolve(
        &self,
        tenant: &TenantId,
        decision: &PlacementDecision,
    ) -> Result<ShardChoice> {
        let choice = self.preview(tenant, decision).await?;
        self.0.call("resolve", tenant);
        self.0
            .reservations
            .lock()
            .unwrap()
            .insert(tenant.to_string(), choice.shard.to_string());
        Ok(choice)
    }
    async fn preview(&self, _: &TenantId, decision: &PlacementDecision) -> Result<ShardChoice> {
        let shard = format!("{}-{}", decision.region, decision.isolation).parse()?;
        Ok(ShardChoice::new(
            shard,
            decision.region.clone(),
            "one shard per pool",
        ))
    }
    async fn release(&self, tenant: &TenantId, _: &ShardId) -> Result<()> {
        self.0.call("release", tenant);
        self.0.reservations.lock().unwrap().remove(tenant.as_str());
        Ok(())
    }
}

pub struct Schemas(pub Arc<World>);

#[async_trait]
impl TenantSchemaManager for Schemas {
    async fn preview(&self, placement: &Placement) -> Result<SchemaPreview> {
        let exists = self
            .0
            .databases
            .lock()
            .unwrap()
            .contains(placement.tenant_id.as_str());
        let dedicated = placement.isolation == Isolation::Dedicated;
        Ok(SchemaPreview::new(
            format!("{}/{}", placement.shard, placement.tenant_id),
            exists || !dedicated,
            dedicated && !exists,
            vec![
                MigrationInfo::new(1, "roles"),
                MigrationInfo::new(2, "users"),
            ],
            vec![SeedInfo::new("default-roles", 1)],
        ))
    }
    async fn provision(&self, placement: &Placement) -> Result<DatabaseOutcome> {
        self.0.call("provision", &placement.tenant_id);
        if placement.isolation == Isolation::Shared {
            return Ok(DatabaseOutcome::Shared);
        }
        self.0
            .databases
            .lock()
            .unwrap()
            .insert(placement.tenant_id.to_string());
        Ok(DatabaseOutcome::Created)
    }
    async fn migrate(&self, placement: &Placement) -> Result<Vec<MigrationInfo>> {
        self.0.call("migrate", &placement.tenant_id);
        self.0
            .migrated
            .lock()
            .unwrap()
            .insert(placement.tenant_id.to_string());
        Ok(vec![])
    }
    async fn seed(&self, placement: &Placement) -> Result<Vec<SeedInfo>> {
        self.0.call("seed", &placement.tenant_id);
        if placement.isolation == Isolation::Shared {
            self.0
                .shared_rows
                .lock()
                .unwrap()
                .insert(placement.tenant_id.to_string());
        }
        Ok(vec![])
    }
    async fn suspend(&self, placement: &Placement) -> Result<()> {
        self.0.call("schema-suspend", &placement.tenant_id);
        Ok(())
    }
    async fn resume(&self, placement: &Placement) -> Result<()> {
        self.0.call("schema-resume", &placement.tenant_id);
        Ok(())
    }
    async fn drop_tenant(&self, placement: &Placement, reason: DropReason) -> Result<()> {
        self.0
            .call(&format!("drop-{reason:?}"), &placement.tenant_id);
        self.0
            .databases
            .lock()
            .unwrap()
            .remove(placement.tenant_id.as_str());
        self.0
            .shared_rows
            .lock()
            .unwrap()
            .remove(placement.tenant_id.as_str());
        self.0
            .migrated
            .lock()
            .unwrap()
            .remove(placement.tenant_id.as_str());
        Ok(())
    }
}

pub struct Storage(pub Arc<World>);

#[async_trait]
impl StorageInitializer for Storage {
    async fn preview(&self, placement: &Placement) -> Result<StoragePreview> {
        let exists = self
            .0
            .storage
            .lock()
            .unwrap()
            .contains(placement.tenant_id.as_str());
        Ok(StoragePreview::new(
            vec![format!("tenants/{}/uploads/", placement.tenant_id)],
            exists,
        ))
    }
    async fn initialize(&self, placement: &Placement) -> Result<()> {
        self.0.call("storage-init", &placement.tenant_id);
        self.0
            .storage
            .lock()
            .unwrap()
            .insert(placement.tenant_id.to_string());
        Ok(())
    }
    async fn suspend(&self, placement: &Placement) -> Result<()> {
        self.0.call("storage-suspend", &placement.tenant_id);
        self.0
            .suspended
            .lock()
            .unwrap()
            .insert(placement.tenant_id.to_string());
        Ok(())
    }
    async fn resume(&self, placement: &Placement) -> Result<()> {
        self.0.call("storage-resume", &placement.tenant_id);
        self.0
            .suspended
            .lock()
            .unwrap()
            .remove(placement.tenant_id.as_str());
        Ok(())
    }
    async fn remove(&self, placement: &Placement, mode: RemovalMode) -> Result<()> {
        self.0
            .call(&format!("storage-remove-{mode:?}"), &placement.tenant_id);
        let id = placement.tenant_id.to_string();
        self.0.storage.lock().unwrap().remove(&id);
        self.0.suspended.lock().unwrap().remove(&id);
        if mode == RemovalMode::Archive {
            self.0.archived.lock().unwrap().insert(id);
        }
        Ok(())
    }
}

pub fn request(tenant: &str, plan: &str, region: &str) -> TenantRequest {
    TenantRequest::new(
        tenant.parse().unwrap(),
        plan.parse().unwrap(),
        region.parse().unwrap(),
    )
}

pub fn kinds(events: &[TenantEvent]) -> Vec<String> {
    events.iter().map(|e| e.kind.to_string()).collect()
}

/// Asserts that the tenant's events are numbered 1..=n without a gap.
pub fn assert_gapless(events: &[TenantEvent]) {
    let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    let expected: Vec<u64> = (1..=events.len() as u64).collect();
    assert_eq!(sequences, expected, "{events:#?}");
}
