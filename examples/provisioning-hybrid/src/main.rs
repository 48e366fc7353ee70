//! ProvisioningHybrid: the provisioning SDK's example binary.
//!
//! Today `demo` shows the saga executor that every provisioning workflow runs
//! on: a tenant's folders and settings file are made step by step under
//! `--data-dir`, one run completes, and a second run hits an injected failure
//! and is rolled back, leaving nothing behind. The journal of each run is
//! printed. The full tenant orchestrator, CLI and HTTP API build on this.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use clap::{Parser, Subcommand};
use provisioning_core::{
    InMemoryJournal, JournalEntry, RetryPolicy, Saga, SagaExecutor, SagaJournal as _, Step,
    StepError, TenantId,
};
use serde::{Deserialize, Serialize};

#[derive(Parser)]
#[command(
    name = "provisioning-hybrid",
    version,
    about = "ProvisioningHybrid: the provisioning SDK's example"
)]
struct Cli {
    /// Where tenants' files are made.
    #[arg(long, global = true, default_value = "./hybrid-data")]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Provision one tenant, then show a failing provisioning rolled back.
    Demo,
}

/// What the demo's steps know about the run; checkpointed in the journal.
#[derive(Serialize, Deserialize)]
struct Ctx {
    root: PathBuf,
    tenant: TenantId,
    fail_at_activation: bool,
}

impl Ctx {
    fn tenant_dir(&self) -> PathBuf {
        self.root.join("tenants").join(self.tenant.as_str())
    }
}

fn io_error(e: std::io::Error) -> StepError {
    // Interrupted or would-block I/O may succeed on retry; the rest will not.
    match e.kind() {
        std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock => StepError::transient(e),
        _ => StepError::permanent(e),
    }
}

struct CreateFolders;

#[async_trait]
impl Step<Ctx> for CreateFolders {
    fn name(&self) -> &str {
        "create-folders"
    }
    async fn execute(&self, ctx: &mut Ctx) -> Result<(), StepError> {
        for sub in ["uploads", "exports"] {
            std::fs::create_dir_all(ctx.tenant_dir().join(sub)).map_err(io_error)?;
        }
        Ok(())
    }
    async fn compensate(&self, ctx: &mut Ctx) -> Result<(), StepError> {
        remove_dir_if_exists(&ctx.tenant_dir())
    }
}

struct WriteSettings;

#[async_trait]
impl Step<Ctx> for WriteSettings {
    fn name(&self) -> &str {
        "write-settings"
    }
    async fn execute(&self, ctx: &mut Ctx) -> Result<(), StepError> {
        let body = format!(
            "{{\"tenant_id\":\"{}\",\"theme\":\"default\"}}\n",
            ctx.tenant
        );
        std::fs::write(ctx.tenant_dir().join("settings.json"), body).map_err(io_error)
    }
    async fn compensate(&self, ctx: &mut Ctx) -> Result<(), StepError> {
        match std::fs::remove_file(ctx.tenant_dir().join("settings.json")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(e)),
            _ => Ok(()),
        }
    }
}

struct Activate;

#[async_trait]
impl Step<Ctx> for Activate {
    fn name(&self) -> &str {
        "activate"
    }
    async fn execute(&self, ctx: &mut Ctx) -> Result<(), StepError> {
        if ctx.fail_at_activation {
            return Err(StepError::permanent(std::io::Error::other(
                "injected failure: activation refused",
            )));
        }
        std::fs::write(ctx.tenant_dir().join(".active"), b"").map_err(io_error)
    }
}

fn remove_dir_if_exists(dir: &Path) -> Result<(), StepError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(e)),
        _ => Ok(()),
    }
}

fn describe(entry: &JournalEntry) -> String {
    match entry {
        JournalEntry::RunStarted { workflow, .. } => format!("run started ({workflow})"),
        JournalEntry::StepStarted { step, attempt, .. } => {
            format!("{step}: attempt {attempt} started")
        }
        JournalEntry::StepCompleted {
            step, duration_ms, ..
        } => format!("{step}: completed in {duration_ms} ms"),
        JournalEntry::StepFailed { step, error, .. } => format!("{step}: failed ({error})"),
        JournalEntry::StepCompensated { step, .. } => format!("{step}: compensated"),
        other => other.kind().replace('_', " "),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo => match demo(&cli.data_dir).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}

#[allow(clippy::print_stdout)] // a CLI's output
async fn demo(data_dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(data_dir)?;
    let journal = Arc::new(InMemoryJournal::new());
    let executor = SagaExecutor::builder()
        .journal(journal.clone())
        .retry_policy(RetryPolicy::no_retry())
        .build()?;
    let saga = Saga::builder("provision-tenant-files")
        .step(CreateFolders)
        .step(WriteSettings)
        .step(Activate)
        .build()?;

    for (tenant, fail) in [("acme", false), ("globex", true)] {
        let ctx = Ctx {
            root: data_dir.to_path_buf(),
            tenant: tenant.parse()?,
            fail_at_activation: fail,
        };
        let dir = ctx.tenant_dir();
        let report = executor.run(&saga, ctx).await?;
        println!(
            "tenant {tenant}: run {} -> {:?}",
            report.run_id, report.status
        );
        for record in journal.load(report.run_id).await? {
            println!("  {:>2}  {}", record.seq, describe(&record.entry));
        }
        println!(
            "  files under {}: {}",
            dir.display(),
            if dir.exists() {
                "present"
            } else {
                "none (rolled back)"
            }
        );
    }
    Ok(())
}
