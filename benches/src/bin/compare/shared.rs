//! Shared mode: tenants as rows in one SQLite database per shard, provisioned
//! end to end through the orchestrator on the SQLite catalog, against the
//! floor's seed transaction and marker file.

use std::path::Path;

use crate::floor::count_markers;
use crate::floor::sqlite::{SharedFloor, open_for_counts, shared_counts};
use crate::runner::{self, Result, check};
use crate::sdk::{REGION, SHARED_SHARD, SqliteSdk, print_steps};

/// The shared mode's two sides, for [`runner::measure_files`].
pub(crate) struct Shared;

impl runner::FileMode for Shared {
    const NAME: &'static str = "shared";

    async fn floor_run(root: &Path, tenants: usize, concurrency: usize) -> Result<f64> {
        runner::settle_disk();
        let dir = runner::fresh_dir(root, &format!("shared-floor-c{concurrency}"))?;
        let floor = SharedFloor::open(&dir).await?;
        let elapsed = runner::provision(&floor, tenants, concurrency, async |floor, tenant| {
            floor.create(&tenant).await
        })
        .await?;
        let counts = floor.counts().await?;
        floor.close().await;
        verify("floor", &dir, tenants, counts)?;
        runner::remove_dir(&dir);
        Ok(runner::per_second(tenants, elapsed))
    }

    async fn sdk_run(root: &Path, tenants: usize, concurrency: usize) -> Result<f64> {
        runner::settle_disk();
        let dir = runner::fresh_dir(root, &format!("shared-sdk-c{concurrency}"))?;
        let sdk = SqliteSdk::open(&dir).await?;
        let elapsed = runner::provision(&sdk, tenants, concurrency, async |sdk, tenant| {
            sdk.create(&tenant, false).await
        })
        .await?;
        print_steps(sdk.step_profile()).await?;
        let active = sdk.active_tenants().await?;
        check(active == tenants, || {
            format!("shared SDK: {active} of {tenants} tenants active in the catalog")
        })?;
        sdk.close().await;
        let database = dir
            .join("databases")
            .join(REGION)
            .join(SHARED_SHARD)
            .join(provisioning_sqlx::SHARED_DATABASE_FILE);
        let pool = open_for_counts(&database).await?;
        let counts = shared_counts(&pool).await?;
        pool.close().await;
        verify("SDK", &dir, tenants, counts)?;
        runner::remove_dir(&dir);
        Ok(runner::per_second(tenants, elapsed))
    }
}

/// Every tenant has its three roles, its admin, its grant and its marker.
fn verify(side: &str, dir: &Path, tenants: usize, counts: (i64, i64, i64)) -> Result<()> {
    let n = i64::try_from(tenants)?;
    check(counts == (3 * n, n, n), || {
        format!("shared {side}: (roles, users, grants) = {counts:?} for {tenants} tenants")
    })?;
    let markers = count_markers(&dir.join("storage"), REGION)?;
    check(markers == tenants, || {
        format!("shared {side}: {markers} markers for {tenants} tenants")
    })
}
