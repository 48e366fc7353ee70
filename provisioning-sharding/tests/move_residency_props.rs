//! Property: whatever sequence of plan changes, operator moves and drains
//! runs (over a directory with fallback regions, shards drained and
//! reactivated), no strict tenant is ever placed outside its region (a
//! flexible one may go to a fallback region, its storage relocated, but
//! never by a drain), and
//! every tenant ends each operation Active, on a shard of its placement's pool.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use common::spec;
use proptest::prelude::*;
use provisioning_core::*;
use provisioning_sharding::{
    FallbackRegions, PlacementRules, RegionRule, RendezvousResolver, RuleBasedPolicy,
    ShardDirectory, ShardStatus,
};

/// A schema manager and storage that hold nothing: the property is about
/// where tenants are placed, not what is copied.
struct Nothing;

#[async_trait]
impl TenantSchemaManager for Nothing {
    async fn preview(&self, _: &Placement) -> Result<SchemaPreview> {
        Ok(SchemaPreview::new("-", false, true, vec![], vec![]))
    }
    async fn provision(&self, p: &Placement) -> Result<DatabaseOutcome> {
        Ok(match p.isolation {
            Isolation::Shared => DatabaseOutcome::Shared,
            Isolation::Dedicated => DatabaseOutcome::Created,
        })
    }
    async fn migrate(&self, _: &Placement) -> Result<Vec<MigrationInfo>> {
        Ok(vec![])
    }
    async fn seed(&self, _: &Placement) -> Result<Vec<SeedInfo>> {
        Ok(vec![])
    }
    async fn drop_tenant(&self, _: &Placement, _: DropReason) -> Result<()> {
        Ok(())
    }
    async fn copy_tenant(&self, _: &Placement, _: &Placement) -> Result<u64> {
        Ok(0)
    }
    async fn compare_tenant(&self, _: &Placement, _: &Placement) -> Result<Vec<TableComparison>> {
        Ok(vec![])
    }
}

#[async_trait]
impl StorageInitializer for Nothing {
    async fn preview(&self, _: &Placement) -> Result<StoragePreview> {
        Ok(StoragePreview::new(vec![], false))
    }
    async fn initialize(&self, _: &Placement) -> Result<()> {
        Ok(())
    }
    async fn remove(&self, _: &Placement, _: RemovalMode) -> Result<()> {
        Ok(())
    }
    async fn relocate(&self, _: &Placement, _: &Placement) -> Result<()> {
        Ok(())
    }
}

const SHARDS: [(&str, &str, Isolation); 8] = [
    ("eu-s1", "eu", Isolation::Shared),
    ("eu-s2", "eu", Isolation::Shared),
    ("eu-d1", "eu", Isolation::Dedicated),
    ("eu-d2", "eu", Isolation::Dedicated),
    ("us-s1", "us", Isolation::Shared),
    ("us-s2", "us", Isolation::Shared),
    ("us-d1", "us", Isolation::Dedicated),
    ("us-d2", "us", Isolation::Dedicated),
];
const PLANS: [&str; 4] = ["free", "standard", "premium", "regulated"];
const TENANTS: [(&str, &str, &str); 4] = [
    ("acme", "free", "eu"),
    ("bolt", "premium", "us"),
    ("cyan", "regulated", "us"),
    ("dune", "standard", "eu"),
];

#[derive(Debug, Clone)]
enum Op {
    ChangePlan(usize, usize),
    Move(usize, usize),
    Drain(usize),
    Reactivate(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..TENANTS.len(), 0..PLANS.len()).prop_map(|(t, p)| Op::ChangePlan(t, p)),
        (0..TENANTS.len(), 0..SHARDS.len()).prop_map(|(t, s)| Op::Move(t, s)),
        (0..SHARDS.len()).prop_map(Op::Drain),
        (0..SHARDS.len()).prop_map(Op::Reactivate),
    ]
}

/// The shard map of [`SHARDS`] and an orchestrator over it: eu is strict
/// for everyone; us tenants may fall back to eu, except regulated ones,
/// strict by plan.
fn world() -> (Arc<ShardDirectory>, ProvisioningOrchestrator) {
    let directory = Arc::new(
        ShardDirectory::from_specs(
            SHARDS
                .iter()
                .map(|(id, region, pool)| spec(id, region, *pool, 100)),
        )
        .unwrap(),
    );
    let policy = PlacementRules::default()
        .with_region("eu", RegionRule::strict())
        .with_region("us", RegionRule::open());
    let plans = RuleBasedPolicy::new(policy).unwrap();
    let shards = RendezvousResolver::new(directory.clone())
        .with_fallbacks(FallbackRegions::new().with("us", ["eu"]).unwrap());
    let orchestrator = ProvisioningOrchestrator::builder()
        .store(Arc::new(InMemoryStore::new()))
        .placement_policy(Arc::new(plans))
        .shard_resolver(Arc::new(shards))
        .schema_manager(Arc::new(Nothing))
        .storage(Arc::new(Nothing))
        .build()
        .unwrap();
    (directory, orchestrator)
}

#[test]
fn a_drain_finds_room_in_the_region_a_fallback_tenant_lives_in() {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(async {
            let (directory, orchestrator) = world();
            let bolt: TenantId = "bolt".parse().unwrap();
            let request = TenantRequest::new(
                bolt.clone(),
                "premium".parse().unwrap(),
                "us".parse().unwrap(),
            );
            orchestrator.create(request).await.unwrap();
            // An operator moves it to eu, a fallback of its home, us.
            let receipt = orchestrator
                .move_tenant(&bolt, "eu-d1".parse().unwrap(), RequestId::new())
                .await
                .unwrap();
            assert_eq!(receipt.status, RequestStatus::Succeeded, "{receipt:?}");
            let shard: ShardId = "eu-d1".parse().unwrap();
            directory.set_status(&shard, ShardStatus::Draining).unwrap();
            let report = orchestrator
                .drain_shard(&shard, 1, |_, _| {})
                .await
                .unwrap();
            assert!(report.is_empty_now(), "{report:?}");
            let placement = orchestrator.tenant(&bolt).await.unwrap().placement.unwrap();
            assert_eq!(placement.shard.as_str(), "eu-d2");
            assert_eq!(placement.residency, Residency::Flexible);
        });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn no_sequence_of_moves_breaks_residency(ops in prop::collection::vec(op(), 1..14)) {
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
            let (directory, orchestrator) = world();
            for (tenant, plan, region) in TENANTS {
                let request = TenantRequest::new(tenant.parse()?, plan.parse()?, region.parse()?);
                let receipt = orchestrator.create(request).await.unwrap();
                prop_assert_eq!(receipt.status, RequestStatus::Succeeded);
            }
            // Moves do happen here: acme goes dedicated, bolt to its other shard.
            let acme: TenantId = "acme".parse()?;
            orchestrator.change_plan(&acme, "premium".parse()?, RequestId::new()).await.unwrap();
            let placement = orchestrator.tenant(&acme).await.unwrap().placement.unwrap();
            prop_assert_eq!(placement.isolation, Isolation::Dedicated);
            let bolt: TenantId = "bolt".parse()?;
            let from = orchestrator.tenant(&bolt).await.unwrap().placement.unwrap().shard;
            let to = if from.as_str() == "us-d1" { "us-d2" } else { "us-d1" };
            let receipt = orchestrator.move_tenant(&bolt, to.parse()?, RequestId::new()).await.unwrap();
            prop_assert_eq!(receipt.status, RequestStatus::Succeeded);
            for op in ops {
                let tenant: TenantId = match &op {
                    Op::ChangePlan(t, _) | Op::Move(t, _) => TENANTS[*t].0.parse()?,
                    _ => "acme".parse()?,
                };
                let mut regions_before = Vec::new();
                for (name, _, _) in TENANTS {
                    let record = orchestrator.tenant(&name.parse()?).await.unwrap();
                    regions_before.push(record.placement.unwrap().region);
                }
                // Refusals and failed moves are fine; what they leave is checked below.
                match &op {
                    Op::ChangePlan(_, p) => {
                        let _ = orchestrator.change_plan(&tenant, PLANS[*p].parse()?, RequestId::new()).await;
                    }
                    Op::Move(_, s) => {
                        let _ = orchestrator.move_tenant(&tenant, SHARDS[*s].0.parse()?, RequestId::new()).await;
                    }
                    Op::Drain(s) => {
                        let shard: ShardId = SHARDS[*s].0.parse()?;
                        directory.set_status(&shard, ShardStatus::Draining).unwrap();
                        orchestrator.drain_shard(&shard, 2, |_, _| {}).await.unwrap();
                    }
                    Op::Reactivate(s) => {
                        directory.set_status(&SHARDS[*s].0.parse()?, ShardStatus::Active).unwrap();
                    }
                }
                for (i, (name, _, region)) in TENANTS.into_iter().enumerate() {
                    let record = orchestrator.tenant(&name.parse()?).await.unwrap();
                    let placement = record.placement.clone().unwrap();
                    if matches!(op, Op::Drain(_)) {
                        // A drain keeps every tenant in the region it was in.
                        prop_assert_eq!(&placement.region, &regions_before[i], "{} after {:?}", name, op);
                    }
                    prop_assert_eq!(record.state, TenantState::Active, "{:?} after {:?}", record, op);
                    if placement.region.as_str() != region {
                        // Only a flexible tenant of a region with a fallback.
                        prop_assert_eq!(placement.residency, Residency::Flexible, "{} left {} after {:?}", name, region, op);
                        prop_assert_eq!((region, placement.region.as_str()), ("us", "eu"));
                    }
                    let shard = directory.get(&placement.shard).unwrap();
                    prop_assert_eq!(shard.region(), &placement.region);
                    prop_assert_eq!(shard.pool(), placement.isolation);
                    prop_assert_eq!(&record.plan, &placement.plan);
                    if placement.residency == Residency::Strict {
                        prop_assert_eq!(shard.region().as_str(), region);
                    }
                }
            }
            Ok(())
        })?;
    }
}
