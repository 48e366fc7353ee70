CREATE TABLE roles (
    id          BIGSERIAL PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    name        VARCHAR(50) NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX roles_tenant_name_uniq ON roles (tenant_id, name);
