//! The generic workflows, `provision service` and `provision user`, run as a
//! user runs them: rows in the tenant's database, events, idempotency by
//! request id, refusal for a tenant that is not Active, compensation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};

use support::{fails, json, rows};

/// Creates `tenant` on `plan` in eu-west; returns its database file.
fn tenant(dir: &Path, tenant: &str, plan: &str) -> PathBuf {
    let receipt = json(
        dir,
        &[
            "create", "--tenant", tenant, "--plan", plan, "--region", "eu-west",
        ],
    );
    assert_eq!(receipt["status"], "succeeded");
    let record = json(dir, &["status", tenant]);
    let shard = record["placement"]["shard"].as_str().unwrap();
    let base = dir.join("databases/eu-west").join(shard);
    if record["placement"]["isolation"] == "dedicated" {
        base.join(format!("{tenant}.sqlite"))
    } else {
        base.join("_shared.sqlite")
    }
}

/// `tenant_id = 'x' AND ` in a shared database, nothing in a dedicated one.
fn scope(db: &Path, tenant: &str) -> String {
    if db.ends_with("_shared.sqlite") {
        format!("tenant_id = '{tenant}' AND ")
    } else {
        String::new()
    }
}

fn settings(db: &Path, tenant: &str) -> Vec<Vec<String>> {
    rows(
        db,
        &format!(
            "SELECT key, value FROM settings WHERE {} 1 = 1 ORDER BY key",
            scope(db, tenant)
        ),
    )
}

fn users(db: &Path, tenant: &str) -> Vec<Vec<String>> {
    rows(
        db,
        &format!(
            "SELECT u.email, r.name FROM users u LEFT JOIN user_roles ur ON ur.user_id = u.id \
             LEFT JOIN roles r ON r.id = ur.role_id WHERE {} 1 = 1 ORDER BY u.email",
            scope(db, tenant).replace("tenant_id", "u.tenant_id")
        ),
    )
}

fn markers(db: &Path, tenant: &str) -> usize {
    rows(
        db,
        &format!(
            "SELECT id FROM audit_log WHERE {} target_type = 'request'",
            scope(db, tenant)
        ),
    )
    .len()
}

fn event_kinds(dir: &Path, tenant: &str) -> Vec<String> {
    json(dir, &["events", tenant])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

fn strings(rows: &[&[&str]]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| r.iter().map(|c| (*c).to_owned()).collect())
        .collect()
}

#[test]
fn service_and_user_write_the_tenants_rows_and_publish_events() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // One shared and one dedicated tenant: the same steps serve both.
    for (id, plan) in [("acme", "standard"), ("bigco", "premium")] {
        let db = tenant(d, id, plan);
        let receipt = json(
            d,
            &[
                "provision",
                "service",
                "--tenant",
                id,
                "--service",
                "billing",
                "--tier",
                "standard",
            ],
        );
        assert_eq!(receipt["status"], "succeeded");
        assert_eq!(receipt["workflow"], "service");
        let audit = json(d, &["audit", receipt["request_id"].as_str().unwrap()]);
        let steps: Vec<_> = audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["outcome"] == "completed")
            .map(|e| e["step"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(steps, ["subscribe", "rate-limits"]);
        json(
            d,
            &[
                "provision",
                "user",
                "--tenant",
                id,
                "--email",
                "ana@acme.example",
                "--role",
                "member",
            ],
        );
        assert_eq!(
            settings(&db, id),
            strings(&[
                &[
                    "rate_limits.billing",
                    r#"{"burst":100,"requests_per_minute":600}"#
                ],
                &[
                    "service.billing",
                    r#"{"status":"enabled","tier":"standard"}"#
                ],
            ])
        );
        let admin = format!("admin@{id}.example");
        assert_eq!(
            users(&db, id),
            strings(&[&[&admin, "owner"], &["ana@acme.example", "member"]])
        );
        assert_eq!(
            event_kinds(d, id),
            [
                "TenantCreated",
                "TenantProvisioned",
                "ServiceProvisioned",
                "UserProvisioned"
            ]
        );
    }
}

#[test]
fn the_same_request_id_runs_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = tenant(d, "acme", "free");
    let id = "01a20af2-0000-7000-8000-000000000001";
    let args = [
        "provision",
        "user",
        "--tenant",
        "acme",
        "--email",
        "bo@acme.example",
        "--role",
        "viewer",
        "--request-id",
        id,
    ];
    let first = json(d, &args);
    let second = json(d, &args);
    assert_eq!(first, second);
    assert_eq!(first["request_id"], id);
    assert_eq!(users(&db, "acme").len(), 2);
    assert_eq!(
        event_kinds(d, "acme")
            .iter()
            .filter(|k| *k == "UserProvisioned")
            .count(),
        1
    );
    // The same key for different work is a conflict, and changes nothing.
    let stderr = fails(
        d,
        &[
            "provision",
            "user",
            "--tenant",
            "acme",
            "--email",
            "cy@acme.example",
            "--role",
            "viewer",
            "--request-id",
            id,
        ],
    );
    assert!(stderr.contains("conflict on request"), "{stderr}");
    assert_eq!(users(&db, "acme").len(), 2);
}

#[test]
fn a_tenant_that_is_not_active_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = tenant(d, "acme", "premium");
    json(d, &["suspend", "acme"]);
    let stderr = fails(
        d,
        &[
            "provision",
            "service",
            "--tenant",
            "acme",
            "--service",
            "billing",
            "--tier",
            "basic",
        ],
    );
    assert!(
        stderr.contains("illegal tenant state transition from suspended to active"),
        "{stderr}"
    );
    assert!(settings(&db, "acme").is_empty());
    assert_eq!(
        event_kinds(d, "acme"),
        ["TenantCreated", "TenantProvisioned", "TenantSuspended"]
    );
    let stderr = fails(
        d,
        &[
            "provision",
            "user",
            "--tenant",
            "nobody",
            "--email",
            "a@b.io",
            "--role",
            "member",
        ],
    );
    assert!(stderr.contains("tenant nobody not found"), "{stderr}");
    let stderr = fails(
        d,
        &[
            "provision",
            "user",
            "--tenant",
            "acme",
            "--email",
            "not-an-email",
            "--role",
            "member",
        ],
    );
    assert!(
        stderr.contains("invalid email: must be local@domain"),
        "{stderr}"
    );
}

#[test]
fn a_failure_at_any_step_is_compensated_and_restores_what_was_there() {
    // A shared tenant and a dedicated one: the rollback SQL differs.
    for plan in ["standard", "premium"] {
        compensated(plan);
    }
}

fn compensated(plan: &str) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = tenant(d, "acme", plan);
    let before = settings(&db, "acme");
    for step in ["subscribe", "rate-limits"] {
        let fault = format!("{step}:permanent");
        let stderr = fails(
            d,
            &[
                "provision",
                "service",
                "--tenant",
                "acme",
                "--service",
                "search",
                "--tier",
                "basic",
                "--inject-failure",
                &fault,
            ],
        );
        assert!(
            stderr.contains(&format!("failed at step {step}")),
            "{stderr}"
        );
        assert_eq!(settings(&db, "acme"), before, "{plan}: failure at {step}");
        assert_eq!(markers(&db, "acme"), 0);
    }
    // A tier change that fails puts the old tier and limits back.
    json(
        d,
        &[
            "provision",
            "service",
            "--tenant",
            "acme",
            "--service",
            "search",
            "--tier",
            "basic",
        ],
    );
    let basic = settings(&db, "acme");
    fails(
        d,
        &[
            "provision",
            "service",
            "--tenant",
            "acme",
            "--service",
            "search",
            "--tier",
            "enterprise",
            "--inject-failure",
            "rate-limits:permanent",
        ],
    );
    assert_eq!(settings(&db, "acme"), basic);

    let users_before = users(&db, "acme");
    fails(
        d,
        &[
            "provision",
            "user",
            "--tenant",
            "acme",
            "--email",
            "ana@acme.example",
            "--role",
            "member",
            "--inject-failure",
            "grant-role:permanent",
        ],
    );
    assert_eq!(users(&db, "acme"), users_before);
    // A transient failure is retried and the run succeeds.
    let receipt = json(
        d,
        &[
            "provision",
            "user",
            "--tenant",
            "acme",
            "--email",
            "ana@acme.example",
            "--role",
            "member",
            "--inject-failure",
            "create-user:transient",
        ],
    );
    assert_eq!(receipt["status"], "succeeded");
    let audit = json(d, &["audit", receipt["request_id"].as_str().unwrap()]);
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["step"] == "create-user"
                && e["attempt"] == 2
                && e["outcome"] == "completed")
    );
    // Only successful runs published events.
    assert_eq!(
        event_kinds(d, "acme"),
        [
            "TenantCreated",
            "TenantProvisioned",
            "ServiceProvisioned",
            "UserProvisioned"
        ]
    );
}

#[test]
fn an_address_already_taken_fails_and_leaves_that_user_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = tenant(d, "acme", "premium");
    let before = users(&db, "acme");
    let stderr = fails(
        d,
        &[
            "provision",
            "user",
            "--tenant",
            "acme",
            "--email",
            "admin@acme.example",
            "--role",
            "viewer",
        ],
    );
    assert!(stderr.contains("already exists"), "{stderr}");
    assert_eq!(users(&db, "acme"), before);
    assert_eq!(markers(&db, "acme"), 0);
}

#[test]
fn a_finished_request_repeated_after_the_tenant_was_deleted_gets_its_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tenant(d, "acme", "premium");
    let args = [
        "provision",
        "service",
        "--tenant",
        "acme",
        "--service",
        "billing",
        "--tier",
        "basic",
        "--request-id",
        "01a20af2-0000-7000-8000-0000000000aa",
    ];
    let first = json(d, &args);
    json(d, &["delete", "acme"]);
    assert_eq!(json(d, &args), first);
    // A new request for the deleted tenant is refused.
    let stderr = fails(
        d,
        &[
            "provision",
            "service",
            "--tenant",
            "acme",
            "--service",
            "search",
            "--tier",
            "basic",
        ],
    );
    assert!(
        stderr.contains("illegal tenant state transition from deleted"),
        "{stderr}"
    );
}
