//! The figures and how they are shown: a table for people, and with `--json`
//! one JSON object on the last line for scripts.

#![allow(clippy::print_stdout, reason = "the report is the binary's output")]

use serde::Serialize;

use crate::runner::{Samples, median};

/// SDK against floor at one concurrency.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Run {
    /// Tenants in flight at once.
    pub(crate) concurrency: usize,
    /// SDK throughput, the median of the rounds.
    pub(crate) sdk_tenants_per_sec: f64,
    /// Floor throughput, the median of the rounds.
    pub(crate) floor_tenants_per_sec: f64,
    /// SDK / floor throughput (1.0: as fast as hand-written code); 0 when
    /// a side did not run.
    pub(crate) ratio: f64,
    /// Every round's SDK throughput, in order.
    pub(crate) sdk_rounds: Vec<f64>,
    /// Every round's floor throughput, in order.
    pub(crate) floor_rounds: Vec<f64>,
}

impl Run {
    /// The run's figures from its rounds.
    pub(crate) fn new(concurrency: usize, samples: Samples) -> Self {
        let (sdk, floor) = (median(&samples.sdk), median(&samples.floor));
        Run {
            concurrency,
            sdk_tenants_per_sec: sdk,
            floor_tenants_per_sec: floor,
            ratio: if floor > 0.0 { sdk / floor } else { 0.0 },
            sdk_rounds: samples.sdk,
            floor_rounds: samples.floor,
        }
    }

    /// One line for the progress output.
    pub(crate) fn line(&self, mode: &str) -> String {
        format!(
            "{mode} c={}: floor {:.1}/s {:?}, SDK {:.1}/s {:?}, ratio {:.2}",
            self.concurrency,
            self.floor_tenants_per_sec,
            rounded(&self.floor_rounds),
            self.sdk_tenants_per_sec,
            rounded(&self.sdk_rounds),
            self.ratio
        )
    }
}

fn rounded(values: &[f64]) -> Vec<f64> {
    values.iter().map(|v| (v * 10.0).round() / 10.0).collect()
}

/// The fleet roll-out: the next release over every tenant's schema.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Fleet {
    /// Schemas upgraded.
    pub(crate) tenants: usize,
    /// Schemas upgraded at once.
    pub(crate) concurrency: usize,
    /// Wall time of the SDK's durable roll-out (`roll_out`).
    pub(crate) sdk_seconds: f64,
    /// Wall time of the hand-written roll-out.
    pub(crate) floor_seconds: f64,
    /// Floor seconds / SDK seconds (the throughput ratio, as for `runs`).
    pub(crate) ratio: f64,
    /// Wall time of the SDK's drift check over every schema afterwards
    /// (`check_drift`, concurrency as the roll-out's): clean, as it must be.
    pub(crate) drift_seconds: f64,
}

/// One mode's figures.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Mode {
    /// Tenants provisioned per run (by each side).
    pub(crate) tenants: usize,
    /// One entry per concurrency.
    pub(crate) runs: Vec<Run>,
    /// The fleet roll-out, for PostgreSQL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) fleet: Option<Fleet>,
    /// Peak RSS during the mode (both sides), in MiB.
    pub(crate) peak_rss_mib: Option<f64>,
    /// Moves: the SDK's held-write window per concurrency.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) held_writes: Vec<crate::moves::HeldWrites>,
    /// Moves: rows each tenant holds beyond its seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) extra_rows: Option<usize>,
}

/// The `rss` mode's figures.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub(crate) struct RssFigures {
    /// Shared tenants provisioned in one process.
    pub(crate) tenants: usize,
    /// Tenants in flight at once.
    pub(crate) concurrency: usize,
    /// SDK throughput over the whole run.
    pub(crate) tenants_per_sec: f64,
    /// Peak RSS of the process, in MiB.
    pub(crate) peak_rss_mib: Option<f64>,
    /// Peak RSS before provisioning began (runtime and binary), in MiB.
    pub(crate) baseline_rss_mib: Option<f64>,
}

/// Everything one `compare` run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Report {
    /// In which order the two sides ran at each concurrency.
    pub(crate) order: &'static str,
    /// Rounds per side at each concurrency; figures are their medians.
    pub(crate) rounds: usize,
    /// Whether per-mode peaks were reset between modes (else cumulative).
    pub(crate) rss_per_mode: bool,
    /// Shared SQLite tenants.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) shared: Option<Mode>,
    /// Dedicated SQLite tenants.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) dedicated: Option<Mode>,
    /// A PostgreSQL schema per tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) postgres_schema: Option<Mode>,
    /// Shared SQLite tenants moved to a file of their own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) moves_sqlite: Option<Mode>,
    /// PostgreSQL schema tenants moved to another shard's database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) moves_postgres: Option<Mode>,
    /// Why the PostgreSQL mode did not run, when it was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) postgres_skipped: Option<String>,
    /// Many shared tenants in one process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) rss: Option<RssFigures>,
}

fn mib(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.1} MiB"))
}

/// Prints the table of one mode.
pub(crate) fn print_mode(name: &str, mode: &Mode) {
    match mode.extra_rows {
        Some(extra) => println!(
            "{name}: {} tenants per run, seed + {extra} rows each",
            mode.tenants
        ),
        None => println!("{name}: {} tenants per run", mode.tenants),
    }
    println!(
        "  {:>11}  {:>14}  {:>16}  {:>6}",
        "concurrency", "SDK tenants/s", "floor tenants/s", "ratio"
    );
    for run in &mode.runs {
        println!(
            "  {:>11}  {:>14.1}  {:>16.1}  {:>6.2}",
            run.concurrency, run.sdk_tenants_per_sec, run.floor_tenants_per_sec, run.ratio
        );
    }
    if let Some(fleet) = &mode.fleet {
        println!(
            "  fleet release over {} schemas at concurrency {}: SDK {:.2} s, floor {:.2} s, ratio {:.2}; drift check of every schema {:.2} s",
            fleet.tenants,
            fleet.concurrency,
            fleet.sdk_seconds,
            fleet.floor_seconds,
            fleet.ratio,
            fleet.drift_seconds
        );
    }
    for held in &mode.held_writes {
        println!(
            "  held writes at concurrency {}: p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms ({} moves)",
            held.concurrency, held.p50_ms, held.p95_ms, held.max_ms, held.moves
        );
    }
    println!("  peak RSS: {}", mib(mode.peak_rss_mib));
}

/// Prints the whole report, and with `json` the JSON object last.
pub(crate) fn print(report: &Report, json: bool) -> Result<(), serde_json::Error> {
    println!(
        "order at each concurrency: {}; {} round(s) per side, medians shown",
        report.order, report.rounds
    );
    for (name, mode) in [
        ("shared", &report.shared),
        ("dedicated", &report.dedicated),
        ("postgres_schema", &report.postgres_schema),
        ("moves_sqlite", &report.moves_sqlite),
        ("moves_postgres", &report.moves_postgres),
    ] {
        if let Some(mode) = mode {
            print_mode(name, mode);
        }
    }
    if let Some(reason) = &report.postgres_skipped {
        println!("postgres_schema: skipped ({reason})");
    }
    if let Some(rss) = &report.rss {
        println!(
            "rss: {} shared tenants at concurrency {} in one process, {:.1} tenants/s, peak RSS {} (baseline {})",
            rss.tenants,
            rss.concurrency,
            rss.tenants_per_sec,
            mib(rss.peak_rss_mib),
            mib(rss.baseline_rss_mib)
        );
    }
    if json {
        println!("{}", serde_json::to_string(report)?);
    }
    Ok(())
}

/// Prints only the `rss` figures as JSON: what a child process re-executed
/// for the `rss` mode hands back to its parent.
pub(crate) fn print_rss_child(rss: &RssFigures) -> Result<(), serde_json::Error> {
    println!("{}", serde_json::to_string(rss)?);
    Ok(())
}
