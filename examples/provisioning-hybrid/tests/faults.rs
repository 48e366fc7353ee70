//! What the binary says when the machine under it fails: a failed step's
//! records name its kind and keep the server's paths out (they go to the log,
//! with the request id), and the commands that only read work on a
//! read-only data directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{Tmpfs, fails, json, run};

/// Every string in `value`, keys included, for asserting what none contains.
fn strings(value: &serde_json::Value) -> Vec<String> {
    match value {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(items) => items.iter().flat_map(strings).collect(),
        serde_json::Value::Object(map) => map
            .iter()
            .flat_map(|(k, v)| std::iter::once(k.clone()).chain(strings(v)))
            .collect(),
        _ => Vec::new(),
    }
}

#[test]
fn a_failed_step_names_its_kind_and_leaves_server_paths_to_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Where tenant databases go is a file: preparing a dedicated database
    // fails with an error that names the server's path.
    std::fs::write(dir.join("databases"), b"not a directory").unwrap();
    let request = "0190a4c8-0000-7000-8000-00000000fa17";
    let (ok, stdout, stderr) = run(
        dir,
        &[
            "create",
            "--tenant",
            "acme",
            "--plan",
            "premium",
            "--region",
            "eu-west",
            "--request-id",
            request,
            "--json",
        ],
    );
    assert!(!ok, "the create succeeded: {stdout}");
    let receipt: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(receipt["status"], "failed", "{receipt}");
    assert_eq!(receipt["failure"]["step"], "prepare-database");
    assert_eq!(receipt["failure"]["kind"], "permanent");
    let reason = receipt["failure"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("Not a directory") && reason.contains("…/eu-west-dedicated-1"),
        "{reason}"
    );

    // The records a client reads, stored and read back, carry no path of
    // the server's; the log has the path, with the request it belongs to.
    let root = dir.to_str().unwrap();
    let stored = json(dir, &["status", "--request", request]);
    let audit = json(dir, &["audit", request]);
    let tenant = json(dir, &["status", "acme"]);
    let events = json(dir, &["events", "acme"]);
    let failed = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "TenantProvisioningFailed")
        .unwrap_or_else(|| panic!("no failure event: {events}"));
    assert_eq!(failed["data"]["kind"], "permanent", "{failed}");
    assert_eq!(stored["failure"], receipt["failure"]);
    assert_eq!(tenant["state"], "failed");
    for (what, value) in [
        ("receipt", &receipt),
        ("stored receipt", &stored),
        ("audit trail", &audit),
        ("tenant failure", &tenant["failure"]),
        ("failure event", failed),
    ] {
        for text in strings(value) {
            assert!(!text.contains(root), "{what} names {root}: {text}");
        }
    }
    let logged = stderr
        .lines()
        .find(|line| line.contains("step failed"))
        .unwrap_or_else(|| panic!("no step failure logged: {stderr}"));
    assert!(
        logged.contains(root) && logged.contains(request),
        "{logged}"
    );
}

#[test]
fn read_only_commands_work_on_a_read_only_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let Some(mount) = Tmpfs::mount(&dir, "64m") else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let created = json(
        &dir,
        &[
            "create", "--tenant", "acme", "--plan", "free", "--region", "eu-west",
        ],
    );
    assert_eq!(created["status"], "succeeded", "{created}");
    let request = created["request_id"].as_str().unwrap().to_owned();
    let before = json(&dir, &["status", "acme"]);
    mount.make_read_only();

    // Reading works and sees what was written.
    assert_eq!(json(&dir, &["status", "acme"]), before);
    let listed = json(&dir, &["list"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["tenant_id"], "acme");
    assert_eq!(
        json(&dir, &["status", "--request", &request])["status"],
        "succeeded"
    );
    let events = json(&dir, &["events", "acme"]);
    assert!(!events.as_array().unwrap().is_empty(), "{events}");
    let audit = json(&dir, &["audit", &request]);
    assert!(!strings(&audit).is_empty(), "{audit}");
    json(&dir, &["fleet", "status"]);

    // A command that writes says why it cannot.
    let refused = fails(
        &dir,
        &[
            "create", "--tenant", "zed", "--plan", "free", "--region", "eu-west",
        ],
    );
    assert!(refused.contains("Read-only file system"), "{refused}");
}
