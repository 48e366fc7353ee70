//! (4) `migrate-all`: the fleet roll-out of a release, as a durable record in
//! the catalog (resumable, in waves, shared by several operators), with a
//! progress bar on a terminal and one plain line per database otherwise; and
//! `fleet status`, the last roll-out.

pub(crate) mod json;

use std::path::Path;
use std::time::Duration;

use provisioning_core::{
    FailureLimit, FleetStatus, RolloutOptions, RolloutReport, RolloutUnit, UnitPreview, UnitStatus,
};

use self::json::{DriftView, FleetStatusView, UnitView};
use super::{BoxResult, Output};

/// The options of `migrate-all`.
pub(crate) struct RolloutArgs {
    pub(crate) dry_run: bool,
    pub(crate) canary: usize,
    pub(crate) concurrency: usize,
    pub(crate) max_failures: Option<FailureLimit>,
    pub(crate) retry_failed: bool,
    pub(crate) lease: Duration,
}

/// `migrate-all`: rolls the current release out to every Active and
/// Suspended tenant's database (each shared database once), continuing the
/// release's unfinished roll-out if there is one. Fails (non-zero exit) when
/// any database failed or the roll-out halted.
pub(crate) async fn migrate_all(
    dir: &Path,
    release: crate::wiring::Release,
    args: RolloutArgs,
    out: Output,
) -> BoxResult<()> {
    let hybrid = crate::wiring::hybrid(dir, release, None).await?;
    let orchestrator = &hybrid.orchestrator;
    if args.dry_run {
        let planned = orchestrator.preview_rollout(args.concurrency).await?;
        return show_plan(&planned, out);
    }
    let mut options = RolloutOptions::new()
        .canary(args.canary)
        .concurrency(args.concurrency)
        .retry_failed(args.retry_failed)
        .lease(args.lease);
    if let Some(limit) = args.max_failures {
        options = options.max_failures(limit);
    }
    let mut display = Progress::new(out.json, "databases");
    let report = orchestrator
        .roll_out(options, |step| {
            let c = step.counts;
            display.unit(
                c.total,
                Some(c.finished()),
                format!(
                    "[{} migrated, {} failed, {} skipped, {} left] {}: {}",
                    c.migrated,
                    c.failed,
                    c.skipped,
                    c.pending + c.running,
                    describe(&step.unit),
                    outcome(&step.unit)
                ),
            );
        })
        .await?;
    display.finish();
    let units = orchestrator
        .store()
        .fleet()
        .ok_or("the catalog keeps no roll-outs")?
        .rollout_units(report.rollout.id)
        .await?;
    show_report(&report, &units, out)?;
    let c = report.counts;
    if c.failed > 0 || c.pending + c.running > 0 {
        let why = report.rollout.reason.clone().unwrap_or_default();
        return Err(format!(
            "roll-out {} is {}: {} database(s) failed, {} not migrated. {why}",
            report.rollout.id,
            report.rollout.status.as_str(),
            c.failed,
            c.pending + c.running
        )
        .into());
    }
    Ok(())
}

/// `fleet status`: the last roll-out, its counts, failures and workers.
pub(crate) async fn fleet_status(dir: &Path, out: Output) -> BoxResult<()> {
    let orchestrator = crate::wiring::reader(dir, out.release).await?;
    let status = orchestrator.fleet_status().await?;
    let json = FleetStatusView::new(status.as_ref());
    out.show(&json, || match &status {
        None => "no roll-out yet: `migrate-all` starts one".to_owned(),
        Some(s) => status_text(s),
    })
}

fn status_text(s: &FleetStatus) -> String {
    let r = &s.rollout;
    let c = s.counts;
    let mut text = format!(
        "roll-out {} of release {}: {}{}\nstarted by {} at {}\n{} database(s): {} migrated, {} failed, {} skipped, {} pending, {} running",
        r.id,
        r.release,
        r.status.as_str(),
        r.reason
            .as_ref()
            .map(|why| format!(" ({why})"))
            .unwrap_or_default(),
        r.started_by,
        r.started_at.to_rfc3339(),
        c.total,
        c.migrated,
        c.failed,
        c.skipped,
        c.pending,
        c.running
    );
    for unit in &s.failures {
        text.push_str(&format!("\nFAILED {}: {}", describe(unit), outcome(unit)));
    }
    for unit in &s.skipped {
        text.push_str(&format!("\nskipped {}: {}", describe(unit), outcome(unit)));
    }
    if !s.workers.is_empty() {
        text.push_str(&format!("\nworking on it: {}", s.workers.join(", ")));
    }
    text
}

/// A unit as `key (tenants)`, the tenants only when they differ from it.
fn describe(unit: &RolloutUnit) -> String {
    if unit.tenants.len() == 1 && unit.tenants[0].as_str() == unit.key {
        unit.key.clone()
    } else {
        let tenants: Vec<&str> = unit.tenants.iter().map(|t| t.as_str()).collect();
        format!("{} ({})", unit.key, tenants.join(","))
    }
}

fn outcome(unit: &RolloutUnit) -> String {
    let note = unit.note.as_deref().unwrap_or("");
    match unit.status {
        UnitStatus::Migrated if unit.applied.is_empty() => "up to date".to_owned(),
        UnitStatus::Migrated => format!("applied {}", versions(&unit.applied)),
        UnitStatus::Failed => format!("FAILED: {note}"),
        UnitStatus::Skipped => format!("skipped: {note}"),
        other => other.as_str().to_owned(),
    }
}

fn show_report(report: &RolloutReport, units: &[RolloutUnit], out: Output) -> BoxResult<()> {
    let c = report.counts;
    let up_to_date = report
        .settled
        .iter()
        .filter(|u| u.status == UnitStatus::Migrated && u.applied.is_empty())
        .count();
    let tenants: Vec<serde_json::Value> = units
        .iter()
        .flat_map(|unit| {
            unit.tenants.iter().map(move |tenant| {
                serde_json::json!({
                    "tenant": tenant,
                    "database": unit.key,
                    "status": unit.status,
                    "applied": unit.applied.iter().map(|m| m.version).collect::<Vec<_>>(),
                    "error": if unit.status == UnitStatus::Failed { unit.note.as_deref() } else { None },
                })
            })
        })
        .collect();
    let summary = serde_json::json!({
        "dry_run": false,
        "rollout": report.rollout,
        "resumed": report.resumed,
        "counts": c,
        "databases": report.settled.iter().map(UnitView::new).collect::<Vec<_>>(),
        "tenants": tenants,
        "done": report.settled.iter().filter(|u| u.status == UnitStatus::Migrated).count(),
        "up_to_date": up_to_date,
        "failed": c.failed,
        "skipped": c.skipped,
        "pending": c.pending + c.running,
    });
    out.show(&summary, || {
        format!(
            "roll-out {} of release {}{}: {}{}\n{} database(s): {} migrated ({} already up to date this run), {} failed, {} skipped, {} pending",
            report.rollout.id,
            report.rollout.release,
            if report.resumed { " (continued)" } else { "" },
            report.rollout.status.as_str(),
            report
                .rollout
                .reason
                .as_ref()
                .map(|why| format!(" ({why})"))
                .unwrap_or_default(),
            c.total,
            c.migrated,
            up_to_date,
            c.failed,
            c.skipped,
            c.pending + c.running,
        )
    })
}

fn show_plan(planned: &[UnitPreview], out: Output) -> BoxResult<()> {
    let mut lines = Vec::new();
    let mut text = Vec::new();
    for p in planned {
        let tenants: Vec<&str> = p.unit.tenants.iter().map(|t| t.as_str()).collect();
        let what = match (&p.schema, &p.error, p.unit.status) {
            (_, Some(error), _) => format!("FAILED: {error}"),
            (Some(schema), None, _) if schema.pending_migrations.is_empty() => {
                "up to date".to_owned()
            }
            (Some(schema), None, _) => {
                format!("would apply {}", versions(&schema.pending_migrations))
            }
            (None, None, _) => format!("skipped: {}", p.unit.note.as_deref().unwrap_or("")),
        };
        text.push(format!("{} ({}): {what}", p.unit.key, tenants.join(",")));
        lines.push(serde_json::json!({
            "database": p.unit.key,
            "tenants": tenants,
            "isolation": p.unit.placement.isolation,
            "outcome": what,
            "pending_migrations": p.schema.as_ref().map(|schema| schema.pending_migrations.iter().map(|m| m.version).collect::<Vec<_>>()),
            "pending_seeds": p.schema.as_ref().map(|schema| schema.pending_seeds.iter().map(|s| s.name.clone()).collect::<Vec<_>>()),
        }));
    }
    let summary = serde_json::json!({ "dry_run": true, "databases": lines });
    out.show(&summary, || {
        text.push(format!(
            "{} database(s); nothing changed (dry run)",
            planned.len()
        ));
        text.join("\n")
    })
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
                "{{elapsed_precise}} [{{bar:40}}] {{pos}}/{{len}} {noun} (ETA {{eta}}) {{msg}}"
            )) {
                bar.set_style(style.progress_chars("=> "));
            }
            Progress::Bar(bar)
        } else {
            Progress::Lines
        }
    }

    /// One more unit finished of `total` (`done` of them now, if known);
    /// `line` says how.
    pub(super) fn unit(&mut self, total: usize, done: Option<usize>, line: String) {
        match self {
            Progress::Bar(bar) => {
                bar.set_length(total as u64);
                match done {
                    Some(done) => bar.set_position(done as u64),
                    None => bar.inc(1),
                }
                if line.contains("FAILED") {
                    bar.println(line);
                }
            }
            // Progress is best effort: a reader that went away does not stop the roll-out.
            Progress::Lines => {
                if let Err(e) = super::print_line(&line) {
                    tracing::debug!(error = %e, "progress line not printed");
                }
            }
            Progress::Quiet => {}
        }
    }

    pub(super) fn finish(self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// The exit code of `drift` when it found drift (or could not check a
/// database): scripts tell it from an error (1).
pub(crate) const DRIFT_EXIT_CODE: u8 = 3;

/// `drift` found differences: main exits with [`DRIFT_EXIT_CODE`].
#[derive(Debug)]
pub(crate) struct Drifted(pub(crate) String);

impl std::fmt::Display for Drifted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Drifted {}

/// `drift [--tenant T] [--repair] [--concurrency N]`: each database against
/// the release; exits 0 when clean, [`DRIFT_EXIT_CODE`] when drift is left.
pub(crate) async fn drift(
    dir: &Path,
    tenant: Option<&str>,
    repair: bool,
    concurrency: usize,
    out: Output,
) -> BoxResult<()> {
    let orchestrator = crate::wiring::orchestrator(dir, out.release).await?;
    let mut options = provisioning_core::DriftOptions::new()
        .repair(repair)
        .concurrency(concurrency);
    if let Some(tenant) = tenant {
        options = options.tenant(tenant.parse()?);
    }
    let report = orchestrator.check_drift(options).await?;
    let json = DriftView::new(&report);
    out.show(&json, || drift_text(&report))?;
    let errors = report.units.iter().filter(|u| u.error.is_some()).count();
    if errors > 0 {
        // An outage is not drift: scripts must tell them apart.
        return Err(format!("{errors} database(s) could not be checked or repaired").into());
    }
    if report.is_clean() {
        Ok(())
    } else {
        Err(Box::new(Drifted(format!(
            "{} database(s) drifted from release {}",
            report.drifted().count(),
            report.release.as_deref().unwrap_or("?")
        ))))
    }
}

fn drift_text(report: &provisioning_core::DriftReport) -> String {
    let mut lines = vec![format!(
        "{} database(s) checked against release {}: {} clean, {} drifted",
        report.units.len(),
        report.release.as_deref().unwrap_or("?"),
        report.units.len() - report.drifted().count(),
        report.drifted().count()
    )];
    for unit in &report.units {
        for repair in &unit.repaired {
            lines.push(format!("{}: repaired: {repair}", unit.database));
        }
        if let Some(error) = &unit.error {
            lines.push(format!("{}: ERROR: {error}", unit.database));
        }
        for d in &unit.drifts {
            lines.push(format!("{}: {d}", unit.database));
        }
    }
    lines.join("\n")
}
