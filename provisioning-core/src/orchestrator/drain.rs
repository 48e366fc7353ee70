//! Draining a shard: every tenant on it moved to another shard of its
//! region and pool, a bounded number at a time, each on its own.

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::{RequestId, ShardId, TenantId, TenantState};
use crate::orchestrator::moving::{MoveReason, movable};
use crate::orchestrator::{ProvisioningOrchestrator, Receipt};
use crate::store::{RequestStatus, TenantFilter};

/// What became of one tenant of a drained shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DrainOutcome {
    /// The tenant.
    pub tenant_id: TenantId,
    /// `moved`, `failed` or `skipped`.
    pub outcome: DrainStatus,
    /// The move's receipt, when one ran.
    pub receipt: Option<Receipt>,
    /// Why it failed or was skipped.
    pub reason: Option<String>,
}

/// One tenant's outcome in a drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DrainStatus {
    /// Its data is on another shard now.
    Moved,
    /// Its move was refused or rolled back; it is where it was.
    Failed,
    /// Not moved: neither Active nor Suspended (being provisioned, moved,
    /// deleted).
    Skipped,
}

/// What [`ProvisioningOrchestrator::drain_shard`] did, tenant by tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DrainReport {
    /// The shard drained.
    pub shard: ShardId,
    /// Every tenant found on it, in the order their moves ended.
    pub tenants: Vec<DrainOutcome>,
}

impl DrainReport {
    /// How many tenants ended with `status`.
    pub fn count(&self, status: DrainStatus) -> usize {
        self.tenants.iter().filter(|t| t.outcome == status).count()
    }

    /// Whether every tenant left the shard.
    pub fn is_empty_now(&self) -> bool {
        self.tenants.iter().all(|t| t.outcome == DrainStatus::Moved)
    }
}

impl ProvisioningOrchestrator {
    /// Moves every Active and Suspended tenant on `shard` to another shard of its region
    /// and pool that the resolver picks, `concurrency` at a time (at least
    /// one), calling `progress` with each outcome as it ends and the number
    /// of tenants found. Mark the shard draining in the
    /// shard directory first, so that the resolver (which skips draining
    /// shards) neither picks it as a target nor places new tenants there.
    ///
    /// Suspended tenants move too (the shard must empty) and stay
    /// suspended. A tenant whose move fails stays where it was and is
    /// reported; the others go on. Tenants in the middle of something else
    /// (being provisioned, moved or deleted) are reported as skipped.
    /// Running it again moves what is still there, so a drain stopped
    /// half-way is resumed by repeating it.
    ///
    /// # Errors
    /// Store failures while listing tenants; each move's own errors are in
    /// its outcome.
    pub async fn drain_shard(
        &self,
        shard: &ShardId,
        concurrency: usize,
        progress: impl Fn(&DrainOutcome, usize) + Send + Sync,
    ) -> Result<DrainReport> {
        let mut on_shard = Vec::new();
        let mut filter = TenantFilter::all();
        filter.limit = 1000;
        loop {
            let page = self.list_tenants(&filter).await?;
            let Some(last) = page.last() else { break };
            filter.after = Some(last.tenant_id.clone());
            on_shard.extend(page.into_iter().filter(|t| {
                t.placement.as_ref().is_some_and(|p| p.shard == *shard)
                    && !matches!(t.state, TenantState::Deleted | TenantState::Failed)
            }));
        }
        let total = on_shard.len();
        let mut tenants = Vec::with_capacity(total);
        let mut moves = futures_util::stream::iter(on_shard)
            .map(|record| async move {
                if !movable(record.state, MoveReason::Drain) {
                    return DrainOutcome {
                        tenant_id: record.tenant_id,
                        outcome: DrainStatus::Skipped,
                        reason: Some(format!(
                            "{}: only an active or suspended tenant can move",
                            record.state
                        )),
                        receipt: None,
                    };
                }
                let tenant_id = record.tenant_id;
                match self.move_off_shard(&tenant_id, RequestId::new()).await {
                    Ok(receipt) if receipt.status == RequestStatus::Succeeded => DrainOutcome {
                        tenant_id,
                        outcome: DrainStatus::Moved,
                        receipt: Some(receipt),
                        reason: None,
                    },
                    Ok(receipt) => DrainOutcome {
                        tenant_id,
                        outcome: DrainStatus::Failed,
                        reason: receipt
                            .failure
                            .as_ref()
                            .map(|f| format!("step {}: {}", f.step, f.reason)),
                        receipt: Some(receipt),
                    },
                    Err(error) => DrainOutcome {
                        tenant_id,
                        outcome: DrainStatus::Failed,
                        receipt: None,
                        reason: Some(error.to_string()),
                    },
                }
            })
            .buffer_unordered(concurrency.max(1));
        while let Some(outcome) = moves.next().await {
            progress(&outcome, total);
            tenants.push(outcome);
        }
        Ok(DrainReport {
            shard: shard.clone(),
            tenants,
        })
    }
}
