//! The CLI run as a user runs it: exit codes, clear errors, JSON output with
//! snake_case names, rollback after an injected failure, and the dry run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

fn run(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_provisioning-hybrid"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

fn json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (ok, stdout, stderr) = run(dir, &all);
    assert!(ok, "{args:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn create_list_events_audit_and_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let receipt = json(
        d,
        &[
            "create", "--tenant", "acme", "--plan", "premium", "--region", "eu-west",
        ],
    );
    assert_eq!(receipt["status"], "succeeded");
    assert_eq!(receipt["tenant_id"], "acme");
    let request_id = receipt["request_id"].as_str().unwrap().to_owned();

    let tenants = json(d, &["list", "--region", "eu-west"]);
    assert_eq!(tenants[0]["tenant_id"], "acme");
    assert_eq!(tenants[0]["state"], "active");
    assert_eq!(tenants[0]["placement"]["isolation"], "dedicated");
    assert!(
        d.join("databases/eu-west/eu-west-dedicated-1/acme.sqlite")
            .exists()
    );

    json(d, &["suspend", "acme"]);
    json(d, &["resume", "acme"]);
    let events = json(d, &["events", "acme"]);
    let kinds: Vec<_> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].clone())
        .collect();
    assert_eq!(
        kinds,
        [
            "TenantCreated",
            "TenantProvisioned",
            "TenantSuspended",
            "TenantResumed"
        ]
    );
    assert_eq!(events[3]["sequence"], 4);

    let audit = json(d, &["audit", &request_id]);
    let entries = audit["entries"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["step"] == "seed" && e["outcome"] == "completed" && e["attempt"] == 1)
    );

    let status = json(d, &["status", "--request", &request_id]);
    assert_eq!(status["workflow"], "create-tenant");

    json(d, &["delete", "acme", "--purge"]);
    assert!(
        !d.join("databases/eu-west/eu-west-dedicated-1/acme.sqlite")
            .exists()
    );
    assert_eq!(json(d, &["status", "acme"])["state"], "deleted");
}

#[test]
fn an_injected_failure_rolls_back_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ok, _, stderr) = run(
        d,
        &[
            "create",
            "--tenant",
            "zed",
            "--plan",
            "regulated",
            "--region",
            "us-east",
            "--inject-failure",
            "seed:permanent",
        ],
    );
    assert!(!ok);
    assert!(
        stderr.contains("tenant zed failed at step seed"),
        "{stderr}"
    );
    assert_eq!(json(d, &["status", "zed"])["state"], "failed");
    assert!(
        !d.join("databases/us-east/us-east-dedicated-1/zed.sqlite")
            .exists()
    );
    assert!(!d.join("storage/us-east/tenants/zed").exists());
    // A transient failure is retried and the tenant comes up; retry fixes zed.
    let receipt = json(
        d,
        &[
            "create",
            "--tenant",
            "yak",
            "--plan",
            "free",
            "--region",
            "us-east",
            "--inject-failure",
            "migrate:transient",
        ],
    );
    assert_eq!(receipt["status"], "succeeded");
    assert_eq!(json(d, &["retry", "zed"])["status"], "succeeded");
    assert_eq!(json(d, &["status", "zed"])["state"], "active");
}

#[test]
fn bad_input_and_conflicts_are_clear_errors_that_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ok, _, stderr) = run(
        d,
        &[
            "create", "--tenant", "a--b", "--plan", "free", "--region", "eu-west",
        ],
    );
    assert!(!ok);
    assert!(
        stderr.contains("invalid tenant_id \"a--b\": must not contain two hyphens in a row"),
        "{stderr}"
    );
    let (ok, _, stderr) = run(
        d,
        &[
            "create", "--tenant", "acme", "--plan", "gold", "--region", "eu-west",
        ],
    );
    assert!(!ok);
    assert!(stderr.contains("invalid plan"), "{stderr}");
    assert_eq!(json(d, &["list"]), serde_json::json!([]));

    json(
        d,
        &[
            "create", "--tenant", "acme", "--plan", "free", "--region", "eu-west",
        ],
    );
    let (ok, _, stderr) = run(
        d,
        &[
            "create", "--tenant", "acme", "--plan", "free", "--region", "eu-west",
        ],
    );
    assert!(!ok);
    assert!(stderr.contains("conflict on tenant acme"), "{stderr}");
    let (ok, _, stderr) = run(d, &["resume", "acme"]);
    assert!(!ok);
    assert!(
        stderr.contains("illegal tenant state transition from active to active"),
        "{stderr}"
    );
}

#[test]
fn the_dry_run_shows_the_work_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let plan = json(
        d,
        &[
            "plan",
            "--tenant",
            "acme",
            "--plan",
            "regulated",
            "--region",
            "us-east",
        ],
    );
    assert_eq!(plan["placement"]["isolation"], "dedicated");
    assert_eq!(plan["placement"]["residency"], "strict");
    assert_eq!(plan["schema"]["will_create"], true);
    assert_eq!(
        plan["schema"]["pending_migrations"]
            .as_array()
            .unwrap()
            .len(),
        10
    );
    assert!(
        !d.join("databases/us-east/us-east-dedicated-1/acme.sqlite")
            .exists()
    );
    assert_eq!(json(d, &["list"]), serde_json::json!([]));
}

#[test]
fn a_sigkill_during_create_then_recover_finishes_the_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Seed fails transiently three times: 100 + 200 + 400 ms of backoff in which
    // the process is killed, mid-run.
    let mut child = Command::new(env!("CARGO_BIN_EXE_provisioning-hybrid"))
        .args([
            "create", "--tenant", "acme", "--plan", "premium", "--region", "eu-west",
        ])
        .args(["--inject-failure", "seed:transient=3", "--data-dir"])
        .arg(d)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill as soon as the request is recorded: the run then has at least the
    // 700 ms of backoff ahead of it, whatever the machine's load.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !run(d, &["status", "acme"]).0 {
        assert!(std::time::Instant::now() < deadline, "create never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let status = json(d, &["status", "acme"]);
    assert_ne!(status["state"], "active", "killed before the end: {status}");

    let report = json(d, &["recover"]);
    assert_eq!(report["recovered"][0]["status"], "succeeded", "{report}");
    assert_eq!(json(d, &["status", "acme"])["state"], "active");
    assert!(
        d.join("databases/eu-west/eu-west-dedicated-1/acme.sqlite")
            .exists()
    );
    let events = json(d, &["events", "acme"]);
    let kinds: Vec<_> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].clone())
        .collect();
    assert_eq!(kinds, ["TenantCreated", "TenantProvisioned"]);
    // Nothing left to recover.
    assert_eq!(json(d, &["recover"])["recovered"], serde_json::json!([]));
}
