-- Fleet roll-outs: one row per roll-out of a release, one per unit (a
-- dedicated tenant's database, or a shared database) with its lease and
-- outcome. Times of leases are unix milliseconds; others RFC 3339 text.
CREATE TABLE fleet_rollouts (
    rollout_id TEXT PRIMARY KEY,
    release    TEXT NOT NULL,
    status     TEXT NOT NULL,
    reason     TEXT,
    settings   TEXT NOT NULL,
    started_by TEXT NOT NULL,
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- At most one unfinished roll-out per release: processes opening the same
-- release at once continue one roll-out.
CREATE UNIQUE INDEX fleet_rollouts_open ON fleet_rollouts (release)
    WHERE status <> 'completed';

CREATE TABLE fleet_units (
    rollout_id  TEXT NOT NULL REFERENCES fleet_rollouts (rollout_id),
    seq         INTEGER NOT NULL,
    key         TEXT NOT NULL,
    wave        INTEGER NOT NULL,
    status      TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until INTEGER,
    -- What does not change: {"placement": ..., "tenants": [...]}.
    unit        TEXT NOT NULL,
    -- What it got: {"applied": [...], "seeded": [...]}.
    result      TEXT,
    note        TEXT,
    finished_at TEXT,
    PRIMARY KEY (rollout_id, seq),
    UNIQUE (rollout_id, key)
);

-- What claims scan: the open units of a wave, in order.
CREATE INDEX fleet_units_open ON fleet_units (rollout_id, wave, seq)
    WHERE status IN ('pending', 'running');
