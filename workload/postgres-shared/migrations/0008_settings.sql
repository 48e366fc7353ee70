CREATE TABLE settings (
    id         BIGSERIAL PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    key        VARCHAR(100) NOT NULL,
    value      JSONB NOT NULL DEFAULT '{}',
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX settings_tenant_key_uniq ON settings (tenant_id, key);
