//! `fleet_rollout`: the durable fleet roll-out (`ProvisioningOrchestrator::
//! roll_out`, its record in the SQLite catalog) of the two-migration release
//! (`fleet/`: 0011, 0012) over N dedicated SQLite tenants provisioned with
//! the ten base migrations and the seed, at concurrency 1, 2 and 4: wall
//! time, tenants per second, the speed-up over concurrency 1, and the peak
//! RSS of each roll-out (`VmHWM`, reset before each); then the drift check of
//! the first fleet, which must find it clean, and its wall time.
//!
//! Each concurrency gets a fleet of its own: the tenants' databases are
//! copies of one provisioned template, and their catalog rows are written
//! as an older build would have left them (Active, placed), so that setting
//! up 10,000 tenants takes seconds, not the minutes of 10,000 sagas.
//!
//! Run with `cargo bench -p provisioning-benches --bench fleet_rollout`;
//! `FLEET_TENANTS` (10,000) and `FLEET_CONCURRENCIES` (`1,2,4`) change the
//! fleet; under `cargo test --benches` it rolls out 20 tenants.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout
)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use provisioning_core::*;
use provisioning_sqlx::{SqliteSchemaManager, SqliteStore};

async fn manager(root: &Path, data: &Path, next: bool) -> SqliteSchemaManager {
    let (name, fleet): (_, &[&str]) = if next {
        ("release-2", &provisioning_benches::fleet::FLEET_RELEASE)
    } else {
        ("release-1", &[])
    };
    provisioning_benches::fleet::manager(root, name, data, fleet)
        .await
        .unwrap()
}

fn placement(tenant: &str, shard: usize) -> Placement {
    provisioning_benches::fleet::placement(tenant, shard).unwrap()
}

/// The extension points a roll-out does not call, for the builder.
struct Unused;

#[async_trait]
impl PlacementPolicy for Unused {
    async fn decide(&self, _: &TenantRequest) -> Result<PlacementDecision> {
        Err(Error::invalid("plan", "the bench creates no tenant"))
    }
}

#[async_trait]
impl ShardResolver for Unused {
    async fn resolve(&self, _: &TenantId, _: &PlacementDecision) -> Result<ShardChoice> {
        Err(Error::invalid("shard", "the bench places no tenant"))
    }
}

#[async_trait]
impl StorageInitializer for Unused {
    async fn preview(&self, _: &Placement) -> Result<StoragePreview> {
        Ok(StoragePreview::new(vec![], false))
    }
    async fn initialize(&self, _: &Placement) -> Result<()> {
        Ok(())
    }
    async fn remove(&self, _: &Placement, _: RemovalMode) -> Result<()> {
        Ok(())
    }
}

/// A fleet of `n` tenants at the base release under `dir`: template copies
/// and Active catalog rows.
async fn fleet(root: &Path, dir: &Path, n: usize) -> Arc<SqliteStore> {
    let data = dir.join("data");
    let base = manager(root, &data, false).await;
    let template = placement("template", 0);
    base.provision(&template).await.unwrap();
    base.migrate(&template).await.unwrap();
    base.seed(&template).await.unwrap();
    base.close().await;
    let template = base.database_path(&template);
    let store = Arc::new(SqliteStore::open(dir.join("catalog.sqlite")).await.unwrap());
    for i in 0..n {
        let tenant = format!("t-{i:05}");
        let placement = placement(&tenant, i);
        let path = base.database_path(&placement);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::copy(&template, &path).unwrap();
        // The seed ledger names its tenant: the copy's is this one.
        let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(
            &sqlx::sqlite::SqliteConnectOptions::new().filename(&path),
        )
        .await
        .unwrap();
        sqlx::query("UPDATE _tenant_seeds SET tenant_id = ?1")
            .bind(&tenant)
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::Connection::close(conn).await.unwrap();
        let request_id = RequestId::new();
        let mut record = TenantRecord::new_requested(
            placement.tenant_id.clone(),
            request_id,
            placement.plan.clone(),
            placement.region.clone(),
            Default::default(),
            chrono::Utc::now(),
        );
        let request = RequestRecord::new(
            request_id,
            placement.tenant_id.clone(),
            CREATE_TENANT,
            serde_json::json!({}),
            RunId::new(),
        );
        let event = NewEvent::new(EventKind::TenantCreated, request_id, serde_json::json!({}));
        store
            .submit(Submission::create(request, record.clone(), event))
            .await
            .unwrap();
        record.state = TenantState::Active;
        record.placement = Some(placement);
        let version = record.version;
        store
            .update_tenant(record, version, Vec::new())
            .await
            .unwrap();
    }
    std::fs::remove_file(&template).unwrap();
    store
}

fn peak_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

struct Figures {
    concurrency: usize,
    elapsed: Duration,
    peak_mib: Option<f64>,
    drift: Option<Duration>,
}

async fn roll_out(root: &Path, n: usize, concurrency: usize, first: bool) -> Figures {
    let dir = root.join(format!("c{concurrency}"));
    let setup = Instant::now();
    let store = fleet(root, &dir, n).await;
    let release = manager(root, &dir.join("data"), true).await;
    let orchestrator = ProvisioningOrchestrator::builder()
        .store(store.clone())
        .placement_policy(Arc::new(Unused))
        .shard_resolver(Arc::new(Unused))
        .schema_manager(Arc::new(release))
        .storage(Arc::new(Unused))
        .build()
        .unwrap();
    println!(
        "fleet_rollout: {n} tenants set up for concurrency {concurrency} in {:.1?}",
        setup.elapsed()
    );
    // The peak from here on: the roll-out's, not the setup's.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let start = Instant::now();
    let report = orchestrator
        .roll_out(RolloutOptions::new().concurrency(concurrency), |_| {})
        .await
        .unwrap();
    let elapsed = start.elapsed();
    let peak_mib = peak_mib();
    assert_eq!(
        report.rollout.status,
        RolloutStatus::Completed,
        "{report:?}"
    );
    assert_eq!(report.counts.migrated, n);
    assert!(
        report
            .settled
            .iter()
            .all(|u| u.applied.iter().map(|m| m.version).eq([11, 12])),
        "every tenant got 0011 and 0012"
    );
    // The drift check of the whole fleet after it, on the first fleet only.
    let drift = if first {
        let start = Instant::now();
        let report = orchestrator
            .check_drift(DriftOptions::new().concurrency(4))
            .await
            .unwrap();
        assert!(report.is_clean(), "{:?}", report.drifted().next());
        assert_eq!(report.units.len(), n);
        Some(start.elapsed())
    } else {
        None
    };
    drop(orchestrator);
    store.close().await;
    std::fs::remove_dir_all(&dir).unwrap();
    Figures {
        concurrency,
        elapsed,
        peak_mib,
        drift,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then
    // roll out a small fleet so the bench stays a quick smoke test.
    let bench = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("FLEET_TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench { 10_000 } else { 20 });
    let concurrencies: Vec<usize> = std::env::var("FLEET_CONCURRENCIES")
        .unwrap_or_else(|_| "1,2,4".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let root = std::env::temp_dir().join(format!("fleet-rollout-{}", std::process::id()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let figures: Vec<Figures> = rt.block_on(async {
        let mut all = Vec::new();
        for (i, &c) in concurrencies.iter().enumerate() {
            all.push(roll_out(&root, n, c, i == 0).await);
        }
        all
    });
    let first = figures.first().map(|f| f.elapsed.as_secs_f64());
    for f in &figures {
        let secs = f.elapsed.as_secs_f64();
        println!(
            "fleet_rollout: {n} tenants, concurrency {}: {:.1} s, {:.0} tenants/s, speed-up {:.2}x over concurrency {}, peak RSS {}",
            f.concurrency,
            secs,
            n as f64 / secs,
            first.map_or(1.0, |s| s / secs),
            concurrencies[0],
            f.peak_mib
                .map_or("n/a".to_owned(), |m| format!("{m:.0} MiB")),
        );
    }
    for f in &figures {
        if let Some(drift) = f.drift {
            println!(
                "fleet_rollout: drift check of {n} tenants (concurrency 4): {:.1} s, {:.0} tenants/s, clean",
                drift.as_secs_f64(),
                n as f64 / drift.as_secs_f64()
            );
        }
    }
    std::fs::remove_dir_all(&root).unwrap();
}
