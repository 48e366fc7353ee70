//! (5) The CLI commands over the orchestrator: create, preview, suspend, resume,
//! delete, retry, status, list, events, audit, recover, and (in submodules)
//! `provision` and `migrate-all`. Each prints a human table, or JSON with
//! `--json`.

pub(crate) mod fleet;
mod mobility;
mod provision;
mod worker;

pub(crate) use fleet::{DRIFT_EXIT_CODE, Drifted, RolloutArgs, drift, fleet_status, migrate_all};
pub(crate) use mobility::{MoveArgs, change as change_placement, drain};
pub(crate) use provision::{ProvisionArgs, provision};
pub(crate) use worker::{WorkerArgs, drive_queue, unique_name, worker};

use std::path::Path;
use std::sync::Arc;

use provisioning_core::{
    FaultInjector, RemovalMode, RequestId, StepFaults, TenantFilter, TenantId, TenantRequest,
    TenantState,
};
use serde::Serialize;

use crate::wiring::{orchestrator, reader};

pub(crate) type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// The global options: how results are printed, and the schema release.
#[derive(Clone, Copy)]
pub(crate) struct Output {
    pub(crate) json: bool,
    pub(crate) release: crate::wiring::Release,
}

impl Output {
    /// Prints `value` as one JSON document, or `human` as text.
    fn show<T: Serialize>(self, value: &T, human: impl FnOnce() -> String) -> BoxResult<()> {
        let text = if self.json {
            serde_json::to_string_pretty(value)?
        } else {
            human()
        };
        Ok(print_line(&text)?)
    }
}

/// Writes `line` to standard output. A reader that has gone away
/// (`list | head`) is not an error: the command's work is done, and there is
/// no one left to tell.
pub(crate) fn print_line(line: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{line}").and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        done => done,
    }
}

/// The arguments of `create` and `preview`.
pub(crate) struct CreateArgs {
    pub(crate) tenant: String,
    pub(crate) plan: String,
    pub(crate) region: String,
    pub(crate) request_id: Option<String>,
    pub(crate) attrs: Vec<String>,
    pub(crate) inject_failure: Option<String>,
}

impl CreateArgs {
    fn request(&self) -> BoxResult<TenantRequest> {
        let mut request = TenantRequest::new(
            self.tenant.parse()?,
            self.plan.parse()?,
            self.region.parse()?,
        );
        if let Some(id) = &self.request_id {
            request = request.with_request_id(id.parse()?);
        }
        for attr in &self.attrs {
            let (key, value) = attr.split_once('=').ok_or_else(|| {
                provisioning_core::Error::invalid("attr", format!("{attr:?} must be KEY=VALUE"))
            })?;
            request = request.with_attribute(key, value)?;
        }
        Ok(request)
    }

    fn faults(&self) -> BoxResult<Option<Arc<dyn FaultInjector>>> {
        faults(self.inject_failure.as_deref())
    }
}

/// The fault injector of `--inject-failure STEP[:transient|:permanent]`, or
/// of `PROVISIONING_INJECT_FAILURE` when the option is absent.
pub(crate) fn faults(spec: Option<&str>) -> BoxResult<Option<Arc<dyn FaultInjector>>> {
    let spec = spec
        .map(str::to_owned)
        .or_else(|| std::env::var("PROVISIONING_INJECT_FAILURE").ok());
    Ok(match spec {
        Some(spec) => Some(Arc::new(spec.parse::<StepFaults>()?)),
        None => None,
    })
}

/// `create --queue`: records the request for a `worker` and prints its
/// receipt (running); the same request id again returns the same receipt.
pub(crate) async fn queue_create(dir: &Path, args: CreateArgs, out: Output) -> BoxResult<()> {
    let request = args.request()?;
    let receipt = orchestrator(dir, out.release)
        .await?
        .submit(request)
        .await?;
    out.show(&receipt, || {
        format!(
            "request {}: tenant {} queued ({})",
            receipt.request_id,
            receipt.tenant_id,
            receipt.status.as_str()
        )
    })
}

/// `create`: waits for the run; a tenant that ends Failed is an error exit.
pub(crate) async fn create(dir: &Path, args: CreateArgs, out: Output) -> BoxResult<()> {
    let request = args.request()?;
    let orchestrator = crate::wiring::hybrid(dir, out.release, args.faults()?)
        .await?
        .orchestrator;
    let receipt = orchestrator.create(request).await?;
    out.show(&receipt, || {
        format!(
            "request {}: tenant {} {}",
            receipt.request_id,
            receipt.tenant_id,
            receipt.status.as_str()
        )
    })?;
    if let Some(failure) = &receipt.failure {
        return Err(format!(
            "tenant {} failed at step {}: {}",
            receipt.tenant_id, failure.step, failure.reason
        )
        .into());
    }
    Ok(())
}

/// `config`: the placement configuration in use, validated, as its TOML;
/// with `postgres`, the built-in one for PostgreSQL.
pub(crate) fn show_config(postgres: bool, out: Output) -> BoxResult<()> {
    let (file, text) = if postgres {
        (None, crate::config::POSTGRES.to_owned())
    } else {
        crate::config::load()?;
        match crate::config::file() {
            Some(path) => (Some(path), std::fs::read_to_string(path)?),
            None => (None, crate::config::DEFAULT.to_owned()),
        }
    };
    // Shard connections and the catalog URL may hold passwords.
    let text = provisioning_core::model::redact_secrets(&text);
    let value = serde_json::json!({ "file": file, "toml": text });
    out.show(&value, || text.trim_end().to_owned())
}

/// `preview` (formerly `plan`): the dry run.
pub(crate) async fn preview(dir: &Path, args: CreateArgs, out: Output) -> BoxResult<()> {
    let request = args.request()?;
    let plan = orchestrator(dir, out.release)
        .await?
        .preview(&request)
        .await?;
    out.show(&plan, || {
        let mut text = format!(
            "tenant {}: {} on shard {} in {} ({})\n",
            plan.placement.tenant_id,
            plan.placement.isolation,
            plan.placement.shard,
            plan.placement.region,
            plan.placement.reason
        );
        text += &format!(
            "database {}: {}\n",
            plan.schema.location,
            if plan.schema.will_create {
                "would be created"
            } else {
                "exists"
            }
        );
        let migrations: Vec<String> = plan
            .schema
            .pending_migrations
            .iter()
            .map(|m| format!("{} {}", m.version, m.description))
            .collect();
        text += &format!("pending migrations: {}\n", migrations.join(", "));
        let seeds: Vec<String> = plan
            .schema
            .pending_seeds
            .iter()
            .map(|s| s.name.clone())
            .collect();
        text += &format!("pending seeds: {}\n", seeds.join(", "));
        text += &format!("storage: {}\n", plan.storage.paths.join(", "));
        text += &format!("steps: {}", plan.steps.join(" -> "));
        text
    })
}

/// Which lifecycle operation to run.
pub(crate) enum Lifecycle {
    Suspend,
    Resume,
    Delete(RemovalMode),
    Retry,
}

/// `suspend`, `resume`, `delete`, `retry`.
pub(crate) async fn lifecycle(
    dir: &Path,
    tenant: &str,
    op: Lifecycle,
    out: Output,
) -> BoxResult<()> {
    let tenant: TenantId = tenant.parse()?;
    let orchestrator = orchestrator(dir, out.release).await?;
    let id = RequestId::new();
    let receipt = match op {
        Lifecycle::Suspend => orchestrator.suspend(&tenant, id).await?,
        Lifecycle::Resume => orchestrator.resume(&tenant, id).await?,
        Lifecycle::Delete(mode) => orchestrator.delete(&tenant, mode, id).await?,
        Lifecycle::Retry => orchestrator.retry(&tenant, id).await?,
    };
    let state = orchestrator.tenant(&tenant).await?.state;
    out.show(&receipt, || {
        format!(
            "{} {}: {} (tenant now {})",
            receipt.workflow,
            tenant,
            receipt.status.as_str(),
            state
        )
    })?;
    match receipt.failure {
        Some(failure) => Err(format!("failed at step {}: {}", failure.step, failure.reason).into()),
        None => Ok(()),
    }
}

/// `status ID` or `status --request UUID`.
pub(crate) async fn status(
    dir: &Path,
    tenant: Option<&str>,
    request: Option<&str>,
    out: Output,
) -> BoxResult<()> {
    let orchestrator = reader(dir, out.release).await?;
    match (tenant, request) {
        (_, Some(request)) => {
            let receipt = orchestrator.status(request.parse()?).await?;
            out.show(&receipt, || {
                format!(
                    "request {} ({} of {}): {}",
                    receipt.request_id,
                    receipt.workflow,
                    receipt.tenant_id,
                    receipt.status.as_str()
                )
            })
        }
        (Some(tenant), None) => {
            let record = orchestrator.tenant(&tenant.parse()?).await?;
            out.show(&record, || {
                let placement = record
                    .placement
                    .as_ref()
                    .map_or("not placed".to_owned(), |p| {
                        format!("{} on {} in {}", p.isolation, p.shard, p.region)
                    });
                let database = record
                    .placement
                    .as_ref()
                    .and_then(|p| p.database.as_deref())
                    .map_or(String::new(), |d| format!("\n  database: {d}"));
                format!(
                    "tenant {}: {} (plan {}, {}), version {}{database}",
                    record.tenant_id, record.state, record.plan, placement, record.version
                )
            })
        }
        (None, None) => Err("status needs a tenant id or --request UUID".into()),
    }
}

/// A page of `list`: at most `limit` tenants after `after`.
pub(crate) struct Page<'a> {
    /// Tenants shown at most.
    pub(crate) limit: usize,
    /// The last tenant of the previous page.
    pub(crate) after: Option<&'a str>,
}

/// `list [--state S] [--region R] [--plan P] [--limit N] [--after ID]`:
/// one page, and where the next starts when more match (never a silent cut).
pub(crate) async fn list(
    dir: &Path,
    state: Option<&str>,
    region: Option<&str>,
    plan: Option<&str>,
    page: Page<'_>,
    out: Output,
) -> BoxResult<()> {
    let mut filter = TenantFilter::all();
    filter.state = state.map(str::parse::<TenantState>).transpose()?;
    filter.region = region.map(str::parse).transpose()?;
    filter.plan = plan.map(str::parse).transpose()?;
    filter.after = page.after.map(str::parse).transpose()?;
    // One more than shown tells whether another page exists.
    filter.limit = page.limit + 1;
    let mut tenants = reader(dir, out.release)
        .await?
        .list_tenants(&filter)
        .await?;
    let more = tenants.len() > page.limit;
    tenants.truncate(page.limit);
    if let (true, Some(last)) = (more, tenants.last()) {
        // On stderr, so that `--json` stays one array.
        eprintln!(
            "more tenants match: continue with --after {}",
            last.tenant_id
        );
    }
    out.show(&tenants, || {
        let mut text = format!(
            "{:<20} {:<10} {:<8} {:<10} {:<22} {}",
            "TENANT", "PLAN", "REGION", "ISOLATION", "SHARD", "STATE"
        );
        for t in &tenants {
            let (isolation, shard) = t.placement.as_ref().map_or(("-", "-".to_owned()), |p| {
                (p.isolation.as_str(), p.shard.to_string())
            });
            text += &format!(
                "\n{:<20} {:<10} {:<8} {:<10} {:<22} {}",
                t.tenant_id.as_str(),
                t.plan.as_str(),
                t.region.as_str(),
                isolation,
                shard,
                t.state
            );
        }
        text
    })
}

/// `events ID`.
pub(crate) async fn events(dir: &Path, tenant: &str, out: Output) -> BoxResult<()> {
    let events = reader(dir, out.release)
        .await?
        .events(&tenant.parse()?)
        .await?;
    out.show(&events, || {
        events
            .iter()
            .map(|e| {
                format!(
                    "{:>3}  {}  {}  request {}",
                    e.sequence,
                    e.at.to_rfc3339(),
                    e.kind,
                    e.request_id
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// `audit UUID`.
pub(crate) async fn audit(dir: &Path, request: &str, out: Output) -> BoxResult<()> {
    let trail = reader(dir, out.release)
        .await?
        .audit_trail(request.parse()?)
        .await?;
    out.show(&trail, || {
        let mut text = format!(
            "request {} ({} of {}): {}",
            trail.request.request_id,
            trail.request.workflow,
            trail.request.tenant_id,
            trail.request.status.as_str()
        );
        for e in &trail.entries {
            text += &format!(
                "\n{:>3}  {:<20} {:<8} {:<22} {}",
                e.seq,
                e.step.as_deref().unwrap_or("-"),
                e.attempt.map_or("-".to_owned(), |a| a.to_string()),
                e.outcome,
                e.error.as_deref().unwrap_or("")
            );
        }
        text
    })
}

/// `recover`.
pub(crate) async fn recover(dir: &Path, out: Output) -> BoxResult<()> {
    let hybrid = crate::wiring::hybrid(dir, out.release, None).await?;
    // A catalog on PostgreSQL is shared with workers and other servers:
    // only runs whose lease is free or has lapsed are taken, so a live
    // process's run is never driven twice.
    let report = if hybrid.shared_catalog {
        hybrid.orchestrator.recover_leased().await?
    } else {
        hybrid.orchestrator.recover().await?
    };
    out.show(&report, || {
        let mut text = format!("recovered {} request(s)", report.recovered.len());
        for r in &report.recovered {
            text += &format!(
                "\n  {} {} {}: {}",
                r.request_id,
                r.workflow,
                r.tenant_id,
                r.status.as_str()
            );
        }
        for (request_id, why) in report.unrecovered() {
            text += &format!("\n  {request_id} left unfinished: {why}");
        }
        text
    })?;
    // A recovery that failed (the store, a journal) is worth a non-zero
    // exit; a workflow of another build is left on purpose.
    if !report.failed.is_empty() {
        return Err(format!(
            "{} request(s) could not be recovered; run `recover` again once the cause is fixed",
            report.failed.len()
        )
        .into());
    }
    Ok(())
}
