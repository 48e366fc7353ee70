//! ProvisioningHybrid: the provisioning SDK's example binary.
//!
//! `demo` wires the SDK on embedded defaults (a SQLite catalog, region-tagged
//! shards, SQLite tenant databases with the reference workload, local storage)
//! and walks through the hybrid flow: shared and dedicated tenants in two
//! regions, a suspension, a deletion and a rolled-back failure.

mod demo;
mod wiring;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Provision a mix of tenants, suspend one, delete one, roll back a failure.
    Demo,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo => demo::run(&cli.data_dir).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
