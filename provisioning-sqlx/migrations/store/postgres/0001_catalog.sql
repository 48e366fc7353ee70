-- The catalog, journal and outbox of provisioning-sqlx's PostgresStore.
-- Unqualified names: the store runs this with search_path set to its own
-- schema, so that two stores in two schemas of one database stay apart.
-- Each record is kept whole as JSONB (the model's stable field names), with
-- the columns that queries filter, order or lock on beside it. Text keys use
-- the "C" collation so that the database orders ids exactly as Rust does
-- (byte order), whatever the database's default collation.

CREATE TABLE tenants (
    tenant_id  text COLLATE "C" PRIMARY KEY,
    state      text NOT NULL,
    plan       text NOT NULL,
    region     text NOT NULL,
    version    bigint NOT NULL,
    -- The sequence of the tenant's last event: advanced by the same
    -- version-checked UPDATE that locks the row, so numbers are gapless and
    -- never handed out twice.
    last_event bigint NOT NULL,
    record     jsonb NOT NULL
);

CREATE INDEX tenants_state ON tenants (state, tenant_id);
CREATE INDEX tenants_region ON tenants (region, tenant_id);

CREATE TABLE requests (
    request_id   uuid PRIMARY KEY,
    tenant_id    text COLLATE "C" NOT NULL,
    status       text NOT NULL,
    submitted_at timestamptz NOT NULL,
    -- Which worker drives the request, until when (the database's clock, so
    -- workers on machines with skewed clocks still agree).
    lease_owner  text,
    lease_until  timestamptz,
    record       jsonb NOT NULL
);

-- What claim_requests and unfinished_requests scan: only unfinished rows,
-- already in claim order.
CREATE INDEX requests_unfinished ON requests (submitted_at, request_id)
    WHERE status IN ('running', 'compensation_failed');

CREATE TABLE events (
    tenant_id text COLLATE "C" NOT NULL,
    sequence  bigint NOT NULL,
    event     jsonb NOT NULL,
    PRIMARY KEY (tenant_id, sequence)
);

CREATE TABLE event_cursors (
    subscriber text COLLATE "C" NOT NULL,
    tenant_id  text COLLATE "C" NOT NULL,
    sequence   bigint NOT NULL,
    PRIMARY KEY (subscriber, tenant_id)
);

CREATE TABLE runs (
    run_id   uuid PRIMARY KEY,
    status   text NOT NULL,
    next_seq bigint NOT NULL,
    started  bigint GENERATED ALWAYS AS IDENTITY
);

CREATE INDEX runs_unfinished ON runs (started) WHERE status IN ('running', 'compensating');

CREATE TABLE journal (
    run_id uuid NOT NULL,
    seq    bigint NOT NULL,
    record jsonb NOT NULL,
    PRIMARY KEY (run_id, seq)
);
