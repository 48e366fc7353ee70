//! [`FleetStore`] for [`InMemoryStore`]: the same contract under one lock.

use std::collections::HashMap;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;

use super::{
    FleetStore, NewRolloutUnit, OpenedRollout, Rollout, RolloutSettings, RolloutStatus,
    RolloutUnit, UnitResult, UnitStatus,
};
use crate::error::{Entity, Error, Result};
use crate::model::RolloutId;
use crate::store::InMemoryStore;

/// Roll-outs in start order, and their units with their leases.
#[derive(Debug, Default)]
pub(crate) struct FleetTables {
    rollouts: Vec<Rollout>,
    units: HashMap<RolloutId, Vec<(RolloutUnit, Option<Instant>)>>,
}

impl InMemoryStore {
    fn fleet_tables(&self) -> std::sync::MutexGuard<'_, FleetTables> {
        self.fleet.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn not_found(id: RolloutId) -> Error {
    Error::NotFound {
        kind: Entity::Rollout,
        id: id.to_string(),
    }
}

#[async_trait]
impl FleetStore for InMemoryStore {
    async fn open_rollout(
        &self,
        release: &str,
        settings: &RolloutSettings,
        started_by: &str,
        units: Vec<NewRolloutUnit>,
    ) -> Result<OpenedRollout> {
        let mut tables = self.fleet_tables();
        let open = tables
            .rollouts
            .iter()
            .find(|r| r.release == release && r.status != RolloutStatus::Completed)
            .cloned();
        if let Some(rollout) = open {
            let list = tables.units.entry(rollout.id).or_default();
            let fresh: Vec<NewRolloutUnit> = units
                .into_iter()
                .filter(|u| !list.iter().any(|(have, _)| have.key == u.key))
                .collect();
            let numbered = RolloutUnit::numbered(fresh, list.len() as u64, 0);
            let added = numbered.len();
            list.extend(numbered.into_iter().map(|u| (u, None)));
            return Ok(OpenedRollout {
                rollout,
                resumed: true,
                added,
            });
        }
        let rollout = Rollout::new(
            RolloutId::new(),
            release,
            settings.clone(),
            started_by,
            Utc::now(),
        );
        let numbered = RolloutUnit::numbered(units, 0, settings.canary);
        let added = numbered.len();
        tables.units.insert(
            rollout.id,
            numbered.into_iter().map(|u| (u, None)).collect(),
        );
        tables.rollouts.push(rollout.clone());
        Ok(OpenedRollout {
            rollout,
            resumed: false,
            added,
        })
    }

    async fn rollout(&self, id: RolloutId) -> Result<Option<Rollout>> {
        Ok(self
            .fleet_tables()
            .rollouts
            .iter()
            .find(|r| r.id == id)
            .cloned())
    }

    async fn latest_rollout(&self) -> Result<Option<Rollout>> {
        Ok(self.fleet_tables().rollouts.last().cloned())
    }

    async fn set_rollout_status(
        &self,
        id: RolloutId,
        status: RolloutStatus,
        reason: Option<String>,
    ) -> Result<()> {
        let mut tables = self.fleet_tables();
        let rollout = tables
            .rollouts
            .iter_mut()
            .find(|r| r.id == id)
            .ok_or_else(|| not_found(id))?;
        rollout.status = status;
        rollout.reason = reason;
        rollout.updated_at = Utc::now();
        Ok(())
    }

    async fn rollout_units(&self, id: RolloutId) -> Result<Vec<RolloutUnit>> {
        Ok(self
            .fleet_tables()
            .units
            .get(&id)
            .map(|units| units.iter().map(|(u, _)| u.clone()).collect())
            .unwrap_or_default())
    }

    async fn claim_units(
        &self,
        id: RolloutId,
        wave: u32,
        worker: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<RolloutUnit>> {
        let now = Instant::now();
        let mut tables = self.fleet_tables();
        let mut claimed = Vec::new();
        let running = tables
            .rollouts
            .iter()
            .any(|r| r.id == id && r.status == RolloutStatus::Running);
        if !running {
            return Ok(claimed);
        }
        for (unit, until) in tables.units.entry(id).or_default().iter_mut() {
            if claimed.len() >= limit {
                break;
            }
            let free = match unit.status {
                UnitStatus::Pending => true,
                UnitStatus::Running => until.is_none_or(|t| t <= now),
                _ => false,
            };
            if unit.wave == wave && free {
                unit.status = UnitStatus::Running;
                unit.attempts += 1;
                unit.worker = Some(worker.to_owned());
                *until = Some(now + lease);
                claimed.push(unit.clone());
            }
        }
        Ok(claimed)
    }

    async fn renew_units(
        &self,
        id: RolloutId,
        worker: &str,
        seqs: &[u64],
        lease: Duration,
    ) -> Result<()> {
        let now = Instant::now();
        let mut tables = self.fleet_tables();
        for (unit, until) in tables.units.entry(id).or_default().iter_mut() {
            let held = unit.status == UnitStatus::Running
                && unit.worker.as_deref() == Some(worker)
                && until.is_some_and(|t| t > now);
            if held && seqs.contains(&unit.seq) {
                *until = Some(now + lease);
            }
        }
        Ok(())
    }

    async fn finish_unit(
        &self,
        id: RolloutId,
        seq: u64,
        worker: &str,
        result: &UnitResult,
    ) -> Result<bool> {
        let mut tables = self.fleet_tables();
        let Some((unit, until)) = tables
            .units
            .entry(id)
            .or_default()
            .iter_mut()
            .find(|(u, _)| u.seq == seq)
        else {
            return Ok(false);
        };
        if unit.status != UnitStatus::Running || unit.worker.as_deref() != Some(worker) {
            return Ok(false);
        }
        unit.settle(result);
        *until = None;
        Ok(true)
    }

    async fn retry_failed_units(&self, id: RolloutId) -> Result<usize> {
        let mut tables = self.fleet_tables();
        let mut n = 0;
        for (unit, _) in tables.units.entry(id).or_default().iter_mut() {
            if unit.status == UnitStatus::Failed {
                unit.status = UnitStatus::Pending;
                n += 1;
            }
        }
        Ok(n)
    }
}
