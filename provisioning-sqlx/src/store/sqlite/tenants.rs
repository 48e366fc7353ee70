//! Tenant updates on SQLite, with group commit (see `group`): version-checked
//! updates that queue up while another write holds the writer lock are
//! written together, each with its events.
//!
//! As for the journal, the updates travel as one JSON parameter loaded into a
//! temporary table, and a fixed set of statements checks every update's
//! version, writes the records whose version matched and appends their
//! events, numbered after each tenant's last one (the number written into the
//! stored event with `json_set`). A batch holds at most one update per
//! tenant, so every check sees what the update would have seen alone.

use chrono::Utc;
use provisioning_core::{Entity, Error, NewEvent, Result, TenantEvent, TenantRecord, TenantStore};

use super::SqliteStore;
use super::group::Grouped;
use crate::store::codec::to_json;

/// Writes a batch of updates: `?1` is the JSON array of updates; it returns,
/// per update, its place and whether it was written.
const SCRIPT: &str = "\
    CREATE TEMP TABLE IF NOT EXISTS tenant_ops ( \
        i INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, state TEXT NOT NULL, \
        plan TEXT NOT NULL, region TEXT NOT NULL, version INTEGER NOT NULL, \
        record TEXT NOT NULL, expected INTEGER NOT NULL, events TEXT NOT NULL, \
        ok INTEGER, last INTEGER); \
    BEGIN IMMEDIATE; \
    INSERT INTO temp.tenant_ops \
        (i, tenant_id, state, plan, region, version, record, expected, events) \
        SELECT key, value ->> 't', value ->> 's', value ->> 'p', value ->> 'g', \
               value ->> 'v', value ->> 'r', value ->> 'x', value ->> 'e' \
        FROM json_each(?1); \
    UPDATE temp.tenant_ops AS o SET \
        ok = EXISTS (SELECT 1 FROM tenants t \
                     WHERE t.tenant_id = o.tenant_id AND t.version = o.expected), \
        last = (SELECT COALESCE(MAX(sequence), 0) FROM events e \
                WHERE e.tenant_id = o.tenant_id); \
    UPDATE tenants SET state = o.state, plan = o.plan, region = o.region, \
        version = o.version, record = o.record \
        FROM temp.tenant_ops o WHERE o.ok AND tenants.tenant_id = o.tenant_id; \
    INSERT INTO events (tenant_id, sequence, event) \
        SELECT o.tenant_id, o.last + e.key + 1, json_set(e.value, '$.sequence', o.last + e.key + 1) \
        FROM temp.tenant_ops o, json_each(o.events) e WHERE o.ok; \
    SELECT i, ok FROM temp.tenant_ops ORDER BY i; \
    DELETE FROM temp.tenant_ops; \
    COMMIT;";

/// One caller's update, ready to be written.
pub(super) struct Update {
    pub(super) tenant_id: String,
    pub(super) state: String,
    pub(super) plan: String,
    pub(super) region: String,
    /// The version it writes.
    pub(super) version: i64,
    /// The record as JSON.
    pub(super) record: String,
    /// The version it expects to find.
    pub(super) expected: i64,
    /// Its events as JSON, numbered by the script.
    pub(super) events: Vec<String>,
}

impl Grouped for Update {
    /// Whether it was written (else the version did not match, or there is
    /// no such tenant).
    type Outcome = bool;

    const SCRIPT: &'static str = SCRIPT;
    const WHAT: &'static str = "updating a tenant";
    const READING: &'static str = "reading a tenant update";

    fn conflicts(&self, other: &Self) -> bool {
        self.tenant_id == other.tenant_id
    }

    fn op(&self) -> Result<serde_json::Value> {
        Ok(serde_json::json!({
            "t": self.tenant_id, "s": self.state, "p": self.plan, "g": self.region,
            "v": self.version, "r": self.record, "x": self.expected,
            // One JSON text (an array of strings): each event is stored
            // from exactly the text serialized here.
            "e": to_json(&self.events)?,
        }))
    }
}

impl SqliteStore {
    /// Queued, and written with whatever other updates are queued when the
    /// writer lock comes free (see `tenants`): the version check, the record
    /// and the events numbered after the tenant's last one, in one
    /// transaction.
    pub(super) async fn update_grouped(
        &self,
        mut record: TenantRecord,
        expected_version: u64,
        events: Vec<NewEvent>,
    ) -> Result<TenantRecord> {
        record.version = expected_version + 1;
        record.updated_at = Utc::now();
        let now = Utc::now();
        let events = events
            .into_iter()
            // Numbered by the script; 0 until then.
            .map(|event| {
                to_json(&TenantEvent::stored(
                    record.tenant_id.clone(),
                    0,
                    now,
                    event,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let update = Update {
            tenant_id: record.tenant_id.to_string(),
            state: record.state.as_str().to_owned(),
            plan: record.plan.as_str().to_owned(),
            region: record.region.as_str().to_owned(),
            version: record.version as i64,
            record: to_json(&record)?,
            expected: expected_version as i64,
            events,
        };
        if self.updates.write(self, update).await? {
            return Ok(record);
        }
        Err(match self.tenant(&record.tenant_id).await? {
            None => Error::NotFound {
                kind: Entity::Tenant,
                id: record.tenant_id.to_string(),
            },
            Some(stored) => Error::Conflict {
                kind: Entity::Tenant,
                id: record.tenant_id.to_string(),
                reason: format!(
                    "version {expected_version} expected, {} stored",
                    stored.version
                ),
            },
        })
    }
}
