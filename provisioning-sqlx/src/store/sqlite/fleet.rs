//! [`FleetStore`] on SQLite: roll-outs and their units in the catalog file.
//!
//! Every write takes the store's writer lock and one `BEGIN IMMEDIATE`
//! transaction, so that a claim's read and write are one step for every
//! process on the file: SQLite runs one writer at a time, and the immediate
//! lock is taken before the read, never upgraded after it.

use provisioning_core::Entity;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use provisioning_core::{
    Error, FleetStore, MigrationInfo, NewRolloutUnit, OpenedRollout, Placement, Result, Rollout,
    RolloutId, RolloutSettings, RolloutStatus, RolloutUnit, SeedInfo, TenantId, UnitResult,
    UnitStatus,
};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{SqliteStore, err, millis};
use crate::store::codec::{from_json, timestamp, to_json};

// Macros, not constants, so that `concat!` makes each query a literal.
macro_rules! rollout_columns {
    () => {
        "rollout_id, release, status, reason, settings, started_by, started_at, updated_at"
    };
}
macro_rules! unit_columns {
    () => {
        "seq, key, wave, status, attempts, lease_owner, unit, result, note, finished_at"
    };
}

/// The parts of a unit that do not change.
#[derive(Serialize, Deserialize)]
struct Fixed {
    placement: Placement,
    tenants: Vec<TenantId>,
}

/// What a migrated unit got.
#[derive(Serialize, Deserialize, Default)]
struct Got {
    applied: Vec<MigrationInfo>,
    seeded: Vec<SeedInfo>,
}

fn parse_time(text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            Error::backend(
                super::COMPONENT,
                format!("reading a roll-out time {text:?}"),
                false,
                e,
            )
        })
}

fn corrupt(what: &str, value: &str) -> Error {
    Error::backend(
        super::COMPONENT,
        format!("unknown {what} {value:?} in the fleet tables"),
        false,
        std::io::Error::other("corrupt fleet record"),
    )
}

fn rollout_from(row: &SqliteRow) -> Result<Rollout> {
    let status: String = row.get("status");
    let id: String = row.get("rollout_id");
    Ok(Rollout {
        id: id.parse()?,
        release: row.get("release"),
        status: RolloutStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        reason: row.get("reason"),
        settings: from_json::<RolloutSettings>(row.get("settings"))?,
        started_by: row.get("started_by"),
        started_at: parse_time(row.get("started_at"))?,
        updated_at: parse_time(row.get("updated_at"))?,
    })
}

fn unit_from(row: &SqliteRow) -> Result<RolloutUnit> {
    let status: String = row.get("status");
    let fixed: Fixed = from_json(row.get("unit"))?;
    let got: Got = match row.get::<Option<String>, _>("result") {
        Some(text) => from_json(&text)?,
        None => Got::default(),
    };
    Ok(RolloutUnit {
        seq: row.get::<i64, _>("seq") as u64,
        key: row.get("key"),
        wave: row.get::<i64, _>("wave") as u32,
        placement: fixed.placement,
        tenants: fixed.tenants,
        status: UnitStatus::parse(&status).ok_or_else(|| corrupt("unit status", &status))?,
        applied: got.applied,
        seeded: got.seeded,
        note: row.get("note"),
        attempts: row.get::<i64, _>("attempts") as u32,
        worker: row.get("lease_owner"),
        finished_at: row
            .get::<Option<String>, _>("finished_at")
            .map(|t| parse_time(&t))
            .transpose()?,
    })
}

/// `units` as the JSON array the insert reads with `json_each`.
fn units_json(units: Vec<RolloutUnit>) -> Result<String> {
    let rows = units
        .into_iter()
        .map(|u| {
            Ok(serde_json::json!({
                "seq": u.seq,
                "key": u.key,
                "wave": u.wave,
                "status": u.status.as_str(),
                "note": u.note,
                "unit": to_json(&Fixed { placement: u.placement, tenants: u.tenants })?,
            }))
        })
        .collect::<Result<Vec<_>>>()?;
    to_json(&rows)
}

const INSERT_UNITS: &str = "INSERT INTO fleet_units (rollout_id, seq, key, wave, status, unit, note) \
     SELECT ?1, value ->> 'seq', value ->> 'key', value ->> 'wave', value ->> 'status', \
            value ->> 'unit', value ->> 'note' \
     FROM json_each(?2) WHERE true \
     ON CONFLICT (rollout_id, key) DO NOTHING";

#[async_trait]
impl FleetStore for SqliteStore {
    async fn open_rollout(
        &self,
        release: &str,
        settings: &RolloutSettings,
        started_by: &str,
        units: Vec<NewRolloutUnit>,
    ) -> Result<OpenedRollout> {
        let _writer = self.writer.lock().await;
        let mut conn = self
            .writes
            .acquire()
            .await
            .map_err(err("opening a roll-out"))?;
        let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE")
            .await
            .map_err(err("opening a roll-out"))?;
        let open = sqlx::query(concat!(
            "SELECT ",
            rollout_columns!(),
            " FROM fleet_rollouts \
             WHERE release = ?1 AND status <> 'completed'"
        ))
        .bind(release)
        .fetch_optional(&mut *tx)
        .await
        .map_err(err("opening a roll-out"))?;
        let opened = match open {
            Some(row) => {
                let rollout = rollout_from(&row)?;
                let rid = rollout.id.to_string();
                let keys: Vec<String> =
                    sqlx::query_scalar("SELECT key FROM fleet_units WHERE rollout_id = ?1")
                        .bind(&rid)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(err("opening a roll-out"))?;
                let keys: std::collections::HashSet<String> = keys.into_iter().collect();
                let fresh: Vec<NewRolloutUnit> = units
                    .into_iter()
                    .filter(|u| !keys.contains(&u.key))
                    .collect();
                let next: i64 = sqlx::query_scalar(
                    "SELECT COALESCE(MAX(seq) + 1, 0) FROM fleet_units WHERE rollout_id = ?1",
                )
                .bind(&rid)
                .fetch_one(&mut *tx)
                .await
                .map_err(err("opening a roll-out"))?;
                let numbered = RolloutUnit::numbered(fresh, next as u64, 0);
                let added = numbered.len();
                if added > 0 {
                    sqlx::query(INSERT_UNITS)
                        .bind(&rid)
                        .bind(units_json(numbered)?)
                        .execute(&mut *tx)
                        .await
                        .map_err(err("adding units to a roll-out"))?;
                }
                OpenedRollout::new(rollout, true, added)
            }
            None => {
                let now = Utc::now();
                let rollout =
                    Rollout::new(RolloutId::new(), release, settings.clone(), started_by, now);
                let rid = rollout.id.to_string();
                sqlx::query(
                    "INSERT INTO fleet_rollouts \
                     (rollout_id, release, status, settings, started_by, started_at, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                )
                .bind(&rid)
                .bind(release)
                .bind(rollout.status.as_str())
                .bind(to_json(settings)?)
                .bind(started_by)
                .bind(timestamp(&now))
                .execute(&mut *tx)
                .await
                .map_err(err("starting a roll-out"))?;
                let numbered = RolloutUnit::numbered(units, 0, settings.canary);
                let added = numbered.len();
                sqlx::query(INSERT_UNITS)
                    .bind(&rid)
                    .bind(units_json(numbered)?)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("adding units to a roll-out"))?;
                OpenedRollout::new(rollout, false, added)
            }
        };
        tx.commit().await.map_err(err("opening a roll-out"))?;
        Ok(opened)
    }

    async fn rollout(&self, id: RolloutId) -> Result<Option<Rollout>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            rollout_columns!(),
            " FROM fleet_rollouts WHERE rollout_id = ?1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(err("reading a roll-out"))?;
        row.as_ref().map(rollout_from).transpose()
    }

    async fn latest_rollout(&self) -> Result<Option<Rollout>> {
        // Ids are UUID v7: their text sorts by creation.
        let row = sqlx::query(concat!(
            "SELECT ",
            rollout_columns!(),
            " FROM fleet_rollouts ORDER BY rollout_id DESC LIMIT 1"
        ))
        .fetch_optional(&self.pool)
        .await
        .map_err(err("reading the last roll-out"))?;
        row.as_ref().map(rollout_from).transpose()
    }

    async fn set_rollout_status(
        &self,
        id: RolloutId,
        status: RolloutStatus,
        reason: Option<String>,
    ) -> Result<()> {
        let _writer = self.writer.lock().await;
        let done = sqlx::query(
            "UPDATE fleet_rollouts SET status = ?2, reason = ?3, updated_at = ?4 \
             WHERE rollout_id = ?1",
        )
        .bind(id.to_string())
        .bind(status.as_str())
        .bind(reason)
        .bind(timestamp(&Utc::now()))
        .execute(&self.writes)
        .await
        .map_err(err("setting a roll-out's status"))?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound {
                kind: Entity::Rollout,
                id: id.to_string(),
            });
        }
        Ok(())
    }

    async fn rollout_units(&self, id: RolloutId) -> Result<Vec<RolloutUnit>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            unit_columns!(),
            " FROM fleet_units WHERE rollout_id = ?1 ORDER BY seq"
        ))
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(err("reading a roll-out's units"))?;
        rows.iter().map(unit_from).collect()
    }

    async fn claim_units(
        &self,
        id: RolloutId,
        wave: u32,
        worker: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<RolloutUnit>> {
        // The clock after the lock: a wait for it must not shorten leases.
        let _writer = self.writer.lock().await;
        let now = Utc::now().timestamp_millis();
        // One statement: atomic, its write lock taken at once.
        let rows = sqlx::query(concat!(
            "UPDATE fleet_units SET status = 'running', lease_owner = ?3, lease_until = ?4, \
                 attempts = attempts + 1 \
             WHERE rollout_id = ?1 AND seq IN ( \
                 SELECT seq FROM fleet_units \
                 WHERE rollout_id = ?1 AND wave = ?2 \
                   AND (status = 'pending' OR (status = 'running' AND lease_until <= ?5)) \
                   AND EXISTS (SELECT 1 FROM fleet_rollouts r \
                               WHERE r.rollout_id = ?1 AND r.status = 'running') \
                 ORDER BY seq LIMIT ?6) \
             RETURNING ",
            unit_columns!(),
            ""
        ))
        .bind(id.to_string())
        .bind(i64::from(wave))
        .bind(worker)
        .bind(now + millis(lease))
        .bind(now)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.writes)
        .await
        .map_err(err("claiming roll-out units"))?;
        let mut units = rows.iter().map(unit_from).collect::<Result<Vec<_>>>()?;
        // RETURNING gives no order.
        units.sort_by_key(|u| u.seq);
        Ok(units)
    }

    async fn renew_units(
        &self,
        id: RolloutId,
        worker: &str,
        seqs: &[u64],
        lease: Duration,
    ) -> Result<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        // The clock after the lock: a wait for it must not shorten leases.
        let _writer = self.writer.lock().await;
        let now = Utc::now().timestamp_millis();
        sqlx::query(
            "UPDATE fleet_units SET lease_until = ?3 \
             WHERE rollout_id = ?1 AND lease_owner = ?2 AND status = 'running' \
               AND lease_until > ?4 AND seq IN (SELECT value FROM json_each(?5))",
        )
        .bind(id.to_string())
        .bind(worker)
        .bind(now + millis(lease))
        .bind(now)
        .bind(to_json(&seqs)?)
        .execute(&self.writes)
        .await
        .map_err(err("renewing roll-out leases"))?;
        Ok(())
    }

    async fn finish_unit(
        &self,
        id: RolloutId,
        seq: u64,
        worker: &str,
        result: &UnitResult,
    ) -> Result<bool> {
        let _writer = self.writer.lock().await;
        let mut conn = self
            .writes
            .acquire()
            .await
            .map_err(err("settling a roll-out unit"))?;
        settle(&mut conn, id, seq, worker, result).await
    }

    /// The outcomes in one transaction: one commit (one sync) for all.
    async fn finish_units(
        &self,
        id: RolloutId,
        worker: &str,
        outcomes: &[(u64, UnitResult)],
    ) -> Result<Vec<bool>> {
        let _writer = self.writer.lock().await;
        let mut conn = self
            .writes
            .acquire()
            .await
            .map_err(err("settling roll-out units"))?;
        let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE")
            .await
            .map_err(err("settling roll-out units"))?;
        let mut kept = Vec::with_capacity(outcomes.len());
        for (seq, result) in outcomes {
            kept.push(settle(&mut tx, id, *seq, worker, result).await?);
        }
        tx.commit().await.map_err(err("settling roll-out units"))?;
        Ok(kept)
    }

    async fn retry_failed_units(&self, id: RolloutId) -> Result<usize> {
        let _writer = self.writer.lock().await;
        let done = sqlx::query(
            "UPDATE fleet_units SET status = 'pending', lease_owner = NULL, lease_until = NULL \
             WHERE rollout_id = ?1 AND status = 'failed'",
        )
        .bind(id.to_string())
        .execute(&self.writes)
        .await
        .map_err(err("retrying failed units"))?;
        Ok(done.rows_affected() as usize)
    }
}

/// Settles unit `seq` with `result` if `worker` holds its lease.
async fn settle(
    conn: &mut sqlx::SqliteConnection,
    id: RolloutId,
    seq: u64,
    worker: &str,
    result: &UnitResult,
) -> Result<bool> {
    let got = result
        .migrated()
        .map(|(applied, seeded)| {
            to_json(&Got {
                applied: applied.to_vec(),
                seeded: seeded.to_vec(),
            })
        })
        .transpose()?;
    let done = sqlx::query(
        "UPDATE fleet_units SET status = ?4, result = ?5, note = ?6, finished_at = ?7, \
             lease_until = NULL \
         WHERE rollout_id = ?1 AND seq = ?2 AND lease_owner = ?3 AND status = 'running'",
    )
    .bind(id.to_string())
    .bind(seq as i64)
    .bind(worker)
    .bind(result.status().as_str())
    .bind(got)
    .bind(result.note())
    .bind(timestamp(&Utc::now()))
    .execute(&mut *conn)
    .await
    .map_err(err("settling a roll-out unit"))?;
    Ok(done.rows_affected() == 1)
}
