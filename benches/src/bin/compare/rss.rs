//! Peak resident memory: `VmHWM` from `/proc/self/status`, reset between
//! modes where the kernel allows it, and the `rss` mode that provisions many
//! shared tenants in one process to see whether memory stays flat.

use std::path::Path;

use crate::report::RssFigures;
use crate::runner::{self, Result, check};
use crate::sdk::SqliteSdk;

/// The process's peak resident set size so far, in MiB (`VmHWM`); `None`
/// where `/proc` is not there.
pub(crate) fn peak_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Resets the peak to the current resident size (writing `5` to
/// `/proc/self/clear_refs`, Linux 4.0+), so that the next reading is the peak
/// of what runs in between. Returns whether it worked: if not, readings are
/// the peak since the process started.
pub(crate) fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Provisions `tenants` shared tenants through the SDK at `concurrency` in
/// this process and reports the peak RSS. Run in a process of its own (the
/// `compare` binary re-executes itself for it) so nothing else counts.
pub(crate) async fn run(root: &Path, tenants: usize, concurrency: usize) -> Result<RssFigures> {
    let before = peak_mib();
    let dir = runner::fresh_dir(root, "rss")?;
    let sdk = SqliteSdk::open(&dir).await?;
    let elapsed = {
        let sdk = sdk.clone();
        runner::run(tenants, concurrency, move |i| {
            let sdk = sdk.clone();
            async move { sdk.create(&runner::tenant_id("rss", i), false).await }
        })
        .await?
    };
    let active = sdk.active_tenants().await?;
    check(active == tenants, || {
        format!("rss: {active} of {tenants} tenants active")
    })?;
    let peak = peak_mib();
    drop(sdk);
    runner::remove_dir(&dir);
    Ok(RssFigures {
        tenants,
        concurrency,
        tenants_per_sec: runner::per_second(tenants, elapsed),
        peak_rss_mib: peak,
        baseline_rss_mib: before,
    })
}
