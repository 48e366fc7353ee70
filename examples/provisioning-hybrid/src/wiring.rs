//! (1)-(6): the SDK wired on embedded defaults under one data directory: the
//! SQLite catalog, the policy plan builder and a region-tagged shard directory,
//! SQLite schema managers for shared and dedicated tenants with the reference
//! workload, and local storage.

use std::path::{Path, PathBuf};
use std::sync::Arc;

// (1) The SDK's four crates: the core (orchestrator, saga executor, traits),
// sharding (directory, resolvers, plan policy), sqlx (stores and schema
// managers) and storage (tenant folders on object_store).
use provisioning_core::{FaultInjector, ProvisioningOrchestrator};
use provisioning_sharding::{
    PlacementPolicy, PolicyPlanBuilder, RendezvousResolver, ShardDirectory,
};
use provisioning_sqlx::{Seed, SqliteSchemaManager, SqliteStore, TenantSchema};
use provisioning_storage::ObjectStoreInitializer;
use sqlx::migrate::Migrator;

/// The built-in shard map: two regions, each with a shared shard and a
/// dedicated pool.
pub(crate) const SHARDS: &str = r#"
[[shards]]
id = "eu-west-shared-1"
region = "eu-west"
capacity = 10000
connection = "sqlite:databases/eu-west/eu-west-shared-1/_shared.sqlite"

[[shards]]
id = "eu-west-dedicated-1"
region = "eu-west"
pool = "dedicated"
capacity = 500
connection = "sqlite:databases/eu-west/eu-west-dedicated-1/{tenant}.sqlite"

[[shards]]
id = "us-east-shared-1"
region = "us-east"
capacity = 10000
connection = "sqlite:databases/us-east/us-east-shared-1/_shared.sqlite"

[[shards]]
id = "us-east-dedicated-1"
region = "us-east"
pool = "dedicated"
capacity = 500
connection = "sqlite:databases/us-east/us-east-dedicated-1/{tenant}.sqlite"
"#;

/// (4) The reference workload, embedded: ten migrations and a seed per variant,
/// and the next release (`fleet/`: 0011, 0012) that `migrate-all` rolls out.
static DEDICATED: Migrator = sqlx::migrate!("workload/sqlite/migrations");
static SHARED: Migrator = sqlx::migrate!("workload/sqlite-shared/migrations");
static DEDICATED_FLEET: Migrator = sqlx::migrate!("workload/sqlite/fleet");
static SHARED_FLEET: Migrator = sqlx::migrate!("workload/sqlite-shared/fleet");
const DEDICATED_SEED: &str = include_str!("../workload/sqlite/seed.sql");
const SHARED_SEED: &str = include_str!("../workload/sqlite-shared/seed.sql");

/// The shared workload's tables, parents first.
const TENANT_TABLES: [&str; 9] = [
    "roles",
    "users",
    "user_roles",
    "projects",
    "tasks",
    "comments",
    "attachments",
    "settings",
    "audit_log",
];

/// Which schema release this binary provisions and migrates to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Release {
    /// The ten base migrations only: what an older build shipped.
    Base,
    /// The base migrations and the fleet release (0011, 0012).
    Current,
}

impl Release {
    fn migrator(self, base: &Migrator, fleet: &Migrator) -> Migrator {
        let mut all: Vec<_> = base.iter().cloned().collect();
        if self == Release::Current {
            all.extend(fleet.iter().cloned());
        }
        Migrator::with_migrations(all)
    }
}

/// The wired SDK: the orchestrator, and the schema manager for fleet work.
pub(crate) struct Hybrid {
    pub(crate) orchestrator: ProvisioningOrchestrator,
    pub(crate) schema: Arc<SqliteSchemaManager>,
}

/// Where everything lives under the data directory.
pub(crate) struct Paths {
    pub(crate) catalog: PathBuf,
    pub(crate) databases: PathBuf,
    pub(crate) storage: PathBuf,
}

impl Paths {
    pub(crate) fn new(data_dir: &Path) -> Self {
        Paths {
            catalog: data_dir.join("catalog.sqlite"),
            databases: data_dir.join("databases"),
            storage: data_dir.join("storage"),
        }
    }
}

/// Builds the orchestrator over `data_dir`, with optional fault injection.
pub(crate) async fn orchestrator(
    data_dir: &Path,
    faults: Option<Arc<dyn FaultInjector>>,
) -> Result<ProvisioningOrchestrator, Box<dyn std::error::Error>> {
    Ok(hybrid(data_dir, Release::Current, faults)
        .await?
        .orchestrator)
}

/// Builds the SDK over `data_dir` for `release`, with optional fault injection.
pub(crate) async fn hybrid(
    data_dir: &Path,
    release: Release,
    faults: Option<Arc<dyn FaultInjector>>,
) -> Result<Hybrid, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(data_dir)?;
    let paths = Paths::new(data_dir);
    // (2) The catalog: tenants, requests, journal and outbox in one SQLite file.
    let store = Arc::new(SqliteStore::open(&paths.catalog).await?);
    // (3) Plans and shards: free/standard shared, premium/regulated dedicated,
    // regulated strictly in its region; rendezvous hashing over region-tagged shards.
    let directory = Arc::new(ShardDirectory::from_toml_str(SHARDS)?);
    let plans =
        PolicyPlanBuilder::new(PlacementPolicy::default())?.with_directory_regions(&directory);
    let shards = RendezvousResolver::new(directory);
    // (4) Tenant databases: a file per dedicated tenant, one per shared shard.
    let schema =
        Arc::new(
            SqliteSchemaManager::builder()
                .root(&paths.databases)
                .dedicated(
                    TenantSchema::new(release.migrator(&DEDICATED, &DEDICATED_FLEET))
                        .seed(Seed::sql("workload-seed", 1, DEDICATED_SEED)),
                )
                .shared(
                    TenantSchema::new(release.migrator(&SHARED, &SHARED_FLEET))
                        .seed(Seed::sql("workload-seed", 1, SHARED_SEED))
                        .tenant_tables(TENANT_TABLES),
                )
                .build()?,
        );
    // (6) Storage: tenants/{id}/uploads and exports, per region, on local disk.
    let storage = ObjectStoreInitializer::builder()
        .with_local("eu-west".parse()?, &paths.storage)
        .with_local("us-east".parse()?, &paths.storage)
        .layout(["uploads", "exports"])
        .build()?;
    let mut builder = ProvisioningOrchestrator::builder()
        .store(store)
        .plan_builder(Arc::new(plans))
        .shard_resolver(Arc::new(shards))
        .schema_manager(schema.clone())
        .storage(Arc::new(storage));
    // (5) The generic workflows, on the same executor: service and user.
    builder = crate::workflows::register(builder, &schema)?;
    if let Some(faults) = faults {
        builder = builder.fault_injector(faults);
    }
    Ok(Hybrid {
        orchestrator: builder.build()?,
        schema,
    })
}
