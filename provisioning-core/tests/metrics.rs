//! The executor's metrics: the names of DESIGN.md, labelled by workflow, step
//! and outcome, never by tenant.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use provisioning_core::{InMemoryJournal, RunStatus};

/// A metric's name, labels and value.
type Recorded = (String, Vec<(String, String)>, DebugValue);

#[test]
fn metrics_are_recorded_by_workflow_step_and_outcome() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let log = Log::default();
    let report = metrics::with_local_recorder(&recorder, || {
        paused_runtime().block_on(
            executor(Arc::new(InMemoryJournal::new())).run(&failing_saga(&log), Ctx::default()),
        )
    })
    .unwrap();
    assert_eq!(report.status, RunStatus::Compensated);

    let metrics: Vec<Recorded> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            (key.name().to_owned(), labels, value)
        })
        .collect();
    let find = |name: &str, labels: &[(&str, &str)]| {
        metrics
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.contains(&((*k).to_owned(), (*v).to_owned())))
            })
            .map(|(_, _, v)| v)
    };

    assert_eq!(
        find(
            "provisioning_requests_total",
            &[("workflow", "test-workflow"), ("outcome", "compensated")]
        ),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        find(
            "provisioning_retries_total",
            &[("workflow", "test-workflow"), ("step", "s1")]
        ),
        Some(&DebugValue::Counter(1))
    );
    for step in ["s1", "s2"] {
        assert_eq!(
            find(
                "provisioning_compensations_total",
                &[("step", step), ("outcome", "ok")]
            ),
            Some(&DebugValue::Counter(1)),
            "{step}"
        );
    }
    match find(
        "provisioning_step_duration_seconds",
        &[("step", "s1"), ("outcome", "ok")],
    ) {
        Some(DebugValue::Histogram(values)) => assert_eq!(values.len(), 1),
        other => panic!("step histogram: {other:?}"),
    }
    match find(
        "provisioning_duration_seconds",
        &[("outcome", "compensated")],
    ) {
        Some(DebugValue::Histogram(values)) => assert_eq!(values.len(), 1),
        other => panic!("run histogram: {other:?}"),
    }
    assert_eq!(
        find("provisioning_in_flight", &[("workflow", "test-workflow")]),
        Some(&DebugValue::Gauge(0.0.into())),
        "the gauge goes back to zero"
    );
    // No label carries anything unbounded.
    for (_, labels, _) in &metrics {
        for (k, _) in labels {
            assert!(["workflow", "step", "outcome"].contains(&k.as_str()), "{k}");
        }
    }
}

#[test]
fn orchestrator_requests_are_counted_by_workflow_and_outcome_without_tenant_labels() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let world = world::World::new();
    let orchestrator = world
        .orchestrator(Arc::new(provisioning_core::InMemoryStore::new()))
        .fault_injector(Arc::new(
            "seed".parse::<provisioning_core::StepFaults>().unwrap(),
        ))
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        paused_runtime().block_on(async {
            orchestrator
                .create(world::request("acme", "free", "eu-west"))
                .await
                .unwrap();
            orchestrator
                .create(world::request("globex", "premium", "eu-west"))
                .await
                .unwrap();
        })
    });
    let mut requests = Vec::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        for label in key.labels() {
            assert_ne!(label.key(), "tenant_id");
            assert!(!label.value().contains("acme") && !label.value().contains("globex"));
        }
        if key.name() == "provisioning_requests_total" {
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            requests.push((labels, value));
        }
    }
    assert_eq!(
        requests,
        [(
            vec![
                "workflow=create-tenant".to_owned(),
                "outcome=compensated".to_owned()
            ],
            DebugValue::Counter(2)
        )]
    );
}
