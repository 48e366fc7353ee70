CREATE TABLE attachments (
    id             BIGSERIAL PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    task_id        BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    file_name      VARCHAR(255) NOT NULL,
    content_type   VARCHAR(100) NOT NULL,
    size_bytes     BIGINT NOT NULL,
    storage_key    VARCHAR(500) NOT NULL,
    uploaded_by_id BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX attachments_task_idx ON attachments (task_id);
CREATE INDEX attachments_tenant_idx ON attachments (tenant_id);
