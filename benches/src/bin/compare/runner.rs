//! The one driver every measurement goes through, SDK and floor alike: `n`
//! jobs at a fixed concurrency, timed, the first error ending the run.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Errors of the binary: anything, with its message, across tasks.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The binary's result type.
pub(crate) type Result<T, E = BoxError> = std::result::Result<T, E>;

/// A failed check: the SDK or the floor did not do the work asked of it.
pub(crate) fn check(ok: bool, what: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(format!("verification failed: {}", what()).into())
    }
}

/// Runs `job(0..n)` with `concurrency` jobs in flight and returns the wall
/// time. Each of `concurrency` spawned tasks takes the next index when it is
/// done with one, so the runtime's worker threads share the work whatever it
/// is; the first error stops every task from taking more and is returned.
pub(crate) async fn run<F, Fut>(n: usize, concurrency: usize, job: F) -> Result<Duration>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let job = Arc::new(job);
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.clamp(1, n.max(1)) {
        let (job, next, failed) = (Arc::clone(&job), Arc::clone(&next), Arc::clone(&failed));
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n || failed.load(Ordering::Relaxed) {
                    return Ok(());
                }
                if let Err(e) = job(i).await {
                    failed.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
        });
    }
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let outcome = joined
            .map_err(|e| -> BoxError { Box::new(e) })
            .and_then(|r| r);
        if let Err(e) = outcome {
            first_error.get_or_insert(e);
        }
    }
    let elapsed = start.elapsed();
    match first_error {
        Some(e) => Err(e),
        None => Ok(elapsed),
    }
}

/// One side of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Side {
    /// The hand-written floor.
    Floor,
    /// The SDK.
    Sdk,
}

/// Whether `side` runs when only `only` was asked for (`None`: both).
pub(crate) fn wants(only: Option<Side>, side: Side) -> bool {
    only.is_none_or(|o| o == side)
}

/// How each measurement is repeated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rounds {
    /// Measurements of each side per concurrency.
    pub(crate) rounds: usize,
    /// Run one side only (profiling).
    pub(crate) only: Option<Side>,
}

/// The throughputs one concurrency measured, per side, in round order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Samples {
    pub(crate) floor: Vec<f64>,
    pub(crate) sdk: Vec<f64>,
}

/// Measures both sides `rounds` times, alternating which goes first (floor
/// first in even rounds, the SDK in odd ones: ABBA...), so that neither
/// always runs on a disk and page cache the other has just warmed or
/// dirtied. `floor(r)` and `sdk(r)` measure round `r` and return tenants/s.
pub(crate) async fn alternate(
    rounds: Rounds,
    mut floor: impl AsyncFnMut(usize) -> Result<f64>,
    mut sdk: impl AsyncFnMut(usize) -> Result<f64>,
) -> Result<Samples> {
    let mut samples = Samples::default();
    for round in 0..rounds.rounds.max(1) {
        let order = if round % 2 == 0 {
            [Side::Floor, Side::Sdk]
        } else {
            [Side::Sdk, Side::Floor]
        };
        for side in order.into_iter().filter(|s| wants(rounds.only, *s)) {
            match side {
                Side::Floor => samples.floor.push(floor(round).await?),
                Side::Sdk => samples.sdk.push(sdk(round).await?),
            }
        }
    }
    Ok(samples)
}

/// The median of `values` (0 for none): robust to one run disturbed by
/// the rest of the machine.
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Tenants per second.
pub(crate) fn per_second(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// Flushes the page cache's dirty pages to disk (`sync`), so that the
/// write-back of one measurement does not land on the next one.
pub(crate) fn settle_disk() {
    // Best effort: without `sync` the measurements are only noisier.
    let _ = std::process::Command::new("sync").status();
}

/// A fresh, empty directory for one measurement under `root`.
pub(crate) fn fresh_dir(root: &Path, name: &str) -> Result<PathBuf> {
    let dir = root.join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Removes a measurement's directory, reporting but not failing on errors:
/// the figures are taken already.
pub(crate) fn remove_dir(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        eprintln!("warning: could not remove {}: {e}", dir.display());
    }
}

/// The tenant id prefix of both sides in the file and schema modes (each side
/// has its own directory or schema prefix).
pub(crate) const PREFIX: &str = "t";

/// Provisions tenants `0..n` (ids under [`PREFIX`]) with `concurrency` jobs,
/// each calling `create` on a clone of `side`; returns the wall time.
pub(crate) async fn provision<S, F, Fut>(
    side: &S,
    n: usize,
    concurrency: usize,
    create: F,
) -> Result<Duration>
where
    S: Clone + Send + Sync + 'static,
    F: Fn(S, String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let side = side.clone();
    run(n, concurrency, move |i| {
        create(side.clone(), tenant_id(PREFIX, i))
    })
    .await
}

/// Both sides at each concurrency (see [`alternate`]), each line printed
/// under `name` as it is measured: `floor(c)` and `sdk(c)` measure one run at
/// concurrency `c` and return tenants/s.
pub(crate) async fn measure(
    name: &str,
    tenants: usize,
    concurrencies: &[usize],
    rounds: Rounds,
    mut floor: impl AsyncFnMut(usize) -> Result<f64>,
    mut sdk: impl AsyncFnMut(usize) -> Result<f64>,
) -> Result<crate::report::Mode> {
    let mut runs = Vec::new();
    for &concurrency in concurrencies {
        let samples = alternate(
            rounds,
            async |_| floor(concurrency).await,
            async |_| sdk(concurrency).await,
        )
        .await?;
        let run = crate::report::Run::new(concurrency, samples);
        eprintln!("{}", run.line(name));
        runs.push(run);
    }
    Ok(crate::report::Mode {
        tenants,
        runs,
        fleet: None,
        peak_rss_mib: None,
        held_writes: Vec::new(),
        extra_rows: None,
    })
}

/// A mode whose two sides each provision `tenants` on fresh files under a
/// root, at a concurrency, and return tenants/s (shared and dedicated).
pub(crate) trait FileMode {
    /// Its name in the lines printed and the report.
    const NAME: &'static str;
    /// One measured run of the floor.
    async fn floor_run(root: &Path, tenants: usize, concurrency: usize) -> Result<f64>;
    /// One measured run of the SDK.
    async fn sdk_run(root: &Path, tenants: usize, concurrency: usize) -> Result<f64>;
}

/// Measures a [`FileMode`]'s two sides at each concurrency (see [`measure`]),
/// each run on fresh files under `root`.
pub(crate) async fn measure_files<M: FileMode>(
    root: &Path,
    tenants: usize,
    concurrencies: &[usize],
    rounds: Rounds,
) -> Result<crate::report::Mode> {
    measure(
        M::NAME,
        tenants,
        concurrencies,
        rounds,
        async |c| M::floor_run(root, tenants, c).await,
        async |c| M::sdk_run(root, tenants, c).await,
    )
    .await
}

/// The tenant id of job `i` in a run whose ids start with `prefix`.
pub(crate) fn tenant_id(prefix: &str, i: usize) -> String {
    format!("{prefix}-{i:05}")
}
