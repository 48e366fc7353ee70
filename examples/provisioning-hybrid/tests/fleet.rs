//! Fleet roll-outs from the CLI: a `migrate-all` killed with SIGKILL midway
//! and run again migrates every tenant exactly once; a tenant that fails is
//! reported with its error, `--max-failures 0` halts with the rest pending,
//! and `--retry-failed` finishes the roll-out once it is fixed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::{json, rows, run};

/// Creates `tenants` with the base release (the ten migrations an older
/// build shipped), in one process per tenant, as a user would.
fn provision_base(d: &Path, tenants: &[(String, &str)]) {
    for (tenant, plan) in tenants {
        json(
            d,
            &[
                "create",
                "--release",
                "base",
                "--tenant",
                tenant,
                "--plan",
                plan,
                "--region",
                "eu-west",
            ],
        );
    }
}

fn database(d: &Path, tenant: &str) -> PathBuf {
    d.join(format!(
        "databases/eu-west/eu-west-dedicated-1/{tenant}.sqlite"
    ))
}

fn ledger(db: &Path) -> Vec<String> {
    rows(db, "SELECT version FROM _sqlx_migrations ORDER BY version")
        .into_iter()
        .map(|r| r[0].clone())
        .collect()
}

/// `migrate-all ARGS --json`, whatever its exit: success and the report.
fn roll_out(d: &Path, args: &[&str]) -> (bool, serde_json::Value) {
    let mut all = vec!["migrate-all"];
    all.extend_from_slice(args);
    all.push("--json");
    let (ok, stdout, stderr) = run(d, &all);
    let report =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\nstderr: {stderr}"));
    (ok, report)
}

#[test]
fn a_roll_out_killed_midway_and_run_again_migrates_every_tenant_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tenants: Vec<(String, &str)> = (0..60).map(|i| (format!("t{i:03}"), "premium")).collect();
    provision_base(d, &tenants);

    // One database at a time, a short lease; killed once ten are done.
    let mut child = Command::new(env!("CARGO_BIN_EXE_provisioning-hybrid"))
        .args(["migrate-all", "--concurrency", "1", "--lease-secs", "1"])
        .arg("--data-dir")
        .arg(d)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        // "[n migrated, ...] t007: applied 11,12"
        let (_, rest) = line.split_once("] ").unwrap();
        let (key, outcome) = rest.split_once(": ").unwrap();
        assert_eq!(outcome, "applied 11,12", "{line}");
        first.push(key.to_owned());
        if first.len() == 10 {
            child.kill().unwrap(); // SIGKILL
            break;
        }
    }
    child.wait().unwrap();
    let status = json(d, &["fleet", "status"]);
    assert_eq!(status["rollout"]["status"], "running", "{status}");
    let migrated = status["counts"]["migrated"].as_u64().unwrap();
    assert!(
        (10..60).contains(&migrated),
        "killed midway: {migrated} of 60 migrated"
    );

    let (ok, report) = roll_out(d, &["--concurrency", "2"]);
    assert!(ok, "{report}");
    assert_eq!(report["resumed"], true, "the same roll-out continued");
    assert_eq!(report["rollout"]["id"], status["rollout"]["id"]);
    assert_eq!(report["rollout"]["status"], "completed");
    assert_eq!(report["counts"]["migrated"], 60);
    assert_eq!(report["counts"]["failed"], 0, "no duplicate DDL: {report}");
    let second: Vec<&str> = report["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["database"].as_str().unwrap())
        .collect();
    for key in &first {
        assert!(!second.contains(&key.as_str()), "{key} was run again");
    }
    assert_eq!(
        second.len(),
        60 - migrated as usize,
        "every unit settled once, by one run or the other"
    );
    let expected: Vec<String> = (1..=12).map(|v| v.to_string()).collect();
    for (tenant, _) in &tenants {
        let db = database(d, tenant);
        assert_eq!(ledger(&db), expected, "{tenant}: each migration once");
        rows(&db, "SELECT estimate_hours FROM tasks");
    }
    let per_tenant = report["tenants"].as_array().unwrap();
    assert_eq!(per_tenant.len(), 60);
    assert!(per_tenant.iter().all(|t| t["status"] == "migrated"));
}

#[test]
fn a_failing_tenant_is_reported_halts_at_the_limit_and_is_retried_once_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut tenants: Vec<(String, &str)> = ["aaa", "bbb", "ccc", "ddd", "eee"]
        .iter()
        .map(|t| (t.to_string(), "premium"))
        .collect();
    tenants.extend(["fff", "ggg"].iter().map(|t| (t.to_string(), "free")));
    provision_base(d, &tenants);
    json(d, &["suspend", "ddd"]);
    // Behind the SDK's back: ccc already has the column 0011 adds, so 0011
    // fails on it.
    rows(
        &database(d, "ccc"),
        "ALTER TABLE tasks ADD COLUMN estimate_hours NUMERIC(6, 2)",
    );

    let (ok, halted) = roll_out(d, &["--max-failures", "0", "--concurrency", "1"]);
    assert!(!ok, "a failure exits non-zero");
    assert_eq!(halted["rollout"]["status"], "halted", "{halted}");
    let by_tenant = |report: &serde_json::Value| -> std::collections::BTreeMap<String, String> {
        report["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["tenant"].as_str().unwrap().to_owned(),
                    t["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let states = by_tenant(&halted);
    assert_eq!(states["aaa"], "migrated");
    assert_eq!(states["bbb"], "migrated");
    assert_eq!(states["ccc"], "failed");
    for t in ["ddd", "eee", "fff", "ggg"] {
        assert_eq!(states[t], "pending", "{t}: left pending, not half-done");
    }
    assert_eq!(ledger(&database(d, "eee")).len(), 10, "eee untouched");

    let status = json(d, &["fleet", "status"]);
    let failures = status["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["tenants"], serde_json::json!(["ccc"]));
    let error = failures[0]["error"].as_str().unwrap();
    assert!(error.contains("duplicate column"), "{error}");
    let (ok, text, _) = run(d, &["fleet", "status"]);
    assert!(ok);
    assert!(
        text.contains("halted") && text.contains("FAILED ccc"),
        "{text}"
    );

    // Run again without --max-failures: the limit kept still halts it.
    let (ok, kept) = roll_out(d, &[]);
    assert!(!ok);
    assert_eq!(kept["rollout"]["status"], "halted");
    assert_eq!(kept["databases"], serde_json::json!([]), "nothing ran");
    // The limit raised: the others (the suspended one too) go on; ccc stays failed.
    let (ok, rest) = roll_out(d, &["--max-failures", "unlimited"]);
    assert!(!ok);
    assert_eq!(rest["rollout"]["status"], "failed");
    let states = by_tenant(&rest);
    for t in ["aaa", "bbb", "ddd", "eee", "fff", "ggg"] {
        assert_eq!(states[t], "migrated", "{t}");
    }
    assert_eq!(states["ccc"], "failed");
    assert_eq!(ledger(&database(d, "ddd")).len(), 12, "suspended: migrated");

    // Fixed by hand, then retried: the roll-out completes.
    rows(
        &database(d, "ccc"),
        "ALTER TABLE tasks DROP COLUMN estimate_hours",
    );
    let (ok, done) = roll_out(d, &["--retry-failed"]);
    assert!(ok, "{done}");
    assert_eq!(done["rollout"]["id"], halted["rollout"]["id"]);
    assert_eq!(done["rollout"]["status"], "completed");
    assert_eq!(
        done["databases"].as_array().unwrap().len(),
        1,
        "only ccc ran"
    );
    assert_eq!(ledger(&database(d, "ccc")).len(), 12);

    // Bad input is refused naming the option, and records nothing.
    let (ok, _, stderr) = run(d, &["migrate-all", "--max-failures", "150%"]);
    assert!(!ok);
    assert!(stderr.contains("max_failures"), "{stderr}");
}
