//! [`TenantStore`] on PostgreSQL: tenants, requests, the outbox and leases.

use provisioning_core::Entity;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use provisioning_core::{
    Error, FailureInfo, NewEvent, RequestId, RequestNotices, RequestRecord, RequestStatus, Result,
    Submission, SubmitOutcome, TenantEvent, TenantFilter, TenantId, TenantRecord, TenantStore,
};
use sqlx::postgres::PgRow;

use super::{COMPONENT, PostgresStore, err, limit, text};
use crate::store::codec::{from_json, name_of, timestamp, to_json};

#[async_trait]
impl TenantStore for PostgresStore {
    async fn submit(&self, submission: Submission) -> Result<SubmitOutcome> {
        let request = &submission.request;
        // One statement in autocommit either way: the request row alone, or
        // with the new tenant and its first event.
        let statement = match submission.new_tenant {
            Some(_) => &self.sql.submit_tenant,
            None => &self.sql.insert_request,
        };
        let mut query = sqlx::query(statement.clone())
            .bind(request.request_id.to_string())
            .bind(request.tenant_id.as_str())
            .bind(name_of(request.status)?)
            .bind(timestamp(&request.submitted_at))
            .bind(to_json(request)?);
        if let Some((tenant, event)) = &submission.new_tenant {
            let first_event =
                TenantEvent::stored(tenant.tenant_id.clone(), 1, Utc::now(), event.clone());
            query = query
                .bind(tenant.tenant_id.as_str())
                .bind(tenant.state.as_str())
                .bind(tenant.plan.as_str())
                .bind(tenant.region.as_str())
                .bind(version(tenant.version)?)
                .bind(to_json(tenant)?)
                .bind(to_json(&first_event)?);
        }
        // The lease, by the database's clock as claims are (a NULL duration
        // leaves `lease_until` NULL: free at once).
        let lease = submission.lease.as_ref();
        query = query
            .bind(lease.map(|l| l.owner.as_str()))
            .bind(lease.map(|l| l.duration.as_secs_f64() * 1000.0))
            .bind(super::notices::CHANNEL)
            .bind(&self.schema);
        match query.fetch_optional(&self.pool).await {
            // With a tenant, its first event is the row returned, written
            // iff the request and the tenant were.
            Ok(Some(_)) => Ok(SubmitOutcome::Accepted),
            Ok(None) => self.duplicate(request.request_id).await,
            Err(e) => match &submission.new_tenant {
                Some((tenant, _)) if is_tenant_taken(&e) => {
                    Err(self.tenant_taken(&tenant.tenant_id).await)
                }
                _ => Err(err("recording a submission")(e)),
            },
        }
    }

    async fn request(&self, request_id: RequestId) -> Result<Option<RequestRecord>> {
        let row = sqlx::query(self.sql.request.clone())
            .bind(request_id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(err("reading a request"))?;
        row.map(|r| from_json(text(&r, "record")?)).transpose()
    }

    async fn finish_request(
        &self,
        request_id: RequestId,
        status: RequestStatus,
        failure: Option<FailureInfo>,
    ) -> Result<()> {
        let finished_at = status.is_finished().then(Utc::now);
        let updated = sqlx::query(self.sql.finish_request.clone())
            .bind(request_id.to_string())
            .bind(name_of(status)?)
            .bind(to_json(&status)?)
            .bind(to_json(&failure)?)
            .bind(to_json(&finished_at)?)
            .bind(super::notices::CHANNEL)
            .bind(&self.schema)
            .fetch_optional(&self.pool)
            .await
            .map_err(err("finishing a request"))?;
        if updated.is_none() {
            return Err(Error::NotFound {
                kind: Entity::Request,
                id: request_id.to_string(),
            });
        }
        Ok(())
    }

    async fn request_notices(&self) -> Result<Option<RequestNotices>> {
        super::notices::subscribe(&self.notices, &self.pool, &self.schema)
            .await
            .map(Some)
    }

    async fn unfinished_requests(&self) -> Result<Vec<RequestRecord>> {
        let rows = sqlx::query(self.sql.unfinished_requests.clone())
            .fetch_all(&self.pool)
            .await
            .map_err(err("listing unfinished requests"))?;
        records(&rows, "record")
    }

    async fn tenant(&self, tenant_id: &TenantId) -> Result<Option<TenantRecord>> {
        let row = sqlx::query(self.sql.tenant.clone())
            .bind(tenant_id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(err("reading a tenant"))?;
        row.map(|r| from_json(text(&r, "record")?)).transpose()
    }

    async fn tenants(&self, tenant_ids: &[TenantId]) -> Result<Vec<TenantRecord>> {
        if tenant_ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = tenant_ids.iter().map(TenantId::as_str).collect();
        let rows = sqlx::query(self.sql.tenants.clone())
            .bind(ids)
            .fetch_all(&self.pool)
            .await
            .map_err(err("reading tenants"))?;
        rows.iter().map(|r| from_json(text(r, "record")?)).collect()
    }

    async fn update_tenant(
        &self,
        mut record: TenantRecord,
        expected_version: u64,
        events: Vec<NewEvent>,
    ) -> Result<TenantRecord> {
        record.version = expected_version + 1;
        record.updated_at = Utc::now();
        let at = record.updated_at;
        // Sequence 0 is a placeholder: the statement numbers the events under
        // the row lock and writes each one's number into its body.
        let bodies = events
            .into_iter()
            .map(|event| to_json(&TenantEvent::stored(record.tenant_id.clone(), 0, at, event)))
            .collect::<Result<Vec<_>>>()?;
        // One statement in autocommit, with or without events.
        let updated = sqlx::query_scalar::<_, i64>(self.sql.update_tenant.clone())
            .bind(record.tenant_id.as_str())
            .bind(record.state.as_str())
            .bind(record.plan.as_str())
            .bind(record.region.as_str())
            .bind(version(record.version)?)
            .bind(to_json(&record)?)
            .bind(version(expected_version)?)
            .bind(bodies)
            .fetch_optional(&self.pool)
            .await
            .map_err(err("updating a tenant"))?;
        if updated.is_none() {
            return Err(self
                .update_refused(&record.tenant_id, expected_version)
                .await);
        }
        Ok(record)
    }

    async fn list_tenants(&self, filter: &TenantFilter) -> Result<Vec<TenantRecord>> {
        let rows = sqlx::query(self.sql.list_tenants.clone())
            .bind(filter.state.map(|s| s.as_str()))
            .bind(filter.region.as_ref().map(|r| r.as_str()))
            .bind(filter.plan.as_ref().map(|p| p.as_str()))
            .bind(filter.after.as_ref().map(|a| a.as_str()))
            .bind(limit(filter.effective_limit()))
            .fetch_all(&self.pool)
            .await
            .map_err(err("listing tenants"))?;
        records(&rows, "record")
    }

    async fn tenant_events(&self, tenant_id: &TenantId) -> Result<Vec<TenantEvent>> {
        let rows = sqlx::query(self.sql.tenant_events.clone())
            .bind(tenant_id.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(err("reading events"))?;
        records(&rows, "event")
    }

    async fn undelivered_events(&self, subscriber: &str, limit: usize) -> Result<Vec<TenantEvent>> {
        let rows = sqlx::query(self.sql.undelivered_events.clone())
            .bind(subscriber)
            .bind(super::limit(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(err("reading the outbox"))?;
        records(&rows, "event")
    }

    async fn ack_event(&self, subscriber: &str, tenant: &TenantId, sequence: u64) -> Result<()> {
        sqlx::query(self.sql.ack_event.clone())
            .bind(subscriber)
            .bind(tenant.as_str())
            .bind(version(sequence)?)
            .execute(&self.pool)
            .await
            .map_err(err("acknowledging an event"))?;
        Ok(())
    }

    async fn claim_requests(
        &self,
        worker: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<RequestRecord>> {
        let rows = sqlx::query(self.sql.claim_requests.clone())
            .bind(worker)
            .bind(millis(lease))
            .bind(super::limit(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(err("claiming requests"))?;
        let mut claimed: Vec<RequestRecord> = records(&rows, "record")?;
        // RETURNING gives no order; claims are handed out oldest first.
        claimed.sort_by_key(|r| (r.submitted_at, r.request_id));
        Ok(claimed)
    }

    async fn renew_lease(
        &self,
        worker: &str,
        request_id: RequestId,
        lease: Duration,
    ) -> Result<bool> {
        let updated = sqlx::query(self.sql.renew_lease.clone())
            .bind(request_id.to_string())
            .bind(worker)
            .bind(millis(lease))
            .execute(&self.pool)
            .await
            .map_err(err("renewing a lease"))?;
        Ok(updated.rows_affected() == 1)
    }

    async fn release_lease(&self, worker: &str, request_id: RequestId) -> Result<()> {
        sqlx::query(self.sql.release_lease.clone())
            .bind(request_id.to_string())
            .bind(worker)
            .execute(&self.pool)
            .await
            .map_err(err("releasing a lease"))?;
        Ok(())
    }

    fn fleet(&self) -> Option<&dyn provisioning_core::FleetStore> {
        Some(self)
    }
}

impl PostgresStore {
    /// The stored request behind a submission that wrote nothing.
    async fn duplicate(&self, request_id: RequestId) -> Result<SubmitOutcome> {
        // The conflicting row is committed (the insert waited for it), so it
        // is visible to this new statement.
        let existing = self.request(request_id).await?.ok_or_else(|| {
            // Requests are never deleted; only a broken database gets here,
            // and a retry may see it healed.
            Error::Backend {
                component: COMPONENT,
                message: format!("request {request_id} was a duplicate but is gone"),
                transient: true,
                source: None,
            }
        })?;
        Ok(SubmitOutcome::Duplicate(existing))
    }

    /// The conflict of a submission whose tenant id is taken, naming the
    /// stored tenant's state.
    async fn tenant_taken(&self, tenant: &TenantId) -> Error {
        match self.tenant(tenant).await {
            Ok(stored) => Error::Conflict {
                kind: Entity::Tenant,
                id: tenant.to_string(),
                reason: format!(
                    "tenant exists (state {})",
                    stored.map_or_else(|| "unknown".to_owned(), |t| t.state.to_string())
                ),
            },
            Err(e) => e,
        }
    }

    /// Why a version-checked update wrote nothing: no such tenant, or
    /// another version stored.
    async fn update_refused(&self, tenant: &TenantId, expected_version: u64) -> Error {
        let stored = sqlx::query_scalar::<_, i64>(self.sql.tenant_version.clone())
            .bind(tenant.as_str())
            .fetch_optional(&self.pool)
            .await;
        match stored {
            Ok(None) => Error::NotFound {
                kind: Entity::Tenant,
                id: tenant.to_string(),
            },
            Ok(Some(stored)) => Error::Conflict {
                kind: Entity::Tenant,
                id: tenant.to_string(),
                reason: format!("version {expected_version} expected, {stored} stored"),
            },
            Err(e) => err("reading a tenant's version")(e),
        }
    }
}

/// Whether `e` is the violation of `tenants_pkey` by a submission of a
/// tenant id already taken.
fn is_tenant_taken(e: &sqlx::Error) -> bool {
    crate::error::violates(e, "tenants_pkey")
}

/// Decodes the JSON records in `column` of `rows`.
fn records<T: serde::de::DeserializeOwned>(rows: &[PgRow], column: &'static str) -> Result<Vec<T>> {
    rows.iter().map(|r| from_json(text(r, column)?)).collect()
}

/// A version or sequence number as PostgreSQL's `bigint`.
fn version(n: u64) -> Result<i64> {
    i64::try_from(n).map_err(|_| Error::invalid("version", format!("{n} exceeds i64::MAX")))
}

/// A lease in milliseconds (saturating: a lease past `i64::MAX` ms is forever).
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
