CREATE TABLE comments (
    id         BIGSERIAL PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    task_id    BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    author_id  BIGINT REFERENCES users (id) ON DELETE SET NULL,
    body       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX comments_task_idx ON comments (task_id);
CREATE INDEX comments_tenant_idx ON comments (tenant_id);
