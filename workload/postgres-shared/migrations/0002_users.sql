CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    email         VARCHAR(254) NOT NULL,
    display_name  VARCHAR(100) NOT NULL,
    password_hash VARCHAR(128) NOT NULL DEFAULT '',
    is_active     BOOLEAN NOT NULL DEFAULT TRUE,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_tenant_email_uniq ON users (tenant_id, email);
