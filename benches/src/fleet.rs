//! What the fleet benches (`fleet_migration`, `fleet_rollout`) share: a
//! dedicated SQLite schema manager of the reference workload at a release,
//! and the placement of each bench tenant.

use std::path::{Path, PathBuf};

use provisioning_core::{Isolation, Placement, PlacementDecision, Residency, ShardChoice};
use provisioning_sqlx::{Seed, SqliteSchemaManager, TenantSchema};

/// Errors of the bench helpers, shown as they are.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

fn workload() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../workload/sqlite")
}

/// A folder `root/name` with the ten workload migrations and the migrations
/// of the fleet release (`workload/sqlite/fleet/` of the workspace) named in `fleet`.
fn migrations_dir(root: &Path, name: &str, fleet: &[&str]) -> Result<PathBuf, Error> {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir)?;
    for entry in std::fs::read_dir(workload().join("migrations"))? {
        let entry = entry?;
        std::fs::copy(entry.path(), dir.join(entry.file_name()))?;
    }
    for file in fleet {
        std::fs::copy(workload().join("fleet").join(file), dir.join(file))?;
    }
    Ok(dir)
}

/// A dedicated-tenant schema manager over `data` whose release is the ten
/// workload migrations, the `fleet` migrations and the workload seed; its
/// migrations folder is `root/name`.
pub async fn manager(
    root: &Path,
    name: &str,
    data: &Path,
    fleet: &[&str],
) -> Result<SqliteSchemaManager, Error> {
    let seed = std::fs::read_to_string(workload().join("seed.sql"))?;
    let schema = TenantSchema::from_dir(migrations_dir(root, name, fleet)?)
        .await?
        .seed(Seed::sql("workload-seed", 1, seed));
    Ok(SqliteSchemaManager::builder()
        .root(data)
        .dedicated(schema)
        .build()?)
}

/// The whole fleet release: 0011 and 0012.
pub const FLEET_RELEASE: [&str; 2] = ["0011_task_estimate.sql", "0012_comment_edited_at.sql"];

/// Tenant `tenant`'s placement in the fleet benches: dedicated, premium, in
/// eu-west, on shard `eu-{shard % 4}`.
pub fn placement(tenant: &str, shard: usize) -> Result<Placement, Error> {
    let region: provisioning_core::Region = "eu-west".parse()?;
    Ok(Placement::new(
        tenant.parse()?,
        PlacementDecision::new(
            "premium".parse()?,
            Isolation::Dedicated,
            region.clone(),
            Residency::Strict,
            "bench",
        ),
        ShardChoice::new(format!("eu-{}", shard % 4).parse()?, region, "bench"),
    ))
}
