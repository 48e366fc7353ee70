//! ProvisioningHybrid: the provisioning SDK's example binary.
//!
//! It wires the SDK on embedded defaults (a SQLite catalog, region-tagged
//! shards, SQLite tenant databases with the reference workload, local storage)
//! under `--data-dir`, and offers the hybrid flow as a `demo` and as commands.

mod commands;
mod demo;
mod wiring;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use commands::{CreateArgs, Lifecycle, Output};
use provisioning_core::RemovalMode;

#[derive(Parser)]
#[command(
    name = "provisioning-hybrid",
    version,
    about = "ProvisioningHybrid: the provisioning SDK's example"
)]
struct Cli {
    /// Where the catalog, tenant databases and storage live.
    #[arg(long, global = true, default_value = "./hybrid-data")]
    data_dir: PathBuf,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// The schema release to provision and migrate to (`base`: the ten
    /// migrations an older build shipped; `current`: with the fleet release).
    #[arg(long, global = true, value_enum, default_value = "current")]
    release: wiring::Release,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct TenantArgs {
    /// The tenant id (lowercase letters, digits and single hyphens).
    #[arg(long)]
    tenant: String,
    /// The plan: free, standard, premium or regulated.
    #[arg(long)]
    plan: String,
    /// The region: eu-west or us-east.
    #[arg(long)]
    region: String,
    /// The idempotency key (a UUID); a new one when omitted.
    #[arg(long)]
    request_id: Option<String>,
    /// An attribute for the plan builder, KEY=VALUE (repeatable).
    #[arg(long = "attr")]
    attrs: Vec<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Provision a mix of tenants, suspend one, delete one, roll back a failure.
    Demo,
    /// Create a tenant and wait for the outcome.
    Create {
        #[command(flatten)]
        tenant: TenantArgs,
        /// Make a step fail: STEP[:transient|:permanent] (also
        /// PROVISIONING_INJECT_FAILURE). For drills.
        #[arg(long)]
        inject_failure: Option<String>,
    },
    /// Show what creating a tenant would do, changing nothing.
    Plan {
        #[command(flatten)]
        tenant: TenantArgs,
    },
    /// Suspend an active tenant.
    Suspend { tenant: String },
    /// Resume a suspended tenant.
    Resume { tenant: String },
    /// Delete a tenant (archive its storage by default).
    Delete {
        tenant: String,
        /// Delete every object instead of archiving.
        #[arg(long, conflicts_with = "archive")]
        purge: bool,
        /// Move the objects under archive/ (the default).
        #[arg(long)]
        archive: bool,
    },
    /// Provision a failed tenant again.
    Retry { tenant: String },
    /// A tenant's state and placement, or a request's outcome.
    Status {
        tenant: Option<String>,
        /// A request id instead of a tenant.
        #[arg(long)]
        request: Option<String>,
    },
    /// Tenants, optionally by state, region and plan.
    List {
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        region: Option<String>,
        #[arg(long)]
        plan: Option<String>,
    },
    /// A tenant's events, in order.
    Events { tenant: String },
    /// A request's step history.
    Audit { request: String },
    /// Finish or roll back what a crash left in flight.
    Recover,
    /// Apply the release's new migrations to every active and suspended tenant.
    MigrateAll {
        /// Show what each database would get; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Databases migrated at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
}

fn create_args(t: TenantArgs, inject_failure: Option<String>) -> CreateArgs {
    CreateArgs {
        tenant: t.tenant,
        plan: t.plan,
        region: t.region,
        request_id: t.request_id,
        attrs: t.attrs,
        inject_failure,
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let dir = cli.data_dir.as_path();
    let out = Output {
        json: cli.json,
        release: cli.release,
    };
    let result = match cli.command {
        Command::Demo => demo::run(dir).await,
        Command::Create {
            tenant,
            inject_failure,
        } => commands::create(dir, create_args(tenant, inject_failure), out).await,
        Command::Plan { tenant } => commands::plan(dir, create_args(tenant, None), out).await,
        Command::Suspend { tenant } => {
            commands::lifecycle(dir, &tenant, Lifecycle::Suspend, out).await
        }
        Command::Resume { tenant } => {
            commands::lifecycle(dir, &tenant, Lifecycle::Resume, out).await
        }
        Command::Delete { tenant, purge, .. } => {
            let mode = if purge {
                RemovalMode::Purge
            } else {
                RemovalMode::Archive
            };
            commands::lifecycle(dir, &tenant, Lifecycle::Delete(mode), out).await
        }
        Command::Retry { tenant } => commands::lifecycle(dir, &tenant, Lifecycle::Retry, out).await,
        Command::Status { tenant, request } => {
            commands::status(dir, tenant.as_deref(), request.as_deref(), out).await
        }
        Command::List {
            state,
            region,
            plan,
        } => {
            commands::list(
                dir,
                state.as_deref(),
                region.as_deref(),
                plan.as_deref(),
                out,
            )
            .await
        }
        Command::Events { tenant } => commands::events(dir, &tenant, out).await,
        Command::Audit { request } => commands::audit(dir, &request, out).await,
        Command::Recover => commands::recover(dir, out).await,
        Command::MigrateAll {
            dry_run,
            concurrency,
        } => commands::migrate_all(dir, cli.release, dry_run, concurrency, out).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
