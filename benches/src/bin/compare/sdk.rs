//! The SDK side of the comparison: the orchestrator wired as a user would
//! wire it (SQLite or PostgreSQL catalog, rule-based placement policy, rendezvous
//! shards, schema managers with the reference workload, local storage), and a
//! create call per tenant that fails loudly unless the tenant ends Active.

use std::path::Path;
use std::sync::Arc;

use provisioning_core::{
    ProvisioningOrchestrator, RequestId, RequestStatus, StorageInitializer, TenantRequest,
};
use provisioning_sharding::{PlacementRules, RendezvousResolver, RuleBasedPolicy, ShardDirectory};
use provisioning_sqlx::{
    PostgresDedicatedMode, PostgresSchemaManager, PostgresStore, SqliteSchemaManager, SqliteStore,
};
use provisioning_storage::ObjectStoreInitializer;

use crate::runner::{Result, check};
use crate::workload;

/// The region every benchmark tenant lives in.
pub(crate) const REGION: &str = "eu-west";
/// The shard of shared tenants.
pub(crate) const SHARED_SHARD: &str = "eu-west-shared-1";
/// The shard of dedicated tenants.
pub(crate) const DEDICATED_SHARD: &str = "eu-west-dedicated-1";

/// One shared and one dedicated shard in one region, with room for any run.
const SHARDS: &str = r#"
[[shards]]
id = "eu-west-shared-1"
region = "eu-west"
capacity = 1000000
connection = "sqlite:databases/eu-west/eu-west-shared-1/_shared.sqlite"

[[shards]]
id = "eu-west-dedicated-1"
region = "eu-west"
pool = "dedicated"
capacity = 1000000
connection = "sqlite:databases/eu-west/eu-west-dedicated-1/{tenant}.sqlite"
"#;

/// The plan that the default policy places in a shared database.
const SHARED_PLAN: &str = "free";
/// The plan that the default policy gives a dedicated database.
const DEDICATED_PLAN: &str = "premium";

/// Local storage for tenants in [`REGION`] under `root`: the marker object
/// only (no layout folders), the same one file the floor writes.
fn storage(root: &Path) -> Result<Arc<dyn StorageInitializer>> {
    Ok(Arc::new(
        ObjectStoreInitializer::builder()
            .with_local(REGION.parse()?, root)
            .build()?,
    ))
}

fn placement() -> Result<(RuleBasedPolicy, RendezvousResolver)> {
    let directory = Arc::new(ShardDirectory::from_toml_str(SHARDS)?);
    let plans = RuleBasedPolicy::new(PlacementRules::default())?.with_directory_regions(&directory);
    Ok((plans, RendezvousResolver::new(directory)))
}

/// Creates one tenant and checks that its request succeeded.
async fn create(
    orchestrator: &ProvisioningOrchestrator,
    tenant: &str,
    dedicated: bool,
) -> Result<()> {
    let plan = if dedicated {
        DEDICATED_PLAN
    } else {
        SHARED_PLAN
    };
    let request = TenantRequest::new(tenant.parse()?, plan.parse()?, REGION.parse()?);
    let receipt = orchestrator.create(request).await?;
    check(receipt.status == RequestStatus::Succeeded, || {
        format!(
            "tenant {tenant}: request {:?} ({:?})",
            receipt.status, receipt.failure
        )
    })
}

/// The SDK on embedded defaults under one directory: the SQLite catalog
/// (`catalog.sqlite`), tenant databases under `databases/`, markers under
/// `storage/`.
#[derive(Clone)]
pub(crate) struct SqliteSdk {
    orchestrator: ProvisioningOrchestrator,
    store: Arc<SqliteStore>,
}

impl SqliteSdk {
    /// Wires the SDK in `dir` and warms it up (catalog migrated; the shared
    /// database created and migrated through the schema manager), so a
    /// measurement times the per-tenant work only, as the floor's does.
    pub(crate) async fn open(dir: &Path) -> Result<Self> {
        let store = Arc::new(SqliteStore::open(dir.join("catalog.sqlite")).await?);
        let (plans, shards) = placement()?;
        let schema = Arc::new(
            SqliteSchemaManager::builder()
                .root(dir.join("databases"))
                .shared(workload::shared_schema())
                .dedicated(workload::dedicated_schema())
                .build()?,
        );
        warm_up_shared(&schema).await?;
        let orchestrator = ProvisioningOrchestrator::builder()
            .store(store.clone())
            .placement_policy(Arc::new(plans))
            .shard_resolver(Arc::new(shards))
            .schema_manager(schema)
            .storage(storage(&dir.join("storage"))?)
            .build()?;
        Ok(SqliteSdk {
            orchestrator,
            store,
        })
    }

    /// Creates `tenant`, shared or dedicated.
    pub(crate) async fn create(&self, tenant: &str, dedicated: bool) -> Result<()> {
        create(&self.orchestrator, tenant, dedicated).await
    }

    /// Upgrades shared `tenant` to the dedicated plan (a move) and checks
    /// that it succeeded.
    pub(crate) async fn upgrade(&self, tenant: &str) -> Result<()> {
        let receipt = self
            .orchestrator
            .change_plan(&tenant.parse()?, DEDICATED_PLAN.parse()?, RequestId::new())
            .await?;
        check(receipt.status == RequestStatus::Succeeded, || {
            format!(
                "move of {tenant}: {:?} ({:?})",
                receipt.status, receipt.failure
            )
        })
    }

    /// Per move run in the journal, the held-write window in ms (see
    /// [`held_write_windows_of`]).
    pub(crate) async fn held_write_windows(&self) -> Result<Vec<f64>> {
        let rows: Vec<String> = sqlx::query_scalar("SELECT record FROM journal")
            .fetch_all(self.store.pool())
            .await?;
        held_write_windows_of(rows)
    }

    /// How many tenants the catalog holds Active with a succeeded request.
    pub(crate) async fn active_tenants(&self) -> Result<usize> {
        let active: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM tenants t JOIN requests r ON r.tenant_id = t.tenant_id \
             WHERE t.state = 'active' AND r.status = 'succeeded'",
        )
        .fetch_one(self.store.pool())
        .await?;
        Ok(usize::try_from(active)?)
    }

    /// Per step of the create workflow: runs, mean duration of the completed
    /// attempt, and attempts that failed, from the journal: where the SDK's
    /// time goes between journal writes.
    pub(crate) async fn step_profile(&self) -> Result<Vec<StepProfile>> {
        let rows: Vec<String> = sqlx::query_scalar("SELECT record FROM journal")
            .fetch_all(self.store.pool())
            .await?;
        step_profile(rows)
    }

    /// Closes the catalog's connections (checkpointing its WAL).
    pub(crate) async fn close(&self) {
        self.store.close().await;
    }
}

/// Creates and migrates the shared shard's database before timing starts.
async fn warm_up_shared(schema: &SqliteSchemaManager) -> Result<()> {
    use provisioning_core::{
        Isolation, Placement, PlacementDecision, Residency, ShardChoice, TenantSchemaManager,
    };
    let plan = Placement::new(
        "warm-up".parse()?,
        PlacementDecision::new(
            SHARED_PLAN.parse()?,
            Isolation::Shared,
            REGION.parse()?,
            Residency::Flexible,
            "warm-up",
        ),
        ShardChoice::new(SHARED_SHARD.parse()?, REGION.parse()?, "warm-up"),
    );
    schema.provision(&plan).await?;
    schema.migrate(&plan).await?;
    Ok(())
}

/// The SDK with PostgreSQL everywhere: the catalog in schema `store_schema`
/// of the server, each tenant in a schema `{prefix}{tenant}` there.
#[derive(Clone)]
pub(crate) struct PgSdk {
    orchestrator: ProvisioningOrchestrator,
    store: Arc<PostgresStore>,
    storage: Arc<dyn StorageInitializer>,
}

impl PgSdk {
    /// Connects the catalog (creating its schema) and wires the SDK; tenant
    /// markers go under `storage`.
    pub(crate) async fn open(
        url: &str,
        store_schema: &str,
        prefix: &str,
        storage_root: &Path,
    ) -> Result<Self> {
        let store = Arc::new(PostgresStore::connect_to_schema(url, store_schema).await?);
        let (plans, shards) = placement()?;
        let schema = Arc::new(pg_manager(url, prefix, false)?);
        let storage = storage(storage_root)?;
        let orchestrator = ProvisioningOrchestrator::builder()
            .store(store.clone())
            .placement_policy(Arc::new(plans))
            .shard_resolver(Arc::new(shards))
            .schema_manager(schema)
            .storage(storage.clone())
            .build()?;
        Ok(PgSdk {
            orchestrator,
            store,
            storage,
        })
    }

    /// Creates dedicated tenant `tenant` (a schema of its own).
    pub(crate) async fn create(&self, tenant: &str) -> Result<()> {
        create(&self.orchestrator, tenant, true).await
    }

    /// How many tenants the catalog holds Active with a succeeded request.
    pub(crate) async fn active_tenants(&self) -> Result<usize> {
        let schema = self.store.schema();
        let active: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM \"{schema}\".tenants t JOIN \"{schema}\".requests r \
             ON r.tenant_id = t.tenant_id WHERE t.state = 'active' AND r.status = 'succeeded'"
        )))
        .fetch_one(self.store.pool())
        .await?;
        Ok(usize::try_from(active)?)
    }

    /// Rolls the fleet release out to every tenant as the SDK does it: a
    /// durable roll-out in this catalog (`roll_out`), by an orchestrator
    /// whose schema manager (prefix `prefix`) migrates to that release.
    pub(crate) async fn roll_out(
        &self,
        url: &str,
        prefix: &str,
        concurrency: usize,
    ) -> Result<provisioning_core::RolloutReport> {
        Ok(self
            .released(url, prefix)?
            .roll_out(
                provisioning_core::RolloutOptions::new().concurrency(concurrency),
                |_| {},
            )
            .await?)
    }

    /// The drift check of every tenant's schema against the fleet release.
    pub(crate) async fn drift(
        &self,
        url: &str,
        prefix: &str,
        concurrency: usize,
    ) -> Result<provisioning_core::DriftReport> {
        Ok(self
            .released(url, prefix)?
            .check_drift(provisioning_core::DriftOptions::new().concurrency(concurrency))
            .await?)
    }

    /// An orchestrator on this catalog whose schema manager (prefix
    /// `prefix`) migrates to the fleet release.
    fn released(&self, url: &str, prefix: &str) -> Result<ProvisioningOrchestrator> {
        let (plans, shards) = placement()?;
        Ok(ProvisioningOrchestrator::builder()
            .store(self.store.clone())
            .placement_policy(Arc::new(plans))
            .shard_resolver(Arc::new(shards))
            .schema_manager(Arc::new(pg_manager(url, prefix, true)?))
            .storage(self.storage.clone())
            .build()?)
    }

    /// As [`SqliteSdk::step_profile`].
    pub(crate) async fn step_profile(&self) -> Result<Vec<StepProfile>> {
        let schema = self.store.schema();
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT record::text FROM \"{schema}\".journal"
        )))
        .fetch_all(self.store.pool())
        .await?;
        step_profile(rows)
    }

    /// Drops the catalog's schema and closes its pool.
    pub(crate) async fn drop_catalog(&self) -> Result<()> {
        let schema = self.store.schema();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
        )))
        .execute(self.store.pool())
        .await?;
        self.store.pool().close().await;
        Ok(())
    }
}

/// A schema-per-tenant manager on the server at `url`, for [`DEDICATED_SHARD`],
/// naming schemas `{prefix}{tenant}`; with `fleet`, its migrations include
/// the next release.
pub(crate) fn pg_manager(url: &str, prefix: &str, fleet: bool) -> Result<PostgresSchemaManager> {
    Ok(PostgresSchemaManager::builder()
        .shard(DEDICATED_SHARD.parse()?, url)
        .dedicated(workload::pg_schema(fleet))
        .dedicated_mode(PostgresDedicatedMode::Schema)
        .name_prefix(prefix)
        .build()?)
}

/// Per move run among journal records (as JSON text), the held-write
/// window in ms: from the end of `hold-writes` to the end of `cut-over`.
pub(crate) fn held_write_windows_of(rows: Vec<String>) -> Result<Vec<f64>> {
    use provisioning_core::orchestrator::move_steps;
    use provisioning_core::{JournalEntry, JournalRecord};
    use std::collections::HashMap;
    let mut runs: HashMap<_, (Option<Stamp>, Option<Stamp>)> = HashMap::new();
    for row in rows {
        let record: JournalRecord = serde_json::from_str(&row)?;
        if let JournalEntry::StepCompleted { step, .. } = &record.entry {
            let slot = runs.entry(record.run_id).or_default();
            if step == move_steps::HOLD {
                slot.0 = Some(record.at);
            } else if step == move_steps::CUT_OVER {
                slot.1 = Some(record.at);
            }
        }
    }
    Ok(runs
        .into_values()
        .filter_map(|(held, cut)| Some((cut? - held?).num_microseconds()? as f64 / 1000.0))
        .collect())
}

/// When a journal record was written.
type Stamp = chrono::DateTime<chrono::Utc>;

/// Per step: its name, completed runs, mean duration of the completed
/// attempt in ms, and failed attempts.
pub(crate) type StepProfile = (String, usize, f64, usize);

/// Prints `profile` when `COMPARE_STEP_PROFILE` is set.
pub(crate) async fn print_steps(
    profile: impl Future<Output = Result<Vec<StepProfile>>>,
) -> Result<()> {
    if std::env::var_os("COMPARE_STEP_PROFILE").is_none() {
        return Ok(());
    }
    for (step, runs, mean_ms, failed) in profile.await? {
        eprintln!("  step {step:<20} {runs:>6} runs  {mean_ms:>8.3} ms  {failed} failed attempts");
    }
    Ok(())
}

/// Aggregates journal records (as JSON text) into a [`StepProfile`] per step.
pub(crate) fn step_profile(rows: Vec<String>) -> Result<Vec<StepProfile>> {
    let mut steps: Vec<StepProfile> = Vec::new();
    for row in rows {
        let record: provisioning_core::JournalRecord = serde_json::from_str(&row)?;
        let (step, ms, failed) = match record.entry {
            provisioning_core::JournalEntry::StepCompleted {
                step, duration_ms, ..
            } => (step, Some(duration_ms), 0),
            provisioning_core::JournalEntry::AttemptFailed { step, .. } => (step, None, 1),
            _ => continue,
        };
        let i = match steps.iter().position(|s| s.0 == step) {
            Some(i) => i,
            None => {
                steps.push((step, 0, 0.0, 0));
                steps.len() - 1
            }
        };
        if let Some(ms) = ms {
            steps[i].1 += 1;
            steps[i].2 += ms as f64;
        }
        steps[i].3 += failed;
    }
    for s in &mut steps {
        s.2 /= s.1.max(1) as f64;
    }
    Ok(steps)
}
