//! Transient errors are retried with the configured backoff; exhausted retries
//! and timeouts behave as documented.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use provisioning_core::{
    FailureCause, InMemoryJournal, JournalEntry, RetryPolicy, RunStatus, SagaJournal,
};

#[tokio::test(start_paused = true)]
async fn transient_errors_are_retried_with_exponential_backoff() {
    let log = Log::default();
    let journal = Arc::new(InMemoryJournal::new());
    let saga = saga(vec![
        Scripted::new("s1", &log),
        Scripted::new("s2", &log)
            .executes([Act::Transient, Act::Transient, Act::Transient])
            .retry(exact_policy(100, 5)),
    ]);

    let report = executor(journal.clone())
        .run(&saga, Ctx::default())
        .await
        .unwrap();

    assert_eq!(report.status, RunStatus::Completed);
    assert_eq!(report.context.done, ["s1", "s2"]);
    let attempts: Vec<_> = log
        .events()
        .into_iter()
        .filter(|e| e.what == "exec:s2")
        .collect();
    assert_eq!(attempts.len(), 4, "three failures, then success");
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert_eq!(
        gaps,
        [
            Duration::from_millis(100),
            Duration::from_millis(200),
            Duration::from_millis(400)
        ]
    );

    // The journal records every attempt and the backoff chosen.
    let records = journal.load(report.run_id).await.unwrap();
    let retries: Vec<(u32, u64)> = records
        .iter()
        .filter_map(|r| match &r.entry {
            JournalEntry::AttemptFailed {
                attempt,
                retry_in_ms,
                ..
            } => Some((*attempt, *retry_in_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(retries, [(1, 100), (2, 200), (3, 400)]);
    let completed_attempt = records.iter().find_map(|r| match &r.entry {
        JournalEntry::StepCompleted { step, attempt, .. } if step == "s2" => Some(*attempt),
        _ => None,
    });
    assert_eq!(completed_attempt, Some(4));
}

#[tokio::test(start_paused = true)]
async fn backoff_is_capped_by_max_interval() {
    let log = Log::default();
    let journal = Arc::new(InMemoryJournal::new());
    let policy = RetryPolicy::builder()
        .initial_interval(Duration::from_millis(100))
        .multiplier(3.0)
        .max_interval(Duration::from_millis(500))
        .max_attempts(5)
        .jitter(0.0)
        .build()
        .unwrap();
    let saga = saga(vec![
        Scripted::new("s1", &log)
            .executes([Act::Transient; 4])
            .retry(policy),
    ]);
    let report = executor(journal.clone())
        .run(&saga, Ctx::default())
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Completed);
    let at: Vec<_> = log.events().into_iter().map(|e| e.at).collect();
    let gaps: Vec<u128> = at.windows(2).map(|w| (w[1] - w[0]).as_millis()).collect();
    assert_eq!(gaps, [100, 300, 500, 500]);
}

#[tokio::test(start_paused = true)]
async fn exhausted_retries_compensate_with_cause() {
    let log = Log::default();
    let journal = Arc::new(InMemoryJournal::new());
    let saga = saga(vec![
        Scripted::new("s1", &log),
        Scripted::new("s2", &log)
            .executes([Act::Transient; 10])
            .retry(exact_policy(10, 3)),
    ]);
    let report = executor(journal.clone())
        .run(&saga, Ctx::default())
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Compensated);
    let failure = report.failure.unwrap();
    assert_eq!(failure.step, "s2");
    assert_eq!(failure.cause, FailureCause::RetriesExhausted);
    assert!(failure.error.contains("flaky"), "{}", failure.error);
    assert_eq!(log.count("exec:s2"), 3);
    assert_eq!(
        log.names(),
        [
            "exec:s1", "exec:s2", "exec:s2", "exec:s2", "comp:s2", "comp:s1"
        ]
    );
    assert!(report.context.done.is_empty());
}

#[tokio::test(start_paused = true)]
async fn max_elapsed_stops_retrying() {
    let log = Log::default();
    let journal = Arc::new(InMemoryJournal::new());
    let policy = RetryPolicy::builder()
        .initial_interval(Duration::from_millis(100))
        .max_attempts(100)
        .max_elapsed(Some(Duration::from_millis(350)))
        .jitter(0.0)
        .build()
        .unwrap();
    let saga = saga(vec![
        Scripted::new("s1", &log)
            .executes([Act::Transient; 100])
            .retry(policy),
    ]);
    let report = executor(journal.clone())
        .run(&saga, Ctx::default())
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Compensated);
    // Attempts at 0, 100, 300 ms; the next would start at 700 > 350.
    assert_eq!(log.count("exec:s1"), 3);
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_are_not_retried() {
    let log = Log::default();
    let journal = Arc::new(InMemoryJournal::new());
    let saga = saga(vec![
        Scripted::new("s1", &log)
            .executes([Act::Permanent])
            .retry(exact_policy(10, 5)),
    ]);
    let report = executor(journal.clone())
        .run(&saga, Ctx::default())
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Compensated);
    assert_eq!(report.failure.unwrap().cause, FailureCause::Permanent);
    assert_eq!(log.names(), ["exec:s1", "comp:s1"]);
}

#[tokio::test(start_paused = true)]
async fn a_timeout_is_retried_as_transient() {
    let log = Log::default();
    let journal = Arc::new(InMemoryJournal::new());
    let saga = saga(vec![
        Scripted::new("slow", &log)
            .executes([Act::Sleep(Duration::from_secs(60))])
            .timeout(Duration::from_secs(1))
            .retry(exact_policy(500, 3)),
    ]);
    let started = tokio::time::Instant::now();
    let report = executor(journal.clone())
        .run(&saga, Ctx::default())
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Completed);
    assert_eq!(report.context.done, ["slow"]);
    assert_eq!(log.count("exec:slow"), 2);
    // 1 s until the timeout, 500 ms backoff, then an instant success.
    assert_eq!(started.elapsed(), Duration::from_millis(1500));
    let records = journal.load(report.run_id).await.unwrap();
    let timed_out = records.iter().any(|r| {
        matches!(&r.entry, JournalEntry::AttemptFailed { error, attempt: 1, .. } if error.contains("timed out"))
    });
    assert!(timed_out, "{records:#?}");
}

#[tokio::test(start_paused = true)]
async fn step_policy_overrides_saga_policy_which_overrides_executor_policy() {
    let log = Log::default();
    let journal = Arc::new(InMemoryJournal::new());
    let saga = provisioning_core::Saga::builder("w")
        .step(Scripted::new("uses-saga", &log).executes([Act::Transient; 2]))
        .step(
            Scripted::new("uses-own", &log)
                .executes([Act::Transient; 3])
                .retry(exact_policy(1, 4)),
        )
        .retry_policy(exact_policy(1, 3))
        .build()
        .unwrap();
    let report = executor(journal.clone())
        .run(&saga, Ctx::default())
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Completed);
    assert_eq!(log.count("exec:uses-saga"), 3);
    assert_eq!(log.count("exec:uses-own"), 4);
}
