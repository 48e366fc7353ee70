-- The seed of a new tenant in a shared database: three roles, one admin user holding the owner role.
-- $1 is the tenant id (a validated slug). Removing a tenant deletes its rows from every table by tenant_id.
INSERT INTO roles (tenant_id, name, description) VALUES
    ($1, 'owner', 'Full access, billing included'),
    ($1, 'member', 'Read and write projects and tasks'),
    ($1, 'viewer', 'Read only');
INSERT INTO users (tenant_id, email, display_name, password_hash)
    VALUES ($1, 'admin@' || $1 || '.example', 'Administrator', 'seed-placeholder-not-a-real-hash');
INSERT INTO user_roles (tenant_id, user_id, role_id)
    SELECT $1, u.id, r.id FROM users u, roles r
    WHERE u.tenant_id = $1 AND r.tenant_id = $1 AND u.email = 'admin@' || $1 || '.example' AND r.name = 'owner';
