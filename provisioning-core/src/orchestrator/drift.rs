//! The drift check over the fleet: each database compared with its release
//! by the schema manager, and the mechanical repairs, each recorded in the
//! tenants' event logs.

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::events::{EventKind, NewEvent};
use crate::fleet::{Drift, NewRolloutUnit, Repair, UnitStatus};
use crate::model::{Isolation, RequestId, TenantId};
use crate::orchestrator::ProvisioningOrchestrator;

/// Which databases [`ProvisioningOrchestrator::check_drift`] checks, and
/// whether it repairs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DriftOptions {
    /// Only this tenant's database (default: every Active and Suspended
    /// tenant's).
    pub tenant: Option<TenantId>,
    /// Apply the mechanical repairs (default false: read only).
    pub repair: bool,
    /// Databases checked at once (default 4; 0 is taken as 1).
    pub concurrency: usize,
}

impl Default for DriftOptions {
    fn default() -> Self {
        DriftOptions {
            tenant: None,
            repair: false,
            concurrency: 4,
        }
    }
}

impl DriftOptions {
    /// Every database, read only, 4 at once.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only `tenant`'s database.
    #[must_use]
    pub fn tenant(mut self, tenant: TenantId) -> Self {
        self.tenant = Some(tenant);
        self
    }

    /// Repairs what is mechanical.
    #[must_use]
    pub fn repair(mut self, repair: bool) -> Self {
        self.repair = repair;
        self
    }

    /// Checks `concurrency` databases at once.
    #[must_use]
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }
}

/// One database's drift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UnitDrift {
    /// The database: the tenant id when dedicated, `shared:{region}/{shard}`.
    pub database: String,
    /// The tenants whose data it holds (checked for their seeds).
    pub tenants: Vec<TenantId>,
    /// Shared or dedicated.
    pub isolation: Isolation,
    /// The differences left (after the repairs, with `repair`).
    pub drifts: Vec<Drift>,
    /// The repairs applied.
    pub repaired: Vec<Repair>,
    /// Why it could not be checked (or repaired).
    pub error: Option<String>,
}

impl UnitDrift {
    /// Whether it was checked and matches its release.
    pub fn is_clean(&self) -> bool {
        self.drifts.is_empty() && self.error.is_none()
    }
}

/// What [`ProvisioningOrchestrator::check_drift`] found, database by database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DriftReport {
    /// The release compared with.
    pub release: Option<String>,
    /// Every database checked, by name.
    pub units: Vec<UnitDrift>,
}

impl DriftReport {
    /// Whether every database matches its release.
    pub fn is_clean(&self) -> bool {
        self.units.iter().all(UnitDrift::is_clean)
    }

    /// The databases that do not (or could not be checked).
    pub fn drifted(&self) -> impl Iterator<Item = &UnitDrift> {
        self.units.iter().filter(|u| !u.is_clean())
    }
}

impl ProvisioningOrchestrator {
    /// Compares every Active and Suspended tenant's database (or one
    /// tenant's) with the release the schema manager migrates to: tables,
    /// columns, indexes, the migration ledger and the tenants' seeds, from
    /// catalogs, never data. With `repair`, applies what is mechanical (a
    /// migration that never ran, a ledger row whose change is there, missing
    /// seeds), records each in the tenants' events (`TenantSchemaRepaired`),
    /// checks again and reports what is left: what needs a person is never
    /// changed.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown tenant, [`Error::InvalidInput`] on
    /// `tenant` for one without a database to check; store failures. A
    /// database that cannot be checked is reported in its unit.
    pub async fn check_drift(&self, options: DriftOptions) -> Result<DriftReport> {
        let mut units: Vec<NewRolloutUnit> = self
            .rollout_units()
            .await?
            .into_iter()
            .filter(|u| u.status == UnitStatus::Pending)
            .collect();
        if let Some(tenant) = &options.tenant {
            let record = self.tenant(tenant).await?;
            units.retain(|u| u.tenants.contains(tenant));
            if units.is_empty() {
                return Err(Error::invalid(
                    "tenant",
                    format!(
                        "{tenant} is {}: only active and suspended tenants have a database to check",
                        record.state
                    ),
                ));
            }
            for unit in &mut units {
                unit.tenants = vec![tenant.clone()];
            }
        }
        let mut checked: Vec<UnitDrift> = futures_util::stream::iter(units)
            .map(|unit| self.drift_of(unit, options.repair))
            .buffer_unordered(options.concurrency.max(1))
            .collect()
            .await;
        checked.sort_by(|a, b| a.database.cmp(&b.database));
        Ok(DriftReport {
            release: self.inner.parts.schema.release(),
            units: checked,
        })
    }

    async fn drift_of(&self, unit: NewRolloutUnit, repair: bool) -> UnitDrift {
        let schema = &self.inner.parts.schema;
        let mut report = UnitDrift {
            database: unit.key.clone(),
            tenants: unit.tenants.clone(),
            isolation: unit.placement.isolation,
            drifts: Vec::new(),
            repaired: Vec::new(),
            error: None,
        };
        let drifts = match schema.check_drift(&unit.placement, &unit.tenants).await {
            Ok(drifts) => drifts,
            Err(e) => {
                report.error = Some(e.report());
                return report;
            }
        };
        let repairs: Vec<Repair> = drifts.iter().filter_map(|d| d.repair.clone()).collect();
        if !repair || repairs.is_empty() {
            report.drifts = drifts;
            return report;
        }
        match schema.repair_drift(&unit.placement, &repairs).await {
            Ok(applied) => report.repaired = applied,
            Err(e) => report.error = Some(format!("repairing: {}", e.report())),
        }
        if !report.repaired.is_empty()
            && let Err(e) = self.record_repairs(&unit, &report.repaired).await
        {
            report.error = Some(format!("recording the repairs: {}", e.report()));
        }
        match schema.check_drift(&unit.placement, &unit.tenants).await {
            Ok(left) => report.drifts = left,
            Err(e) => report.error = Some(e.report()),
        }
        report
    }

    /// Appends `TenantSchemaRepaired` to the events of each tenant a repair
    /// touched: all of the database's for a migration, the one for a seed.
    async fn record_repairs(&self, unit: &NewRolloutUnit, repairs: &[Repair]) -> Result<()> {
        let request_id = RequestId::new();
        for tenant in &unit.tenants {
            let theirs: Vec<&Repair> = repairs
                .iter()
                .filter(|r| match r {
                    Repair::RunSeeds { tenant: t } => t == tenant,
                    _ => true,
                })
                .collect();
            if theirs.is_empty() {
                continue;
            }
            let data = serde_json::json!({
                "database": unit.key,
                "repairs": theirs,
                "descriptions": theirs.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            });
            // A concurrent update of the tenant moves its version: read again.
            let mut attempts = 0;
            loop {
                let record = self.tenant(tenant).await?;
                let version = record.version;
                let event =
                    NewEvent::new(EventKind::TenantSchemaRepaired, request_id, data.clone());
                match self
                    .store()
                    .update_tenant(record, version, vec![event])
                    .await
                {
                    Ok(_) => break,
                    Err(Error::Conflict { .. }) if attempts < 3 => attempts += 1,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}
