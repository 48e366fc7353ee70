//! Tenant mobility from the CLI: a plan upgrade moves a tenant's rows from
//! its shared database into one of its own and a downgrade brings them
//! back; a failure at any move step leaves it where it was; bad input is
//! refused with nothing changed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};

use support::{fails, json, rows, run, spawn};

const TABLES: [&str; 9] = [
    "roles",
    "users",
    "user_roles",
    "projects",
    "tasks",
    "comments",
    "attachments",
    "settings",
    "audit_log",
];

fn shared(d: &Path) -> PathBuf {
    d.join("databases/eu-west/eu-west-shared-1/_shared.sqlite")
}

fn dedicated(d: &Path, tenant: &str) -> PathBuf {
    d.join(format!(
        "databases/eu-west/eu-west-dedicated-1/{tenant}.sqlite"
    ))
}

/// The tenant's rows in `db`, table by table, without `tenant_id`: what a
/// move must carry over exactly.
fn dump(db: &Path, tenant: &str) -> Vec<(String, Vec<Vec<String>>)> {
    let scoped = db.ends_with("_shared.sqlite");
    TABLES
        .iter()
        .map(|table| {
            let columns: Vec<String> = rows(
                db,
                &format!("SELECT name FROM pragma_table_info('{table}') ORDER BY name"),
            )
            .into_iter()
            .map(|r| r[0].clone())
            .filter(|c| c != "tenant_id")
            .collect();
            let filter = if scoped {
                format!(" WHERE tenant_id = '{tenant}'")
            } else {
                String::new()
            };
            let sql = format!(
                "SELECT {} FROM {table}{filter} ORDER BY id",
                columns.join(", ")
            );
            ((*table).to_owned(), rows(db, &sql))
        })
        .collect()
}

fn total(dump: &[(String, Vec<Vec<String>>)]) -> usize {
    dump.iter().map(|(_, r)| r.len()).sum()
}

/// Two standard tenants on the shared shard; acme gets a user, a project
/// and tasks after provisioning.
fn two_shared_tenants(d: &Path) {
    for tenant in ["acme", "other"] {
        json(
            d,
            &[
                "create", "--tenant", tenant, "--plan", "standard", "--region", "eu-west",
            ],
        );
    }
    json(
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
        ],
    );
    rows(
        &shared(d),
        "INSERT INTO projects (tenant_id, name, slug) VALUES ('acme', 'Launch', 'launch') RETURNING id",
    );
    for title in ["plan", "build", "ship"] {
        rows(
            &shared(d),
            &format!(
                "INSERT INTO tasks (tenant_id, project_id, title) \
                 SELECT 'acme', id, '{title}' FROM projects WHERE tenant_id = 'acme' RETURNING id"
            ),
        );
    }
}

#[test]
fn a_plan_upgrade_moves_the_rows_to_a_database_of_its_own_and_a_downgrade_brings_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    two_shared_tenants(d);
    let before = dump(&shared(d), "acme");
    let other = dump(&shared(d), "other");
    assert!(total(&before) >= 12, "{before:?}");

    let dry = json(
        d,
        &[
            "change-plan",
            "--tenant",
            "acme",
            "--plan",
            "premium",
            "--dry-run",
        ],
    );
    assert_eq!(dry["to"]["isolation"], "dedicated");
    assert_eq!(dry["tables"][3]["source_rows"], 1, "{dry}"); // projects
    assert!(
        !dedicated(d, "acme").exists(),
        "the dry run created nothing"
    );

    let receipt = json(d, &["change-plan", "--tenant", "acme", "--plan", "premium"]);
    assert_eq!(receipt["status"], "succeeded", "{receipt}");
    let status = json(d, &["status", "acme"]);
    assert_eq!(status["state"], "active");
    assert_eq!(status["plan"], "premium");
    assert_eq!(status["placement"]["isolation"], "dedicated");
    assert_eq!(
        status["placement"]["database"],
        dedicated(d, "acme").display().to_string()
    );
    assert_eq!(
        dump(&dedicated(d, "acme"), "acme"),
        before,
        "identical rows on the target"
    );
    assert_eq!(
        total(&dump(&shared(d), "acme")),
        0,
        "nothing left on the source"
    );
    assert_eq!(dump(&shared(d), "other"), other, "the neighbour untouched");
    let ledger = rows(
        &dedicated(d, "acme"),
        "SELECT tenant_id, name FROM _tenant_seeds",
    );
    assert_eq!(ledger, [["acme", "workload-seed"]]);

    let events = json(d, &["events", "acme"]);
    let last = events.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "TenantMoved");
    assert_eq!(last["sequence"], 4);
    assert_eq!(last["data"]["from"]["shard"], "eu-west-shared-1");
    assert_eq!(last["data"]["to"]["shard"], "eu-west-dedicated-1");
    assert_eq!(last["data"]["reason"], "plan_change");

    // The tenant works where it is now: a workflow writes to its own file.
    json(
        d,
        &[
            "provision",
            "user",
            "--tenant",
            "acme",
            "--email",
            "bo@acme.example",
            "--role",
            "viewer",
        ],
    );
    let upgraded = dump(&dedicated(d, "acme"), "acme");

    let receipt = json(
        d,
        &["change-plan", "--tenant", "acme", "--plan", "standard"],
    );
    assert_eq!(receipt["status"], "succeeded", "{receipt}");
    let status = json(d, &["status", "acme"]);
    assert_eq!(status["placement"]["isolation"], "shared");
    assert_eq!(status["plan"], "standard");
    assert_eq!(dump(&shared(d), "acme"), upgraded);
    assert!(
        !dedicated(d, "acme").exists(),
        "the dedicated file is released"
    );
    assert_eq!(dump(&shared(d), "other"), other);
}

#[test]
fn a_permanent_failure_at_any_step_before_cut_over_leaves_the_tenant_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    two_shared_tenants(d);
    let before = dump(&shared(d), "acme");
    for step in [
        "validate-move",
        "reserve-target",
        "prepare-target",
        "migrate-target",
        "hold-writes",
        "copy-data",
        "verify-copy",
        "relocate-storage",
        "cut-over",
    ] {
        let spec = format!("{step}:permanent");
        let (ok, _, stderr) = run(
            d,
            &[
                "change-plan",
                "--tenant",
                "acme",
                "--plan",
                "premium",
                "--inject-failure",
                &spec,
            ],
        );
        assert!(!ok, "{step}");
        assert!(
            stderr.contains(&format!("failed at step {step}")),
            "{step}: {stderr}"
        );
        let status = json(d, &["status", "acme"]);
        assert_eq!(status["state"], "active", "{step}");
        assert_eq!(status["plan"], "standard", "{step}");
        assert_eq!(status["placement"]["isolation"], "shared", "{step}");
        assert_eq!(dump(&shared(d), "acme"), before, "{step}: source intact");
        assert!(
            !dedicated(d, "acme").exists(),
            "{step}: the target holds nothing"
        );
    }
    let kinds: Vec<_> = json(d, &["events", "acme"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    assert!(!kinds.iter().any(|k| k == "TenantMoved"), "{kinds:?}");
}

#[test]
fn a_transient_failure_at_any_step_is_retried_and_the_move_completes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    two_shared_tenants(d);
    let before = dump(&shared(d), "acme");
    let steps = [
        "validate-move",
        "reserve-target",
        "prepare-target",
        "migrate-target",
        "hold-writes",
        "copy-data",
        "verify-copy",
        "relocate-storage",
        "cut-over",
        "release-source",
    ];
    for (i, step) in steps.iter().enumerate() {
        // Up and down, so that each step runs on both kinds of move.
        let plan = if i % 2 == 0 { "premium" } else { "standard" };
        let spec = format!("{step}:transient");
        let receipt = json(
            d,
            &[
                "change-plan",
                "--tenant",
                "acme",
                "--plan",
                plan,
                "--inject-failure",
                &spec,
            ],
        );
        assert_eq!(receipt["status"], "succeeded", "{step}: {receipt}");
        let now = json(d, &["status", "acme"]);
        assert_eq!(now["plan"], plan, "{step}");
        let db = if plan == "premium" {
            dedicated(d, "acme")
        } else {
            shared(d)
        };
        assert_eq!(dump(&db, "acme"), before, "{step}");
    }
}

#[test]
fn a_failure_after_cut_over_keeps_the_tenant_on_its_target() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    two_shared_tenants(d);
    let before = dump(&shared(d), "acme");
    let (ok, _, stderr) = run(
        d,
        &[
            "change-plan",
            "--tenant",
            "acme",
            "--plan",
            "premium",
            "--inject-failure",
            "release-source:permanent",
        ],
    );
    assert!(!ok);
    assert!(stderr.contains("release-source"), "{stderr}");
    let status = json(d, &["status", "acme"]);
    assert_eq!(status["state"], "active");
    assert_eq!(status["placement"]["isolation"], "dedicated");
    assert_eq!(
        dump(&dedicated(d, "acme"), "acme"),
        before,
        "never rolled back past the pivot"
    );
}

#[test]
fn bad_moves_are_clear_errors_that_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    two_shared_tenants(d);
    json(
        d,
        &[
            "create", "--tenant", "gold", "--plan", "premium", "--region", "eu-west",
        ],
    );
    json(
        d,
        &[
            "create",
            "--tenant",
            "vault",
            "--plan",
            "regulated",
            "--region",
            "eu-west",
        ],
    );
    let version = |t: &str| json(d, &["status", t])["version"].clone();
    let (acme, gold) = (version("acme"), version("gold"));
    for (args, expected) in [
        (
            vec!["move", "--tenant", "acme", "--shard", "nowhere-1"],
            "shard nowhere-1 not found",
        ),
        (
            vec!["move", "--tenant", "acme", "--shard", "eu-west-shared-1"],
            "invalid shard: tenant acme is on shard eu-west-shared-1 already",
        ),
        (
            vec![
                "move",
                "--tenant",
                "vault",
                "--shard",
                "us-east-dedicated-1",
            ],
            "residency is strict to region eu-west",
        ),
        (
            vec!["move", "--tenant", "acme", "--shard", "eu-west-dedicated-1"],
            "pool dedicated",
        ),
        (
            vec!["move", "--tenant", "gold", "--shard", "eu-west-dedicated-1"],
            "already",
        ),
        (
            vec!["change-plan", "--tenant", "acme", "--plan", "standard"],
            "invalid plan: tenant acme is on plan standard already",
        ),
        (
            vec!["change-plan", "--tenant", "acme", "--plan", "platinum"],
            "plan",
        ),
        (
            vec!["change-plan", "--tenant", "ghost", "--plan", "premium"],
            "not found",
        ),
        (
            vec!["move", "--tenant", "acme", "--shard", "Bad Shard"],
            "shard",
        ),
    ] {
        let stderr = fails(d, &args);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    json(d, &["suspend", "gold"]);
    let stderr = fails(
        d,
        &["change-plan", "--tenant", "gold", "--plan", "standard"],
    );
    assert!(stderr.contains("from suspended to moving"), "{stderr}");
    assert_eq!(version("acme"), acme);
    assert_eq!(
        json(d, &["status", "gold"])["placement"]["isolation"],
        "dedicated"
    );
    assert!(!dedicated(d, "acme").exists());
    let _ = gold;
}

#[test]
fn a_flexible_tenant_moves_to_another_region_with_its_storage() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    two_shared_tenants(d);
    let before = dump(&shared(d), "acme");
    let (eu, us) = (
        d.join("storage/eu-west/tenants/acme"),
        d.join("storage/us-east/tenants/acme"),
    );
    std::fs::write(eu.join("uploads/logo.png"), b"\x89PNG acme").unwrap();
    let us_shared = d.join("databases/us-east/us-east-shared-1/_shared.sqlite");
    // Without a fallback region, an operator's move stays in the region.
    let stderr = fails(
        d,
        &["move", "--tenant", "acme", "--shard", "us-east-shared-1"],
    );
    assert!(stderr.contains("no fallback allows it"), "{stderr}");
    let (ok, config, _) = run(d, &["config"]);
    assert!(ok);
    let config_file = d.join("fallbacks.toml");
    std::fs::write(
        &config_file,
        format!("{config}\n[fallbacks]\neu-west = [\"us-east\"]\n"),
    )
    .unwrap();
    let config_file = config_file.display().to_string();
    let moving = [
        "move",
        "--tenant",
        "acme",
        "--shard",
        "us-east-shared-1",
        "--config",
        &config_file,
    ];

    // A failure at the storage step leaves everything in eu-west.
    let mut failing = moving.to_vec();
    failing.extend(["--inject-failure", "relocate-storage:permanent"]);
    let stderr = fails(d, &failing);
    assert!(
        stderr.contains("failed at step relocate-storage"),
        "{stderr}"
    );
    assert_eq!(
        json(d, &["status", "acme"])["placement"]["region"],
        "eu-west"
    );
    assert!(!us.exists(), "nothing of acme's storage in us-east");
    assert!(
        eu.join("uploads/logo.png").exists(),
        "its objects stay in eu-west"
    );
    assert_eq!(dump(&shared(d), "acme"), before);

    let receipt = json(d, &moving);
    assert_eq!(receipt["status"], "succeeded", "{receipt}");
    let status = json(d, &["status", "acme"]);
    assert_eq!(status["state"], "active");
    assert_eq!(status["placement"]["region"], "us-east");
    assert_eq!(status["placement"]["shard"], "us-east-shared-1");
    assert_eq!(dump(&us_shared, "acme"), before, "rows in us-east");
    assert_eq!(total(&dump(&shared(d), "acme")), 0, "none left in eu-west");
    assert!(total(&dump(&shared(d), "other")) > 0, "the neighbour stays");
    assert_eq!(
        std::fs::read(us.join("uploads/logo.png")).unwrap(),
        b"\x89PNG acme"
    );
    assert!(us.join("exports/.keep").exists());
    let marker: serde_json::Value =
        serde_json::from_slice(&std::fs::read(us.join(".tenant.json")).unwrap()).unwrap();
    assert_eq!(marker["region"], "us-east");
    assert!(!eu.exists(), "the source's objects are purged");
    let moved: Vec<_> = json(d, &["events", "acme"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "TenantMoved")
        .cloned()
        .collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    // The tenant works in its new region: suspend and resume touch its marker there.
    json(d, &["suspend", "acme"]);
    json(d, &["resume", "acme"]);
    assert_eq!(json(d, &["status", "acme"])["state"], "active");
}

#[test]
fn a_drain_drill_fails_every_move_and_leaves_them_then_a_second_run_moves_all_suspended_too() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // All on shared-1 (shared-2 full), then shared-2 opened: an empty shard
    // to drain into (keys of the reference workload are per database).
    let config = two_shard_config(d, "full");
    for i in 0..6 {
        let tenant = format!("d-{i:02}");
        json(
            d,
            &[
                "--config", &config, "create", "--tenant", &tenant, "--plan", "free", "--region",
                "eu-west",
            ],
        );
    }
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("\"full\"", "\"active\"")).unwrap();
    let on_first = |d: &Path| -> Vec<String> {
        json(d, &["list"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["placement"]["shard"] == "eu-west-shared-1")
            .map(|t| t["tenant_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = on_first(d);
    assert_eq!(first.len(), 6);
    // A suspended tenant must leave the shard too, and stays suspended.
    json(d, &["suspend", "d-03"]);
    let state = |t: &str| json(d, &["status", t])["state"].clone();
    let drain = |extra: &[&str]| {
        let mut args = vec![
            "--config",
            &config,
            "drain",
            "--shard",
            "eu-west-shared-1",
            "--json",
        ];
        args.extend_from_slice(extra);
        run(d, &args)
    };
    let (ok, stdout, _) = drain(&["--inject-failure", "copy-data:permanent"]);
    assert!(!ok, "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let outcomes = report["tenants"].as_array().unwrap();
    assert_eq!(outcomes.len(), first.len());
    assert!(
        outcomes.iter().all(|o| o["outcome"] == "failed"),
        "{report}"
    );
    assert_eq!(on_first(d), first, "every tenant stays where it was");
    assert_eq!(state("d-03"), "suspended");
    // Run again without the fault: it resumes and empties the shard.
    let (ok, stdout, stderr) = drain(&[]);
    assert!(ok, "{stdout} {stderr}");
    assert!(on_first(d).is_empty());
    let d03 = json(d, &["status", "d-03"]);
    assert_eq!(d03["state"], "suspended", "{d03}");
    assert_eq!(d03["placement"]["shard"], "eu-west-shared-2");
    let two = d.join("databases/eu-west/eu-west-shared-2/_shared.sqlite");
    assert!(total(&dump(&two, "d-03")) > 0, "its rows moved");
    let marker: serde_json::Value = serde_json::from_slice(
        &std::fs::read(d.join("storage/eu-west/tenants/d-03/.tenant.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(marker["suspended"], true);
    // And it resumes where it now is.
    json(d, &["resume", "d-03"]);
    assert_eq!(state("d-03"), "active");
}

/// Two shared shards in eu-west; `shared-2`'s status as given.
fn two_shard_config(d: &Path, second: &str) -> String {
    let path = d.join("hybrid.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[[shards]]
id = "eu-west-shared-1"
region = "eu-west"
capacity = 1000
connection = "sqlite:databases/eu-west/eu-west-shared-1/_shared.sqlite"

[[shards]]
id = "eu-west-shared-2"
region = "eu-west"
capacity = 1000
status = "{second}"
connection = "sqlite:databases/eu-west/eu-west-shared-2/_shared.sqlite"
"#
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn drain_moves_every_tenant_but_the_one_that_fails_and_new_tenants_go_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = two_shard_config(d, "full");
    let tenants: Vec<String> = (0..50).map(|i| format!("t-{i:02}")).collect();
    for tenant in &tenants {
        json(
            d,
            &[
                "--config", &config, "create", "--tenant", tenant, "--plan", "standard",
                "--region", "eu-west",
            ],
        );
    }
    let one = d.join("databases/eu-west/eu-west-shared-1/_shared.sqlite");
    let two = d.join("databases/eu-west/eu-west-shared-2/_shared.sqlite");
    let before: Vec<_> = tenants.iter().map(|t| dump(&one, t)).collect();
    // A tenant on the second shard whose fresh row ids (1, 2, ...) are
    // t-00's ids on the first: t-00's move must be refused, nothing written.
    std::fs::write(
        d.join("hybrid.toml"),
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("\"full\"", "\"active\""),
    )
    .unwrap();
    json(
        d,
        &[
            "--config", &config, "create", "--tenant", "squatter", "--plan", "standard",
            "--region", "eu-west",
        ],
    );
    let squatter = json(d, &["--config", &config, "status", "squatter"]);
    // Rendezvous may put it on either shard; only shared-2 makes the clash.
    assert_eq!(
        squatter["placement"]["shard"], "eu-west-shared-2",
        "{squatter}"
    );

    let (ok, stdout, stderr) = run(
        d,
        &[
            "--config",
            &config,
            "drain",
            "--shard",
            "eu-west-shared-1",
            "--concurrency",
            "4",
            "--json",
        ],
    );
    assert!(!ok, "one tenant fails, so the drain says so: {stdout}");
    assert!(
        stderr.contains("1 tenant(s) could not leave shard eu-west-shared-1"),
        "{stderr}"
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let outcomes = report["tenants"].as_array().unwrap();
    assert_eq!(outcomes.len(), 50);
    let failed: Vec<_> = outcomes
        .iter()
        .filter(|o| o["outcome"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{report}");
    assert_eq!(failed[0]["tenant_id"], "t-00");
    assert!(
        failed[0]["reason"]
            .as_str()
            .unwrap()
            .contains("another tenant"),
        "{report}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| o["outcome"] == "moved").count(),
        49
    );

    for (tenant, rows_before) in tenants.iter().zip(&before) {
        let status = json(d, &["--config", &config, "status", tenant]);
        assert_eq!(status["state"], "active", "{tenant}");
        let (here, gone) = if tenant == "t-00" {
            (&one, &two)
        } else {
            (&two, &one)
        };
        assert_eq!(
            status["placement"]["database"],
            here.display().to_string(),
            "{tenant}"
        );
        assert_eq!(
            &dump(here, tenant),
            rows_before,
            "{tenant}: rows intact where it lives"
        );
        assert_eq!(
            total(&dump(gone, tenant)),
            0,
            "{tenant}: nothing of it elsewhere"
        );
    }
    // The drain is kept: a new tenant never lands on the draining shard.
    for i in 0..5 {
        let tenant = format!("new-{i}");
        json(
            d,
            &[
                "--config", &config, "create", "--tenant", &tenant, "--plan", "free", "--region",
                "eu-west",
            ],
        );
        let status = json(d, &["--config", &config, "status", &tenant]);
        assert_eq!(status["placement"]["shard"], "eu-west-shared-2");
    }
    // Running it again retries what is left: t-00 still clashes, and says so.
    let again = fails(
        d,
        &["--config", &config, "drain", "--shard", "eu-west-shared-1"],
    );
    assert!(again.contains("1 tenant(s)"), "{again}");
}

/// Where the tenant's rows are: the file its placement names holds exactly
/// `expected`, and the other candidate holds nothing of it.
fn wholly_in_one_place(
    d: &Path,
    tenant: &str,
    expected: &[(String, Vec<Vec<String>>)],
    step: &str,
) {
    let status = json(d, &["status", tenant]);
    assert_eq!(status["state"], "active", "{step}: {status}");
    let here = PathBuf::from(status["placement"]["database"].as_str().unwrap());
    assert_eq!(
        dump(&here, tenant),
        expected,
        "{step}: rows where the catalog points"
    );
    if here == shared(d) {
        assert!(
            !dedicated(d, tenant).exists(),
            "{step}: a dedicated copy left behind"
        );
    } else {
        assert_eq!(
            total(&dump(&shared(d), tenant)),
            0,
            "{step}: rows left in the shared database"
        );
    }
}

#[test]
fn a_sigkill_at_any_move_step_then_recover_leaves_the_tenant_wholly_in_one_place() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    two_shared_tenants(d);
    let before = dump(&shared(d), "acme");
    for (i, step) in [
        "validate-move",
        "reserve-target",
        "prepare-target",
        "migrate-target",
        "hold-writes",
        "copy-data",
        "verify-copy",
        "relocate-storage",
        "cut-over",
        "release-source",
    ]
    .iter()
    .enumerate()
    {
        let plan = if json(d, &["status", "acme"])["plan"] == "standard" {
            "premium"
        } else {
            "standard"
        };
        let request_id = format!("0190a5c4-0000-7000-8000-{:012}", 100 + i);
        // The step fails transiently three times: 700 ms of backoff at that
        // step, in which the process is killed.
        let mut child = spawn(
            d,
            &[
                "change-plan",
                "--tenant",
                "acme",
                "--plan",
                plan,
                "--request-id",
                &request_id,
                "--inject-failure",
                &format!("{step}:transient=3"),
            ],
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !run(d, &["status", "--request", &request_id]).0 {
            assert!(
                std::time::Instant::now() < deadline,
                "{step}: the move never started"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        std::thread::sleep(std::time::Duration::from_millis(150));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let receipt = json(d, &["status", "--request", &request_id]);
        assert_eq!(receipt["status"], "running", "{step}: killed mid-run");

        let report = json(d, &["recover"]);
        assert_eq!(
            report["recovered"][0]["status"], "succeeded",
            "{step}: {report}"
        );
        assert_eq!(json(d, &["status", "acme"])["plan"], plan, "{step}");
        wholly_in_one_place(d, "acme", &before, step);
        assert_eq!(json(d, &["recover"])["recovered"], serde_json::json!([]));
    }
}

#[test]
fn sigkills_at_spread_moments_of_moves_never_leave_a_tenant_in_two_places_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    two_shared_tenants(d);
    let before = dump(&shared(d), "acme");
    // A spread of moments from "before the request is written" to "after
    // the move ended", stepping a few milliseconds each time.
    for i in 0..12u64 {
        let plan = if json(d, &["status", "acme"])["plan"] == "standard" {
            "premium"
        } else {
            "standard"
        };
        let mut child = spawn(d, &["change-plan", "--tenant", "acme", "--plan", plan]);
        std::thread::sleep(std::time::Duration::from_millis(20 + 9 * i));
        let _ = child.kill();
        child.wait().unwrap();
        json(d, &["recover"]);
        let moment = format!("kill after {} ms", 20 + 9 * i);
        wholly_in_one_place(d, "acme", &before, &moment);
        let status = json(d, &["status", "acme"]);
        let isolation = if status["plan"] == "premium" {
            "dedicated"
        } else {
            "shared"
        };
        assert_eq!(
            status["placement"]["isolation"], isolation,
            "{moment}: plan and placement agree"
        );
    }
}

#[test]
fn while_a_tenant_is_moving_other_writes_are_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    two_shared_tenants(d);
    // Copying fails transiently three times: 700 ms with the writes held.
    let mut child = spawn(
        d,
        &[
            "change-plan",
            "--tenant",
            "acme",
            "--plan",
            "premium",
            "--inject-failure",
            "copy-data:transient=3",
        ],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while json(d, &["status", "acme"])["state"] != "moving" {
        assert!(std::time::Instant::now() < deadline, "never moving");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let version = json(d, &["status", "acme"])["version"].clone();
    for args in [
        vec!["suspend", "acme"],
        vec!["delete", "acme"],
        vec!["change-plan", "--tenant", "acme", "--plan", "free"],
        vec!["move", "--tenant", "acme", "--shard", "eu-west-dedicated-1"],
        vec![
            "provision",
            "user",
            "--tenant",
            "acme",
            "--email",
            "x@acme.example",
            "--role",
            "member",
        ],
    ] {
        let stderr = fails(d, &args);
        // A lifecycle change names the transition; a workflow, the state.
        assert!(
            stderr.contains("from moving to") || stderr.contains("tenant acme is moving: workflow"),
            "{args:?}: {stderr}"
        );
    }
    assert_eq!(
        json(d, &["status", "acme"])["version"],
        version,
        "nothing written"
    );
    assert!(child.wait().unwrap().success());
    let status = json(d, &["status", "acme"]);
    assert_eq!(
        (status["state"].clone(), status["plan"].clone()),
        ("active".into(), "premium".into())
    );
}

/// Starts acme's upgrade to premium in a child whose `step` fails
/// transiently three times (700 ms of retries there), and returns once
/// acme's status satisfies `ready`.
fn slow_upgrade(
    d: &Path,
    step: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> std::process::Child {
    let fault = format!("{step}:transient=3");
    let child = spawn(
        d,
        &[
            "change-plan",
            "--tenant",
            "acme",
            "--plan",
            "premium",
            "--inject-failure",
            &fault,
        ],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !ready(&json(d, &["status", "acme"])) {
        assert!(
            std::time::Instant::now() < deadline,
            "{step}: never got there"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child
}

#[test]
fn a_second_move_started_before_the_first_holds_the_writes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    two_shared_tenants(d);
    let before = dump(&shared(d), "acme");
    // The first move claims the tenant, then waits 700 ms before its target
    // is even chosen.
    let mut first = slow_upgrade(d, "reserve-target", |status| {
        !status["metadata"]["move.request"].is_null()
    });
    let stderr = fails(d, &["change-plan", "--tenant", "acme", "--plan", "premium"]);
    assert!(stderr.contains("is being moved by request"), "{stderr}");
    assert!(first.wait().unwrap().success());
    let status = json(d, &["status", "acme"]);
    assert_eq!(status["placement"]["isolation"], "dedicated");
    assert!(
        status["metadata"]["move.request"].is_null(),
        "the claim ends with the move"
    );
    assert_eq!(dump(&dedicated(d, "acme"), "acme"), before);
}

#[test]
fn a_move_back_waits_until_the_first_move_has_released_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    two_shared_tenants(d);
    let before = dump(&shared(d), "acme");
    // Cut over to its own file, then 700 ms of retries to release the
    // shared rows: a downgrade meanwhile would put the tenant back in the
    // shared database just before that release deletes its rows there.
    let mut first = slow_upgrade(d, "release-source", |status| {
        status["placement"]["isolation"] == "dedicated"
    });
    let stderr = fails(
        d,
        &["change-plan", "--tenant", "acme", "--plan", "standard"],
    );
    assert!(stderr.contains("is being moved by request"), "{stderr}");
    assert!(first.wait().unwrap().success());
    // Released: now it may go back, with every row.
    let receipt = json(
        d,
        &["change-plan", "--tenant", "acme", "--plan", "standard"],
    );
    assert_eq!(receipt["status"], "succeeded", "{receipt}");
    assert_eq!(dump(&shared(d), "acme"), before);
}

#[test]
fn a_shard_whose_connection_resolves_to_the_tenants_own_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = d.join("same.toml");
    // Two dedicated shards whose templates forget {shard}: one file each tenant.
    std::fs::write(
        &config,
        r#"
[[shards]]
id = "eu-west-shared-1"
region = "eu-west"
capacity = 100
connection = "sqlite:databases/eu-west/eu-west-shared-1/_shared.sqlite"

[[shards]]
id = "eu-west-dedicated-1"
region = "eu-west"
pool = "dedicated"
capacity = 100
connection = "sqlite:databases/eu-west/{tenant}.sqlite"

[[shards]]
id = "eu-west-dedicated-2"
region = "eu-west"
pool = "dedicated"
capacity = 100
connection = "sqlite:databases/eu-west/{tenant}.sqlite"
"#,
    )
    .unwrap();
    let config = config.to_str().unwrap();
    json(
        d,
        &[
            "--config", config, "create", "--tenant", "gold", "--plan", "premium", "--region",
            "eu-west",
        ],
    );
    let status = json(d, &["--config", config, "status", "gold"]);
    let other = if status["placement"]["shard"] == "eu-west-dedicated-1" {
        "eu-west-dedicated-2"
    } else {
        "eu-west-dedicated-1"
    };
    let stderr = fails(
        d,
        &[
            "--config", config, "move", "--tenant", "gold", "--shard", other,
        ],
    );
    assert!(stderr.contains("in the database it is in now"), "{stderr}");
    let file = d.join("databases/eu-west/gold.sqlite");
    assert_eq!(
        rows(&file, "SELECT COUNT(*) FROM roles"),
        [["3"]],
        "the tenant's data untouched"
    );
    assert_eq!(
        json(d, &["--config", config, "status", "gold"])["version"],
        status["version"]
    );
}

/// A workflow already running when a move begins writes where the tenant
/// was: the move, its writes held, waits for it before copying, so its rows
/// arrive with the tenant.
#[test]
fn a_move_waits_for_a_workflow_already_running_and_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    two_shared_tenants(d);
    let request_id = "01a20af2-0000-7000-8000-0000000000dd";
    // Its first step fails transiently three times: ~700 ms in flight.
    let mut workflow = spawn(
        d,
        &[
            "provision",
            "service",
            "--tenant",
            "acme",
            "--service",
            "billing",
            "--tier",
            "standard",
            "--request-id",
            request_id,
            "--inject-failure",
            "subscribe:transient=3",
        ],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !run(d, &["status", "--request", request_id]).0 {
        assert!(std::time::Instant::now() < deadline, "never submitted");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let moved = json(d, &["change-plan", "--tenant", "acme", "--plan", "premium"]);
    assert_eq!(moved["status"], "succeeded", "{moved}");
    assert!(workflow.wait().unwrap().success());
    let receipt = json(d, &["status", "--request", request_id]);
    assert_eq!(receipt["status"], "succeeded", "{receipt}");
    // The subscription the workflow wrote is in the tenant's new database.
    let record = json(d, &["status", "acme"]);
    assert_eq!(record["placement"]["isolation"], "dedicated");
    let db = PathBuf::from(record["placement"]["database"].as_str().unwrap());
    assert_eq!(
        rows(
            &db,
            "SELECT key FROM settings WHERE key = 'service.billing'"
        )
        .len(),
        1,
        "the workflow's row was left behind"
    );
}
