//! ProvisioningHybrid: the provisioning SDK's example binary.
//!
//! It wires the SDK on embedded defaults (a SQLite catalog, region-tagged
//! shards, SQLite tenant databases with the reference workload, local storage)
//! under `--data-dir`, and offers the hybrid flow as a `demo` and as commands.

mod commands;
mod config;
mod demo;
mod http;
mod postgres;
mod wiring;
mod workflows;

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
    /// The plan policy and shard map (TOML); `config` prints the built-in one.
    #[arg(long, global = true, env = "PROVISIONING_HYBRID_CONFIG")]
    config: Option<PathBuf>,
    /// Keep the catalog (tenants, requests, journal, outbox, leases) on
    /// PostgreSQL at this URL instead of catalog.sqlite in the data
    /// directory (also PROVISIONING_HYBRID_CATALOG, which keeps a password
    /// out of the process list, or `catalog` in the config file).
    #[arg(
        long,
        global = true,
        env = "PROVISIONING_HYBRID_CATALOG",
        hide_env_values = true,
        value_name = "URL",
        value_parser = catalog_url
    )]
    catalog: Option<provisioning_sharding::ConnectionTarget>,
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

#[derive(Subcommand)]
enum FleetCommand {
    /// The last roll-out: its status, counts, failures with their errors,
    /// and the processes working on it.
    Status,
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
    /// An attribute for the placement policy, KEY=VALUE (repeatable).
    #[arg(long = "attr")]
    attrs: Vec<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Provision a mix of tenants, suspend one, delete one, roll back a failure.
    Demo,
    /// Print the placement configuration in use (the built-in one unless
    /// --config names another): a starting point for your own.
    Config {
        /// Print the built-in configuration for PostgreSQL instead: the
        /// catalog and the tenants' databases on the local server (save it
        /// and pass it with --config).
        #[arg(long)]
        postgres: bool,
    },
    /// Create a tenant and wait for the outcome.
    Create {
        #[command(flatten)]
        tenant: TenantArgs,
        /// Make a step fail: STEP[:transient|:permanent] (also
        /// PROVISIONING_INJECT_FAILURE). For drills.
        #[arg(long, conflicts_with = "queue")]
        inject_failure: Option<String>,
        /// Record the request and return at once (status running): a
        /// `worker` runs it.
        #[arg(long)]
        queue: bool,
    },
    /// Change an active tenant's plan; when the plan needs another isolation
    /// (standard to premium: a database of its own), its data moves.
    ChangePlan {
        /// The tenant (Active).
        #[arg(long)]
        tenant: String,
        /// The new plan: free, standard, premium or regulated.
        #[arg(long)]
        plan: String,
        #[command(flatten)]
        run: MoveRunArgs,
    },
    /// Move an active tenant's data to another shard of its pool, in its region
    /// (or, for a flexible tenant, a fallback region of the config).
    Move {
        /// The tenant (Active).
        #[arg(long)]
        tenant: String,
        /// The target shard.
        #[arg(long)]
        shard: String,
        #[command(flatten)]
        run: MoveRunArgs,
    },
    /// Mark a shard draining and move every active or suspended tenant on it to another
    /// shard of its region and pool; run again to retry what failed.
    Drain {
        /// The shard to empty.
        #[arg(long)]
        shard: String,
        /// Tenants moved at once, 1 to 64: each holds a database connection
        /// and its files open, and SQLite writes one at a time.
        #[arg(long, default_value_t = 4, value_parser = concurrency)]
        concurrency: usize,
        /// Make a step of every move fail: STEP[:transient|:permanent] (also
        /// PROVISIONING_INJECT_FAILURE). For drills.
        #[arg(long)]
        inject_failure: Option<String>,
    },
    /// Show what creating a tenant would do, changing nothing (the dry run;
    /// `plan` is its former name).
    #[command(alias = "plan")]
    Preview {
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
        /// Tenants shown at most (1 to 10000); when more match, the next
        /// page's `--after` is printed (on stderr with --json).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
        /// Start after this tenant id (tenants are listed in id order).
        #[arg(long)]
        after: Option<String>,
    },
    /// A tenant's events, in order.
    Events { tenant: String },
    /// A request's step history.
    Audit { request: String },
    /// Finish or roll back what a crash left in flight. On a PostgreSQL
    /// catalog only runs whose lease is free or has lapsed are taken: a
    /// live worker's or server's runs are left to it.
    Recover,
    /// Run a generic workflow for an active tenant: enable a service, add a user.
    Provision {
        #[command(subcommand)]
        kind: ProvisionKind,
    },
    /// Roll the release out to every active and suspended tenant's database,
    /// as a durable roll-out: run it again to continue one that stopped.
    MigrateAll {
        /// Show what each database would get; change nothing (no roll-out
        /// is recorded).
        #[arg(long)]
        dry_run: bool,
        /// Databases migrated first, alone; a failure among them halts the
        /// roll-out (kept with a new roll-out).
        #[arg(long, default_value_t = 0)]
        canary: usize,
        /// Databases migrated at once, 1 to 64: each holds a database connection
        /// and its files open, and SQLite writes one at a time.
        #[arg(long, default_value_t = 4, value_parser = concurrency)]
        concurrency: usize,
        /// Halt once more databases than this failed: a count (0: at the
        /// first failure), a percentage (10%) or `unlimited`; the rest stay
        /// pending. Kept with a new roll-out: a run that continues one
        /// without it uses the limit kept.
        #[arg(long)]
        max_failures: Option<provisioning_core::FailureLimit>,
        /// Try the databases that failed in the release's roll-out again.
        #[arg(long)]
        retry_failed: bool,
        /// Seconds a database stays leased to this process without a
        /// heartbeat: after a crash, another run takes its databases over
        /// once this has passed.
        #[arg(long, default_value_t = 30)]
        lease_secs: u64,
    },
    /// Compare each tenant database with the release: tables, columns,
    /// indexes, migration and seed ledgers. Exit 0 when clean, 3 when drift
    /// is found (or left after --repair), 1 on an error.
    Drift {
        /// Only this tenant's database.
        #[arg(long)]
        tenant: Option<String>,
        /// Fix what is mechanical (a migration that never ran, a ledger row
        /// whose change is there, a missing seed); the rest is reported.
        #[arg(long)]
        repair: bool,
        /// Databases checked at once, 1 to 64: each holds a database connection
        /// and its files open, and SQLite writes one at a time.
        #[arg(long, default_value_t = 4, value_parser = concurrency)]
        concurrency: usize,
    },
    /// Fleet roll-outs: `fleet status` shows the last one.
    Fleet {
        #[command(subcommand)]
        command: FleetCommand,
    },
    /// Run queued requests (`create --queue`) under leases until Ctrl-C or
    /// SIGTERM; takes over the runs of processes that died once their
    /// leases lapse. Start as many as you like on one catalog.
    Worker {
        /// This worker's name in leases and logs, unique among the workers
        /// of a catalog (default: worker-PID-UUID).
        #[arg(long)]
        name: Option<String>,
        /// Requests driven at once (1 to 64).
        #[arg(long, default_value_t = 4, value_parser = concurrency)]
        concurrency: usize,
        /// How long a claimed request stays this worker's without a renewal
        /// (renewed every third of it); a dead worker's runs pass on after it.
        #[arg(long, default_value = "30s", value_parser = lease)]
        lease: std::time::Duration,
        /// Exit once nothing is left to claim, instead of waiting for more.
        #[arg(long)]
        exit_when_idle: bool,
    },
    /// Serve the commands as an HTTP API (and /metrics) until Ctrl-C or SIGTERM.
    Serve {
        /// The address to listen on (port 0: any free port; the bound
        /// address is printed).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: std::net::SocketAddr,
        /// The bearer token the API requires (also PROVISIONING_HYBRID_TOKEN,
        /// which keeps it out of the process list); /metrics and /healthz
        /// stay open.
        #[arg(long)]
        token: Option<http::Token>,
        /// Serve a non-loopback address without a token (refused otherwise).
        #[arg(long)]
        allow_unauthenticated: bool,
        /// Also run queued requests here: an in-process worker beside the
        /// API. Without it, a server on a PostgreSQL catalog (`--catalog`)
        /// is an API process only, recording requests for `worker`
        /// processes; on the SQLite catalog it runs requests itself.
        #[arg(long)]
        worker: bool,
        /// Requests the in-process worker drives at once (1 to 64).
        #[arg(long, default_value_t = 4, value_parser = concurrency, requires = "worker")]
        worker_concurrency: usize,
        #[command(flatten)]
        limits: http::Limits,
    },
}

#[derive(Subcommand)]
enum ProvisionKind {
    /// Enable a service at an SLA tier: its subscription and rate limits.
    Service {
        /// The tenant (Active).
        #[arg(long)]
        tenant: String,
        /// The service name (lowercase letters, digits, hyphens).
        #[arg(long)]
        service: String,
        /// The SLA tier: basic, standard or enterprise.
        #[arg(long)]
        tier: String,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Add a user holding a role.
    User {
        /// The tenant (Active).
        #[arg(long)]
        tenant: String,
        /// The user's e-mail address.
        #[arg(long)]
        email: String,
        /// The role: owner, member or viewer.
        #[arg(long)]
        role: String,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Allocate a database, storage or compute for a service the tenant
    /// subscribes to, within the quota of the service's tier.
    Resource {
        /// The tenant (Active).
        #[arg(long)]
        tenant: String,
        /// The service (enabled for the tenant with `provision service`).
        #[arg(long)]
        service: String,
        /// What to allocate: database, storage or compute.
        #[arg(long = "type", value_name = "TYPE")]
        kind: String,
        /// The resource's spec, KEY=VALUE: size_mb for a database, size_gb
        /// for storage, cpu and memory_mb for compute (defaults otherwise).
        #[arg(long = "spec", value_name = "KEY=VALUE", value_parser = parse_spec)]
        spec: Vec<(String, String)>,
        #[command(flatten)]
        run: RunArgs,
    },
}

/// A `--spec KEY=VALUE` pair.
/// The most databases a command works on at once: each holds a connection
/// and open files, and a SQLite file takes one writer at a time, so more
/// only queue while using descriptors.
const MAX_CONCURRENCY: usize = 64;

/// `--concurrency`: 1 to [`MAX_CONCURRENCY`].
fn concurrency(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=MAX_CONCURRENCY).contains(&n) => Ok(n),
        _ => Err(format!(
            "must be a whole number from 1 to {MAX_CONCURRENCY}"
        )),
    }
}

/// `--lease`: a duration from 1 s to 1 h (a renewal every third of it).
fn lease(text: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if (1..=3600).contains(&d.as_secs()) => Ok(d),
        Ok(_) => Err("must be from 1s to 1h".to_owned()),
        Err(e) => Err(format!("{e} (write it as 30s or 2m)")),
    }
}

/// `--catalog`: kept as a [`ConnectionTarget`](provisioning_sharding::ConnectionTarget),
/// whose `Debug` and `Display` hide the password; checked with the config's.
fn catalog_url(url: &str) -> Result<provisioning_sharding::ConnectionTarget, String> {
    Ok(provisioning_sharding::ConnectionTarget::new(url))
}

fn parse_spec(pair: &str) -> Result<(String, String), String> {
    match pair.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{pair:?} is not KEY=VALUE")),
    }
}

/// The options `change-plan` and `move` take.
#[derive(Args)]
struct MoveRunArgs {
    /// The idempotency key (a UUID); a new one when omitted.
    #[arg(long)]
    request_id: Option<String>,
    /// Make a step fail: STEP[:transient|:permanent] (also
    /// PROVISIONING_INJECT_FAILURE). For drills.
    #[arg(long)]
    inject_failure: Option<String>,
    /// Show from, to, the steps and the rows to copy; change nothing.
    #[arg(long)]
    dry_run: bool,
}

impl MoveRunArgs {
    fn into_args(
        self,
        tenant: String,
        plan: Option<String>,
        shard: Option<String>,
    ) -> commands::MoveArgs {
        commands::MoveArgs {
            tenant,
            plan,
            shard,
            request_id: self.request_id,
            inject_failure: self.inject_failure,
            dry_run: self.dry_run,
        }
    }
}

/// The options every `provision` kind takes.
#[derive(Args)]
struct RunArgs {
    /// The idempotency key (a UUID); a new one when omitted.
    #[arg(long)]
    request_id: Option<String>,
    /// Make a step fail: STEP[:transient|:permanent] (also
    /// PROVISIONING_INJECT_FAILURE). For drills.
    #[arg(long)]
    inject_failure: Option<String>,
}

impl ProvisionKind {
    fn into_args(self) -> commands::ProvisionArgs {
        let (workflow, tenant, input, run) = match self {
            ProvisionKind::Service {
                tenant,
                service,
                tier,
                run,
            } => (
                workflows::SERVICE,
                tenant,
                serde_json::json!({ "service": service, "tier": tier }),
                run,
            ),
            ProvisionKind::User {
                tenant,
                email,
                role,
                run,
            } => (
                workflows::USER,
                tenant,
                serde_json::json!({ "email": email, "role": role }),
                run,
            ),
            ProvisionKind::Resource {
                tenant,
                service,
                kind,
                spec,
                run,
            } => {
                let spec: serde_json::Map<_, _> = spec
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::Value::String(v)))
                    .collect();
                (
                    workflows::RESOURCE,
                    tenant,
                    serde_json::json!({ "service": service, "type": kind, "spec": spec }),
                    run,
                )
            }
        };
        commands::ProvisionArgs {
            workflow,
            tenant,
            input,
            request_id: run.request_id,
            inject_failure: run.inject_failure,
        }
    }
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

/// (8) Per-tenant progress as tracing output on stderr, filtered by
/// `RUST_LOG`; without it, `default`.
fn init_tracing(default: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // A second subscriber (none here) would be an error worth ignoring.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // A server or a worker logs every request and run step; a command only what went wrong
    // (its output says the rest).
    init_tracing(
        if matches!(cli.command, Command::Serve { .. } | Command::Worker { .. }) {
            "info"
        } else {
            "warn"
        },
    );
    if let Some(path) = &cli.config {
        config::use_file(path.clone());
    }
    if let Some(url) = cli.catalog {
        config::use_catalog(url);
    }
    let dir = cli.data_dir.as_path();
    let out = Output {
        json: cli.json,
        release: cli.release,
    };
    let result = match cli.command {
        Command::Demo => demo::run(dir).await,
        Command::Config { postgres } => commands::show_config(postgres, out),
        Command::Create {
            tenant,
            inject_failure,
            queue,
        } => {
            let args = create_args(tenant, inject_failure);
            if queue {
                commands::queue_create(dir, args, out).await
            } else {
                commands::create(dir, args, out).await
            }
        }
        Command::Worker {
            name,
            concurrency,
            lease,
            exit_when_idle,
        } => {
            let args = commands::WorkerArgs {
                name,
                concurrency,
                lease,
                exit_when_idle,
            };
            commands::worker(dir, args, out).await
        }
        Command::Preview { tenant } => commands::preview(dir, create_args(tenant, None), out).await,
        Command::ChangePlan { tenant, plan, run } => {
            commands::change_placement(dir, run.into_args(tenant, Some(plan), None), out).await
        }
        Command::Drain {
            shard,
            concurrency,
            inject_failure,
        } => commands::drain(dir, &shard, concurrency, inject_failure.as_deref(), out).await,
        Command::Move { tenant, shard, run } => {
            commands::change_placement(dir, run.into_args(tenant, None, Some(shard)), out).await
        }
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
            limit,
            after,
        } => {
            let page = commands::Page {
                limit: limit as usize,
                after: after.as_deref(),
            };
            commands::list(
                dir,
                state.as_deref(),
                region.as_deref(),
                plan.as_deref(),
                page,
                out,
            )
            .await
        }
        Command::Events { tenant } => commands::events(dir, &tenant, out).await,
        Command::Audit { request } => commands::audit(dir, &request, out).await,
        Command::Recover => commands::recover(dir, out).await,
        Command::Provision { kind } => commands::provision(dir, kind.into_args(), out).await,
        Command::MigrateAll {
            dry_run,
            canary,
            concurrency,
            max_failures,
            retry_failed,
            lease_secs,
        } => {
            let args = commands::RolloutArgs {
                dry_run,
                canary,
                concurrency,
                max_failures,
                retry_failed,
                lease: std::time::Duration::from_secs(lease_secs.max(1)),
            };
            commands::migrate_all(dir, cli.release, args, out).await
        }
        Command::Fleet {
            command: FleetCommand::Status,
        } => commands::fleet_status(dir, out).await,
        Command::Drift {
            tenant,
            repair,
            concurrency,
        } => commands::drift(dir, tenant.as_deref(), repair, concurrency, out).await,
        Command::Serve {
            addr,
            token,
            allow_unauthenticated,
            worker,
            worker_concurrency,
            limits,
        } => {
            let access = http::Access {
                addr,
                token,
                allow_unauthenticated,
            };
            let worker = worker.then_some(worker_concurrency);
            http::serve(dir, cli.release, access, worker, limits).await
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<commands::Drifted>().is_some() => {
            eprintln!("drift: {e}");
            std::process::ExitCode::from(commands::DRIFT_EXIT_CODE)
        }
        Err(e) => {
            // With its causes: "opening catalog.sqlite: ... read-only file
            // system", not only the top line.
            eprintln!("error: {}", provisioning_core::Error::report_of(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}
