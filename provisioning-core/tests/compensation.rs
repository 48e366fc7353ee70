//! A permanent failure compensates, in reverse, exactly the steps that ran
//! (the failing one included); a failed compensation stops the run and a later
//! resume finishes it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use provisioning_core::Entity;
use std::sync::Arc;

use common::*;
use provisioning_core::{
    CancellationToken, FailureCause, InMemoryJournal, JournalEntry, RunId, RunStatus, SagaJournal,
};

#[tokio::test(start_paused = true)]
async fn permanent_failure_at_each_step_compensates_that_step_and_all_before_in_reverse() {
    const N: usize = 5;
    for k in 1..=N {
        let log = Log::default();
        let journal = Arc::new(InMemoryJournal::new());
        let mut steps = steps(N, &log);
        steps[k - 1] = Scripted::new(&format!("s{k}"), &log).executes([Act::Permanent]);
        let report = executor(journal.clone())
            .run(&saga(steps), Ctx::default())
            .await
            .unwrap();

        assert_eq!(report.status, RunStatus::Compensated, "k={k}");
        let failure = report.failure.clone().unwrap();
        assert_eq!(
            (failure.step.as_str(), failure.index, failure.cause),
            (format!("s{k}").as_str(), k - 1, FailureCause::Permanent)
        );
        let mut expected: Vec<String> = (1..=k).map(|i| format!("exec:s{i}")).collect();
        expected.extend((1..=k).rev().map(|i| format!("comp:s{i}")));
        assert_eq!(log.names(), expected, "k={k}");
        for i in 1..=N {
            let comp = log.count(&format!("comp:s{i}"));
            assert_eq!(
                comp,
                usize::from(i <= k),
                "s{i} compensated once iff it ran"
            );
        }
        assert!(
            report.context.done.is_empty(),
            "k={k}: {:?}",
            report.context
        );
        assert!(journal.unfinished_runs().await.unwrap().is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn compensation_failure_ends_compensation_failed_and_a_later_retry_finishes_it() {
    let log = Log::default();
    let journal = Arc::new(InMemoryJournal::new());
    let saga = saga(vec![
        Scripted::new("s1", &log),
        Scripted::new("s2", &log).compensates([Act::Permanent]),
        Scripted::new("s3", &log).executes([Act::Permanent]),
    ]);
    let executor = executor(journal.clone());
    let run_id = RunId::new();
    let report = executor
        .start(&saga, run_id, Ctx::default(), &CancellationToken::new())
        .await
        .unwrap();

    assert_eq!(report.status, RunStatus::CompensationFailed);
    assert!(!report.is_completed());
    let stuck = report.compensation_failure.unwrap();
    assert_eq!((stuck.step.as_str(), stuck.index), ("s2", 1));
    assert!(stuck.error.contains("s2: broken"), "{}", stuck.error);
    assert_eq!(report.failure.unwrap().step, "s3");
    assert_eq!(
        log.names(),
        ["exec:s1", "exec:s2", "exec:s3", "comp:s3", "comp:s2"]
    );
    // s1 was not compensated yet: the run stopped at s2.
    assert_eq!(report.context.done, ["s1", "s2"]);

    log.clear();
    let retried = executor
        .resume(&saga, run_id, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(retried.status, RunStatus::Compensated);
    assert_eq!(
        log.names(),
        ["comp:s2", "comp:s1"],
        "s3 is not compensated twice"
    );
    assert!(retried.context.done.is_empty());
    assert!(retried.compensation_failure.is_none());

    // The journal shows the failed and the retried compensation of s2.
    let kinds: Vec<_> = journal
        .load(run_id)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.entry {
            JournalEntry::CompensationStarted { step, attempt, .. } => {
                Some(format!("start {step} #{attempt}"))
            }
            JournalEntry::CompensationFailed { step, .. } => Some(format!("failed {step}")),
            JournalEntry::StepCompensated { step, .. } => Some(format!("done {step}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "start s3 #1",
            "done s3",
            "start s2 #1",
            "failed s2",
            "start s2 #2",
            "done s2",
            "start s1 #1",
            "done s1"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn transient_compensation_errors_are_retried() {
    let log = Log::default();
    let journal = Arc::new(InMemoryJournal::new());
    let saga = saga(vec![
        Scripted::new("s1", &log)
            .compensates([Act::Transient, Act::Transient])
            .retry(exact_policy(50, 3)),
        Scripted::new("s2", &log).executes([Act::Permanent]),
    ]);
    let report = executor(journal.clone())
        .run(&saga, Ctx::default())
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Compensated);
    assert_eq!(log.count("comp:s1"), 3);
}

#[tokio::test(start_paused = true)]
async fn a_finished_run_resumes_to_its_recorded_outcome_without_running_anything() {
    let log = Log::default();
    let journal = Arc::new(InMemoryJournal::new());
    let saga = saga(steps(3, &log));
    let executor = executor(journal.clone());
    let report = executor.run(&saga, Ctx::default()).await.unwrap();
    log.clear();
    let again = executor
        .resume(&saga, report.run_id, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(again.status, RunStatus::Completed);
    assert_eq!(again.context, report.context);
    assert!(log.names().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_run_id_starts_once() {
    let log = Log::default();
    let journal = Arc::new(InMemoryJournal::new());
    let saga = saga(steps(1, &log));
    let executor = executor(journal.clone());
    let run_id = RunId::new();
    let token = CancellationToken::new();
    executor
        .start(&saga, run_id, Ctx::default(), &token)
        .await
        .unwrap();
    let err = executor
        .start(&saga, run_id, Ctx::default(), &token)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            provisioning_core::Error::Conflict {
                kind: Entity::Run,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(log.count("exec:s1"), 1);
}

#[tokio::test(start_paused = true)]
async fn resuming_under_another_saga_is_refused() {
    let log = Log::default();
    let journal = Arc::new(InMemoryJournal::new());
    let executor = executor(journal.clone());
    let report = executor
        .run(&saga(steps(2, &log)), Ctx::default())
        .await
        .unwrap();
    let err = executor
        .resume(
            &saga(steps(3, &log)),
            report.run_id,
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, provisioning_core::Error::RunMismatch { .. }),
        "{err}"
    );
    let err = executor
        .resume(
            &saga(steps(2, &log)),
            RunId::new(),
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            provisioning_core::Error::NotFound {
                kind: Entity::Run,
                ..
            }
        ),
        "{err}"
    );
}
