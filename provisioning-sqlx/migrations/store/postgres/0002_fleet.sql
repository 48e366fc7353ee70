-- Fleet roll-outs of provisioning-sqlx's PostgresStore: a release's
-- migrations rolled out to every tenant database, one unit per dedicated
-- tenant or shared database, handed out under leases. Unqualified names, as
-- in 0001_catalog.sql: the store runs this with search_path set to its schema.

CREATE TABLE fleet_rollouts (
    rollout_id uuid PRIMARY KEY,
    release    text COLLATE "C" NOT NULL,
    status     text NOT NULL,
    reason     text,
    -- RolloutSettings as JSON (canary, max_failures), kept from the start.
    settings   jsonb NOT NULL,
    started_by text NOT NULL,
    started_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

-- At most one unfinished roll-out per release: two processes opening one
-- release at once both INSERT ... ON CONFLICT DO NOTHING, the second waits on
-- this index for the first to commit, then continues the first's roll-out.
CREATE UNIQUE INDEX fleet_rollouts_unfinished ON fleet_rollouts (release)
    WHERE status <> 'completed';

-- latest_rollout: the last started (ids are UUID v7, so they break ties in
-- start order).
CREATE INDEX fleet_rollouts_started ON fleet_rollouts (started_at, rollout_id);

CREATE TABLE fleet_units (
    rollout_id  uuid NOT NULL REFERENCES fleet_rollouts (rollout_id),
    -- Position in the roll-out, 0-based, in the order units were added.
    seq         bigint NOT NULL,
    key         text COLLATE "C" NOT NULL,
    -- 0 for the canary wave, 1 for the rest.
    wave        integer NOT NULL,
    status      text NOT NULL,
    attempts    integer NOT NULL DEFAULT 0,
    -- Which process holds (or last held) the unit, until when (the
    -- database's clock, as for requests).
    lease_owner text,
    lease_until timestamptz,
    -- What never changes once added: {"placement": ..., "tenants": [...]}.
    unit        jsonb NOT NULL,
    -- How it settled: the migrations and seeds applied, the error or why it
    -- was skipped.
    applied     jsonb NOT NULL DEFAULT '[]',
    seeded      jsonb NOT NULL DEFAULT '[]',
    note        text,
    finished_at timestamptz,
    PRIMARY KEY (rollout_id, seq),
    UNIQUE (rollout_id, key)
);

-- What claim_units scans: only units still to hand out, already in claim
-- order within a wave.
CREATE INDEX fleet_units_claimable ON fleet_units (rollout_id, wave, seq)
    WHERE status IN ('pending', 'running');
