//! A cancelled run stops and compensates what ran, whether the cancel comes
//! before a step, during one, or during a backoff.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use provisioning_core::{CancellationToken, FailureCause, InMemoryJournal, RunId, RunStatus};

#[tokio::test(start_paused = true)]
async fn cancel_during_a_step_compensates_it_and_the_steps_before() {
    let log = Log::default();
    let journal = Arc::new(InMemoryJournal::new());
    let saga = saga(vec![
        Scripted::new("s1", &log),
        Scripted::new("s2", &log).executes([Act::Sleep(Duration::from_secs(3600))]),
        Scripted::new("s3", &log),
    ]);
    let token = CancellationToken::new();
    let canceller = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        canceller.cancel();
    });
    let started = tokio::time::Instant::now();
    let report = executor(journal.clone())
        .start(&saga, RunId::new(), Ctx::default(), &token)
        .await
        .unwrap();

    assert_eq!(
        started.elapsed(),
        Duration::from_secs(5),
        "stopped at the cancel"
    );
    assert_eq!(report.status, RunStatus::Compensated);
    let failure = report.failure.unwrap();
    assert_eq!(
        (failure.step.as_str(), failure.cause),
        ("s2", FailureCause::Cancelled)
    );
    assert_eq!(log.names(), ["exec:s1", "exec:s2", "comp:s2", "comp:s1"]);
    assert!(report.context.done.is_empty());
}

#[tokio::test(start_paused = true)]
async fn cancel_before_start_runs_nothing() {
    let log = Log::default();
    let journal = Arc::new(InMemoryJournal::new());
    let token = CancellationToken::new();
    token.cancel();
    let report = executor(journal.clone())
        .start(&saga(steps(3, &log)), RunId::new(), Ctx::default(), &token)
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Compensated);
    assert_eq!(report.failure.unwrap().cause, FailureCause::Cancelled);
    assert!(log.names().is_empty());
}

#[tokio::test(start_paused = true)]
async fn cancel_during_backoff_stops_retrying_and_compensates() {
    let log = Log::default();
    let journal = Arc::new(InMemoryJournal::new());
    let saga = saga(vec![
        Scripted::new("s1", &log),
        Scripted::new("s2", &log)
            .executes([Act::Transient; 10])
            .retry(exact_policy(10_000, 10)),
    ]);
    let token = CancellationToken::new();
    let canceller = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        canceller.cancel();
    });
    let report = executor(journal.clone())
        .start(&saga, RunId::new(), Ctx::default(), &token)
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Compensated);
    assert_eq!(log.names(), ["exec:s1", "exec:s2", "comp:s2", "comp:s1"]);
}

#[tokio::test(start_paused = true)]
async fn cancel_between_steps_does_not_compensate_the_step_not_started() {
    let log = Log::default();
    let journal = Arc::new(InMemoryJournal::new());
    let token = CancellationToken::new();
    // s1 cancels the run as it finishes; s2 must not run or be compensated.
    struct CancelAfter(CancellationToken, Log);
    #[async_trait::async_trait]
    impl provisioning_core::Step<Ctx> for CancelAfter {
        fn name(&self) -> &str {
            "s1"
        }
        async fn execute(&self, _: &mut Ctx) -> Result<(), provisioning_core::StepError> {
            self.1.push("exec:s1".into());
            self.0.cancel();
            Ok(())
        }
        async fn compensate(&self, _: &mut Ctx) -> Result<(), provisioning_core::StepError> {
            self.1.push("comp:s1".into());
            Ok(())
        }
    }
    let saga = provisioning_core::Saga::builder("w")
        .step(CancelAfter(token.clone(), log.clone()))
        .step(Scripted::new("s2", &log))
        .build()
        .unwrap();
    let report = executor(journal.clone())
        .start(&saga, RunId::new(), Ctx::default(), &token)
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Compensated);
    assert_eq!(report.failure.unwrap().step, "s2");
    assert_eq!(log.names(), ["exec:s1", "comp:s1"]);
}
