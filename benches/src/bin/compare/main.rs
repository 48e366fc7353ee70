//! `compare`: provisioning throughput of the SDK against a hand-written floor,
//! measured in one run on the same temporary disk.
//!
//! - `shared`: tenants as rows of one SQLite database, end to end through the
//!   orchestrator (catalog, journal, outbox, seed rows, storage marker),
//!   against the seed transaction and marker file written by hand.
//! - `dedicated`: a SQLite file per tenant (ten migrations and the seed).
//! - `postgres`: a PostgreSQL schema per tenant with the catalog on the same
//!   server, against one hand-written transaction per schema; then the fleet
//!   release over every schema. Runs when `--postgres URL` or
//!   `PROVISIONING_TEST_POSTGRES_URL` names a server.
//! - `rss`: many shared tenants in one process (a child process of its own),
//!   for the peak resident memory.
//! - `moves`: shared tenants (seed plus 1,000 rows each) upgraded to a file
//!   of their own through the move saga, against a hand-written mover; with
//!   the SDK's held-write window (p50, p95); and, with a PostgreSQL server,
//!   schema tenants moved between two databases standing in for two shards.
//!
//! At each concurrency both sides run `--rounds` times (default 3), in ABBA
//! order (floor first in even rounds, the SDK first in odd ones), each run on
//! fresh files (or fresh schemas) after a `sync`, so neither side always
//! inherits the other's write-back; the figures are the medians, every
//! round's figure is in the JSON. After every run the binary checks that every tenant was
//! provisioned (rows, files, schemas, catalog states) and fails loudly if
//! either side did less than asked.
//!
//! ```text
//! cargo run --release -p provisioning-benches --bin compare -- --json
//! ```

mod dedicated;
mod floor;
mod moves;
mod moves_pg;
mod postgres;
mod report;
mod rss;
mod runner;
mod sdk;
mod shared;
mod workload;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

use crate::report::{Mode, Report, RssFigures};
use crate::runner::Result;

/// The environment variable naming the PostgreSQL server, as for the tests.
const POSTGRES_ENV: &str = "PROVISIONING_TEST_POSTGRES_URL";

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ModeName {
    /// Shared SQLite tenants.
    Shared,
    /// A SQLite file per tenant.
    Dedicated,
    /// A PostgreSQL schema per tenant, and the fleet release.
    Postgres,
    /// Peak RSS while provisioning many shared tenants in one process.
    Rss,
    /// Shared SQLite tenants upgraded to a file of their own: moves per
    /// second and the held-write window.
    Moves,
}

/// Provisioning throughput of the SDK against a hand-written floor.
#[derive(Debug, Parser)]
#[command(name = "compare")]
struct Args {
    /// Tenants per run in shared mode.
    #[arg(long, default_value_t = 2000)]
    tenants_shared: usize,
    /// Tenants per run in dedicated mode.
    #[arg(long, default_value_t = 500)]
    tenants_dedicated: usize,
    /// Tenants per run in PostgreSQL mode.
    #[arg(long, default_value_t = 100)]
    tenants_postgres: usize,
    /// The modes to run, in this order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "shared,dedicated,postgres,rss,moves"
    )]
    modes: Vec<ModeName>,
    /// The PostgreSQL server (default: `PROVISIONING_TEST_POSTGRES_URL`; an
    /// empty URL skips the PostgreSQL mode).
    #[arg(long)]
    postgres: Option<String>,
    /// Print one JSON object with every figure as the last line.
    #[arg(long)]
    json: bool,
    /// Tenants moved per run in the `moves` mode.
    #[arg(long, default_value_t = 100)]
    tenants_moves: usize,
    /// Rows each tenant holds beyond its seed in the `moves` mode (half
    /// tasks, half comments).
    #[arg(long, default_value_t = 1000)]
    move_extra_rows: usize,
    /// Concurrencies of the `moves` mode.
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    moves_concurrency: Vec<usize>,
    /// Shared tenants provisioned in the `rss` mode.
    #[arg(long, default_value_t = 10_000)]
    rss_tenants: usize,
    /// Concurrency of the `rss` mode.
    #[arg(long, default_value_t = 64)]
    rss_concurrency: usize,
    /// Concurrencies of shared mode.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    shared_concurrency: Vec<usize>,
    /// Concurrencies of dedicated mode.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    dedicated_concurrency: Vec<usize>,
    /// Concurrencies of PostgreSQL mode.
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    postgres_concurrency: Vec<usize>,
    /// Concurrency of the PostgreSQL fleet roll-out.
    #[arg(long, default_value_t = 4)]
    fleet_concurrency: usize,
    /// Where the temporary files go (default: the system's temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Measurements of each side per concurrency, in alternating order; the
    /// figures are their medians.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// For profiling: run only this side (`floor` or `sdk`); the other one
    /// reports zero.
    #[arg(long, hide = true)]
    only: Option<runner::Side>,
    /// Internal: run the `rss` mode in this process and print its figures.
    #[arg(long, hide = true)]
    rss_child: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Into::into)
        .and_then(|runtime| runtime.block_on(run(args)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compare: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    if args.rss_child {
        let figures = rss::run(&base, args.rss_tenants, args.rss_concurrency).await?;
        report::print_rss_child(&figures)?;
        return Ok(());
    }
    let root = base.join(format!("provisioning-compare-{}", std::process::id()));
    std::fs::create_dir_all(&root)?;
    let outcome = measure(&args, &root).await;
    runner::remove_dir(&root);
    report::print(&outcome?, args.json)?;
    Ok(())
}

async fn measure(args: &Args, root: &Path) -> Result<Report> {
    let mut report = Report {
        order: "floor, sdk in even rounds; sdk, floor in odd ones",
        rounds: args.rounds.max(1),
        rss_per_mode: rss::reset_peak(),
        ..Report::default()
    };
    let rounds = runner::Rounds {
        rounds: args.rounds,
        only: args.only,
    };
    // An empty `--postgres` turns the mode off whatever the environment says.
    let postgres = match &args.postgres {
        Some(url) => Some(url.clone()).filter(|u| !u.is_empty()),
        None => std::env::var(POSTGRES_ENV).ok().filter(|u| !u.is_empty()),
    };
    for mode in &args.modes {
        rss::reset_peak();
        match mode {
            ModeName::Shared => {
                let figures = runner::measure_files::<shared::Shared>(
                    root,
                    args.tenants_shared,
                    &args.shared_concurrency,
                    rounds,
                )
                .await?;
                report.shared = Some(with_peak(figures));
            }
            ModeName::Dedicated => {
                let figures = runner::measure_files::<dedicated::Dedicated>(
                    root,
                    args.tenants_dedicated,
                    &args.dedicated_concurrency,
                    rounds,
                )
                .await?;
                report.dedicated = Some(with_peak(figures));
            }
            ModeName::Postgres => match &postgres {
                Some(url) => {
                    let figures = postgres::run(
                        root,
                        url,
                        args.tenants_postgres,
                        &args.postgres_concurrency,
                        args.fleet_concurrency,
                        rounds,
                    )
                    .await?;
                    report.postgres_schema = Some(with_peak(figures));
                }
                None => {
                    let reason = format!("no server: --postgres is empty or {POSTGRES_ENV} unset");
                    eprintln!("postgres: skipped: {reason}");
                    report.postgres_skipped = Some(reason);
                }
            },
            ModeName::Rss => report.rss = Some(rss_in_child(args, root).await?),
            ModeName::Moves => {
                let figures = moves::run(
                    root,
                    args.tenants_moves,
                    args.move_extra_rows,
                    &args.moves_concurrency,
                    rounds,
                )
                .await?;
                report.moves_sqlite = Some(with_peak(figures));
                if let Some(url) = &postgres {
                    rss::reset_peak();
                    let figures = moves_pg::run(
                        root,
                        url,
                        args.tenants_moves,
                        args.move_extra_rows,
                        &args.moves_concurrency,
                        rounds,
                    )
                    .await?;
                    report.moves_postgres = Some(with_peak(figures));
                }
            }
        }
    }
    Ok(report)
}

fn with_peak(mut mode: Mode) -> Mode {
    mode.peak_rss_mib = rss::peak_mib();
    mode
}

/// Runs the `rss` mode in a fresh process of this binary, so that the peak
/// it reports is that mode's alone, and reads its figures back.
async fn rss_in_child(args: &Args, root: &Path) -> Result<RssFigures> {
    let exe = std::env::current_exe()?;
    let output = tokio::process::Command::new(exe)
        .arg("--rss-child")
        .arg("--rss-tenants")
        .arg(args.rss_tenants.to_string())
        .arg("--rss-concurrency")
        .arg(args.rss_concurrency.to_string())
        .arg("--dir")
        .arg(root)
        .stderr(std::process::Stdio::inherit())
        .output()
        .await?;
    if !output.status.success() {
        return Err(format!("the rss child process failed: {}", output.status).into());
    }
    let stdout = String::from_utf8(output.stdout)?;
    let last = stdout.lines().last().unwrap_or_default();
    let figures: RssFigures = serde_json::from_str(last)?;
    eprintln!(
        "rss: {} tenants, peak {:?} MiB",
        figures.tenants, figures.peak_rss_mib
    );
    Ok(figures)
}
