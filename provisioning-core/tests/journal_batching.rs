//! The executor writes the journal in batches: one write (one commit on a
//! durable journal) per step, plus one, for a run that completes; and a
//! step's start is still journaled before the step runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use common::*;
use provisioning_core::{
    InMemoryJournal, JournalEntry, JournalRecord, RunId, RunStatus, Saga, SagaJournal, Step,
    StepError,
};

/// Counts the writes (appends and batches) reaching the journal.
struct Counting {
    inner: Arc<InMemoryJournal>,
    writes: AtomicUsize,
}

#[async_trait]
impl SagaJournal for Counting {
    async fn append(&self, record: JournalRecord) -> provisioning_core::Result<()> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.append(record).await
    }
    async fn append_batch(&self, records: Vec<JournalRecord>) -> provisioning_core::Result<()> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.append_batch(records).await
    }
    async fn load(&self, run_id: RunId) -> provisioning_core::Result<Vec<JournalRecord>> {
        self.inner.load(run_id).await
    }
    async fn unfinished_runs(&self) -> provisioning_core::Result<Vec<RunId>> {
        self.inner.unfinished_runs().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_completed_run_writes_once_per_step_plus_once() {
    let log = Log::default();
    let journal = Arc::new(Counting {
        inner: Arc::new(InMemoryJournal::new()),
        writes: AtomicUsize::new(0),
    });
    let steps = ["a", "b", "c", "d"];
    let saga = saga(steps.iter().map(|s| Scripted::new(s, &log)).collect());
    let report = executor(journal.clone())
        .run(&saga, Ctx::default())
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Completed);
    assert_eq!(journal.writes.load(Ordering::SeqCst), steps.len() + 1);
    // The records themselves are all there, in order: nothing is left out.
    let records = journal.inner.load(report.run_id).await.unwrap();
    let kinds: Vec<&str> = records.iter().map(|r| r.entry.kind()).collect();
    assert_eq!(kinds.len(), 2 + 2 * steps.len());
    assert_eq!(kinds[..2], ["run_started", "step_started"]);
    assert_eq!(
        kinds[kinds.len() - 2..],
        ["step_completed", "run_completed"]
    );
}

/// A step that looks, while it runs, for its own start in the journal.
struct SeesItsStart {
    journal: Arc<InMemoryJournal>,
    run: RunId,
}

#[async_trait]
impl Step<Ctx> for SeesItsStart {
    fn name(&self) -> &str {
        "sees-its-start"
    }
    async fn execute(&self, ctx: &mut Ctx) -> Result<(), StepError> {
        let records = self.journal.load(self.run).await.unwrap();
        let started = records.iter().any(|r| {
            matches!(&r.entry, JournalEntry::StepStarted { step, .. } if step == "sees-its-start")
        });
        assert!(started, "the step's start is journaled before it runs");
        ctx.done.push("sees-its-start".into());
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn each_step_start_is_journaled_before_the_step_runs() {
    let log = Log::default();
    let journal = Arc::new(InMemoryJournal::new());
    // First (started with the run's start) and second (started with the
    // previous step's completion).
    for position in 0..2 {
        let run = RunId::new();
        let mut builder = Saga::builder(format!("batched-{position}"));
        if position == 1 {
            builder = builder.step(Scripted::new("before", &log));
        }
        let saga = builder
            .step(SeesItsStart {
                journal: journal.clone(),
                run,
            })
            .step(Scripted::new("after", &log))
            .build()
            .unwrap();
        let report = executor(journal.clone())
            .start(&saga, run, Ctx::default(), &Default::default())
            .await
            .unwrap();
        assert_eq!(report.status, RunStatus::Completed, "position {position}");
    }
}
