//! (1)-(6): the SDK wired on embedded defaults under one data directory: the
//! SQLite catalog, the rule-based placement policy and a region-tagged shard directory,
//! SQLite schema managers for shared and dedicated tenants with the reference
//! workload, and local storage. With `--catalog` the catalog is on
//! PostgreSQL, and with a shard map of PostgreSQL URLs (`config --postgres`)
//! the tenants' databases are too.

use std::path::{Path, PathBuf};
use std::sync::Arc;

// (1) The SDK's four crates: the core (orchestrator, saga executor, traits),
// sharding (directory, resolvers, plan policy), sqlx (stores and schema
// managers) and storage (tenant folders on object_store).
use provisioning_core::{FaultInjector, ProvisioningOrchestrator, TenantStore};
use provisioning_sharding::{RendezvousResolver, RuleBasedPolicy, ShardDirectory};
use provisioning_sqlx::{
    PostgresSchemaManager, PostgresStore, Seed, SqliteSchemaManager, SqliteStore, TenantSchema,
};
use provisioning_storage::ObjectStoreInitializer;
use sqlx::migrate::Migrator;

/// (4) The reference workload, embedded: ten migrations and a seed per variant,
/// and the next release (`fleet/`: 0011, 0012) that `migrate-all` rolls out.
static DEDICATED: Migrator = sqlx::migrate!("../../workload/sqlite/migrations");
static SHARED: Migrator = sqlx::migrate!("../../workload/sqlite-shared/migrations");
static DEDICATED_FLEET: Migrator = sqlx::migrate!("../../workload/sqlite/fleet");
static SHARED_FLEET: Migrator = sqlx::migrate!("../../workload/sqlite-shared/fleet");
const DEDICATED_SEED: &str = include_str!("../../../workload/sqlite/seed.sql");
const SHARED_SEED: &str = include_str!("../../../workload/sqlite-shared/seed.sql");
/// The same workload for tenant databases on PostgreSQL.
static PG_DEDICATED: Migrator = sqlx::migrate!("../../workload/postgres/migrations");
static PG_SHARED: Migrator = sqlx::migrate!("../../workload/postgres-shared/migrations");
static PG_DEDICATED_FLEET: Migrator = sqlx::migrate!("../../workload/postgres/fleet");
static PG_SHARED_FLEET: Migrator = sqlx::migrate!("../../workload/postgres-shared/fleet");
const PG_DEDICATED_SEED: &str = include_str!("../../../workload/postgres/seed.sql");
const PG_SHARED_SEED: &str = include_str!("../../../workload/postgres-shared/seed.sql");

/// The shared workload's tables, parents first.
fn tenant_tables() -> impl Iterator<Item = &'static str> {
    include_str!("../../../workload/tenant-tables.txt").lines()
}

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
    /// The generic workflows (`provision`), on the orchestrator.
    pub(crate) provisioner: crate::workflows::Provisioner,
    #[cfg_attr(not(test), allow(dead_code))] // the workflow tests open tenant databases through it
    pub(crate) data: crate::workflows::TenantData,
    /// The shard map the resolver reads: a long-running server applies
    /// statuses operators set later (`drain`) to it.
    pub(crate) directory: Arc<ShardDirectory>,
    /// Whether the catalog is on PostgreSQL, shared with other processes
    /// (workers, servers): recovery there must respect leases.
    pub(crate) shared_catalog: bool,
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

/// Builds the orchestrator over `data_dir` for `release`.
pub(crate) async fn orchestrator(
    data_dir: &Path,
    release: Release,
) -> Result<ProvisioningOrchestrator, Box<dyn std::error::Error>> {
    Ok(hybrid(data_dir, release, None).await?.orchestrator)
}

/// Builds the orchestrator for a command that only reads (`list`, `status`,
/// `events`, `audit`, `fleet status`): as [`orchestrator`], but where the data
/// directory cannot be written (a read-only mount, a backup, another user's
/// files) it reads the catalog as it is instead of failing.
pub(crate) async fn reader(
    data_dir: &Path,
    release: Release,
) -> Result<ProvisioningOrchestrator, Box<dyn std::error::Error>> {
    match build(data_dir, release, None, Access::ReadWrite).await {
        Ok(hybrid) => Ok(hybrid.orchestrator),
        Err(writable)
            if not_writable(writable.as_ref()) && Paths::new(data_dir).catalog.is_file() =>
        {
            match build(data_dir, release, None, Access::ReadOnly).await {
                Ok(hybrid) => {
                    tracing::info!(error = %writable, "data directory not writable; reading the catalog as it is");
                    Ok(hybrid.orchestrator)
                }
                Err(read_only) => {
                    tracing::debug!(error = %read_only, "reading the catalog as it is failed too");
                    Err(writable)
                }
            }
        }
        Err(writable) => Err(writable),
    }
}

/// Whether `error` comes down to a file system that will not be written
/// (read-only, or not this user's): the one failure a reading command
/// answers by reading the catalog as it is.
fn not_writable(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
            )
        {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Builds the SDK over `data_dir` for `release`, with optional fault injection.
pub(crate) async fn hybrid(
    data_dir: &Path,
    release: Release,
    faults: Option<Arc<dyn FaultInjector>>,
) -> Result<Hybrid, Box<dyn std::error::Error>> {
    build(data_dir, release, faults, Access::ReadWrite).await
}

/// Whether the wiring may write under the data directory.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Creates what is missing and migrates the catalog.
    ReadWrite,
    /// Creates and migrates nothing: the catalog is read as it is.
    ReadOnly,
}

async fn build(
    data_dir: &Path,
    release: Release,
    faults: Option<Arc<dyn FaultInjector>>,
    access: Access,
) -> Result<Hybrid, Box<dyn std::error::Error>> {
    // (3) Plans and shards: free/standard shared, premium/regulated dedicated,
    // regulated strictly in its region; rendezvous hashing over region-tagged shards.
    // The policy and shard map come from `--config` or config/default.toml.
    let placement = crate::config::load()?;
    build_with(data_dir, release, faults, access, placement).await
}

/// Builds the SDK over `data_dir` with `placement` (not the process-wide
/// configuration: tests wire several at once).
pub(crate) async fn build_with(
    data_dir: &Path,
    release: Release,
    faults: Option<Arc<dyn FaultInjector>>,
    access: Access,
    placement: crate::config::PlacementConfig,
) -> Result<Hybrid, Box<dyn std::error::Error>> {
    let paths = Paths::new(data_dir);
    let catalog = crate::config::catalog(&placement)?;
    let shared_catalog = catalog.is_some();
    if access == Access::ReadWrite {
        std::fs::create_dir_all(data_dir)?;
    }
    // (2) The catalog: tenants, requests, journal and outbox in one SQLite
    // file, or on PostgreSQL with `--catalog postgres://...`.
    let store: Arc<dyn TenantStore> = match (catalog, access) {
        // A catalog database not made yet is made (a fresh server).
        (Some(url), Access::ReadWrite) => match PostgresStore::connect(url.expose()).await {
            Ok(store) => Arc::new(store),
            Err(error) if crate::postgres::ensure_database(url.expose()).await? => {
                tracing::debug!(%error, "catalog database made");
                Arc::new(PostgresStore::connect(url.expose()).await?)
            }
            Err(error) => return Err(error.into()),
        },
        (Some(url), Access::ReadOnly) => Arc::new(PostgresStore::connect(url.expose()).await?),
        (None, Access::ReadWrite) => Arc::new(SqliteStore::open(&paths.catalog).await?),
        (None, Access::ReadOnly) => Arc::new(SqliteStore::open_read_only(&paths.catalog).await?),
    };
    crate::config::apply_statuses(data_dir, &placement.directory)?;
    let directory = Arc::new(placement.directory);
    let plans = RuleBasedPolicy::new(placement.policy)?.with_directory_regions(&directory);
    let shards =
        RendezvousResolver::new(Arc::clone(&directory)).with_fallbacks(placement.fallbacks);
    // (4) Tenant databases: a file per dedicated tenant, one per shared shard,
    // where each shard's `connection` in the shard map says (paths relative
    // to the data directory); or, when the connections are PostgreSQL URLs,
    // a database or schema per dedicated tenant and rows in a shared
    // database. The placement records where when a tenant is placed, and
    // `status` shows it.
    let data = tenant_data(data_dir, release, &directory, access).await?;
    // (6) Storage: tenants/{id}/uploads and exports, on local disk, one root
    // per region of the shard map (a region without a store could place
    // tenants but never hold their files).
    let mut storage = ObjectStoreInitializer::builder().layout(["uploads", "exports"]);
    for region in directory.regions() {
        storage = match access {
            Access::ReadWrite => storage.with_local(region.clone(), &paths.storage),
            // Reading commands never touch tenants' files, and a read-only
            // directory may lack a region's folder that would be made here.
            Access::ReadOnly => storage.with_in_memory(region.clone()),
        };
    }
    let storage = Arc::new(storage.build()?);
    let mut builder = ProvisioningOrchestrator::builder()
        .store(store)
        .placement_policy(Arc::new(plans))
        .shard_resolver(Arc::new(shards))
        .schema_manager(data.manager())
        .storage(storage.clone());
    // (5) The generic workflows, on the same executor: service, user and
    // resource (databases and storage in the tenant's storage, compute
    // allocations in its database, within the quotas of the config).
    let resources = crate::workflows::Resources {
        storage,
        quotas: placement.quotas.clone(),
        scratch: data_dir.join(".scratch"),
    };
    builder = crate::workflows::register(builder, &data, &resources)?;
    if let Some(faults) = faults {
        builder = builder.fault_injector(faults);
    }
    let orchestrator = builder.build()?;
    Ok(Hybrid {
        provisioner: crate::workflows::Provisioner {
            orchestrator: orchestrator.clone(),
            data: data.clone(),
            quotas: placement.quotas,
        },
        orchestrator,
        data,
        directory,
        shared_catalog,
    })
}

/// One variant of the workload at `release`: its migrations and its seed.
fn workload<C>(release: Release, base: &Migrator, fleet: &Migrator, seed: &str) -> TenantSchema<C> {
    TenantSchema::new(release.migrator(base, fleet)).seed(Seed::sql("workload-seed", 1, seed))
}

/// The schema manager for the shard map's backend: every shard's
/// `connection` a SQLite path, or every one a PostgreSQL URL.
async fn tenant_data(
    data_dir: &Path,
    release: Release,
    directory: &ShardDirectory,
    access: Access,
) -> Result<crate::workflows::TenantData, Box<dyn std::error::Error>> {
    use crate::workflows::TenantData;
    let connections: Vec<(provisioning_core::ShardId, String)> = directory.connections().collect();
    let on_postgres = crate::postgres::is_url;
    let postgres = connections
        .iter()
        .filter(|(_, url)| on_postgres(url))
        .count();
    if postgres == 0 {
        let manager = SqliteSchemaManager::builder()
            .root(data_dir)
            .shards(connections)
            .dedicated(workload(
                release,
                &DEDICATED,
                &DEDICATED_FLEET,
                DEDICATED_SEED,
            ))
            .shared(
                workload(release, &SHARED, &SHARED_FLEET, SHARED_SEED)
                    .tenant_tables(tenant_tables()),
            )
            .build()?;
        return Ok(TenantData::Sqlite(Arc::new(manager)));
    }
    if postgres < connections.len() {
        let named = |pg: bool| {
            connections
                .iter()
                .find(|(_, url)| on_postgres(url) == pg)
                .map(|(shard, _)| shard.to_string())
                .unwrap_or_default()
        };
        return Err(format!(
            "invalid shards: shard {}'s connection is a PostgreSQL URL and shard {}'s a \
             SQLite path; every shard's connection must be on one backend",
            named(true),
            named(false)
        )
        .into());
    }
    if access == Access::ReadWrite {
        // Each server database once, though several shards may share it:
        // an error names the first shard of it.
        let mut databases = std::collections::BTreeMap::new();
        for shard in directory.iter() {
            let region = shard.region().as_str();
            let connection = shard.connection().expose();
            if let Some(url) = crate::postgres::shard_database(shard.id(), region, connection) {
                databases.entry(url).or_insert_with(|| shard.id().clone());
            }
        }
        for (url, shard) in databases {
            if let Err(e) = crate::postgres::ensure_database(&url).await {
                return Err(format!("shard {shard}: {e}").into());
            }
        }
    }
    let manager = PostgresSchemaManager::builder()
        .shards(connections)
        .dedicated(workload(
            release,
            &PG_DEDICATED,
            &PG_DEDICATED_FLEET,
            PG_DEDICATED_SEED,
        ))
        .shared(
            workload(release, &PG_SHARED, &PG_SHARED_FLEET, PG_SHARED_SEED)
                .tenant_tables(tenant_tables()),
        )
        .build()?;
    Ok(TenantData::Postgres(Arc::new(manager)))
}
