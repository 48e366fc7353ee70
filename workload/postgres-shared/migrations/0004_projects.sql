CREATE TABLE projects (
    id         BIGSERIAL PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    name       VARCHAR(100) NOT NULL,
    slug       VARCHAR(100) NOT NULL,
    owner_id   BIGINT REFERENCES users (id) ON DELETE SET NULL,
    archived   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX projects_owner_idx ON projects (owner_id);
CREATE UNIQUE INDEX projects_tenant_slug_uniq ON projects (tenant_id, slug);
