//! `saga_overhead`: a 10-step saga of no-op steps on the in-memory journal,
//! against the same 10 no-op steps called directly (the floor). The executor's
//! overhead per step is (saga - floor) / 10, per-run costs included; a 100-step
//! run gives the marginal cost per step. The target is under 1 µs.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use async_trait::async_trait;
use criterion::{Criterion, criterion_group, criterion_main};
use provisioning_core::{InMemoryJournal, Saga, SagaExecutor, Step, StepError};

const STEPS: usize = 10;

struct Noop(String);

#[async_trait]
impl Step<u64> for Noop {
    fn name(&self) -> &str {
        &self.0
    }
    async fn execute(&self, ctx: &mut u64) -> Result<(), StepError> {
        *ctx += 1;
        Ok(())
    }
}

fn build_saga(steps: usize) -> Saga<u64> {
    (0..steps)
        .fold(Saga::builder("bench"), |b, i| {
            b.step(Noop(format!("step-{i}")))
        })
        .build()
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let saga = build_saga(STEPS);
    let long_saga = build_saga(STEPS * 10);
    let steps: Vec<Noop> = (0..STEPS).map(|i| Noop(format!("step-{i}"))).collect();

    let mut group = c.benchmark_group("saga_overhead");
    group.bench_function("floor_10_direct_calls", |b| {
        b.to_async(&runtime).iter(|| async {
            let mut ctx = 0u64;
            for step in &steps {
                step.execute(&mut ctx).await.unwrap();
            }
            std::hint::black_box(ctx)
        })
    });
    // A fresh journal per batch keeps memory flat; runs are independent anyway.
    group.bench_function("saga_10_steps_in_memory_journal", |b| {
        b.to_async(&runtime).iter_batched(
            || SagaExecutor::new(Arc::new(InMemoryJournal::new())),
            |executor| {
                let saga = &saga;
                async move {
                    let report = executor.run(saga, 0u64).await.unwrap();
                    std::hint::black_box(report.context)
                }
            },
            criterion::BatchSize::SmallInput,
        )
    });
    // Ten times the steps: the difference to the 10-step run is the marginal
    // cost per step, without the per-run costs (run id, first and last record).
    group.bench_function("saga_100_steps_in_memory_journal", |b| {
        b.to_async(&runtime).iter_batched(
            || SagaExecutor::new(Arc::new(InMemoryJournal::new())),
            |executor| {
                let saga = &long_saga;
                async move {
                    let report = executor.run(saga, 0u64).await.unwrap();
                    std::hint::black_box(report.context)
                }
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
