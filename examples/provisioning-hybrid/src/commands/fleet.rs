//! (4) `migrate-all`: the fleet roll-out of a release's new migrations, with a
//! progress bar on a terminal and one plain line per database otherwise.

use std::path::Path;

use provisioning_core::{TenantFilter, TenantState};

use super::{BoxResult, Output};

/// `migrate-all [--dry-run] [--concurrency N]`: rolls the current release's
/// migrations out to every Active and Suspended tenant's database (each
/// shared database once), one line per database as it finishes.
pub(crate) async fn migrate_all(
    dir: &Path,
    release: crate::wiring::Release,
    dry_run: bool,
    concurrency: usize,
    out: Output,
) -> BoxResult<()> {
    use futures_util::StreamExt;
    use provisioning_sqlx::{FleetOptions, FleetReport, UnitOutcome, migrate_fleet_stream};

    let hybrid = crate::wiring::hybrid(dir, release, None).await?;
    let mut plans = Vec::new();
    for state in [TenantState::Active, TenantState::Suspended] {
        let mut filter = TenantFilter::all();
        filter.state = Some(state);
        filter.limit = 10_000;
        loop {
            let page = hybrid.orchestrator.list_tenants(&filter).await?;
            let last = page.last().map(|t| t.tenant_id.clone());
            plans.extend(page.into_iter().filter_map(|t| t.placement));
            match last {
                Some(last) => filter.after = Some(last),
                None => break,
            }
        }
    }
    let options = FleetOptions::new()
        .concurrency(concurrency)
        .dry_run(dry_run);
    let mut progress = std::pin::pin!(migrate_fleet_stream(&*hybrid.schema, plans, options));
    let mut report = FleetReport::default();
    let mut lines = Vec::new();
    let mut display = Progress::new(out.json, "databases");
    while let Some(step) = progress.next().await {
        let tenants: Vec<&str> = step.unit.tenants.iter().map(|t| t.as_str()).collect();
        let what = match &step.unit.outcome {
            UnitOutcome::Migrated(m) if m.is_empty() => "up to date".to_owned(),
            UnitOutcome::Migrated(m) => format!("applied {}", versions(m)),
            UnitOutcome::WouldApply(m) => format!("would apply {}", versions(m)),
            UnitOutcome::Failed { reason, .. } => format!("FAILED: {reason}"),
            other => format!("{other:?}"),
        };
        display.unit(
            step.done + step.failed + step.remaining,
            format!(
                "[{} done, {} failed, {} left] {} ({}): {} in {} ms",
                step.done,
                step.failed,
                step.remaining,
                tenants.join(","),
                step.unit.isolation,
                what,
                step.unit.duration.as_millis()
            ),
        );
        lines.push(serde_json::json!({
            "tenants": tenants,
            "isolation": step.unit.isolation,
            "outcome": what,
            "duration_ms": step.unit.duration.as_millis() as u64,
            "done": step.done,
            "failed": step.failed,
            "remaining": step.remaining,
        }));
        report.record(step);
    }
    display.finish();
    let summary = serde_json::json!({
        "dry_run": dry_run,
        "databases": lines,
        "done": report.done.len(),
        "failed": report.failed.len(),
        "skipped": report.skipped(),
    });
    if out.json {
        out.show(&summary, String::new)?;
    } else {
        out.show(&summary, || {
            format!(
                "{} database(s) done ({} already up to date), {} failed",
                report.done.len(),
                report.skipped(),
                report.failed.len()
            )
        })?;
    }
    if report.failed.is_empty() {
        Ok(())
    } else {
        Err(format!("{} database(s) failed to migrate", report.failed.len()).into())
    }
}

fn versions(migrations: &[provisioning_core::MigrationInfo]) -> String {
    migrations
        .iter()
        .map(|m| m.version.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// How `migrate-all` shows its progress: a bar on stderr when it is a
/// terminal, one plain line per database on stdout otherwise (logs, CI), and
/// nothing with `--json` (the summary says it all).
pub(super) enum Progress {
    Bar(indicatif::ProgressBar),
    Lines,
    Quiet,
}

impl Progress {
    /// Progress over `noun` (`databases`, `tenants`).
    pub(super) fn new(json: bool, noun: &str) -> Self {
        use std::io::IsTerminal;
        if json {
            Progress::Quiet
        } else if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(0);
            if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
                "{{elapsed_precise}} [{{bar:40}}] {{pos}}/{{len}} {noun} {{msg}}"
            )) {
                bar.set_style(style.progress_chars("=> "));
            }
            Progress::Bar(bar)
        } else {
            Progress::Lines
        }
    }

    /// One database finished, of `total`; `line` says how.
    pub(super) fn unit(&mut self, total: usize, line: String) {
        match self {
            Progress::Bar(bar) => {
                bar.set_length(total as u64);
                bar.inc(1);
                if line.contains("FAILED") {
                    bar.println(line);
                }
            }
            #[allow(clippy::print_stdout)] // a CLI's output
            Progress::Lines => println!("{line}"),
            Progress::Quiet => {}
        }
    }

    pub(super) fn finish(self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}
