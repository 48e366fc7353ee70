//! The generic workflows, `provision service`, `provision user` and
//! `provision resource`, run as a user runs them: rows in the tenant's
//! database and files in its storage, events, idempotency by request id,
//! refusal for a tenant that is not Active, quotas, compensation.
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
        stderr.contains("tenant acme is suspended: workflow \"service\" needs an Active tenant"),
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
        stderr.contains("tenant acme is deleted: workflow \"service\" needs an Active tenant"),
        "{stderr}"
    );
}

/// Every file under the tenant's resources folder, relative to it.
fn stored_resources(dir: &Path, tenant: &str) -> Vec<String> {
    let root = dir
        .join("storage/eu-west/tenants")
        .join(tenant)
        .join("resources");
    let mut found = Vec::new();
    let mut folders = vec![root.clone()];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                let relative = path.strip_prefix(&root).unwrap();
                found.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    found.sort();
    found
}

/// The billing records: one `resource.billed` marker per resource.
fn billed(db: &Path, tenant: &str) -> Vec<serde_json::Value> {
    rows(
        db,
        &format!(
            "SELECT payload FROM audit_log WHERE {} action = 'resource.billed' ORDER BY id",
            scope(db, tenant)
        ),
    )
    .iter()
    .map(|r| serde_json::from_str(&r[0]).unwrap())
    .collect()
}

/// `provision resource --tenant acme --service billing --type KIND EXTRA...`.
fn resource_args<'a>(kind: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "provision",
        "resource",
        "--tenant",
        "acme",
        "--service",
        "billing",
        "--type",
        kind,
    ];
    args.extend_from_slice(extra);
    args
}

fn subscribe(dir: &Path, tier: &str) {
    let args = [
        "provision",
        "service",
        "--tenant",
        "acme",
        "--service",
        "billing",
        "--tier",
        tier,
    ];
    assert_eq!(json(dir, &args)["status"], "succeeded");
}

#[test]
fn resources_are_allocated_within_the_quota_of_the_services_tier_and_billed() {
    for plan in ["standard", "premium"] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let db = tenant(d, "acme", plan);

        // No subscription to the service: refused, nothing written.
        let stderr = fails(d, &resource_args("storage", &[]));
        assert!(
            stderr.contains("invalid service: tenant acme does not subscribe to service billing"),
            "{plan}: {stderr}"
        );
        assert!(settings(&db, "acme").is_empty());
        subscribe(d, "basic");

        let database = json(d, &resource_args("database", &["--spec", "size_mb=50"]));
        let storage = json(d, &resource_args("storage", &[]));
        let compute = json(d, &resource_args("compute", &["--spec", "cpu=2"]));
        for receipt in [&database, &storage, &compute] {
            assert_eq!(receipt["status"], "succeeded", "{plan}: {receipt}");
        }
        let tail =
            |receipt: &serde_json::Value| receipt["request_id"].as_str().unwrap().replace('-', "");
        let database_id = format!("database-billing-{}", tail(&database));
        let storage_id = format!("storage-billing-{}", tail(&storage));
        let compute_id = format!("compute-billing-{}", tail(&compute));

        // The database and the storage are in the tenant's storage folder.
        assert_eq!(
            stored_resources(d, "acme"),
            [
                format!("{database_id}/database.sqlite"),
                format!("{storage_id}/.resource.json"),
            ],
            "{plan}"
        );
        let image = d
            .join("storage/eu-west/tenants/acme/resources")
            .join(&database_id)
            .join("database.sqlite");
        assert_eq!(
            rows(
                &image,
                "SELECT value FROM resource WHERE key IN ('tenant_id', 'service') ORDER BY key"
            ),
            strings(&[&["billing"], &["acme"]])
        );
        // Each is recorded, the compute allocation in the tenant's database.
        let keys: Vec<String> = settings(&db, "acme")
            .into_iter()
            .map(|r| r[0].clone())
            .collect();
        for key in [
            format!("resource.{database_id}"),
            format!("resource.{storage_id}"),
            format!("resource.{compute_id}"),
            format!("compute.{compute_id}"),
        ] {
            assert!(keys.contains(&key), "{plan}: {key} not in {keys:?}");
        }
        let bills = billed(&db, "acme");
        assert_eq!(bills.len(), 3, "{plan}: {bills:?}");
        assert_eq!(bills[0]["resource"], database_id.as_str());
        assert_eq!(bills[0]["tier"], "basic");
        assert_eq!(bills[0]["spec"]["size_mb"], 50);
        assert_eq!(
            bills[2]["spec"],
            serde_json::json!({"cpu": 2, "memory_mb": 512})
        );

        // Basic allows one database per service: the second is refused,
        // naming the limit, and nothing more is allocated.
        let before = (settings(&db, "acme"), stored_resources(d, "acme"));
        let stderr = fails(d, &resource_args("database", &[]));
        assert!(
            stderr.contains(
                "quota exceeded: tier basic allows 1 database resource(s) per service, \
                 and service billing holds 1"
            ),
            "{plan}: {stderr}"
        );
        assert_eq!((settings(&db, "acme"), stored_resources(d, "acme")), before);

        // The same request id twice: one allocation, one receipt, even once
        // the quota is full (basic allows two computes).
        let again = resource_args(
            "compute",
            &["--request-id", "01a20af2-0000-7000-8000-0000000000cc"],
        );
        let first = json(d, &again);
        assert_eq!(json(d, &again), first);
        assert_eq!(billed(&db, "acme").len(), 4);
        let stderr = fails(d, &resource_args("compute", &[]));
        assert!(stderr.contains("allows 2 compute resource(s)"), "{stderr}");

        let resources = event_kinds(d, "acme")
            .iter()
            .filter(|k| *k == "ResourceProvisioned")
            .count();
        assert_eq!(resources, 4, "{plan}");

        // Deleting the tenant purges its database and storage resources with
        // its storage.
        json(d, &["delete", "acme", "--purge"]);
        assert!(!d.join("storage/eu-west/tenants/acme").exists());
    }
}

#[test]
fn a_failure_at_any_resource_step_allocates_nothing() {
    for plan in ["standard", "premium"] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let db = tenant(d, "acme", plan);
        subscribe(d, "standard");
        let before = (settings(&db, "acme"), markers(&db, "acme"));
        for kind in ["database", "storage", "compute"] {
            for step in [
                "check-subscription",
                "reserve-quota",
                "allocate",
                "record-billing",
            ] {
                let fault = format!("{step}:permanent");
                let stderr = fails(d, &resource_args(kind, &["--inject-failure", &fault]));
                assert!(
                    stderr.contains(&format!("failed at step {step}")),
                    "{plan} {kind} {step}: {stderr}"
                );
                assert_eq!(
                    (settings(&db, "acme"), markers(&db, "acme")),
                    before,
                    "{plan} {kind} {step}"
                );
                assert!(
                    stored_resources(d, "acme").is_empty(),
                    "{plan} {kind} {step}"
                );
            }
        }
        assert!(
            !event_kinds(d, "acme").contains(&"ResourceProvisioned".to_owned()),
            "{plan}"
        );
    }
}
