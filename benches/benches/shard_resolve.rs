//! `shard_resolve`: one placement among 1,000 shards in 10 regions (80 shared
//! and 20 dedicated shards per region, every 25th draining), for tenants
//! cycling through every region and pool. Target: under 1 µs per resolution.
//!
//! The baseline is a plain modulo pick over the same group's shards (hash the
//! tenant, index the list): the cheapest placement there is, and not a stable
//! one. At the end the bench times both again with `Instant` and prints ns per
//! resolution and the ratio to the baseline.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr
)]

use std::collections::HashMap;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use provisioning_core::{Isolation, PlacementDecision, Region, Residency, ShardResolver, TenantId};
use provisioning_sharding::{
    InMemoryLoad, LeastLoadedResolver, Pinned, Pins, RendezvousResolver, Shard, ShardDirectory,
    ShardSpec, ShardStatus,
};

const REGIONS: usize = 10;
const SHARDS_PER_REGION: usize = 100;
const DEDICATED_PER_REGION: usize = 20;
const TENANTS: usize = 4096;

fn directory() -> Arc<ShardDirectory> {
    let specs = (0..REGIONS).flat_map(|r| {
        (0..SHARDS_PER_REGION).map(move |i| {
            let pool = if i < DEDICATED_PER_REGION {
                Isolation::Dedicated
            } else {
                Isolation::Shared
            };
            let status = if i % 25 == 7 {
                ShardStatus::Draining
            } else {
                ShardStatus::Active
            };
            ShardSpec::new(format!("region-{r}-shard-{i}"))
                .with_region(format!("region-{r}"))
                .with_pool(pool)
                .with_capacity(1000)
                .with_status(status)
                .with_connection(format!("postgres://app:secret@db-{r}-{i}/tenants"))
        })
    });
    Arc::new(ShardDirectory::from_specs(specs).unwrap())
}

/// (tenant, decision) pairs cycling through regions and pools.
fn workload() -> Vec<(TenantId, PlacementDecision)> {
    (0..TENANTS)
        .map(|i| {
            let isolation = if i % 5 == 0 {
                Isolation::Dedicated
            } else {
                Isolation::Shared
            };
            let decision = PlacementDecision::new(
                "standard".parse().unwrap(),
                isolation,
                format!("region-{}", i % REGIONS).parse().unwrap(),
                Residency::Strict,
                "bench",
            );
            (format!("tenant-{i}").parse().unwrap(), decision)
        })
        .collect()
}

/// The baseline: active shards of each (region, pool), picked by hash modulo length.
struct Modulo<'a>(HashMap<Region, [Vec<&'a Shard>; 2]>);

fn pool_index(pool: Isolation) -> usize {
    usize::from(pool == Isolation::Dedicated)
}

impl<'a> Modulo<'a> {
    fn new(directory: &'a ShardDirectory) -> Self {
        let mut groups: HashMap<Region, [Vec<&Shard>; 2]> = HashMap::new();
        for shard in directory.iter().filter(|s| s.accepts_new_tenants()) {
            groups.entry(shard.region().clone()).or_default()[pool_index(shard.pool())].push(shard);
        }
        Modulo(groups)
    }

    fn pick(&self, tenant: &TenantId, decision: &PlacementDecision) -> &'a Shard {
        // FNV-1a: as cheap as a tenant hash gets.
        let hash = tenant
            .as_str()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        let group = &self.0[&decision.region][pool_index(decision.isolation)];
        group[(hash % group.len() as u64) as usize]
    }
}

/// Polls a future that never waits (the resolvers here never do) to completion,
/// so the figure is the resolver's cost, not an executor's.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("resolver future was not ready"),
    }
}

fn bench(c: &mut Criterion) {
    let dir = directory();
    let work = workload();
    let modulo = Modulo::new(&dir);
    let rendezvous = RendezvousResolver::new(dir.clone());
    let pins = (0..100).fold(Pins::new(), |pins, i| {
        pins.with(
            format!("pinned-{i}").parse().unwrap(),
            format!("region-0-shard-{}", 50 + i % 40).parse().unwrap(),
        )
    });
    let pinned = Pinned::new(dir.clone(), pins, rendezvous.clone()).unwrap();

    let mut group = c.benchmark_group("shard_resolve");
    let mut next = 0usize;
    let mut step = || {
        next = (next + 1) % TENANTS;
        &work[next]
    };
    group.bench_function("baseline_modulo", |b| {
        b.iter(|| {
            let (t, d) = step();
            black_box(modulo.pick(black_box(t), black_box(d)).id());
        })
    });
    group.bench_function("rendezvous_pick", |b| {
        b.iter(|| {
            let (t, d) = step();
            black_box(
                rendezvous
                    .pick(black_box(t), black_box(d))
                    .unwrap()
                    .shard
                    .id(),
            );
        })
    });
    group.bench_function("rendezvous_resolve", |b| {
        b.iter(|| {
            let (t, d) = step();
            black_box(ready(rendezvous.resolve(black_box(t), black_box(d))).unwrap());
        })
    });
    group.bench_function("pinned_then_rendezvous_resolve", |b| {
        b.iter(|| {
            let (t, d) = step();
            black_box(ready(pinned.resolve(black_box(t), black_box(d))).unwrap());
        })
    });
    // Least-loaded reads the whole load map per call (the SQL source will be a
    // query); each iteration releases what it reserved so capacity never runs out.
    let least = LeastLoadedResolver::new(dir.clone(), InMemoryLoad::new());
    group.bench_function("least_loaded_resolve_and_release", |b| {
        b.iter(|| {
            let (t, d) = step();
            let choice = ready(least.resolve(black_box(t), black_box(d))).unwrap();
            ready(least.release(t, &choice.shard)).unwrap();
            black_box(choice)
        })
    });
    group.finish();

    // The ratio, measured in the same run over the same workload.
    const ROUNDS: usize = 200;
    let time = |f: &mut dyn FnMut(&TenantId, &PlacementDecision)| {
        let start = Instant::now();
        for _ in 0..ROUNDS {
            for (t, d) in &work {
                f(black_box(t), black_box(d));
            }
        }
        start.elapsed().as_nanos() as f64 / (ROUNDS * TENANTS) as f64
    };
    let base = time(&mut |t, d| {
        black_box(modulo.pick(t, d));
    });
    let pick = time(&mut |t, d| {
        black_box(rendezvous.pick(t, d).unwrap().shard);
    });
    let resolve = time(&mut |t, d| {
        black_box(ready(rendezvous.resolve(t, d)).unwrap());
    });
    let with_pins = time(&mut |t, d| {
        black_box(ready(pinned.resolve(t, d)).unwrap());
    });
    eprintln!(
        "shard_resolve over 1,000 shards in 10 regions (ns per resolution, ratio to the modulo baseline):"
    );
    eprintln!("  baseline modulo pick        {base:8.1} ns   1.0x");
    eprintln!(
        "  rendezvous pick             {pick:8.1} ns  {:5.1}x",
        pick / base
    );
    eprintln!(
        "  rendezvous resolve (trait)  {resolve:8.1} ns  {:5.1}x",
        resolve / base
    );
    eprintln!(
        "  pinned + rendezvous resolve {with_pins:8.1} ns  {:5.1}x",
        with_pins / base
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
