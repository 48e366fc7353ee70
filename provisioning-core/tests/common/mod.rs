//! Shared test fixtures: scripted steps that record what ran and when.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use provisioning_core::{RetryPolicy, Saga, SagaExecutor, SagaJournal, Step, StepError};
use serde::{Deserialize, Serialize};

pub mod world;

/// The context every test saga runs over: which steps are done.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ctx {
    pub done: Vec<String>,
}

/// What one call of a scripted step does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Act {
    Ok,
    Transient,
    Permanent,
    /// Sleeps this long, then succeeds.
    Sleep(Duration),
}

/// One thing a step did, with tokio's clock at the time.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub what: String,
    pub at: tokio::time::Instant,
}

#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<Event>>>);

impl Log {
    pub fn push(&self, what: String) {
        self.0.lock().unwrap().push(Event {
            what,
            at: tokio::time::Instant::now(),
        });
    }
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }
    pub fn names(&self) -> Vec<String> {
        self.events().into_iter().map(|e| e.what).collect()
    }
    pub fn count(&self, what: &str) -> usize {
        self.names().iter().filter(|n| *n == what).count()
    }
    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

/// A step whose calls follow a script (then `Ok` once the script runs out).
pub struct Scripted {
    pub name: String,
    pub log: Log,
    pub execute: Mutex<VecDeque<Act>>,
    pub compensate: Mutex<VecDeque<Act>>,
    pub retry: Option<RetryPolicy>,
    pub timeout: Option<Duration>,
}

impl Scripted {
    pub fn new(name: &str, log: &Log) -> Self {
        Scripted {
            name: name.to_owned(),
            log: log.clone(),
            execute: Mutex::new(VecDeque::new()),
            compensate: Mutex::new(VecDeque::new()),
            retry: None,
            timeout: None,
        }
    }
    pub fn executes(self, acts: impl IntoIterator<Item = Act>) -> Self {
        self.execute.lock().unwrap().extend(acts);
        self
    }
    pub fn compensates(self, acts: impl IntoIterator<Item = Act>) -> Self {
        self.compensate.lock().unwrap().extend(acts);
        self
    }
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

async fn act(act: Act, name: &str) -> Result<(), StepError> {
    match act {
        Act::Ok => Ok(()),
        Act::Transient => Err(StepError::transient(std::io::Error::other(format!(
            "{name}: flaky"
        )))),
        Act::Permanent => Err(StepError::permanent(std::io::Error::other(format!(
            "{name}: broken"
        )))),
        Act::Sleep(d) => {
            tokio::time::sleep(d).await;
            Ok(())
        }
    }
}

#[async_trait]
impl Step<Ctx> for Scripted {
    fn name(&self) -> &str {
        &self.name
    }
    async fn execute(&self, ctx: &mut Ctx) -> Result<(), StepError> {
        self.log.push(format!("exec:{}", self.name));
        let next = self.execute.lock().unwrap().pop_front().unwrap_or(Act::Ok);
        act(next, &self.name).await?;
        if !ctx.done.contains(&self.name) {
            ctx.done.push(self.name.clone());
        }
        Ok(())
    }
    async fn compensate(&self, ctx: &mut Ctx) -> Result<(), StepError> {
        self.log.push(format!("comp:{}", self.name));
        let next = self
            .compensate
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Act::Ok);
        act(next, &self.name).await?;
        ctx.done.retain(|d| d != &self.name);
        Ok(())
    }
    fn retry_policy(&self) -> Option<&RetryPolicy> {
        self.retry.as_ref()
    }
    fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
}

/// An executor on `journal` whose default policy does not retry (tests set
/// policies per step).
pub fn executor(journal: Arc<dyn SagaJournal>) -> SagaExecutor {
    SagaExecutor::builder()
        .journal(journal)
        .retry_policy(RetryPolicy::no_retry())
        .build()
        .unwrap()
}

/// A current-thread runtime with paused time, for tests that must wrap the run
/// in a synchronous scope (a local metrics recorder or tracing subscriber).
pub fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

/// s1 fails transiently once then succeeds; s2 fails permanently.
pub fn failing_saga(log: &Log) -> Saga<Ctx> {
    saga(vec![
        Scripted::new("s1", log)
            .executes([Act::Transient])
            .retry(exact_policy(10, 3)),
        Scripted::new("s2", log).executes([Act::Permanent]),
    ])
}

/// A saga of the given steps.
pub fn saga(steps: Vec<Scripted>) -> Saga<Ctx> {
    steps
        .into_iter()
        .fold(Saga::builder("test-workflow"), |b, s| b.step(s))
        .build()
        .unwrap()
}

/// `n` steps named `s1..sn` that all succeed.
pub fn steps(n: usize, log: &Log) -> Vec<Scripted> {
    (1..=n)
        .map(|i| Scripted::new(&format!("s{i}"), log))
        .collect()
}

/// Backoff without jitter, so delays can be asserted exactly.
pub fn exact_policy(initial_ms: u64, attempts: u32) -> RetryPolicy {
    RetryPolicy::builder()
        .initial_interval(Duration::from_millis(initial_ms))
        .multiplier(2.0)
        .max_interval(Duration::from_secs(60))
        .max_attempts(attempts)
        .jitter(0.0)
        .build()
        .unwrap()
}
