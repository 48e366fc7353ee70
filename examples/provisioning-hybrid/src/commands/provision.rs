//! (5) `provision service|user|resource`: the generic workflows from the CLI.
//! Waits for the run; a run that failed (and was compensated) is an error exit.

use std::path::Path;

use provisioning_core::{RequestId, TenantId};

use super::{BoxResult, Output, faults};
use crate::workflows;

/// What `provision` runs, and for which tenant.
pub(crate) struct ProvisionArgs {
    /// `service`, `user` or `resource`.
    pub(crate) workflow: &'static str,
    pub(crate) tenant: String,
    /// The workflow's input, as the HTTP API takes it.
    pub(crate) input: serde_json::Value,
    pub(crate) request_id: Option<String>,
    pub(crate) inject_failure: Option<String>,
}

/// `provision service --tenant ID --service NAME --tier TIER`,
/// `provision user --tenant ID --email EMAIL --role ROLE` and
/// `provision resource --tenant ID --service NAME --type TYPE [--spec K=V]...`.
pub(crate) async fn provision(dir: &Path, args: ProvisionArgs, out: Output) -> BoxResult<()> {
    let tenant: TenantId = args.tenant.parse()?;
    let request_id = match &args.request_id {
        Some(id) => id.parse()?,
        None => RequestId::new(),
    };
    let faults = faults(args.inject_failure.as_deref())?;
    let provisioner = crate::wiring::hybrid(dir, out.release, faults)
        .await?
        .provisioner;
    let resource = match args.workflow {
        workflows::RESOURCE => Some(workflows::ResourceInput::parse(args.input.clone())?),
        _ => None,
    };
    let receipt = provisioner
        .provision(args.workflow, &tenant, request_id, args.input)
        .await?;
    out.show(&receipt, || {
        let mut line = format!(
            "request {}: {} for tenant {} {}",
            receipt.request_id,
            receipt.workflow,
            receipt.tenant_id,
            receipt.status.as_str()
        );
        if let (Some(input), None) = (&resource, &receipt.failure) {
            let id = workflows::resource_id(input, receipt.request_id);
            line.push_str(&format!(": resource {id}"));
            if input.kind != workflows::ResourceType::Compute {
                let prefix = workflows::resource_prefix(&tenant, &id);
                line.push_str(&format!(" at {prefix}/ in the tenant's storage"));
            }
        }
        line
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
