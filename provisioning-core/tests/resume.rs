//! Crash the process between any two journal writes: resuming from the journal
//! re-runs no step whose completion (or compensation) was journaled and reaches
//! the same end state as a run that never crashed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::*;
use provisioning_core::testing::CrashingJournal;
use provisioning_core::{
    CancellationToken, Error, InMemoryJournal, JournalEntry, RunId, RunStatus, Saga, SagaJournal,
};

/// Scenarios: a saga factory (steps share the log), named for failure messages.
type Factory = fn(&Log) -> Saga<Ctx>;

fn all_succeed(log: &Log) -> Saga<Ctx> {
    saga(vec![
        Scripted::new("s1", log),
        Scripted::new("s2", log)
            .executes([Act::Transient])
            .retry(exact_policy(10, 3)),
        Scripted::new("s3", log),
        Scripted::new("s4", log),
    ])
}

fn third_fails(log: &Log) -> Saga<Ctx> {
    saga(vec![
        Scripted::new("s1", log),
        Scripted::new("s2", log)
            .compensates([Act::Transient])
            .retry(exact_policy(10, 3)),
        // Broken for good: it fails however often it is re-run.
        Scripted::new("s3", log).executes([Act::Permanent; 100]),
        Scripted::new("s4", log),
    ])
}

fn steps_with(records: &[provisioning_core::JournalRecord], compensated: bool) -> BTreeSet<String> {
    records
        .iter()
        .filter_map(|r| match &r.entry {
            JournalEntry::StepCompleted { step, .. } if !compensated => Some(step.clone()),
            JournalEntry::StepCompensated { step, .. } if compensated => Some(step.clone()),
            _ => None,
        })
        .collect()
}

async fn crash_everywhere(name: &str, factory: Factory) {
    // A clean run: how many writes, and the end state to reach.
    let clean_log = Log::default();
    let clean_journal = Arc::new(InMemoryJournal::new());
    let clean = executor(clean_journal.clone())
        .run(&factory(&clean_log), Ctx::default())
        .await
        .unwrap();
    let writes = clean_journal.load(clean.run_id).await.unwrap().len();
    assert!(writes > 8, "{name}: {writes} writes");

    for crash_at in 0..writes {
        let log = Log::default();
        let saga = factory(&log);
        let durable = Arc::new(InMemoryJournal::new());
        let run_id = RunId::new();
        let token = CancellationToken::new();

        // The "process" dies when it tries write number `crash_at`.
        let crashing = Arc::new(CrashingJournal::new(durable.clone(), crash_at));
        let err = executor(crashing)
            .start(&saga, run_id, Ctx::default(), &token)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Backend { .. }),
            "{name}@{crash_at}: {err}"
        );

        let before = durable.load(run_id).await.unwrap();
        assert_eq!(before.len(), crash_at, "{name}@{crash_at}");
        if crash_at == 0 {
            // Nothing was recorded: there is no run to resume.
            let err = executor(durable.clone())
                .resume(&saga, run_id, &token)
                .await
                .unwrap_err();
            assert!(matches!(err, Error::NotFound { .. }), "{err}");
            continue;
        }
        assert_eq!(
            durable.unfinished_runs().await.unwrap(),
            vec![run_id],
            "{name}@{crash_at}: a crashed run is listed for recovery"
        );
        let completed = steps_with(&before, false);
        let compensated = steps_with(&before, true);
        let calls_before = log.names().len();

        // A new process resumes from the durable journal.
        let report = executor(durable.clone())
            .resume(&saga, run_id, &token)
            .await
            .unwrap();

        assert_eq!(report.status, clean.status, "{name}@{crash_at}");
        assert_eq!(report.context, clean.context, "{name}@{crash_at}");
        assert_eq!(
            report.failure.as_ref().map(|f| &f.step),
            clean.failure.as_ref().map(|f| &f.step),
            "{name}@{crash_at}"
        );
        let after: Vec<String> = log.names()[calls_before..].to_vec();
        for step in &completed {
            assert!(
                !after.contains(&format!("exec:{step}")),
                "{name}@{crash_at}: {step} completed before the crash and ran again: {after:?}"
            );
        }
        for step in &compensated {
            assert!(
                !after.contains(&format!("comp:{step}")),
                "{name}@{crash_at}: {step} was compensated before the crash and again: {after:?}"
            );
        }
        assert!(durable.unfinished_runs().await.unwrap().is_empty());
        let records = durable.load(run_id).await.unwrap();
        let (state, _) = provisioning_core::saga::RunState::replay(run_id, &records).unwrap();
        assert_eq!(state.status, clean.status);
    }
}

#[tokio::test(start_paused = true)]
async fn resume_after_a_crash_at_every_write_of_a_successful_run() {
    crash_everywhere("all_succeed", all_succeed).await;
}

#[tokio::test(start_paused = true)]
async fn resume_after_a_crash_at_every_write_of_a_compensating_run() {
    crash_everywhere("third_fails", third_fails).await;
}

#[tokio::test(start_paused = true)]
async fn the_context_checkpoint_survives_the_crash() {
    let log = Log::default();
    let saga = all_succeed(&log);
    let durable = Arc::new(InMemoryJournal::new());
    let run_id = RunId::new();
    let token = CancellationToken::new();
    // Crash right after s1's completion is journaled (run_started, started, completed).
    let crashing = Arc::new(CrashingJournal::new(durable.clone(), 3));
    executor(crashing)
        .start(&saga, run_id, Ctx::default(), &token)
        .await
        .unwrap_err();
    let records = durable.load(run_id).await.unwrap();
    let (state, checkpoint) = provisioning_core::saga::RunState::replay(run_id, &records).unwrap();
    assert_eq!(state.status, RunStatus::Running);
    assert_eq!(state.completed, 1);
    assert_eq!(checkpoint["done"], serde_json::json!(["s1"]));
}
