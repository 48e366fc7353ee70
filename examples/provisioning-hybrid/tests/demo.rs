//! The demo, run as a user runs it: it exits 0, shows the hybrid placement,
//! the lifecycle and the rollback, and a second run works the same.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn demo(data_dir: &std::path::Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_provisioning-hybrid"))
        .arg("demo")
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "demo failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn the_demo_runs_twice_and_tells_the_hybrid_story() {
    let dir = tempfile::tempdir().unwrap();
    let first = demo(dir.path());
    for expected in [
        "acme     premium    eu-west  dedicated  eu-west-dedicated-1  active",
        "cygnus   premium    eu-west  dedicated  eu-west-dedicated-1  active",
        "delta    regulated  us-east  dedicated  us-east-dedicated-1  active",
        "bolt     standard   us-east  shared     us-east-shared-1     suspended",
        "echo     premium    us-east  dedicated  us-east-dedicated-1  deleted",
        "faulty   premium    eu-west  dedicated  eu-west-dedicated-1  failed",
        "bolt     1:TenantCreated  2:TenantProvisioned  3:TenantSuspended",
        "acme     1:TenantCreated  2:TenantProvisioned  3:UserProvisioned  4:TenantMoved",
        "change-plan acme free -> premium -> succeeded: shared eu-west-shared-1 -> dedicated eu-west-dedicated-1",
        "cygnus   1:TenantCreated  2:TenantProvisioned  3:ServiceProvisioned",
        "provision service analytics (enterprise) for cygnus -> succeeded",
        "faulty   1:TenantCreated  2:TenantProvisioningFailed",
        "faulty.sqlite : removed",
    ] {
        assert!(
            first.contains(expected),
            "missing {expected:?} in:\n{first}"
        );
    }
    let demo_dir = dir.path().join("demo");
    assert!(demo_dir.join("catalog.sqlite").exists());
    assert!(
        demo_dir
            .join("databases/eu-west/eu-west-dedicated-1/cygnus.sqlite")
            .exists()
    );
    assert!(
        demo_dir
            .join("storage/eu-west/tenants/acme/.tenant.json")
            .exists()
    );
    // acme's rows moved to a file of its own, ana included, none left shared.
    let acme = demo_dir.join("databases/eu-west/eu-west-dedicated-1/acme.sqlite");
    assert!(acme.exists());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        use sqlx::Connection;
        let count = |db: std::path::PathBuf, sql: &'static str| async move {
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(db);
            let mut conn = sqlx::SqliteConnection::connect_with(&options)
                .await
                .unwrap();
            let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
            n
        };
        assert_eq!(
            count(
                acme.clone(),
                "SELECT COUNT(*) FROM users WHERE email = 'ana@acme.example'"
            )
            .await,
            1
        );
        let shared = demo_dir.join("databases/eu-west/eu-west-shared-1/_shared.sqlite");
        assert_eq!(
            count(
                shared,
                "SELECT COUNT(*) FROM users WHERE tenant_id = 'acme'"
            )
            .await,
            0
        );
    });
    assert!(!demo_dir.join("storage/eu-west/tenants/faulty").exists());

    // A second run starts clean and tells the same story.
    let second = demo(dir.path());
    assert_eq!(strip_paths(&first), strip_paths(&second));
}

/// The output without the lines that hold temporary paths or timings.
fn strip_paths(output: &str) -> Vec<&str> {
    output.lines().filter(|l| !l.contains('/')).collect()
}
