//! `fleet_migration`: rolls one new migration out to 1,000 dedicated SQLite
//! tenants (each pre-provisioned with the ten workload migrations and its
//! seed), once one tenant at a time and once with bounded concurrency, and
//! prints both wall times and their ratio.
//!
//! Run with `cargo bench -p provisioning-benches --bench fleet_migration`;
//! `FLEET_TENANTS` and `FLEET_CONCURRENCY` change the fleet size (1000) and
//! the concurrency (8).

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout
)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use provisioning_core::{Placement, TenantSchemaManager};
use provisioning_sqlx::{FleetOptions, SqliteSchemaManager, migrate_fleet};

async fn manager(root: &Path, data: &Path, next: bool) -> SqliteSchemaManager {
    let (name, fleet): (_, &[&str]) = if next {
        ("release-2", &["0011_task_estimate.sql"])
    } else {
        ("release-1", &[])
    };
    provisioning_benches::fleet::manager(root, name, data, fleet)
        .await
        .unwrap()
}

fn plans(prefix: &str, n: usize) -> Vec<Placement> {
    (0..n)
        .map(|i| provisioning_benches::fleet::placement(&format!("{prefix}-{i:05}"), i).unwrap())
        .collect()
}

/// Provisions, migrates (release 1) and seeds every tenant, 16 at a time.
async fn provision_all(manager: Arc<SqliteSchemaManager>, plans: &[Placement]) {
    for chunk in plans.chunks(16) {
        let mut set = tokio::task::JoinSet::new();
        for plan in chunk {
            let (m, plan) = (Arc::clone(&manager), plan.clone());
            set.spawn(async move {
                m.provision(&plan).await.unwrap();
                m.migrate(&plan).await.unwrap();
                m.seed(&plan).await.unwrap();
            });
        }
        while let Some(done) = set.join_next().await {
            done.unwrap();
        }
    }
}

async fn timed(
    manager: &SqliteSchemaManager,
    plans: Vec<Placement>,
    concurrency: usize,
) -> Duration {
    let n = plans.len();
    let start = Instant::now();
    let report = migrate_fleet(manager, plans, FleetOptions::new().concurrency(concurrency)).await;
    let elapsed = start.elapsed();
    assert!(report.failed.is_empty(), "{:?}", report.failed.first());
    assert_eq!(report.migrations(), n, "one new migration per tenant");
    elapsed
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then
    // run a small fleet so the bench stays a quick smoke test.
    let bench = std::env::args().any(|a| a == "--bench");
    let tenants = env_usize("FLEET_TENANTS", if bench { 1000 } else { 20 });
    let concurrency = env_usize("FLEET_CONCURRENCY", 8);
    let root = std::env::temp_dir().join(format!("fleet-bench-{}", std::process::id()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let data = root.join("data");
        let setup = Instant::now();
        let release1 = Arc::new(manager(&root, &data, false).await);
        let (seq_plans, conc_plans) = (plans("seq", tenants), plans("conc", tenants));
        provision_all(Arc::clone(&release1), &seq_plans).await;
        provision_all(release1, &conc_plans).await;
        println!(
            "fleet_migration: {} tenants x 2 provisioned with 10 migrations in {:.1?}",
            tenants,
            setup.elapsed()
        );

        let release2 = manager(&root, &data, true).await;
        let sequential = timed(&release2, seq_plans, 1).await;
        let concurrent = timed(&release2, conc_plans, concurrency).await;
        let per = |d: Duration| d / u32::try_from(tenants).unwrap_or(u32::MAX);
        println!(
            "fleet_migration: sequential {:.2?} ({:.2?}/tenant), concurrent x{} {:.2?} ({:.2?}/tenant), speed-up {:.2}x",
            sequential,
            per(sequential),
            concurrency,
            concurrent,
            per(concurrent),
            sequential.as_secs_f64() / concurrent.as_secs_f64()
        );
    });
    std::fs::remove_dir_all(&root).unwrap();
}
