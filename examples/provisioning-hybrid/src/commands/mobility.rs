//! `change-plan` and `move`: a live tenant changes plan or shard, its data
//! copied, verified and cut over by the move saga (or, with `--dry-run`,
//! what would happen).

use std::path::Path;

use provisioning_core::{DrainStatus, Entity, MovePreview, Receipt, RequestId};

use super::{BoxResult, Output, faults};

/// The arguments of `change-plan` and `move`.
pub(crate) struct MoveArgs {
    pub(crate) tenant: String,
    /// `change-plan --plan P`.
    pub(crate) plan: Option<String>,
    /// `move --shard S`.
    pub(crate) shard: Option<String>,
    pub(crate) request_id: Option<String>,
    pub(crate) inject_failure: Option<String>,
    pub(crate) dry_run: bool,
}

/// Runs the move (or its dry run); a move that ends Failed is an error exit.
pub(crate) async fn change(dir: &Path, args: MoveArgs, out: Output) -> BoxResult<()> {
    let tenant = args.tenant.parse()?;
    let plan = args.plan.as_deref().map(str::parse).transpose()?;
    let shard = args.shard.as_deref().map(str::parse).transpose()?;
    let request_id = match &args.request_id {
        Some(id) => id.parse()?,
        None => RequestId::new(),
    };
    let orchestrator =
        crate::wiring::hybrid(dir, out.release, faults(args.inject_failure.as_deref())?)
            .await?
            .orchestrator;
    if args.dry_run {
        let plan = orchestrator.preview_move(&tenant, plan, shard).await?;
        return out.show(&plan, || describe_plan(&plan));
    }
    let receipt = match (plan, shard) {
        (Some(plan), _) => orchestrator.change_plan(&tenant, plan, request_id).await?,
        (None, Some(shard)) => orchestrator.move_tenant(&tenant, shard, request_id).await?,
        (None, None) => return Err("a move needs --plan or --shard".into()),
    };
    show_receipt(&receipt, out)
}

fn show_receipt(receipt: &Receipt, out: Output) -> BoxResult<()> {
    out.show(receipt, || {
        format!(
            "request {}: {} of tenant {} {}",
            receipt.request_id,
            receipt.workflow,
            receipt.tenant_id,
            receipt.status.as_str()
        )
    })?;
    if let Some(failure) = &receipt.failure {
        // Past cut-over nothing is undone: the tenant lives on its target.
        let outcome = if failure.step == provisioning_core::orchestrator::move_steps::RELEASE {
            "it moved; its old copy is left behind: remove it by hand"
        } else {
            "it stays where it was"
        };
        return Err(format!(
            "moving tenant {} failed at step {}: {} ({outcome})",
            receipt.tenant_id, failure.step, failure.reason
        )
        .into());
    }
    Ok(())
}

fn describe_plan(plan: &MovePreview) -> String {
    let side = |p: &provisioning_core::Placement| {
        format!(
            "{} on shard {} in {} ({})",
            p.isolation,
            p.shard,
            p.region,
            p.database.as_deref().unwrap_or("location not recorded")
        )
    };
    let mut text = format!("tenant {}\n  from: {}\n", plan.tenant_id, side(&plan.from));
    match &plan.to {
        Some(to) => {
            text += &format!("  to:   {} (plan {})\n", side(to), to.plan);
            text += &format!("  steps: {}\n", plan.steps.join(" -> "));
            let rows: u64 = plan.tables.iter().map(|t| t.source_rows).sum();
            text += &format!("  rows to copy: {rows}\n");
            for table in &plan.tables {
                text += &format!("    {:<16} {:>8}\n", table.table, table.source_rows);
            }
        }
        None => text += "  stays where it is: only its plan changes\n",
    }
    text.trim_end().to_owned()
}

/// `drain --shard S [--concurrency N]`: marks the shard draining (kept in
/// the data directory, so new tenants go elsewhere from now on) and moves
/// every active or suspended tenant on it to another shard of its region and pool.
/// Failures stay where they were and are reported; running it again moves
/// what is left. Exits non-zero while a tenant could not leave.
pub(crate) async fn drain(
    dir: &Path,
    shard: &str,
    concurrency: usize,
    inject_failure: Option<&str>,
    out: Output,
) -> BoxResult<()> {
    let shard: provisioning_core::ShardId = shard.parse()?;
    if crate::config::load()?.directory.get(&shard).is_none() {
        return Err(provisioning_core::Error::NotFound {
            kind: Entity::Shard,
            id: shard.to_string(),
        }
        .into());
    }
    if concurrency == 0 {
        return Err(provisioning_core::Error::invalid("concurrency", "must be at least 1").into());
    }
    let faults = faults(inject_failure)?;
    std::fs::create_dir_all(dir)?;
    crate::config::set_status(dir, &shard, provisioning_sharding::ShardStatus::Draining)?;
    // A server running on this directory applies the status within its
    // refresh; tenants it places on the shard meanwhile must be listed too.
    tokio::time::sleep(crate::config::STATUS_REFRESH + std::time::Duration::from_millis(200)).await;
    let orchestrator = crate::wiring::hybrid(dir, out.release, faults)
        .await?
        .orchestrator;
    let display = std::sync::Mutex::new(super::fleet::Progress::new(out.json, "tenants"));
    let report = orchestrator
        .drain_shard(&shard, concurrency, |outcome, total| {
            let line = match outcome.outcome {
                DrainStatus::Moved => format!("{}: moved", outcome.tenant_id),
                DrainStatus::Failed => format!(
                    "{}: FAILED, stays on {shard} ({})",
                    outcome.tenant_id,
                    outcome.reason.as_deref().unwrap_or("no reason")
                ),
                DrainStatus::Skipped => format!(
                    "{}: skipped ({})",
                    outcome.tenant_id,
                    outcome.reason.as_deref().unwrap_or("not active")
                ),
                other => format!("{}: {other:?}", outcome.tenant_id),
            };
            display
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .unit(total, None, line);
        })
        .await?;
    display
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .finish();
    let (moved, failed, skipped) = (
        report.count(DrainStatus::Moved),
        report.count(DrainStatus::Failed),
        report.count(DrainStatus::Skipped),
    );
    out.show(&report, || {
        format!("shard {shard} draining: {moved} moved, {failed} failed, {skipped} skipped")
    })?;
    if failed > 0 {
        return Err(format!(
            "{failed} tenant(s) could not leave shard {shard}; run drain again to retry"
        )
        .into());
    }
    Ok(())
}
