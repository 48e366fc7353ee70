//! Dedicated mode: a SQLite file per tenant, provisioned end to end through
//! the orchestrator on the SQLite catalog, against the floor's create,
//! migrate, seed and marker file.

use std::path::{Path, PathBuf};

use crate::floor::count_markers;
use crate::floor::sqlite::{DedicatedFloor, dedicated_counts};
use crate::runner::{self, PREFIX, Result, check, tenant_id};
use crate::sdk::{DEDICATED_SHARD, REGION, SqliteSdk, print_steps};

/// The dedicated mode's two sides, for [`runner::measure_files`].
pub(crate) struct Dedicated;

impl runner::FileMode for Dedicated {
    const NAME: &'static str = "dedicated";

    async fn floor_run(root: &Path, tenants: usize, concurrency: usize) -> Result<f64> {
        runner::settle_disk();
        let dir = runner::fresh_dir(root, &format!("dedicated-floor-c{concurrency}"))?;
        let floor = DedicatedFloor::open(&dir)?;
        let elapsed = runner::provision(&floor, tenants, concurrency, async |floor, tenant| {
            floor.create(&tenant).await
        })
        .await?;
        verify("floor", &dir, tenants).await?;
        runner::remove_dir(&dir);
        Ok(runner::per_second(tenants, elapsed))
    }

    async fn sdk_run(root: &Path, tenants: usize, concurrency: usize) -> Result<f64> {
        runner::settle_disk();
        let dir = runner::fresh_dir(root, &format!("dedicated-sdk-c{concurrency}"))?;
        let sdk = SqliteSdk::open(&dir).await?;
        let elapsed = runner::provision(&sdk, tenants, concurrency, async |sdk, tenant| {
            sdk.create(&tenant, true).await
        })
        .await?;
        print_steps(sdk.step_profile()).await?;
        let active = sdk.active_tenants().await?;
        check(active == tenants, || {
            format!("dedicated SDK: {active} of {tenants} tenants active in the catalog")
        })?;
        sdk.close().await;
        verify("SDK", &dir, tenants).await?;
        runner::remove_dir(&dir);
        Ok(runner::per_second(tenants, elapsed))
    }
}

fn database(dir: &Path, tenant: &str) -> PathBuf {
    dir.join("databases")
        .join(REGION)
        .join(DEDICATED_SHARD)
        .join(format!("{tenant}.sqlite"))
}

/// Every tenant has its file with ten migrations recorded, its seed rows and
/// its marker.
async fn verify(side: &str, dir: &Path, tenants: usize) -> Result<()> {
    for i in 0..tenants {
        let tenant = tenant_id(PREFIX, i);
        let counts = dedicated_counts(&database(dir, &tenant)).await?;
        check(counts == (10, 3, 1, 1), || {
            format!(
                "dedicated {side}: tenant {tenant} has (migrations, roles, users, grants) = {counts:?}"
            )
        })?;
    }
    let markers = count_markers(&dir.join("storage"), REGION)?;
    check(markers == tenants, || {
        format!("dedicated {side}: {markers} markers for {tenants} tenants")
    })
}
