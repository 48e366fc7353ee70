//! [`FleetStore`] on PostgreSQL: roll-outs and their units, leased as
//! requests are.
//!
//! Every write but one is a single statement in autocommit, as in the rest of
//! the store. [`open_rollout`](FleetStore::open_rollout) is a short
//! transaction: the partial unique index on unfinished roll-outs makes a
//! concurrent opener of the same release wait for the first to commit and
//! then continue its roll-out, and the roll-out's row lock makes openers add
//! units one after another, so a unit is never added twice and positions
//! never collide.

use provisioning_core::Entity;
use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use provisioning_core::{
    Error, FleetStore, NewRolloutUnit, OpenedRollout, Placement, Result, Rollout, RolloutId,
    RolloutSettings, RolloutStatus, RolloutUnit, TenantId, UnitResult,
};
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::{COMPONENT, PostgresStore, err, text};
use crate::store::codec::{from_json, to_json};

/// How many times [`open_rollout`](FleetStore::open_rollout) looks again for
/// a roll-out that was completed between its insert and its read.
const OPEN_ATTEMPTS: usize = 5;

/// The parts of a unit that never change, kept as its `unit` JSON.
#[derive(Serialize)]
struct UnitBody<'a> {
    placement: &'a Placement,
    tenants: &'a [TenantId],
}

#[async_trait]
impl FleetStore for PostgresStore {
    async fn open_rollout(
        &self,
        release: &str,
        settings: &RolloutSettings,
        started_by: &str,
        units: Vec<NewRolloutUnit>,
    ) -> Result<OpenedRollout> {
        let units = distinct(units);
        let settings_json = to_json(settings)?;
        let mut tx = self.pool.begin().await.map_err(err("opening a roll-out"))?;
        for _ in 0..OPEN_ATTEMPTS {
            let created = sqlx::query_scalar::<_, String>(self.sql.fleet.insert_rollout.clone())
                .bind(RolloutId::new().to_string())
                .bind(release)
                .bind(&settings_json)
                .bind(started_by)
                .fetch_optional(&mut *tx)
                .await
                .map_err(err("starting a roll-out"))?;
            if let Some(json) = created {
                let rollout: Rollout = from_json(&json)?;
                let numbered = RolloutUnit::numbered(units, 0, settings.canary);
                let added = self.insert_units(&mut tx, rollout.id, &numbered).await?;
                tx.commit().await.map_err(err("opening a roll-out"))?;
                return Ok(OpenedRollout {
                    rollout,
                    resumed: false,
                    added,
                });
            }
            // Another roll-out of the release is unfinished (the insert waited
            // for its transaction if it was being created): continue it.
            let open = sqlx::query_scalar::<_, String>(self.sql.fleet.lock_rollout.clone())
                .bind(release)
                .fetch_optional(&mut *tx)
                .await
                .map_err(err("reading a roll-out"))?;
            let Some(json) = open else {
                // Completed in the meantime: start a new one.
                continue;
            };
            let rollout: Rollout = from_json(&json)?;
            let keys: Vec<&str> = units.iter().map(|u| u.key.as_str()).collect();
            let row = sqlx::query(self.sql.fleet.fresh_units.clone())
                .bind(rollout.id.to_string())
                .bind(keys)
                .fetch_one(&mut *tx)
                .await
                .map_err(err("reading a roll-out's units"))?;
            let next_seq: i64 = row.try_get("next_seq").map_err(err("decoding a row"))?;
            let fresh: Vec<String> = row.try_get("fresh").map_err(err("decoding a row"))?;
            let fresh: HashSet<String> = fresh.into_iter().collect();
            let fresh: Vec<NewRolloutUnit> = units
                .into_iter()
                .filter(|u| fresh.contains(&u.key))
                .collect();
            let first_seq = u64::try_from(next_seq).map_err(|_| corrupt("a negative seq"))?;
            let numbered = RolloutUnit::numbered(fresh, first_seq, 0);
            let added = self.insert_units(&mut tx, rollout.id, &numbered).await?;
            tx.commit().await.map_err(err("opening a roll-out"))?;
            return Ok(OpenedRollout {
                rollout,
                resumed: true,
                added,
            });
        }
        // Only a release completed and reopened over and over gets here; a
        // retry may see it settled.
        Err(Error::Backend {
            component: COMPONENT,
            message: format!("the roll-out of release {release} kept changing while opening it"),
            transient: true,
            source: None,
        })
    }

    async fn rollout(&self, id: RolloutId) -> Result<Option<Rollout>> {
        let row = sqlx::query(self.sql.fleet.rollout.clone())
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(err("reading a roll-out"))?;
        row.map(|r| from_json(text(&r, "rollout")?)).transpose()
    }

    async fn latest_rollout(&self) -> Result<Option<Rollout>> {
        let row = sqlx::query(self.sql.fleet.latest_rollout.clone())
            .fetch_optional(&self.pool)
            .await
            .map_err(err("reading the latest roll-out"))?;
        row.map(|r| from_json(text(&r, "rollout")?)).transpose()
    }

    async fn set_rollout_status(
        &self,
        id: RolloutId,
        status: RolloutStatus,
        reason: Option<String>,
    ) -> Result<()> {
        let updated = sqlx::query(self.sql.fleet.set_rollout_status.clone())
            .bind(id.to_string())
            .bind(status.as_str())
            .bind(reason)
            .execute(&self.pool)
            .await
            .map_err(|e| {
                // Reopening a completed roll-out while its release has
                // another unfinished one.
                if crate::error::violates(&e, "fleet_rollouts_unfinished") {
                    Error::Conflict {
                        kind: Entity::Rollout,
                        id: id.to_string(),
                        reason: "its release has another unfinished roll-out".to_owned(),
                    }
                } else {
                    err("setting a roll-out's status")(e)
                }
            })?;
        if updated.rows_affected() == 0 {
            return Err(Error::NotFound {
                kind: Entity::Rollout,
                id: id.to_string(),
            });
        }
        Ok(())
    }

    async fn rollout_units(&self, id: RolloutId) -> Result<Vec<RolloutUnit>> {
        let rows = sqlx::query(self.sql.fleet.rollout_units.clone())
            .bind(id.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(err("reading a roll-out's units"))?;
        decode_units(&rows)
    }

    async fn claim_units(
        &self,
        id: RolloutId,
        wave: u32,
        worker: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<RolloutUnit>> {
        let rows = sqlx::query(self.sql.fleet.claim_units.clone())
            .bind(id.to_string())
            .bind(wave_number(wave)?)
            .bind(worker)
            .bind(millis(lease))
            .bind(super::limit(limit))
            .fetch_all(&self.leases)
            .await
            .map_err(err("claiming roll-out units"))?;
        let mut claimed = decode_units(&rows)?;
        // RETURNING gives no order; units are handed out in order.
        claimed.sort_by_key(|u| u.seq);
        Ok(claimed)
    }

    async fn renew_units(
        &self,
        id: RolloutId,
        worker: &str,
        seqs: &[u64],
        lease: Duration,
    ) -> Result<()> {
        let seqs = seqs.iter().map(|&n| seq(n)).collect::<Result<Vec<_>>>()?;
        sqlx::query(self.sql.fleet.renew_units.clone())
            .bind(id.to_string())
            .bind(worker)
            .bind(seqs)
            .bind(millis(lease))
            .execute(&self.leases)
            .await
            .map_err(err("renewing roll-out units"))?;
        Ok(())
    }

    async fn finish_unit(
        &self,
        id: RolloutId,
        seq: u64,
        worker: &str,
        result: &UnitResult,
    ) -> Result<bool> {
        // One statement settles one unit or many.
        let kept = self
            .finish_units(id, worker, &[(seq, result.clone())])
            .await?;
        Ok(kept.first().copied().unwrap_or(false))
    }

    async fn finish_units(
        &self,
        id: RolloutId,
        worker: &str,
        outcomes: &[(u64, UnitResult)],
    ) -> Result<Vec<bool>> {
        let mut seqs = Vec::with_capacity(outcomes.len());
        let mut statuses = Vec::with_capacity(outcomes.len());
        let mut applied = Vec::with_capacity(outcomes.len());
        let mut seeded = Vec::with_capacity(outcomes.len());
        let mut notes = Vec::with_capacity(outcomes.len());
        for (n, result) in outcomes {
            let migrated = result.migrated();
            seqs.push(seq(*n)?);
            statuses.push(result.status().as_str());
            applied.push(migrated.map(|(a, _)| to_json(&a)).transpose()?);
            seeded.push(migrated.map(|(_, s)| to_json(&s)).transpose()?);
            notes.push(result.note());
        }
        let kept: Vec<i64> = sqlx::query_scalar(self.sql.fleet.finish_units.clone())
            .bind(id.to_string())
            .bind(worker)
            .bind(&seqs)
            .bind(statuses)
            .bind(applied)
            .bind(seeded)
            .bind(notes)
            .fetch_all(&self.leases)
            .await
            .map_err(err("finishing roll-out units"))?;
        Ok(seqs.iter().map(|s| kept.contains(s)).collect())
    }

    async fn retry_failed_units(&self, id: RolloutId) -> Result<usize> {
        let updated = sqlx::query(self.sql.fleet.retry_failed_units.clone())
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(err("retrying failed roll-out units"))?;
        Ok(usize::try_from(updated.rows_affected()).unwrap_or(usize::MAX))
    }
}

impl PostgresStore {
    /// Adds `units` to roll-out `id` in one statement; returns how many were
    /// written (a key already there is left alone).
    async fn insert_units(
        &self,
        conn: &mut PgConnection,
        id: RolloutId,
        units: &[RolloutUnit],
    ) -> Result<usize> {
        if units.is_empty() {
            return Ok(0);
        }
        let mut seqs = Vec::with_capacity(units.len());
        let mut keys = Vec::with_capacity(units.len());
        let mut waves = Vec::with_capacity(units.len());
        let mut statuses = Vec::with_capacity(units.len());
        let mut bodies = Vec::with_capacity(units.len());
        let mut notes = Vec::with_capacity(units.len());
        for unit in units {
            seqs.push(seq(unit.seq)?);
            keys.push(unit.key.as_str());
            waves.push(wave_number(unit.wave)?);
            statuses.push(unit.status.as_str());
            bodies.push(to_json(&UnitBody {
                placement: &unit.placement,
                tenants: &unit.tenants,
            })?);
            notes.push(unit.note.as_deref());
        }
        let inserted = sqlx::query(self.sql.fleet.insert_units.clone())
            .bind(id.to_string())
            .bind(seqs)
            .bind(keys)
            .bind(waves)
            .bind(statuses)
            .bind(bodies)
            .bind(notes)
            .execute(conn)
            .await
            .map_err(err("adding roll-out units"))?;
        Ok(usize::try_from(inserted.rows_affected()).unwrap_or(usize::MAX))
    }
}

/// `units` with each key once (its first unit), as the unique key of a
/// roll-out's units requires.
fn distinct(units: Vec<NewRolloutUnit>) -> Vec<NewRolloutUnit> {
    let mut seen = HashSet::with_capacity(units.len());
    units
        .into_iter()
        .filter(|u| seen.insert(u.key.clone()))
        .collect()
}

/// Decodes the units of `rows` (the `unit` column).
fn decode_units(rows: &[PgRow]) -> Result<Vec<RolloutUnit>> {
    rows.iter().map(|r| from_json(text(r, "unit")?)).collect()
}

/// A unit's position as PostgreSQL's `bigint`.
fn seq(n: u64) -> Result<i64> {
    i64::try_from(n).map_err(|_| Error::invalid("seq", format!("{n} exceeds i64::MAX")))
}

/// A wave as PostgreSQL's `integer`.
fn wave_number(wave: u32) -> Result<i32> {
    i32::try_from(wave).map_err(|_| Error::invalid("wave", format!("{wave} exceeds i32::MAX")))
}

/// A lease in milliseconds (saturating: a lease past `i64::MAX` ms is forever).
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A stored value no write of the store makes.
fn corrupt(what: &str) -> Error {
    Error::Backend {
        component: COMPONENT,
        message: format!("the fleet tables hold {what}"),
        transient: false,
        source: None,
    }
}
