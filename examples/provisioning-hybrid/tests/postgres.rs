//! The binary with its catalog on PostgreSQL (`--catalog`,
//! `PROVISIONING_HYBRID_CATALOG` or the config's `catalog`): every command
//! works as on SQLite, nothing of the catalog lands in the data directory, and
//! a password in the URL is never printed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/scratch.rs"]
mod scratch;
mod support;
#[path = "support/worker.rs"]
mod worker;

use std::process::Command;

use scratch::Scratch;
use support::{fails, run};
use worker::Worker;

/// Runs with `--json --catalog URL`, expecting success.
fn json_on(dir: &std::path::Path, url: &str, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["--json", "--catalog", url]);
    let (ok, stdout, stderr) = run(dir, &all);
    assert!(ok, "{args:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap()
}

#[test]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
fn every_command_works_with_the_catalog_on_postgres() {
    let db = Scratch::new("catalog");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let url = db.url.as_str();

    for (tenant, plan) in [("acme", "free"), ("zed", "premium")] {
        let receipt = json_on(
            dir,
            url,
            &[
                "create", "--tenant", tenant, "--plan", plan, "--region", "eu-west",
            ],
        );
        assert_eq!(receipt["status"], "succeeded", "{receipt}");
    }
    json_on(dir, url, &["suspend", "acme"]);
    assert_eq!(json_on(dir, url, &["status", "acme"])["state"], "suspended");
    json_on(dir, url, &["resume", "acme"]);
    json_on(dir, url, &["delete", "zed", "--purge"]);
    let listed = json_on(dir, url, &["list"]);
    let states: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| format!("{}={}", t["tenant_id"], t["state"]))
        .collect();
    assert_eq!(states, ["\"acme\"=\"active\"", "\"zed\"=\"deleted\""]);
    let events = json_on(dir, url, &["events", "acme"]);
    let sequences: Vec<_> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(sequences, (1..=sequences.len() as u64).collect::<Vec<_>>());

    // The catalog is PostgreSQL's: its rows are there, and the data
    // directory holds tenant databases and files, but no catalog.
    assert_eq!(
        db.column("SELECT tenant_id FROM provisioning.tenants ORDER BY tenant_id"),
        ["acme", "zed"]
    );
    assert!(!dir.join("catalog.sqlite").exists());
    assert!(dir.join("databases").is_dir());

    // The variable does what the flag does.
    let output = Command::new(env!("CARGO_BIN_EXE_provisioning-hybrid"))
        .args(["list", "--json", "--data-dir"])
        .arg(dir)
        .env("PROVISIONING_HYBRID_CATALOG", url)
        .output()
        .unwrap();
    assert!(output.status.success());
    let listed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
}

#[test]
fn a_catalog_that_is_not_postgres_is_refused_by_name_and_nothing_is_made() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let error = fails(
        &dir,
        &["list", "--catalog", "mysql://app:hunter2@db1/catalog"],
    );
    assert!(
        error.contains("--catalog") && error.contains("postgres://"),
        "{error}"
    );
    assert!(!error.contains("hunter2"), "{error}");
    assert!(!dir.exists(), "the data directory was made");
}

#[test]
fn a_catalog_password_is_never_printed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Nothing listens on port 1: the connection fails (after the pool's
    // acquire timeout, 30 s), and says where to.
    let url = "postgres://app:hunter2@127.0.0.1:1/catalog";
    let error = fails(dir, &["list", "--catalog", url]);
    assert!(error.contains("127.0.0.1:1"), "{error}");
    assert!(!error.contains("hunter2"), "{error}");

    // Nor by `--help`, with it in the environment.
    let help = Command::new(env!("CARGO_BIN_EXE_provisioning-hybrid"))
        .arg("--help")
        .env("PROVISIONING_HYBRID_CATALOG", url)
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("--catalog"), "{help}");
    assert!(!help.contains("hunter2"), "{help}");

    // Nor by `config`, showing a file that names it.
    let file = dir.join("hybrid.toml");
    let text = format!(
        "catalog = \"{url}\"\n{}",
        include_str!("../config/default.toml")
    );
    std::fs::write(&file, text).unwrap();
    let config_arg = file.to_str().unwrap();
    let (ok, stdout, stderr) = run(dir, &["config", "--config", config_arg]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("postgres://app:***@127.0.0.1:1/catalog"),
        "{stdout}"
    );
    assert!(!stdout.contains("hunter2"), "{stdout}");
}

#[test]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
fn queued_creates_are_run_once_each_by_workers_one_of_which_is_killed() {
    let db = Scratch::new("workers");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let url = db.url.as_str();
    let tenants: Vec<String> = (0..24).map(|i| format!("t{i:02}")).collect();
    for (i, tenant) in tenants.iter().enumerate() {
        let plan = if i % 2 == 0 { "premium" } else { "free" };
        let receipt = json_on(
            dir,
            url,
            &[
                "create", "--queue", "--tenant", tenant, "--plan", plan, "--region", "eu-west",
            ],
        );
        assert_eq!(receipt["status"], "running", "{receipt}");
    }

    let mut doomed = Worker::start(dir, url, "doomed", "2");
    // SIGKILL once it holds runs: they pass to the survivor when the lease lapses.
    db.until_holding("doomed", std::time::Duration::from_secs(30));
    doomed.child.kill().unwrap();
    doomed.child.wait().unwrap();
    let mut survivor = Worker::start(dir, url, "survivor", "2");

    // Everything ends Active, within the lease and then some.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let listed = json_on(dir, url, &["list"]);
        let active = listed
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["state"] == "active")
            .count();
        if active == tenants.len() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{active} of {} active: {listed}",
            tenants.len()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // SIGTERM: the survivor stops claiming and exits 0 with its report.
    survivor.sigterm();
    let (status, report) = survivor.exited();
    assert!(status.success(), "{status:?}");
    assert!(report.starts_with("worker survivor: "), "{report}");

    // Each tenant was provisioned once: two events, in order, no gap.
    for tenant in &tenants {
        let events = json_on(dir, url, &["events", tenant]);
        let kinds: Vec<_> = events
            .as_array()
            .unwrap()
            .iter()
            .map(|e| format!("{}:{}", e["sequence"], e["kind"].as_str().unwrap()))
            .collect();
        assert_eq!(
            kinds,
            ["1:TenantCreated", "2:TenantProvisioned"],
            "{tenant}"
        );
    }
    assert_eq!(
        db.column("SELECT status FROM provisioning.requests GROUP BY status"),
        ["succeeded"]
    );
}
