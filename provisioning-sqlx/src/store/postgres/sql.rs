//! The store's statements, with its schema written in once at construction so
//! that no query depends on a connection's `search_path`.
//!
//! Ids and JSON travel as text and are cast in SQL (`$1::uuid`,
//! `$2::jsonb`, `record::text`), so the store needs no sqlx type features
//! beyond the default ones.

use std::sync::Arc;

use sqlx::{AssertSqlSafe, SqlSafeStr, SqlStr};

/// Every statement the store runs, for one schema.
pub(super) struct Statements {
    pub(super) start_run: SqlStr,
    pub(super) advance_run: SqlStr,
    pub(super) load_run: SqlStr,
    pub(super) unfinished_runs: SqlStr,
    pub(super) insert_request: SqlStr,
    pub(super) submit_tenant: SqlStr,
    pub(super) request: SqlStr,
    pub(super) finish_request: SqlStr,
    pub(super) unfinished_requests: SqlStr,
    pub(super) tenant: SqlStr,
    pub(super) tenants: SqlStr,
    #[cfg(feature = "sharding")]
    pub(super) tenant_counts: SqlStr,
    pub(super) tenant_version: SqlStr,
    pub(super) update_tenant: SqlStr,
    pub(super) list_tenants: SqlStr,
    pub(super) tenant_events: SqlStr,
    pub(super) undelivered_events: SqlStr,
    pub(super) ack_event: SqlStr,
    pub(super) claim_requests: SqlStr,
    pub(super) renew_lease: SqlStr,
    pub(super) release_lease: SqlStr,
    pub(super) fleet: FleetStatements,
}

/// The statements of [`FleetStore`](provisioning_core::FleetStore), for one
/// schema.
pub(super) struct FleetStatements {
    pub(super) insert_rollout: SqlStr,
    pub(super) lock_rollout: SqlStr,
    pub(super) fresh_units: SqlStr,
    pub(super) insert_units: SqlStr,
    pub(super) rollout: SqlStr,
    pub(super) latest_rollout: SqlStr,
    pub(super) set_rollout_status: SqlStr,
    pub(super) rollout_units: SqlStr,
    pub(super) claim_units: SqlStr,
    pub(super) renew_units: SqlStr,
    pub(super) finish_units: SqlStr,
    pub(super) retry_failed_units: SqlStr,
}

/// A roll-out row as the JSON of a [`Rollout`](provisioning_core::Rollout)
/// (timestamps as RFC 3339 with an offset, which chrono reads as UTC).
const ROLLOUT: &str = "jsonb_build_object('id', rollout_id, 'release', release, \
       'status', status, 'reason', reason, 'settings', settings, \
       'started_by', started_by, 'started_at', started_at, \
       'updated_at', updated_at)::text AS rollout";

/// A unit row (aliased `u`) as the JSON of a
/// [`RolloutUnit`](provisioning_core::RolloutUnit): its immutable parts
/// merged with its columns.
const UNIT: &str = "(u.unit || jsonb_build_object('seq', u.seq, 'key', u.key, \
       'wave', u.wave, 'status', u.status, 'applied', u.applied, 'seeded', u.seeded, \
       'note', u.note, 'attempts', u.attempts, 'worker', u.lease_owner, \
       'finished_at', u.finished_at))::text AS unit";

impl Statements {
    /// The statements on the tables of `schema` (a quoted identifier).
    pub(super) fn new(schema: &str) -> Self {
        // Shared, not copied, by every query that runs them.
        let s = |template: &str| {
            AssertSqlSafe(Arc::<str>::from(template.replace("{s}", schema))).into_sql_str()
        };
        Statements {
            // A run's first entries ($3 of them, from position 0): the runs
            // row is the idempotency key, and the entries are written only if
            // the row was (one atomic statement, one commit).
            start_run: s("WITH run AS ( \
                   INSERT INTO {s}.runs (run_id, status, next_seq) VALUES ($1::uuid, $2, $3) \
                   ON CONFLICT (run_id) DO NOTHING RETURNING run_id) \
                 INSERT INTO {s}.journal (run_id, seq, record) \
                 SELECT run.run_id, r.seq, r.record::jsonb \
                 FROM run, unnest($4::bigint[], $5::text[]) AS r(seq, record)"),
            // Later entries ($4 of them, from position $3): written only if
            // they take the run's next positions; the UPDATE's row lock orders
            // concurrent appenders.
            advance_run: s("WITH run AS ( \
                   UPDATE {s}.runs SET next_seq = next_seq + $4, status = COALESCE($2, status) \
                   WHERE run_id = $1::uuid AND next_seq = $3 RETURNING run_id) \
                 INSERT INTO {s}.journal (run_id, seq, record) \
                 SELECT run.run_id, r.seq, r.record::jsonb \
                 FROM run, unnest($5::bigint[], $6::text[]) AS r(seq, record)"),
            load_run: s("SELECT record::text AS record FROM {s}.journal \
                 WHERE run_id = $1::uuid ORDER BY seq"),
            unfinished_runs: s("SELECT run_id::text AS run_id FROM {s}.runs \
                 WHERE status IN ('running', 'compensating') ORDER BY started"),
            // A request queued for workers (no lease) notifies them, so
            // that an idle worker claims it at once; the notice is sent when
            // the write commits. One row returned per request written.
            insert_request: s(
                "WITH request AS ( \
                   INSERT INTO {s}.requests \
                     (request_id, tenant_id, status, submitted_at, record, lease_owner, lease_until) \
                   VALUES ($1::uuid, $2, $3, $4::timestamptz, $5::jsonb, $6::text, \
                     now() + $7::float8 * interval '1 millisecond') \
                   ON CONFLICT (request_id) DO NOTHING RETURNING request_id) \
                 SELECT CASE WHEN $6::text IS NULL \
                   THEN pg_notify($8, $9 || ' ' || request_id::text) END \
                 FROM request",
            ),
            // The request, its new tenant and the tenant's first event in one
            // statement. A known request id writes nothing (the tenant insert
            // reads the request insert's RETURNING); a concurrent insert of
            // the same id waits on the primary key and then writes nothing.
            // A taken tenant id (tombstones included) is left to violate
            // `tenants_pkey`, which aborts the whole statement, request row
            // included: ON CONFLICT there would keep the request.
            submit_tenant: s("WITH request AS ( \
                   INSERT INTO {s}.requests \
                     (request_id, tenant_id, status, submitted_at, record, lease_owner, lease_until) \
                   VALUES ($1::uuid, $2, $3, $4::timestamptz, $5::jsonb, $13::text, \
                     now() + $14::float8 * interval '1 millisecond') \
                   ON CONFLICT (request_id) DO NOTHING RETURNING request_id), \
                 tenant AS ( \
                   INSERT INTO {s}.tenants \
                     (tenant_id, state, plan, region, version, last_event, record) \
                   SELECT $6, $7, $8, $9, $10, 1, $11::jsonb FROM request RETURNING tenant_id), \
                 event AS ( \
                   INSERT INTO {s}.events (tenant_id, sequence, event) \
                   SELECT tenant_id, 1, $12::jsonb FROM tenant RETURNING tenant_id) \
                 SELECT CASE WHEN $13::text IS NULL \
                   THEN pg_notify($15, $16 || ' ' || $1::uuid::text) END \
                 FROM event"),
            request: s("SELECT record::text AS record FROM {s}.requests \
                 WHERE request_id = $1::uuid"),
            // Patches the JSON record in place: one write, no read before it.
            // Notifies waiters in the same statement: the notice is sent
            // when the write commits, and only if it does.
            finish_request: s("WITH done AS ( \
                   UPDATE {s}.requests SET status = $2, record = record || \
                     jsonb_build_object('status', $3::jsonb, 'failure', $4::jsonb, \
                                        'finished_at', $5::jsonb) \
                   WHERE request_id = $1::uuid RETURNING request_id) \
                 SELECT pg_notify($6, $7 || ' ' || request_id::text) FROM done"),
            unfinished_requests: s("SELECT record::text AS record FROM {s}.requests \
                 WHERE status IN ('running', 'compensation_failed') \
                 ORDER BY submitted_at, request_id"),
            tenant: s("SELECT record::text AS record FROM {s}.tenants WHERE tenant_id = $1"),
            tenants: s("SELECT record::text AS record FROM {s}.tenants \
                 WHERE tenant_id = ANY($1::text[])"),
            #[cfg(feature = "sharding")]
            // What `LoadSource` counts: placed tenants neither deleted nor
            // failed, per shard.
            tenant_counts: s(
                "SELECT record->'placement'->>'shard' AS shard, count(*) AS n \
                 FROM {s}.tenants \
                 WHERE state NOT IN ('deleted', 'failed') \
                   AND record->'placement'->>'shard' IS NOT NULL \
                 GROUP BY 1",
            ),
            tenant_version: s("SELECT version FROM {s}.tenants WHERE tenant_id = $1"),
            // Version-checked: locks the row, reserves the sequences of the
            // events ($8, bodies) and writes them in the same statement, each
            // body's `sequence` set to its row's. Concurrent updates of one
            // version wait on the row lock, then fail the recheck of the
            // version and write nothing. A row iff the update was made.
            update_tenant: s("WITH tenant AS ( \
                   UPDATE {s}.tenants SET state = $2, plan = $3, region = $4, version = $5, \
                     record = $6::jsonb, last_event = last_event + cardinality($8::text[]) \
                   WHERE tenant_id = $1 AND version = $7 \
                   RETURNING tenant_id, last_event - cardinality($8::text[]) AS base), \
                 written AS ( \
                   INSERT INTO {s}.events (tenant_id, sequence, event) \
                   SELECT tenant.tenant_id, tenant.base + e.n, \
                     jsonb_set(e.event::jsonb, ARRAY['sequence'], to_jsonb(tenant.base + e.n)) \
                   FROM tenant, unnest($8::text[]) WITH ORDINALITY AS e(event, n)) \
                 SELECT base FROM tenant"),
            list_tenants: s("SELECT record::text AS record FROM {s}.tenants \
                 WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR region = $2) \
                   AND ($3::text IS NULL OR plan = $3) AND ($4::text IS NULL OR tenant_id > $4) \
                 ORDER BY tenant_id LIMIT $5"),
            tenant_events: s("SELECT event::text AS event FROM {s}.events \
                 WHERE tenant_id = $1 ORDER BY sequence"),
            undelivered_events: s("SELECT e.event::text AS event FROM {s}.events e \
                 LEFT JOIN {s}.event_cursors c ON c.subscriber = $1 AND c.tenant_id = e.tenant_id \
                 WHERE e.sequence > COALESCE(c.sequence, 0) \
                 ORDER BY e.tenant_id, e.sequence LIMIT $2"),
            ack_event: s(
                "INSERT INTO {s}.event_cursors AS c (subscriber, tenant_id, sequence) \
                 VALUES ($1, $2, $3) ON CONFLICT (subscriber, tenant_id) DO UPDATE \
                 SET sequence = GREATEST(c.sequence, excluded.sequence)",
            ),
            // One round trip. The candidates are locked with SKIP LOCKED, so
            // concurrent claimants pass over each other's rows instead of
            // waiting, and a row leased in the meantime fails the recheck of
            // the lease predicate. MATERIALIZED keeps the locking subquery
            // (and its LIMIT) evaluated exactly once. Expiry uses the
            // database's clock, the same for every worker.
            claim_requests: s("WITH picked AS MATERIALIZED ( \
                   SELECT request_id FROM {s}.requests \
                   WHERE status IN ('running', 'compensation_failed') \
                     AND (lease_until IS NULL OR lease_until <= now()) \
                   ORDER BY submitted_at, request_id LIMIT $3 \
                   FOR UPDATE SKIP LOCKED) \
                 UPDATE {s}.requests r \
                 SET lease_owner = $1, lease_until = now() + $2::float8 * interval '1 millisecond' \
                 FROM picked WHERE r.request_id = picked.request_id \
                 RETURNING r.record::text AS record"),
            renew_lease: s(
                "UPDATE {s}.requests SET lease_until = now() + $3::float8 * interval '1 millisecond' \
                 WHERE request_id = $1::uuid AND lease_owner = $2 AND lease_until > now()",
            ),
            release_lease: s(
                "UPDATE {s}.requests SET lease_owner = NULL, lease_until = NULL \
                 WHERE request_id = $1::uuid AND lease_owner = $2",
            ),
            fleet: FleetStatements::new(&s),
        }
    }
}

impl FleetStatements {
    /// The fleet statements, through `s` (which writes in the schema).
    fn new(s: &dyn Fn(&str) -> SqlStr) -> Self {
        let s = |template: &str| {
            s(&template
                .replace("{rollout}", ROLLOUT)
                .replace("{unit}", UNIT))
        };
        FleetStatements {
            // A new roll-out of $2, unless one is unfinished: the partial
            // unique index makes a concurrent opener wait for this one's
            // transaction, then insert nothing. A row iff it was created.
            insert_rollout: s("INSERT INTO {s}.fleet_rollouts \
                   (rollout_id, release, status, reason, settings, started_by, \
                    started_at, updated_at) \
                 VALUES ($1::uuid, $2, 'running', NULL, $3::jsonb, $4, now(), now()) \
                 ON CONFLICT (release) WHERE status <> 'completed' DO NOTHING \
                 RETURNING {rollout}"),
            // The unfinished roll-out of $1, locked until the transaction
            // ends so that openers add units one after another. NO KEY: the
            // units' foreign key (KEY SHARE) is not blocked by it.
            lock_rollout: s("SELECT {rollout} FROM {s}.fleet_rollouts \
                 WHERE release = $1 AND status <> 'completed' FOR NO KEY UPDATE"),
            // The next free position of roll-out $1, and which of the keys
            // $2 it does not have yet.
            fresh_units: s("SELECT \
                   (SELECT COALESCE(max(seq) + 1, 0) FROM {s}.fleet_units \
                    WHERE rollout_id = $1::uuid) AS next_seq, \
                   ARRAY(SELECT n.k FROM unnest($2::text[]) AS n(k) \
                     WHERE NOT EXISTS (SELECT 1 FROM {s}.fleet_units f \
                       WHERE f.rollout_id = $1::uuid AND f.key = n.k)) AS fresh"),
            // Every new unit in one statement, whatever their number.
            insert_units: s("INSERT INTO {s}.fleet_units \
                   (rollout_id, seq, key, wave, status, unit, note) \
                 SELECT $1::uuid, n.seq, n.key, n.wave, n.status, n.unit::jsonb, n.note \
                 FROM unnest($2::bigint[], $3::text[], $4::int[], $5::text[], $6::text[], \
                             $7::text[]) AS n(seq, key, wave, status, unit, note) \
                 ON CONFLICT (rollout_id, key) DO NOTHING"),
            rollout: s("SELECT {rollout} FROM {s}.fleet_rollouts WHERE rollout_id = $1::uuid"),
            latest_rollout: s("SELECT {rollout} FROM {s}.fleet_rollouts \
                 ORDER BY started_at DESC, rollout_id DESC LIMIT 1"),
            set_rollout_status: s("UPDATE {s}.fleet_rollouts \
                 SET status = $2, reason = $3, updated_at = now() \
                 WHERE rollout_id = $1::uuid"),
            rollout_units: s("SELECT {unit} FROM {s}.fleet_units u \
                 WHERE u.rollout_id = $1::uuid ORDER BY u.seq"),
            // As claim_requests: candidates of wave $2 locked with SKIP
            // LOCKED (a unit leased in the meantime fails the recheck of the
            // predicate), MATERIALIZED so that the LIMIT applies once, and
            // expiry by the database's clock.
            claim_units: s("WITH picked AS MATERIALIZED ( \
                   SELECT seq FROM {s}.fleet_units \
                   WHERE rollout_id = $1::uuid AND wave = $2 \
                     AND status IN ('pending', 'running') \
                     AND (status = 'pending' OR lease_until IS NULL OR lease_until <= now()) \
                     AND EXISTS (SELECT 1 FROM {s}.fleet_rollouts r \
                                 WHERE r.rollout_id = $1::uuid AND r.status = 'running') \
                   ORDER BY seq LIMIT $5 \
                   FOR UPDATE SKIP LOCKED) \
                 UPDATE {s}.fleet_units u \
                 SET status = 'running', attempts = u.attempts + 1, lease_owner = $3, \
                   lease_until = now() + $4::float8 * interval '1 millisecond' \
                 FROM picked WHERE u.rollout_id = $1::uuid AND u.seq = picked.seq \
                 RETURNING {unit}"),
            // Only leases still held: an expired one may be another's by now.
            renew_units: s("UPDATE {s}.fleet_units \
                 SET lease_until = now() + $4::float8 * interval '1 millisecond' \
                 WHERE rollout_id = $1::uuid AND seq = ANY($3::bigint[]) \
                   AND status = 'running' AND lease_owner = $2 AND lease_until > now()"),
            // Settles the units $3 held by worker $2, each with its status,
            // applied, seeded and note at the same position of $4 to $7;
            // RETURNING the seqs settled. NULL applied/seeded (a failure or a
            // skip) keeps the stored ones.
            finish_units: s("UPDATE {s}.fleet_units u \
                 SET status = n.status, applied = COALESCE(n.applied::jsonb, u.applied), \
                   seeded = COALESCE(n.seeded::jsonb, u.seeded), note = n.note, \
                   lease_until = NULL, finished_at = now() \
                 FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[]) \
                   AS n(seq, status, applied, seeded, note) \
                 WHERE u.rollout_id = $1::uuid AND u.seq = n.seq \
                   AND u.status = 'running' AND u.lease_owner = $2 \
                 RETURNING u.seq"),
            retry_failed_units: s("UPDATE {s}.fleet_units \
                 SET status = 'pending', lease_until = NULL \
                 WHERE rollout_id = $1::uuid AND status = 'failed'"),
        }
    }
}
