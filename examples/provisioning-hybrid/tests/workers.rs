//! `create --queue` and `worker` on the embedded SQLite catalog: two worker
//! processes drain the queue, each request run once; bad options are
//! refused by name.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{fails, json};

#[test]
fn two_workers_drain_the_queue_each_request_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let tenants: Vec<String> = (0..10).map(|i| format!("queued-{i}")).collect();
    for (i, tenant) in tenants.iter().enumerate() {
        let plan = if i % 2 == 0 { "premium" } else { "standard" };
        let receipt = json(
            dir,
            &[
                "create", "--queue", "--tenant", tenant, "--plan", plan, "--region", "us-east",
            ],
        );
        assert_eq!(receipt["status"], "running", "{receipt}");
        assert_eq!(json(dir, &["status", tenant])["state"], "requested");
    }
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let name = format!("w{w}");
            let dir = dir.to_owned();
            std::thread::spawn(move || {
                json(
                    &dir,
                    &[
                        "worker",
                        "--name",
                        &name,
                        "--concurrency",
                        "2",
                        "--exit-when-idle",
                    ],
                )
            })
        })
        .collect();
    let succeeded: u64 = workers
        .into_iter()
        .map(|w| {
            let report = w.join().unwrap();
            assert_eq!(report["failed"], 0, "{report}");
            report["succeeded"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(succeeded, tenants.len() as u64, "each request run once");
    for tenant in &tenants {
        assert_eq!(json(dir, &["status", tenant])["state"], "active");
        let events = json(dir, &["events", tenant]);
        assert_eq!(events.as_array().unwrap().len(), 2, "{tenant}: {events}");
    }
}

#[test]
fn worker_options_are_checked_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let error = fails(dir, &["worker", "--lease", "0s"]);
    assert!(
        error.contains("--lease") && error.contains("from 1s to 1h"),
        "{error}"
    );
    let error = fails(dir, &["worker", "--concurrency", "0"]);
    assert!(
        error.contains("--concurrency") && error.contains("1 to 64"),
        "{error}"
    );
    let error = fails(
        dir,
        &[
            "create",
            "--queue",
            "--inject-failure",
            "seed",
            "--tenant",
            "a",
            "--plan",
            "free",
            "--region",
            "eu-west",
        ],
    );
    assert!(
        error.contains("--inject-failure") && error.contains("--queue"),
        "{error}"
    );
}
