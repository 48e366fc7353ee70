//! The CLI run as a user runs it: exit codes, clear errors, JSON output with
//! snake_case names, rollback after an injected failure, and the dry run.
//!
//! (7) The operational drills of the example's README: cold onboarding, the
//! hybrid flow, rollback at every step, transient failures, a SIGKILL during
//! `create` finished by `recover`, and the fleet roll-out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command;

use support::{fails, files_under, json, rows, run};

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
    let dry_run = |command: &str| {
        json(
            d,
            &[
                command,
                "--tenant",
                "acme",
                "--plan",
                "regulated",
                "--region",
                "us-east",
            ],
        )
    };
    let plan = dry_run("preview");
    assert_eq!(plan["placement"]["isolation"], "dedicated");
    assert_eq!(plan["placement"]["residency"], "strict");
    // `plan`, the command's former name, still answers the same.
    let former = dry_run("plan");
    assert_eq!(former["placement"], plan["placement"]);
    assert_eq!(plan["schema"]["will_create"], true);
    // The current release: the ten base migrations and the fleet release.
    assert_eq!(
        plan["schema"]["pending_migrations"]
            .as_array()
            .unwrap()
            .len(),
        12
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
    // The catalog exists before the create starts.
    assert!(run(d, &["list"]).0);
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

#[test]
fn a_permanent_failure_at_each_step_leaves_no_file_or_row_of_the_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let steps = [
        "validate",
        "place",
        "prepare-database",
        "migrate",
        "seed",
        "initialize-storage",
        "activate",
    ];
    for (i, step) in steps.iter().enumerate() {
        for (plan, region) in [("premium", "eu-west"), ("standard", "us-east")] {
            let tenant = format!("t{i}-{plan}");
            let fault = format!("{step}:permanent");
            let (ok, _, stderr) = run(
                d,
                &[
                    "create",
                    "--tenant",
                    &tenant,
                    "--plan",
                    plan,
                    "--region",
                    region,
                    "--inject-failure",
                    &fault,
                ],
            );
            assert!(!ok, "{tenant}");
            assert!(
                stderr.contains(&format!("failed at step {step}")),
                "{stderr}"
            );
            assert_eq!(json(d, &["status", &tenant])["state"], "failed");
            let shard_dir = d.join("databases").join(region);
            let leftover = files_under(&shard_dir)
                .into_iter()
                .find(|p| p.contains(&tenant));
            assert_eq!(leftover, None, "{tenant}: a database file remains");
            assert!(
                !d.join("storage")
                    .join(region)
                    .join("tenants")
                    .join(&tenant)
                    .exists(),
                "{tenant}: storage remains"
            );
            if plan == "standard" {
                let shared = d.join("databases/us-east/us-east-shared-1/_shared.sqlite");
                if shared.exists() {
                    let rows = count_rows(&shared, &tenant);
                    assert_eq!(rows, 0, "{tenant}: rows remain in the shared database");
                }
            }
        }
    }
}

/// Rows of `tenant` in the shared workload's tables.
fn count_rows(db: &Path, tenant: &str) -> i64 {
    let tables = rows(db, "SELECT name FROM sqlite_master WHERE type = 'table'");
    let mut total = 0;
    for table in ["roles", "users", "user_roles", "settings", "audit_log"] {
        if !tables.iter().any(|t| t[0] == table) {
            continue; // not migrated yet: no rows either
        }
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE tenant_id = '{tenant}'");
        total += rows(db, &sql)[0][0].parse::<i64>().unwrap();
    }
    total
}

#[test]
fn cold_onboarding_adopts_a_database_made_beforehand() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A DBA made the tenant's database file, with a table of their own.
    let db = d.join("databases/eu-west/eu-west-dedicated-1/legacy.sqlite");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        use sqlx::Connection;
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db)
            .create_if_missing(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE dba_notes (note TEXT)")
            .execute(&mut conn)
            .await
            .unwrap();
    });

    let receipt = json(
        d,
        &[
            "create", "--tenant", "legacy", "--plan", "premium", "--region", "eu-west",
        ],
    );
    assert_eq!(receipt["status"], "succeeded");
    assert_eq!(json(d, &["status", "legacy"])["state"], "active");
    runtime.block_on(async {
        use sqlx::Connection;
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&db);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        let notes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dba_notes")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(notes, 0, "the DBA's table is still there");
        let roles: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM roles")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert!(roles > 0, "migrated and seeded in place");
    });
}

#[test]
fn migrate_all_rolls_the_fleet_release_out_to_every_tenant_database() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Tenants provisioned by an older build: the ten base migrations only.
    for (tenant, plan, region) in [
        ("aaa", "premium", "eu-west"),
        ("bbb", "free", "eu-west"),
        ("ccc", "standard", "eu-west"),
        ("ddd", "regulated", "us-east"),
        ("eee", "premium", "us-east"),
    ] {
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
                region,
            ],
        );
    }
    json(d, &["suspend", "ddd"]);
    json(d, &["delete", "eee", "--purge"]);

    let dry = json(d, &["migrate-all", "--dry-run"]);
    let databases = dry["databases"].as_array().unwrap();
    assert_eq!(
        databases.len(),
        3,
        "aaa, ddd (suspended), and the shared one once; not eee: {dry}"
    );
    assert!(
        databases
            .iter()
            .all(|u| u["outcome"] == "would apply 11,12"),
        "{dry}"
    );
    let shared = databases
        .iter()
        .find(|u| u["isolation"] == "shared")
        .unwrap();
    assert_eq!(shared["tenants"], serde_json::json!(["bbb", "ccc"]));

    let applied = json(d, &["migrate-all", "--concurrency", "2"]);
    assert_eq!(applied["done"], 3);
    assert_eq!(applied["failed"], 0);
    assert_eq!(applied["pending"], 0);
    assert_eq!(applied["rollout"]["status"], "completed");
    let again = json(d, &["migrate-all"]);
    assert_eq!(again["up_to_date"], 3, "nothing left to apply");
    assert_ne!(again["rollout"]["id"], applied["rollout"]["id"]);

    // The new column is there.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        use sqlx::Connection;
        let db = d.join("databases/eu-west/eu-west-dedicated-1/aaa.sqlite");
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(db);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        sqlx::query("SELECT estimate_hours FROM tasks")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    });
}

#[test]
fn a_config_file_sets_the_policy_and_the_shard_map() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The built-in configuration is printed as a starting point.
    let (ok, default, _) = run(d, &["config"]);
    assert!(ok);
    assert!(
        default.contains("id = \"eu-west-dedicated-1\""),
        "{default}"
    );

    let config = d.join("hybrid.toml");
    std::fs::write(
        &config,
        r#"
[policy.plans]
starter = {}
enterprise = { isolation = "dedicated", residency = "strict" }

[[shards]]
id = "ap-south-shared-1"
region = "ap-south"
capacity = 100
connection = "sqlite:databases/ap-south/ap-south-shared-1/_shared.sqlite"

[[shards]]
id = "ap-south-dedicated-1"
region = "ap-south"
pool = "dedicated"
capacity = 10
connection = "sqlite:databases/ap-south/ap-south-dedicated-1/{tenant}.sqlite"
"#,
    )
    .unwrap();
    let config = config.to_str().unwrap();
    for (tenant, plan, shard, isolation) in [
        ("acme", "starter", "ap-south-shared-1", "shared"),
        ("bigco", "enterprise", "ap-south-dedicated-1", "dedicated"),
    ] {
        json(
            d,
            &[
                "--config", config, "create", "--tenant", tenant, "--plan", plan, "--region",
                "ap-south",
            ],
        );
        let record = json(d, &["--config", config, "status", tenant]);
        assert_eq!(record["placement"]["shard"], shard);
        assert_eq!(record["placement"]["isolation"], isolation);
    }
    assert!(
        d.join("databases/ap-south/ap-south-dedicated-1/bigco.sqlite")
            .exists()
    );
    // Plans and regions outside the file are bad input, refused up front.
    let (ok, _, stderr) = run(
        d,
        &[
            "--config", config, "create", "--tenant", "cyan", "--plan", "premium", "--region",
            "ap-south",
        ],
    );
    assert!(!ok);
    assert!(stderr.contains("plan"), "{stderr}");

    // A mistake in the file names the file and the field; nothing is written.
    let broken = d.join("broken.toml");
    std::fs::write(&broken, "[[shards]]\nid = \"x-1\"\nregoin = \"x\"\n").unwrap();
    let (ok, _, stderr) = run(
        d,
        &[
            "--config",
            broken.to_str().unwrap(),
            "create",
            "--tenant",
            "dora",
            "--plan",
            "starter",
            "--region",
            "ap-south",
        ],
    );
    assert!(!ok);
    assert!(
        stderr.contains("broken.toml") && stderr.contains("regoin"),
        "{stderr}"
    );
    let tenants = json(d, &["--config", config, "list"]);
    assert_eq!(tenants.as_array().unwrap().len(), 2);
}

#[test]
fn the_hybrid_flow_places_each_plan_by_the_policy_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (tenant, plan, region, isolation) in [
        ("alpha", "free", "eu-west", "shared"),
        ("bravo", "standard", "us-east", "shared"),
        ("charlie", "premium", "eu-west", "dedicated"),
        ("delta", "regulated", "us-east", "dedicated"),
    ] {
        json(
            d,
            &[
                "create", "--tenant", tenant, "--plan", plan, "--region", region,
            ],
        );
        let record = json(d, &["status", tenant]);
        assert_eq!(record["state"], "active");
        let metadata = &record["metadata"];
        assert_eq!(metadata["placement.isolation"], isolation, "{tenant}");
        assert_eq!(metadata["placement.region"], region, "{tenant}");
        let shard = metadata["placement.shard"].as_str().unwrap();
        assert_eq!(shard, format!("{region}-{isolation}-1"), "{tenant}");
        assert_eq!(record["placement"]["shard"], shard);
        let shard_dir = d.join("databases").join(region).join(shard);
        if isolation == "dedicated" {
            assert!(shard_dir.join(format!("{tenant}.sqlite")).exists());
        } else {
            assert!(count_rows(&shard_dir.join("_shared.sqlite"), tenant) > 0);
            assert!(!shard_dir.join(format!("{tenant}.sqlite")).exists());
        }
        assert!(
            d.join("storage")
                .join(region)
                .join("tenants")
                .join(tenant)
                .join(".tenant.json")
                .exists()
        );
    }
    // Regulated tenants are placed with strict residency: never outside their region.
    let delta = json(d, &["status", "delta"]);
    assert_eq!(delta["placement"]["residency"], "strict");
    let listed = json(d, &["list", "--region", "us-east"]);
    let ids: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tenant_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["bravo", "delta"]);
}

#[test]
fn serve_refuses_a_reachable_address_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = run(dir.path(), &["serve", "--addr", "0.0.0.0:0"]);
    assert!(!ok);
    assert!(
        stderr.contains("refusing to serve 0.0.0.0:0 without a token"),
        "{stderr}"
    );
}

#[test]
fn list_pages_and_says_where_the_next_page_starts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for tenant in ["cherry", "apple", "banana"] {
        json(
            d,
            &[
                "create", "--tenant", tenant, "--plan", "free", "--region", "eu-west",
            ],
        );
    }
    let ids = |page: &serde_json::Value| -> Vec<String> {
        page.as_array()
            .unwrap()
            .iter()
            .map(|t| t["tenant_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (ok, stdout, stderr) = run(d, &["list", "--limit", "2", "--json"]);
    assert!(ok, "{stderr}");
    assert_eq!(
        ids(&serde_json::from_str(&stdout).unwrap()),
        ["apple", "banana"]
    );
    assert!(stderr.contains("continue with --after banana"), "{stderr}");
    let (ok, stdout, stderr) = run(d, &["list", "--limit", "2", "--after", "banana", "--json"]);
    assert!(ok, "{stderr}");
    assert_eq!(ids(&serde_json::from_str(&stdout).unwrap()), ["cherry"]);
    assert!(!stderr.contains("continue with"), "the last page: {stderr}");

    for bad in [
        &["list", "--limit", "0"][..],
        &["list", "--limit", "10001"][..],
    ] {
        assert!(fails(d, bad).contains("--limit"), "{bad:?}");
    }
    assert!(fails(d, &["list", "--after", "X!"]).contains("tenant_id"));
}

#[test]
fn concurrency_is_bounded_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for args in [
        &["migrate-all", "--concurrency", "0"][..],
        &["migrate-all", "--concurrency", "65"][..],
        &["drift", "--concurrency", "1000"][..],
        &["drain", "--shard", "eu-west-shared-1", "--concurrency", "0"][..],
    ] {
        let stderr = fails(d, args);
        assert!(
            stderr.contains("--concurrency") && stderr.contains("1 to 64"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn a_broken_config_file_is_reported_without_its_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = d.join("broken.toml");
    std::fs::write(
        &config,
        "[[shards]]\nid = \"eu-1\"\nconnection = \"postgres://app:s3cret@db/{tenant}\" oops\n",
    )
    .unwrap();
    let (ok, _, stderr) = run(d, &["--config", config.to_str().unwrap(), "list"]);
    assert!(!ok);
    assert!(stderr.contains("line 3"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "the password leaked: {stderr}");
}
