//! The executor's tracing spans: one per run with run_id and workflow, one per
//! step attempt with step and attempt; errors logged once, where handled.
//!
//! Alone in its test binary: tracing caches callsite interest process-wide, so a
//! test running without a subscriber on another thread could hide events here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use provisioning_core::InMemoryJournal;
use provisioning_core::InMemoryStore as InMemoryJournalStore;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn spans_carry_run_id_workflow_step_and_attempt() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let log = Log::default();
    let report = tracing::subscriber::with_default(subscriber, || {
        paused_runtime().block_on(
            executor(Arc::new(InMemoryJournal::new())).run(&failing_saga(&log), Ctx::default()),
        )
    })
    .unwrap();
    let output = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let run_span = format!(
        "saga_run{{run_id={} workflow=test-workflow}}",
        report.run_id
    );
    assert!(output.contains(&run_span), "{output}");
    assert!(
        output.contains(&format!("{run_span}:saga_step{{step=s1 attempt=1}}")),
        "{output}"
    );
    assert!(output.contains("step attempt failed; retrying"), "{output}");
    assert!(
        output.contains(&format!("{run_span}:saga_step{{step=s2 attempt=1}}")),
        "{output}"
    );
    assert!(output.contains("step failed; compensating"), "{output}");
    // The permanent error is logged once, where it is handled.
    assert_eq!(output.matches("s2: broken").count(), 1, "{output}");
}

#[test]
fn orchestrator_spans_carry_request_id_and_tenant_id() {
    use provisioning_core::RequestStatus;
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let world = world::World::new();
    let orchestrator = world
        .orchestrator(Arc::new(InMemoryJournalStore::new()))
        .build()
        .unwrap();
    let request = world::request("acme", "free", "eu-west");
    let receipt = tracing::subscriber::with_default(subscriber, || {
        paused_runtime().block_on(orchestrator.create(request.clone()))
    })
    .unwrap();
    assert_eq!(receipt.status, RequestStatus::Succeeded);
    let output = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let span = format!(
        "provisioning{{request_id={} tenant_id=acme workflow=create-tenant}}",
        request.request_id
    );
    assert!(output.contains(&span), "{output}");
    assert!(output.contains(&format!("{span}:saga_run{{")), "{output}");
    assert!(output.contains("run completed"), "{output}");
}
