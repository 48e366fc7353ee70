//! The drift check from the CLI on SQLite: tenants tampered with behind the
//! SDK's back (a dropped column, a dropped index, an extra table, a deleted
//! ledger row, an edited checksum, a deleted seed row, a release never
//! rolled out) are named exactly, each difference with its kind, and nothing
//! else; `--repair` fixes the mechanical ones, records each in the tenant's
//! events, and leaves the others reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use support::{json, rows, run};

fn database(d: &Path, tenant: &str) -> PathBuf {
    d.join(format!(
        "databases/eu-west/eu-west-dedicated-1/{tenant}.sqlite"
    ))
}

/// `drift ARGS --json`: the exit code and the report.
fn drift(d: &Path, args: &[&str]) -> (i32, serde_json::Value) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_provisioning-hybrid"))
        .arg("drift")
        .args(args)
        .args(["--json", "--data-dir"])
        .arg(d)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&output.stderr)));
    (output.status.code().unwrap(), report)
}

/// Per drifted tenant, its differences as `kind object` (sorted), and
/// whether each is repairable.
fn drifted(report: &serde_json::Value) -> BTreeMap<String, Vec<(String, bool)>> {
    report["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["clean"] == false)
        .map(|t| {
            let mut drifts: Vec<(String, bool)> = t["drifts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    (
                        format!(
                            "{} {}",
                            d["kind"].as_str().unwrap(),
                            d["object"].as_str().unwrap()
                        ),
                        d["repairable"].as_bool().unwrap(),
                    )
                })
                .collect();
            drifts.sort();
            (t["tenant"].as_str().unwrap().to_owned(), drifts)
        })
        .collect()
}

fn owned(items: &[(&str, bool)]) -> Vec<(String, bool)> {
    items.iter().map(|(s, r)| ((*s).to_owned(), *r)).collect()
}

#[test]
fn drift_names_exactly_the_tampered_tenants_and_repair_fixes_the_mechanical_ones() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (tenant, plan) in [
        ("aaa", "premium"),
        ("bbb", "premium"),
        ("ccc", "premium"),
        ("ddd", "premium"),
        ("eee", "premium"),
        ("fff", "premium"),
        ("ggg", "free"),
        ("hhh", "free"),
        ("iii", "premium"),
    ] {
        json(
            d,
            &[
                "create", "--tenant", tenant, "--plan", plan, "--region", "eu-west",
            ],
        );
    }
    // jjj: provisioned by an older build, never rolled out to.
    json(
        d,
        &[
            "create",
            "--release",
            "base",
            "--tenant",
            "jjj",
            "--plan",
            "premium",
            "--region",
            "eu-west",
        ],
    );
    let (code, clean) = drift(d, &["--tenant", "aaa"]);
    assert_eq!(code, 0, "{clean}");
    assert_eq!(clean["clean"], true);

    // Behind the SDK's back.
    rows(
        &database(d, "bbb"),
        "ALTER TABLE comments DROP COLUMN edited_at",
    );
    rows(&database(d, "ccc"), "DROP INDEX tasks_assignee_idx");
    rows(
        &database(d, "ddd"),
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)",
    );
    rows(
        &database(d, "eee"),
        "DELETE FROM _sqlx_migrations WHERE version = 12",
    );
    rows(
        &database(d, "fff"),
        "UPDATE _sqlx_migrations SET checksum = X'00' WHERE version = 3",
    );
    // A seed that never ran: neither its rows nor its ledger row.
    for table in ["user_roles", "users", "roles", "_tenant_seeds"] {
        rows(&database(d, "iii"), &format!("DELETE FROM {table}"));
    }

    let (code, report) = drift(d, &[]);
    assert_eq!(code, 3, "drift exits 3: {report}");
    assert_eq!(report["clean"], false);
    assert_eq!(report["databases"], 9, "8 dedicated + 1 shared");
    let expected = BTreeMap::from([
        (
            "bbb".to_owned(),
            owned(&[("missing_column comments.edited_at", false)]),
        ),
        (
            "ccc".to_owned(),
            owned(&[("missing_index tasks_assignee_idx", false)]),
        ),
        ("ddd".to_owned(), owned(&[("extra_table notes", false)])),
        (
            "eee".to_owned(),
            owned(&[("ledger_missing migration 12", true)]),
        ),
        (
            "fff".to_owned(),
            owned(&[("ledger_mismatch migration 3", false)]),
        ),
        (
            "iii".to_owned(),
            owned(&[("seed_missing seed workload-seed@1 of iii", true)]),
        ),
        (
            "jjj".to_owned(),
            owned(&[
                ("ledger_missing migration 11", true),
                ("ledger_missing migration 12", true),
            ]),
        ),
    ]);
    assert_eq!(drifted(&report), expected, "{report}");
    let missing = report["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == "bbb")
        .unwrap()["drifts"][0]
        .clone();
    assert_eq!(missing["expected"], "TEXT");
    let (_, text, _) = run(d, &["drift"]);
    assert!(
        text.contains("bbb: missing_column comments.edited_at"),
        "{text}"
    );
    assert!(text.contains("needs a person"), "{text}");

    let (code, repaired) = drift(d, &["--repair"]);
    assert_eq!(code, 3, "drift that needs a person is left: {repaired}");
    assert_eq!(
        repaired["repaired"], 4,
        "eee's row, iii's seed, jjj's two migrations"
    );
    let left = drifted(&repaired);
    assert_eq!(
        left.keys().collect::<Vec<_>>(),
        ["bbb", "ccc", "ddd", "fff"],
        "{repaired}"
    );
    assert_eq!(
        rows(
            &database(d, "eee"),
            "SELECT COUNT(*) FROM _sqlx_migrations WHERE version = 12"
        ),
        [["1"]]
    );
    rows(&database(d, "jjj"), "SELECT estimate_hours FROM tasks");
    assert_eq!(
        rows(&database(d, "iii"), "SELECT COUNT(*) FROM _tenant_seeds"),
        [["1"]]
    );
    assert_eq!(
        rows(&database(d, "iii"), "SELECT COUNT(*) FROM roles"),
        [["3"]]
    );
    for tenant in ["eee", "iii", "jjj"] {
        let (code, report) = drift(d, &["--tenant", tenant]);
        assert_eq!(code, 0, "{tenant}: {report}");
        let events = json(d, &["events", tenant]);
        let last = events.as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["kind"], "TenantSchemaRepaired", "{tenant}: {events}");
    }
    // Nothing needing a person was touched.
    let fff = rows(
        &database(d, "fff"),
        "SELECT hex(checksum) FROM _sqlx_migrations WHERE version = 3",
    );
    assert_eq!(fff, [["00"]]);

    // Bad input: an unknown tenant is an error (1), not drift (3).
    let (ok, _, stderr) = run(d, &["drift", "--tenant", "nobody"]);
    assert!(!ok);
    assert!(stderr.contains("not found"), "{stderr}");
}
