//! [`TenantSchemaManager`]: a tenant's database, migrations and seeds.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::fleet::{Drift, Repair};
use crate::model::{Placement, TenantId};

/// One migration, as a dry run lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MigrationInfo {
    /// Its version (`1` for `0001_roles.sql`).
    pub version: i64,
    /// Its description (`roles`).
    pub description: String,
}

impl MigrationInfo {
    /// A migration with the given version and description.
    pub fn new(version: i64, description: impl Into<String>) -> Self {
        MigrationInfo {
            version,
            description: description.into(),
        }
    }
}

/// One seed, as a dry run lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SeedInfo {
    /// Its name (`default-roles`).
    pub name: String,
    /// Its version.
    pub version: i64,
}

impl SeedInfo {
    /// A seed with the given name and version.
    pub fn new(name: impl Into<String>, version: i64) -> Self {
        SeedInfo {
            name: name.into(),
            version,
        }
    }
}

/// What [`TenantSchemaManager::upgrade`] did to one database: the
/// migrations it applied and the seeds it applied (to any of its tenants).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Upgrade {
    /// The migrations applied, in order (none when it was up to date).
    pub applied: Vec<MigrationInfo>,
    /// The seeds applied, tenant after tenant.
    pub seeded: Vec<SeedInfo>,
}

impl Upgrade {
    /// An upgrade that applied `applied` and `seeded`.
    pub fn new(applied: Vec<MigrationInfo>, seeded: Vec<SeedInfo>) -> Self {
        Upgrade { applied, seeded }
    }
}

/// What provisioning a tenant's schema would do: the result of a dry run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SchemaPreview {
    /// Where the tenant's data lives (a file path, or a database or schema name;
    /// never a password).
    pub location: String,
    /// Whether that database or schema exists now.
    pub exists: bool,
    /// Whether provisioning would create it.
    pub will_create: bool,
    /// Migrations not yet applied, in order.
    pub pending_migrations: Vec<MigrationInfo>,
    /// Seeds not yet applied, in order.
    pub pending_seeds: Vec<SeedInfo>,
}

impl SchemaPreview {
    /// A preview with the given parts.
    pub fn new(
        location: impl Into<String>,
        exists: bool,
        will_create: bool,
        pending_migrations: Vec<MigrationInfo>,
        pending_seeds: Vec<SeedInfo>,
    ) -> Self {
        SchemaPreview {
            location: location.into(),
            exists,
            will_create,
            pending_migrations,
            pending_seeds,
        }
    }
}

/// What [`TenantSchemaManager::provision`] found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatabaseOutcome {
    /// The manager created the database (now or in an earlier, interrupted attempt).
    Created,
    /// The database existed beforehand (made by a DBA) and was adopted: rollback
    /// must not drop it.
    Adopted,
    /// Nothing to create: the tenant lives in a shared database.
    Shared,
}

/// One table of a tenant's data compared between the source of a move and
/// its target: row counts and checksums over the columns both sides have
/// (`tenant_id` aside, which a shared database has and a dedicated one may not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TableComparison {
    /// The table.
    pub table: String,
    /// The tenant's rows in it at the source.
    pub source_rows: u64,
    /// The tenant's rows in it at the target.
    pub target_rows: u64,
    /// A checksum of the source's rows (hex).
    pub source_checksum: String,
    /// A checksum of the target's rows (hex).
    pub target_checksum: String,
}

impl TableComparison {
    /// A comparison with the given parts.
    pub fn new(
        table: impl Into<String>,
        (source_rows, source_checksum): (u64, String),
        (target_rows, target_checksum): (u64, String),
    ) -> Self {
        TableComparison {
            table: table.into(),
            source_rows,
            target_rows,
            source_checksum,
            target_checksum,
        }
    }

    /// Whether both sides hold the same rows.
    pub fn matches(&self) -> bool {
        self.source_rows == self.target_rows && self.source_checksum == self.target_checksum
    }
}

/// Why a tenant's schema is being removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// Rolling back a failed provisioning: remove what this provisioning made,
    /// and never a database that was [`DatabaseOutcome::Adopted`].
    Compensation,
    /// Deleting the tenant: remove its database or its rows.
    Delete,
}

/// Creates, migrates, seeds and drops a tenant's database or schema.
///
/// Every method may be called again after a crash or a retry, so each must be
/// idempotent: `provision` on an existing database reports it, `migrate` applies
/// only pending migrations, `seed` only missing seeds, `drop_tenant` on a tenant
/// already gone succeeds. `preview` must not change anything.
///
/// ```
/// use std::collections::HashSet;
/// use std::sync::Mutex;
///
/// use async_trait::async_trait;
/// use provisioning_core::{
///     DatabaseOutcome, DropReason, MigrationInfo, Result, SchemaPreview, SeedInfo, Placement,
///     TenantSchemaManager,
/// };
///
/// /// Keeps "databases" as names in a set: enough to show the contract.
/// #[derive(Default)]
/// struct InMemory(Mutex<HashSet<String>>);
///
/// #[async_trait]
/// impl TenantSchemaManager for InMemory {
///     async fn preview(&self, placement: &Placement) -> Result<SchemaPreview> {
///         let exists = self.0.lock().unwrap().contains(placement.tenant_id.as_str());
///         Ok(SchemaPreview::new(placement.tenant_id.as_str(), exists, !exists, vec![], vec![]))
///     }
///     async fn provision(&self, placement: &Placement) -> Result<DatabaseOutcome> {
///         self.0.lock().unwrap().insert(placement.tenant_id.to_string());
///         Ok(DatabaseOutcome::Created)
///     }
///     async fn migrate(&self, _: &Placement) -> Result<Vec<MigrationInfo>> { Ok(vec![]) }
///     async fn seed(&self, _: &Placement) -> Result<Vec<SeedInfo>> { Ok(vec![]) }
///     async fn drop_tenant(&self, placement: &Placement, _: DropReason) -> Result<()> {
///         self.0.lock().unwrap().remove(placement.tenant_id.as_str());
///         Ok(())
///     }
/// }
///
/// # use provisioning_core::*;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// # let placement = Placement::new("acme".parse()?, PlacementDecision::new("premium".parse()?,
/// #     Isolation::Dedicated, "eu-west".parse()?, Residency::Strict, "premium"),
/// #     ShardChoice::new("eu-1".parse()?, "eu-west".parse()?, "only shard"));
/// let manager = InMemory::default();
/// assert!(manager.preview(&placement).await?.will_create);
/// manager.provision(&placement).await?;
/// manager.provision(&placement).await?; // idempotent
/// assert!(manager.preview(&placement).await?.exists);
/// manager.drop_tenant(&placement, DropReason::Delete).await?;
/// assert!(!manager.preview(&placement).await?.exists);
/// # Ok::<(), Error>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait TenantSchemaManager: Send + Sync {
    /// The dry run: what [`provision`](Self::provision), [`migrate`](Self::migrate)
    /// and [`seed`](Self::seed) would do. Creates nothing.
    async fn preview(&self, placement: &Placement) -> Result<SchemaPreview>;

    /// Where `placement`'s data lives under the shard map this manager was
    /// built from (a file path, a URL with its password redacted), for the
    /// place step to record in [`Placement::database`]. From then on the
    /// manager opens what the placement records, so that a later change of
    /// the map moves no existing tenant. Creates nothing. The default
    /// records no location.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) on `connection`
    /// when the shard's connection cannot hold this tenant (a dedicated
    /// tenant on a template without `{tenant}`, say).
    fn locate(&self, placement: &Placement) -> Result<Option<String>> {
        let _ = placement;
        Ok(None)
    }

    /// The release this manager migrates tenants to: a name that changes
    /// whenever its migrations or seeds do (the SDK's managers: the last
    /// migration's version and a digest of every checksum). A fleet
    /// roll-out is recorded under it. `None` by default: a manager of your
    /// own rolls out with an explicit release name.
    fn release(&self) -> Option<String> {
        None
    }

    /// Creates the tenant's database or schema when dedicated, or adopts one that
    /// exists; checks a shared one is reachable.
    async fn provision(&self, placement: &Placement) -> Result<DatabaseOutcome>;

    /// Applies pending migrations, resuming where an interrupted run stopped, and
    /// returns the ones it applied (none when up to date).
    async fn migrate(&self, placement: &Placement) -> Result<Vec<MigrationInfo>>;

    /// Applies the tenant's missing seeds and returns the ones it applied.
    async fn seed(&self, placement: &Placement) -> Result<Vec<SeedInfo>>;

    /// Brings each database of `databases` to this manager's release: its
    /// pending migrations, then the missing seeds of each of its tenants
    /// (the placement's tenant for a dedicated database; every tenant of
    /// a shared one); one outcome per database, in order. What a fleet
    /// roll-out runs.
    ///
    /// One database failing leaves the others' outcomes alone. The default
    /// upgrades them one after another with [`migrate`](Self::migrate) and
    /// [`seed`](Self::seed); the SDK's PostgreSQL manager upgrades the
    /// schemas of one server database together, in one transaction.
    ///
    /// ```
    /// # use async_trait::async_trait;
    /// # use provisioning_core::*;
    /// struct Db;
    /// #[async_trait]
    /// impl TenantSchemaManager for Db {
    ///     async fn preview(&self, _: &Placement) -> Result<SchemaPreview> { Ok(SchemaPreview::new("mem", true, false, vec![], vec![])) }
    ///     async fn provision(&self, _: &Placement) -> Result<DatabaseOutcome> { Ok(DatabaseOutcome::Created) }
    ///     async fn migrate(&self, _: &Placement) -> Result<Vec<MigrationInfo>> {
    ///         Ok(vec![MigrationInfo::new(11, "task estimate")])
    ///     }
    ///     async fn seed(&self, p: &Placement) -> Result<Vec<SeedInfo>> {
    ///         Ok(vec![SeedInfo::new(format!("roles-{}", p.tenant_id), 1)])
    ///     }
    ///     async fn drop_tenant(&self, _: &Placement, _: DropReason) -> Result<()> { Ok(()) }
    /// }
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let region: Region = "eu-west".parse()?;
    /// let decision = PlacementDecision::new("free".parse()?, Isolation::Shared, region.clone(), Residency::Strict, "shared");
    /// let shared = Placement::new("acme".parse()?, decision, ShardChoice::new("db-1".parse()?, region, "one shard"));
    /// let tenants = vec!["acme".parse()?, "globex".parse()?];
    /// let outcomes = Db.upgrade(&[(shared, tenants)]).await;
    /// let upgrade = outcomes.into_iter().next().unwrap()?;
    /// assert_eq!(upgrade.applied, [MigrationInfo::new(11, "task estimate")]);
    /// assert_eq!(upgrade.seeded, [SeedInfo::new("roles-acme", 1), SeedInfo::new("roles-globex", 1)]);
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    async fn upgrade(&self, databases: &[(Placement, Vec<TenantId>)]) -> Vec<Result<Upgrade>> {
        let mut outcomes = Vec::with_capacity(databases.len());
        for (placement, tenants) in databases {
            outcomes.push(upgrade_one(self, placement, tenants).await);
        }
        outcomes
    }

    /// Called when the tenant is suspended; the default does nothing.
    async fn suspend(&self, placement: &Placement) -> Result<()> {
        let _ = placement;
        Ok(())
    }

    /// Called when the tenant is resumed; the default does nothing.
    async fn resume(&self, placement: &Placement) -> Result<()> {
        let _ = placement;
        Ok(())
    }

    /// Removes the tenant's database (dedicated) or its rows (shared).
    async fn drop_tenant(&self, placement: &Placement, reason: DropReason) -> Result<()>;

    /// Copies the tenant's data (its rows, and its seed-ledger rows, so the
    /// target counts as seeded) from `source` to `target`, which
    /// [`provision`](Self::provision) and [`migrate`](Self::migrate) made
    /// ready, and returns how many rows it copied. The tenant's rows already
    /// at the target are replaced, so a retry or a resumed run copies again
    /// safely; the source is never changed. Used by moves; the default
    /// refuses, for managers that cannot copy.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) on `move` when
    /// the manager cannot copy between these placements (or at all); a
    /// permanent error when the target cannot take the rows (a key already
    /// used by another tenant of a shared database, say).
    async fn copy_tenant(&self, source: &Placement, target: &Placement) -> Result<u64> {
        let _ = (source, target);
        Err(crate::Error::invalid(
            "move",
            "this schema manager cannot copy a tenant's data between databases",
        ))
    }

    /// Compares the tenant's data at `source` and `target`, table by table:
    /// what a move verifies before it cuts over. Comparing a placement with
    /// itself gives its row counts (a move's dry run). Changes nothing; the
    /// default refuses, as [`copy_tenant`](Self::copy_tenant) does.
    ///
    /// # Errors
    /// As [`copy_tenant`](Self::copy_tenant); a database that cannot be read.
    async fn compare_tenant(
        &self,
        source: &Placement,
        target: &Placement,
    ) -> Result<Vec<TableComparison>> {
        let _ = (source, target);
        Err(crate::Error::invalid(
            "move",
            "this schema manager cannot compare a tenant's data between databases",
        ))
    }

    /// How the database of `placement` differs from the release this
    /// manager migrates to: tables, columns, indexes, the migration ledger,
    /// and the seed ledger of each of `tenants` (the placement's tenant for
    /// a dedicated database; those checked of a shared one). Read from
    /// catalogs, never data; nothing is written. Each difference says its
    /// mechanical repair, if it has one. By default, an error: the SDK's
    /// managers check their databases.
    async fn check_drift(&self, placement: &Placement, tenants: &[TenantId]) -> Result<Vec<Drift>> {
        let _ = (placement, tenants);
        Err(crate::Error::invalid(
            "drift",
            "this schema manager cannot inspect its databases",
        ))
    }

    /// Applies `repairs` (from [`check_drift`](Self::check_drift)) to the
    /// database of `placement`, in order, each one only if the database is
    /// still as the check found it; returns the ones applied.
    async fn repair_drift(&self, placement: &Placement, repairs: &[Repair]) -> Result<Vec<Repair>> {
        let _ = (placement, repairs);
        Err(crate::Error::invalid(
            "drift",
            "this schema manager cannot repair its databases",
        ))
    }
}

/// One database as [`TenantSchemaManager::upgrade`] does it by default:
/// migrated, then [`seed_each`] of its tenants.
pub async fn upgrade_one<M: TenantSchemaManager + ?Sized>(
    manager: &M,
    placement: &Placement,
    tenants: &[TenantId],
) -> Result<Upgrade> {
    let applied = manager.migrate(placement).await?;
    let seeded = seed_each(manager, placement, tenants).await?;
    Ok(Upgrade { applied, seeded })
}

/// Seeds each of `tenants` in the database of `placement`, in order, with
/// [`TenantSchemaManager::seed`]; the seeds applied. A failure stops there;
/// a backend's names the tenant.
pub async fn seed_each<M: TenantSchemaManager + ?Sized>(
    manager: &M,
    placement: &Placement,
    tenants: &[TenantId],
) -> Result<Vec<SeedInfo>> {
    let mut seeded = Vec::new();
    for tenant in tenants {
        let mut theirs = placement.clone();
        theirs.tenant_id = tenant.clone();
        match manager.seed(&theirs).await {
            Ok(more) => seeded.extend(more),
            // A backend's failure says whose seed failed; any other error
            // (a tenant database not found, say) is the caller's to match.
            Err(crate::Error::Backend {
                component,
                message,
                transient,
                source,
            }) => {
                return Err(crate::Error::Backend {
                    component,
                    message: format!("seeding {tenant}: {message}"),
                    transient,
                    source,
                });
            }
            Err(e) => return Err(e),
        }
    }
    Ok(seeded)
}

macro_rules! forward_schema_manager {
    ($ty:ty) => {
        #[async_trait]
        impl<T: TenantSchemaManager + ?Sized> TenantSchemaManager for $ty {
            async fn preview(&self, placement: &Placement) -> Result<SchemaPreview> {
                (**self).preview(placement).await
            }
            fn locate(&self, placement: &Placement) -> Result<Option<String>> {
                (**self).locate(placement)
            }
            fn release(&self) -> Option<String> {
                (**self).release()
            }
            async fn provision(&self, placement: &Placement) -> Result<DatabaseOutcome> {
                (**self).provision(placement).await
            }
            async fn migrate(&self, placement: &Placement) -> Result<Vec<MigrationInfo>> {
                (**self).migrate(placement).await
            }
            async fn seed(&self, placement: &Placement) -> Result<Vec<SeedInfo>> {
                (**self).seed(placement).await
            }
            async fn upgrade(
                &self,
                databases: &[(Placement, Vec<TenantId>)],
            ) -> Vec<Result<Upgrade>> {
                (**self).upgrade(databases).await
            }
            async fn suspend(&self, placement: &Placement) -> Result<()> {
                (**self).suspend(placement).await
            }
            async fn resume(&self, placement: &Placement) -> Result<()> {
                (**self).resume(placement).await
            }
            async fn drop_tenant(&self, placement: &Placement, reason: DropReason) -> Result<()> {
                (**self).drop_tenant(placement, reason).await
            }
            async fn copy_tenant(&self, source: &Placement, target: &Placement) -> Result<u64> {
                (**self).copy_tenant(source, target).await
            }
            async fn compare_tenant(
                &self,
                source: &Placement,
                target: &Placement,
            ) -> Result<Vec<TableComparison>> {
                (**self).compare_tenant(source, target).await
            }
            async fn check_drift(
                &self,
                placement: &Placement,
                tenants: &[TenantId],
            ) -> Result<Vec<Drift>> {
                (**self).check_drift(placement, tenants).await
            }
            async fn repair_drift(
                &self,
                placement: &Placement,
                repairs: &[Repair],
            ) -> Result<Vec<Repair>> {
                (**self).repair_drift(placement, repairs).await
            }
        }
    };
}

forward_schema_manager!(Arc<T>);
forward_schema_manager!(Box<T>);
