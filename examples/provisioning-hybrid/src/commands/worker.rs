//! `worker`: runs queued requests (`create --queue`) under leases until
//! Ctrl-C or SIGTERM, and takes over the runs of processes that died once
//! their leases lapse. Any number of workers share one catalog.

use std::path::Path;
use std::time::Duration;

use provisioning_core::{CancellationToken, ProvisioningOrchestrator, WorkerOptions, WorkerReport};

use super::{BoxResult, Output};

/// What `worker` was asked.
pub(crate) struct WorkerArgs {
    pub(crate) name: Option<String>,
    pub(crate) concurrency: usize,
    pub(crate) lease: Duration,
    pub(crate) exit_when_idle: bool,
}

/// Claims and drives requests until a signal (the first stops claiming and
/// lets the runs it holds finish; a second exits at once, leaving them to
/// other workers once their leases lapse) or, with `--exit-when-idle`, until
/// nothing is left to claim. Prints what it did.
pub(crate) async fn worker(dir: &Path, args: WorkerArgs, out: Output) -> BoxResult<()> {
    let signals = crate::http::signals()?;
    // Drills inject step failures in workers too (`PROVISIONING_INJECT_FAILURE`).
    let faults = super::faults(None)?;
    let orchestrator = crate::wiring::hybrid(dir, out.release, faults)
        .await?
        .orchestrator;
    let name = args.name.unwrap_or_else(|| unique_name("worker"));
    let mut options = WorkerOptions::default()
        .with_lease(args.lease)
        .with_concurrency(args.concurrency);
    options.exit_when_idle = args.exit_when_idle;
    let cancel = CancellationToken::new();
    tokio::spawn({
        let (cancel, signals) = (cancel.clone(), signals.clone());
        async move {
            crate::http::signalled(signals.clone(), 1).await;
            tracing::info!("stopping: no more claims; the runs held finish");
            cancel.cancel();
            crate::http::signalled(signals, 2).await;
            tracing::warn!("second signal: exiting now; held runs pass on when their leases lapse");
            std::process::exit(130);
        }
    });
    tracing::info!(worker = %name, concurrency = args.concurrency, "worker started");
    let report = drive_queue(&orchestrator, &name, &options, &cancel).await;
    let value = serde_json::json!({
        "worker": name,
        "succeeded": report.succeeded,
        "failed": report.failed,
        "lost_leases": report.lost_leases,
    });
    out.show(&value, || {
        format!(
            "worker {name}: {} succeeded, {} failed, {} lost to another worker",
            report.succeeded, report.failed, report.lost_leases
        )
    })
}

/// A worker name no other process uses: `PREFIX-PID-UUID`, unique even where
/// every worker is PID 1 (containers), as two workers under one name would
/// renew each other's leases.
pub(crate) fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        provisioning_core::RunId::new()
    )
}

/// Runs `orchestrator`'s worker as `name` until `cancel` (or, with
/// `exit_when_idle`, an empty queue). A claim that fails (the catalog
/// unreachable for a moment) is retried after a pause rather than ending
/// the worker (the runs finished before a failed claim go uncounted in the
/// report: `run_worker` returns only its error).
pub(crate) async fn drive_queue(
    orchestrator: &ProvisioningOrchestrator,
    name: &str,
    options: &WorkerOptions,
    cancel: &CancellationToken,
) -> WorkerReport {
    let mut total = WorkerReport::default();
    loop {
        match orchestrator.run_worker(name, options, cancel).await {
            Ok(report) => {
                add(&mut total, &report);
                return total;
            }
            Err(error) => {
                tracing::warn!(worker = name, error = %provisioning_core::Error::report_of(&error), "claiming failed; retrying in 1s");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = cancel.cancelled() => return total,
                }
            }
        }
    }
}

fn add(total: &mut WorkerReport, report: &WorkerReport) {
    total.succeeded += report.succeeded;
    total.failed += report.failed;
    total.lost_leases += report.lost_leases;
}
