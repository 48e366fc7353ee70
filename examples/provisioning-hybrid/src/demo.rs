//! (5), (7), (8), (9): the demo — a mix of tenants provisioned, a service and
//! a user added, one tenant upgraded to a database of its own, one suspended,
//! one deleted, one injected failure rolled back, then the tenants, their
//! placement and their event timelines.

use std::path::Path;
use std::sync::Arc;

use provisioning_core::{
    AuditOutcome, FaultKind, Isolation, ProvisioningOrchestrator, RemovalMode, RequestId,
    StepFaults, TenantFilter, TenantId, TenantRequest,
};

use crate::wiring::{Paths, Release, hybrid};
use crate::workflows::{RESOURCE, SERVICE, USER};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// The tenants the demo provisions: shared plans and dedicated ones, in two regions.
const TENANTS: [(&str, &str, &str); 5] = [
    ("acme", "free", "eu-west"),
    ("bolt", "standard", "us-east"),
    ("cygnus", "premium", "eu-west"),
    ("delta", "regulated", "us-east"),
    ("echo", "premium", "us-east"),
];

/// Runs the demo in `{data_dir}/demo`, which it empties first, so every run
/// starts clean and shows the same story.
#[allow(clippy::print_stdout)] // a CLI's output
pub(crate) async fn run(data_dir: &Path) -> BoxResult<()> {
    let dir = data_dir.join("demo");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    let hybrid = hybrid(&dir, Release::Current, None).await?;
    let (orchestrator, provisioner) = (hybrid.orchestrator, hybrid.provisioner);

    println!(
        "Provisioning {} tenants into {}",
        TENANTS.len(),
        dir.display()
    );
    // (7) The hybrid flow: shared and dedicated tenants in two regions, each
    // placed by the policy and recorded with its placement.
    for (tenant, plan, region) in TENANTS {
        let request = TenantRequest::new(tenant.parse()?, plan.parse()?, region.parse()?);
        let receipt = orchestrator.create(request).await?;
        println!(
            "  create {tenant:<8} {plan:<10} {region:<8} -> {}",
            receipt.status.as_str()
        );
    }

    // (5) The generic workflows on the same executor.
    let cygnus: TenantId = "cygnus".parse()?;
    let input = serde_json::json!({ "service": "analytics", "tier": "enterprise" });
    let receipt = provisioner
        .provision(SERVICE, &cygnus, RequestId::new(), input)
        .await?;
    println!(
        "  provision service analytics (enterprise) for cygnus -> {}",
        receipt.status.as_str()
    );
    let input =
        serde_json::json!({ "service": "analytics", "type": "compute", "spec": { "cpu": 4 } });
    let receipt = provisioner
        .provision(RESOURCE, &cygnus, RequestId::new(), input)
        .await?;
    println!(
        "  provision resource compute (4 cpu) for cygnus's analytics -> {}",
        receipt.status.as_str()
    );
    let acme: TenantId = "acme".parse()?;
    let input = serde_json::json!({ "email": "ana@acme.example", "role": "member" });
    let receipt = provisioner
        .provision(USER, &acme, RequestId::new(), input)
        .await?;
    println!(
        "  provision user ana (member) for acme -> {}",
        receipt.status.as_str()
    );

    // (9) Life after day one: acme upgrades from free to premium, so its rows
    // (ana included) move from the shared database to one of its own:
    // copied, verified table by table, cut over in one write.
    let receipt = orchestrator
        .change_plan(&acme, "premium".parse()?, RequestId::new())
        .await?;
    let moved = orchestrator.events(&acme).await?;
    let detail = moved
        .last()
        .filter(|e| e.kind == provisioning_core::EventKind::TenantMoved)
        .map_or("not moved".to_owned(), |e| {
            format!(
                "{} {} -> {} {}, {} rows copied and verified",
                e.data["from"]["isolation"].as_str().unwrap_or("?"),
                e.data["from"]["shard"].as_str().unwrap_or("?"),
                e.data["to"]["isolation"].as_str().unwrap_or("?"),
                e.data["to"]["shard"].as_str().unwrap_or("?"),
                e.data["rows"]
            )
        });
    println!(
        "  change-plan acme free -> premium -> {}: {detail}",
        receipt.status.as_str()
    );

    // (8) Cleanup: suspension keeps everything; deletion archives storage,
    // drops the database and keeps a tombstone.
    let bolt: TenantId = "bolt".parse()?;
    orchestrator.suspend(&bolt, RequestId::new()).await?;
    println!("  suspend bolt      -> suspended");
    let echo: TenantId = "echo".parse()?;
    orchestrator
        .delete(&echo, RemovalMode::Archive, RequestId::new())
        .await?;
    println!("  delete echo (archive) -> deleted, tombstone kept");

    // (7) Rollback drill: a dedicated tenant whose seed step fails for good.
    let faults = Arc::new(StepFaults::new().fail("seed", FaultKind::Permanent));
    let faulty = self::orchestrator_with_faults(&dir, faults).await?;
    let request = TenantRequest::new("faulty".parse()?, "premium".parse()?, "eu-west".parse()?);
    let receipt = faulty.create(request).await?;
    let step = receipt.failure.as_ref().map_or("-", |f| f.step.as_str());
    println!(
        "  create faulty  premium eu-west (seed fails) -> {} at {step}: rolled back",
        receipt.status.as_str(),
    );

    print_tenants(&orchestrator).await?;
    print_timelines(&orchestrator).await?;
    print_rollback_evidence(&dir, &orchestrator).await?;
    Ok(())
}

async fn orchestrator_with_faults(
    dir: &Path,
    faults: Arc<StepFaults>,
) -> BoxResult<ProvisioningOrchestrator> {
    Ok(hybrid(dir, Release::Current, Some(faults))
        .await?
        .orchestrator)
}

#[allow(clippy::print_stdout)]
async fn print_tenants(orchestrator: &ProvisioningOrchestrator) -> BoxResult<()> {
    println!();
    println!(
        "{:<8} {:<10} {:<8} {:<10} {:<20} {:<10}",
        "TENANT", "PLAN", "REGION", "ISOLATION", "SHARD", "STATE"
    );
    for tenant in orchestrator.list_tenants(&TenantFilter::all()).await? {
        let (isolation, shard) = tenant
            .placement
            .as_ref()
            .map_or(("-", "-".to_owned()), |p| {
                (p.isolation.as_str(), p.shard.to_string())
            });
        println!(
            "{:<8} {:<10} {:<8} {:<10} {:<20} {:<10}",
            tenant.tenant_id.as_str(),
            tenant.plan.as_str(),
            tenant.region.as_str(),
            isolation,
            shard,
            tenant.state.as_str()
        );
    }
    Ok(())
}

#[allow(clippy::print_stdout)]
async fn print_timelines(orchestrator: &ProvisioningOrchestrator) -> BoxResult<()> {
    println!();
    println!("Event timelines (per tenant, gapless sequence numbers):");
    for tenant in orchestrator.list_tenants(&TenantFilter::all()).await? {
        let events = orchestrator.events(&tenant.tenant_id).await?;
        let line: Vec<String> = events
            .iter()
            .map(|e| format!("{}:{}", e.sequence, e.kind))
            .collect();
        println!("  {:<8} {}", tenant.tenant_id.as_str(), line.join("  "));
    }
    Ok(())
}

#[allow(clippy::print_stdout)]
async fn print_rollback_evidence(
    dir: &Path,
    orchestrator: &ProvisioningOrchestrator,
) -> BoxResult<()> {
    let paths = Paths::new(dir);
    let faulty = orchestrator.tenant(&"faulty".parse()?).await?;
    println!();
    println!("Rollback of faulty: state {}", faulty.state.as_str());
    if let Some(plan) = &faulty.placement {
        let db = paths
            .databases
            .join(plan.region.as_str())
            .join(plan.shard.as_str())
            .join("faulty.sqlite");
        let storage = paths
            .storage
            .join(plan.region.as_str())
            .join("tenants/faulty");
        println!(
            "  database {} : {}",
            db.display(),
            if db.exists() {
                "PRESENT (unexpected)"
            } else {
                "removed"
            }
        );
        println!(
            "  storage  {} : {}",
            storage.display(),
            if storage.exists() {
                "PRESENT (unexpected)"
            } else {
                "removed"
            }
        );
        debug_assert_eq!(plan.isolation, Isolation::Dedicated);
    }
    let request = faulty.request_id;
    let trail = orchestrator.audit_trail(request).await?;
    let steps: Vec<String> = trail
        .entries
        .iter()
        .filter_map(|e| {
            let step = e.step.as_deref()?;
            matches!(e.outcome, AuditOutcome::Failed | AuditOutcome::Compensated)
                .then(|| format!("{step} {}", e.outcome))
        })
        .collect();
    println!("  audit: {}", steps.join(", "));
    Ok(())
}
