//! (5) `provision service|user`: the generic workflows from the CLI. Waits
//! for the run; a run that failed (and was compensated) is an error exit.

use std::path::Path;

use provisioning_core::{RequestId, TenantId};

use super::{BoxResult, Output, faults};
use crate::workflows;

/// What `provision` runs, and for which tenant.
pub(crate) struct ProvisionArgs {
    /// `service` or `user`.
    pub(crate) workflow: &'static str,
    pub(crate) tenant: String,
    /// The workflow's input, as the HTTP API takes it.
    pub(crate) input: serde_json::Value,
    pub(crate) request_id: Option<String>,
    pub(crate) inject_failure: Option<String>,
}

/// `provision service --tenant ID --service NAME --tier TIER` and
/// `provision user --tenant ID --email EMAIL --role ROLE`.
pub(crate) async fn provision(dir: &Path, args: ProvisionArgs, out: Output) -> BoxResult<()> {
    let tenant: TenantId = args.tenant.parse()?;
    let request_id = match &args.request_id {
        Some(id) => id.parse()?,
        None => RequestId::new(),
    };
    let faults = faults(args.inject_failure.as_deref())?;
    let orchestrator = crate::wiring::hybrid(dir, out.release, faults)
        .await?
        .orchestrator;
    let receipt = workflows::provision(
        &orchestrator,
        args.workflow,
        &tenant,
        request_id,
        args.input,
    )
    .await?;
    out.show(&receipt, || {
        format!(
            "request {}: {} for tenant {} {}",
            receipt.request_id,
            receipt.workflow,
            receipt.tenant_id,
            receipt.status.as_str()
        )
    })?;
    match &receipt.failure {
        Some(failure) => Err(format!(
            "{} for tenant {} failed at step {} and was rolled back: {}",
            receipt.workflow, receipt.tenant_id, failure.step, failure.reason
        )
        .into()),
        None => Ok(()),
    }
}
