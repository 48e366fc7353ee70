CREATE TABLE user_roles (
    id         BIGSERIAL PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id    BIGINT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    granted_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT user_roles_user_role_uniq UNIQUE (tenant_id, user_id, role_id)
);
CREATE INDEX user_roles_role_idx ON user_roles (role_id);
