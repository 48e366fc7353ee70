//! Dedicated mode: a SQLite file per tenant, provisioned end to end through
//! the orchestrator on the SQLite catalog, against the floor's create,
//! migrate, seed and marker file.

use std::path::{Path, PathBuf};

use crate::floor::count_markers;
use crate::floor::sqlite::{DedicatedFloor, dedicated_counts};
use crate::report::{Mode, Run};
use crate::runner::{self, Result, Rounds, check, tenant_id};
use crate::sdk::{DEDICATED_SHARD, REGION, SqliteSdk};

/// The tenant id prefix of both sides (each side has its own directory).
const PREFIX: &str = "t";

/// Measures both sides at each concurrency (see [`runner::alternate`]), each
/// run on fresh files under `root`, checking after each run that every
/// tenant was provisioned.
pub(crate) async fn run(
    root: &Path,
    tenants: usize,
    concurrencies: &[usize],
    rounds: Rounds,
) -> Result<Mode> {
    let mut runs = Vec::new();
    for &concurrency in concurrencies {
        let samples = runner::alternate(
            rounds,
            async |_| floor_run(root, tenants, concurrency).await,
            async |_| sdk_run(root, tenants, concurrency).await,
        )
        .await?;
        let run = Run::new(concurrency, samples);
        eprintln!("{}", run.line("dedicated"));
        runs.push(run);
    }
    Ok(Mode {
        tenants,
        runs,
        fleet: None,
        peak_rss_mib: None,
    })
}

async fn floor_run(root: &Path, tenants: usize, concurrency: usize) -> Result<f64> {
    runner::settle_disk();
    let dir = runner::fresh_dir(root, &format!("dedicated-floor-c{concurrency}"))?;
    let floor = DedicatedFloor::open(&dir)?;
    let elapsed = {
        let floor = floor.clone();
        runner::run(tenants, concurrency, move |i| {
            let floor = floor.clone();
            async move { floor.create(&tenant_id(PREFIX, i)).await }
        })
        .await?
    };
    verify("floor", &dir, tenants).await?;
    runner::remove_dir(&dir);
    Ok(runner::per_second(tenants, elapsed))
}

async fn sdk_run(root: &Path, tenants: usize, concurrency: usize) -> Result<f64> {
    runner::settle_disk();
    let dir = runner::fresh_dir(root, &format!("dedicated-sdk-c{concurrency}"))?;
    let sdk = SqliteSdk::open(&dir).await?;
    let elapsed = {
        let sdk = sdk.clone();
        runner::run(tenants, concurrency, move |i| {
            let sdk = sdk.clone();
            async move { sdk.create(&tenant_id(PREFIX, i), true).await }
        })
        .await?
    };
    let active = sdk.active_tenants().await?;
    check(active == tenants, || {
        format!("dedicated SDK: {active} of {tenants} tenants active in the catalog")
    })?;
    sdk.close().await;
    verify("SDK", &dir, tenants).await?;
    runner::remove_dir(&dir);
    Ok(runner::per_second(tenants, elapsed))
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
