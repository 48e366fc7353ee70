-- The catalog, journal and outbox of provisioning-sqlx's SqliteStore.
-- Each record is kept whole as JSON (the model's stable field names), with the
-- columns that queries filter on beside it.

CREATE TABLE tenants (
    tenant_id  TEXT PRIMARY KEY NOT NULL,
    state      TEXT NOT NULL,
    plan       TEXT NOT NULL,
    region     TEXT NOT NULL,
    version    INTEGER NOT NULL,
    record     TEXT NOT NULL
) WITHOUT ROWID;

CREATE INDEX tenants_state ON tenants (state, tenant_id);
CREATE INDEX tenants_region ON tenants (region, tenant_id);

CREATE TABLE requests (
    request_id   TEXT PRIMARY KEY NOT NULL,
    tenant_id    TEXT NOT NULL,
    status       TEXT NOT NULL,
    submitted_at TEXT NOT NULL,
    record       TEXT NOT NULL
) WITHOUT ROWID;

CREATE INDEX requests_unfinished ON requests (submitted_at, request_id)
    WHERE status IN ('running', 'compensation_failed');

CREATE TABLE events (
    tenant_id TEXT NOT NULL,
    sequence  INTEGER NOT NULL,
    event     TEXT NOT NULL,
    PRIMARY KEY (tenant_id, sequence)
) WITHOUT ROWID;

CREATE TABLE event_cursors (
    subscriber TEXT NOT NULL,
    tenant_id  TEXT NOT NULL,
    sequence   INTEGER NOT NULL,
    PRIMARY KEY (subscriber, tenant_id)
) WITHOUT ROWID;

CREATE TABLE runs (
    run_id     TEXT PRIMARY KEY NOT NULL,
    status     TEXT NOT NULL,
    next_seq   INTEGER NOT NULL,
    started    INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX runs_unfinished ON runs (started) WHERE status IN ('running', 'compensating');

CREATE TABLE journal (
    run_id TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
