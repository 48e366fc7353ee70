//! Smoke test of the `compare` binary: tiny runs of every mode, `--json`, the
//! last line parsed and its shape checked. The binary verifies after each run
//! that every tenant was provisioned (rows, files, schemas, catalog states)
//! and exits with an error otherwise, so a success here also means both the
//! SDK and the floor did all the work asked of them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::Value;

fn run(args: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_compare"))
        .args(args)
        .arg("--dir")
        .arg(dir.path())
        .output()
        .expect("the compare binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "compare failed ({}):\n{stderr}\n{stdout}",
        output.status
    );
    let last = stdout.lines().last().expect("some output");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {last}"))
}

fn check_mode(report: &Value, mode: &str, tenants: u64, concurrencies: &[u64]) {
    let figures = &report[mode];
    assert_eq!(figures["tenants"], tenants, "{mode}: {figures}");
    let runs = figures["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), concurrencies.len(), "{mode}: {figures}");
    for (run, concurrency) in runs.iter().zip(concurrencies) {
        assert_eq!(run["concurrency"], *concurrency, "{mode}: {run}");
        for key in ["sdk_tenants_per_sec", "floor_tenants_per_sec", "ratio"] {
            let value = run[key].as_f64().unwrap_or_default();
            assert!(value > 0.0, "{mode}: {key} = {value} in {run}");
        }
        assert_eq!(run["sdk_rounds"].as_array().map(Vec::len), Some(1));
        assert_eq!(run["floor_rounds"].as_array().map(Vec::len), Some(1));
    }
    assert!(figures["peak_rss_mib"].as_f64().unwrap_or_default() > 0.0);
}

#[test]
fn compare_runs_every_local_mode_and_reports_json() {
    let report = run(&[
        "--tenants-shared",
        "20",
        "--tenants-dedicated",
        "5",
        "--rss-tenants",
        "30",
        "--shared-concurrency",
        "1,8",
        "--dedicated-concurrency",
        "1,2",
        "--rounds",
        "1",
        "--modes",
        "shared,dedicated,rss",
        "--json",
    ]);
    check_mode(&report, "shared", 20, &[1, 8]);
    check_mode(&report, "dedicated", 5, &[1, 2]);
    let rss = &report["rss"];
    assert_eq!(rss["tenants"], 30, "{rss}");
    assert!(
        rss["peak_rss_mib"].as_f64().unwrap_or_default() > 0.0,
        "{rss}"
    );
    assert!(report["postgres_schema"].is_null());
}

#[test]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
fn compare_runs_the_postgres_mode() {
    let url = std::env::var("PROVISIONING_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .expect("this test needs a PostgreSQL server: set PROVISIONING_TEST_POSTGRES_URL");
    let report = run(&[
        "--tenants-postgres",
        "3",
        "--postgres-concurrency",
        "1,2",
        "--fleet-concurrency",
        "2",
        "--rounds",
        "1",
        "--modes",
        "postgres",
        "--postgres",
        &url,
        "--json",
    ]);
    check_mode(&report, "postgres_schema", 3, &[1, 2]);
    let fleet = &report["postgres_schema"]["fleet"];
    assert_eq!(fleet["tenants"], 3, "{fleet}");
    assert!(fleet["sdk_seconds"].as_f64().unwrap_or_default() > 0.0);
    assert!(fleet["floor_seconds"].as_f64().unwrap_or_default() > 0.0);
}

#[test]
fn postgres_mode_is_skipped_without_a_server() {
    let report = run(&[
        "--modes",
        "postgres",
        "--tenants-postgres",
        "2",
        "--rounds",
        "1",
        "--postgres",
        "",
        "--json",
    ]);
    assert!(report["postgres_schema"].is_null(), "{report}");
    assert!(report["postgres_skipped"].is_string(), "{report}");
}
