//! Request writes on SQLite, with group commit (see `group`): submissions
//! (request, new tenant and its first event) and request settlements that
//! queue up while another write holds the writer lock are written together.
//!
//! As for the journal, each kind travels as one JSON parameter loaded into a
//! temporary table, and a fixed set of statements checks and writes them all,
//! every write keeping the outcome it would have had alone: a submission
//! whose request id is known is a duplicate and writes nothing, one whose
//! tenant exists is a conflict and writes nothing (not even its request).

use chrono::Utc;
use provisioning_core::Entity;
use provisioning_core::{
    Error, FailureInfo, RequestId, RequestStatus, Result, Submission, SubmitOutcome, TenantEvent,
    TenantStore,
};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::group::{Grouped, Reported};
use super::{COMPONENT, SqliteStore};
use crate::store::codec::{name_of, timestamp, to_json};

/// Records a batch of submissions: `?1` is the JSON array of submissions;
/// it returns, per submission, its place, whether its request was known and
/// whether its tenant was.
const SUBMIT: &str = "\
    CREATE TEMP TABLE IF NOT EXISTS submit_ops ( \
        i INTEGER PRIMARY KEY, request_id TEXT NOT NULL, request_tenant TEXT NOT NULL, \
        request_status TEXT NOT NULL, submitted_at TEXT NOT NULL, request TEXT NOT NULL, \
        tenant_id TEXT, state TEXT, plan TEXT, region TEXT, version INTEGER, tenant TEXT, \
        event TEXT, lease_owner TEXT, lease_until INTEGER, known INTEGER, taken INTEGER); \
    BEGIN IMMEDIATE; \
    INSERT INTO temp.submit_ops (i, request_id, request_tenant, request_status, submitted_at, \
            request, tenant_id, state, plan, region, version, tenant, event, lease_owner, \
            lease_until) \
        SELECT key, value ->> 'q', value ->> 'qt', value ->> 'qs', value ->> 'qa', value ->> 'qr', \
               value ->> 't', value ->> 's', value ->> 'p', value ->> 'g', value ->> 'v', \
               value ->> 'r', value ->> 'e', value ->> 'lo', value ->> 'lu' \
        FROM json_each(?1); \
    UPDATE temp.submit_ops AS o SET \
        known = EXISTS (SELECT 1 FROM requests r WHERE r.request_id = o.request_id), \
        taken = o.tenant_id IS NOT NULL \
            AND EXISTS (SELECT 1 FROM tenants t WHERE t.tenant_id = o.tenant_id); \
    INSERT INTO requests (request_id, tenant_id, status, submitted_at, record, lease_owner, \
            lease_until) \
        SELECT request_id, request_tenant, request_status, submitted_at, request, lease_owner, \
               lease_until \
        FROM temp.submit_ops WHERE NOT known AND NOT taken ORDER BY i; \
    INSERT INTO tenants (tenant_id, state, plan, region, version, record) \
        SELECT tenant_id, state, plan, region, version, tenant FROM temp.submit_ops \
        WHERE tenant_id IS NOT NULL AND NOT known AND NOT taken ORDER BY i; \
    INSERT INTO events (tenant_id, sequence, event) \
        SELECT tenant_id, 1, event FROM temp.submit_ops \
        WHERE tenant_id IS NOT NULL AND NOT known AND NOT taken ORDER BY i; \
    SELECT i, known, taken FROM temp.submit_ops ORDER BY i; \
    DELETE FROM temp.submit_ops; \
    COMMIT;";

/// Settles a batch of requests: `?1` is the JSON array of settlements; the
/// JSON record is patched in place (no read before the write). It returns,
/// per settlement, its place and whether the request exists.
const FINISH: &str = "\
    CREATE TEMP TABLE IF NOT EXISTS finish_ops ( \
        i INTEGER PRIMARY KEY, request_id TEXT NOT NULL, status TEXT NOT NULL, \
        failure TEXT, finished_at TEXT); \
    BEGIN IMMEDIATE; \
    INSERT INTO temp.finish_ops (i, request_id, status, failure, finished_at) \
        SELECT key, value ->> 'q', value ->> 's', value ->> 'f', value ->> 't' \
        FROM json_each(?1); \
    UPDATE requests SET status = o.status, record = json_set(requests.record, \
            '$.status', o.status, '$.failure', json(o.failure), '$.finished_at', o.finished_at) \
        FROM temp.finish_ops o WHERE requests.request_id = o.request_id; \
    SELECT o.i, EXISTS (SELECT 1 FROM requests r WHERE r.request_id = o.request_id) \
        FROM temp.finish_ops o ORDER BY o.i; \
    DELETE FROM temp.finish_ops; \
    COMMIT;";

/// The new tenant of a submission.
pub(super) struct NewTenant {
    pub(super) tenant_id: String,
    pub(super) state: String,
    pub(super) plan: String,
    pub(super) region: String,
    pub(super) version: i64,
    /// The record as JSON.
    pub(super) record: String,
    /// Its first event as JSON (sequence 1).
    pub(super) event: String,
}

/// One caller's submission, ready to be written.
pub(super) struct Submit {
    pub(super) request_id: String,
    pub(super) tenant_id: String,
    pub(super) status: String,
    pub(super) submitted_at: String,
    /// The request as JSON.
    pub(super) record: String,
    pub(super) new_tenant: Option<NewTenant>,
    /// Its lease: the owner, and for how long (milliseconds), counted from
    /// the write (see `op`).
    pub(super) lease: Option<(String, i64)>,
}

/// What became of a submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Submitted {
    /// Written.
    Accepted,
    /// Its request id was known: nothing written.
    Duplicate,
    /// Its tenant existed: nothing written.
    TenantTaken,
}

/// Read from two columns, whether its request was known and whether its
/// tenant was: a known request makes it a duplicate whatever its tenant.
impl Reported for Submitted {
    const UNREPORTED: Self = Submitted::Duplicate;

    fn from_row(row: &SqliteRow) -> std::result::Result<Self, sqlx::Error> {
        let known: bool = row.try_get(1)?;
        let taken: bool = row.try_get(2)?;
        Ok(match (known, taken) {
            (true, _) => Submitted::Duplicate,
            (false, true) => Submitted::TenantTaken,
            (false, false) => Submitted::Accepted,
        })
    }
}

impl Grouped for Submit {
    type Outcome = Submitted;

    const SCRIPT: &'static str = SUBMIT;
    const WHAT: &'static str = "recording a request";
    const READING: &'static str = "reading a request write";

    fn conflicts(&self, other: &Self) -> bool {
        self.request_id == other.request_id
            || match (&self.new_tenant, &other.new_tenant) {
                (Some(a), Some(b)) => a.tenant_id == b.tenant_id,
                _ => false,
            }
    }

    fn op(&self) -> Result<serde_json::Value> {
        let t = self.new_tenant.as_ref();
        Ok(serde_json::json!({
            "q": self.request_id, "qt": self.tenant_id, "qs": self.status,
            "qa": self.submitted_at, "qr": self.record,
            "t": t.map(|t| &t.tenant_id), "s": t.map(|t| &t.state),
            "p": t.map(|t| &t.plan), "g": t.map(|t| &t.region),
            "v": t.map(|t| t.version), "r": t.map(|t| &t.record),
            "e": t.map(|t| &t.event),
            // Until when: from now, as the writer holding the lock encodes
            // the batch, so no wait for the lock shortens the lease.
            "lo": self.lease.as_ref().map(|l| &l.0),
            "lu": self.lease.as_ref().map(|l| Utc::now().timestamp_millis().saturating_add(l.1)),
        }))
    }
}

/// One caller's settlement of a request, ready to be written.
pub(super) struct Finish {
    pub(super) request_id: String,
    pub(super) status: String,
    /// The failure as JSON, if any.
    pub(super) failure: Option<String>,
    /// When it was settled, as the JSON string of a timestamp.
    pub(super) finished_at: Option<String>,
}

impl Grouped for Finish {
    /// Whether the request exists.
    type Outcome = bool;

    const SCRIPT: &'static str = FINISH;
    const WHAT: &'static str = "finishing a request";
    const READING: &'static str = "reading a request write";

    fn conflicts(&self, other: &Self) -> bool {
        self.request_id == other.request_id
    }

    fn op(&self) -> Result<serde_json::Value> {
        Ok(serde_json::json!({
            "q": self.request_id, "s": self.status, "f": self.failure, "t": self.finished_at,
        }))
    }
}

impl SqliteStore {
    /// Queued, and written with whatever other submissions are queued when
    /// the writer lock comes free (see `requests`): the request unless known,
    /// the tenant unless it exists and its first event, all or nothing.
    pub(super) async fn submit_grouped(&self, submission: Submission) -> Result<SubmitOutcome> {
        let request = &submission.request;
        let new_tenant = match &submission.new_tenant {
            Some((tenant, event)) => {
                let stored =
                    TenantEvent::stored(tenant.tenant_id.clone(), 1, Utc::now(), event.clone());
                Some(NewTenant {
                    tenant_id: tenant.tenant_id.to_string(),
                    state: tenant.state.as_str().to_owned(),
                    plan: tenant.plan.as_str().to_owned(),
                    region: tenant.region.as_str().to_owned(),
                    version: tenant.version as i64,
                    record: to_json(tenant)?,
                    event: to_json(&stored)?,
                })
            }
            None => None,
        };
        let submit = Submit {
            request_id: request.request_id.to_string(),
            tenant_id: request.tenant_id.to_string(),
            status: name_of(request.status)?,
            submitted_at: timestamp(&request.submitted_at),
            record: to_json(request)?,
            new_tenant,
            lease: submission
                .lease
                .as_ref()
                .map(|lease| (lease.owner.clone(), super::millis(lease.duration))),
        };
        match self.submits.write(self, submit).await? {
            Submitted::Accepted => Ok(SubmitOutcome::Accepted),
            Submitted::Duplicate => {
                let existing = self.request(request.request_id).await?.ok_or_else(|| {
                    Error::backend(
                        COMPONENT,
                        "a duplicate request vanished",
                        true,
                        std::io::Error::other("request not found after a conflict"),
                    )
                })?;
                Ok(SubmitOutcome::Duplicate(existing))
            }
            Submitted::TenantTaken => {
                let tenant = &request.tenant_id;
                let state = self
                    .tenant(tenant)
                    .await?
                    .map_or("unknown".to_owned(), |t| t.state.to_string());
                Err(Error::Conflict {
                    kind: Entity::Tenant,
                    id: tenant.to_string(),
                    reason: format!("tenant exists (state {state})"),
                })
            }
        }
    }

    /// Queued, and written with whatever other settlements are queued when
    /// the writer lock comes free (see `requests`); the JSON record is
    /// patched in place.
    pub(super) async fn finish_grouped(
        &self,
        request_id: RequestId,
        status: RequestStatus,
        failure: Option<FailureInfo>,
    ) -> Result<()> {
        let finished_at = status.is_finished().then(Utc::now);
        let finish = Finish {
            request_id: request_id.to_string(),
            status: name_of(status)?,
            failure: failure.as_ref().map(to_json).transpose()?,
            finished_at: finished_at.map(|t| to_json_string_value(&t)).transpose()?,
        };
        if self.finishes.write(self, finish).await? {
            return Ok(());
        }
        Err(Error::NotFound {
            kind: Entity::Request,
            id: request_id.to_string(),
        })
    }
}

/// A value as the JSON text of a string (for `json_set` of a timestamp).
fn to_json_string_value<T: serde::Serialize>(value: &T) -> Result<String> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        Ok(other) => Ok(other.to_string()),
        Err(source) => Err(Error::Serialization {
            what: "timestamp",
            source,
        }),
    }
}
