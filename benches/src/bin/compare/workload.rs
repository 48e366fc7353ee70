//! The reference workload (the workspace's `workload/`, a copy of the shared one),
//! embedded so that every mode, SDK and floor alike, provisions the same ten
//! migrations and the same seed, whatever the working directory.

use provisioning_sqlx::{PostgresTenantSchema, Seed, SqliteTenantSchema, TenantSchema};
use sqlx::migrate::Migrator;

/// One SQLite database shared by many tenants.
pub(crate) static SHARED_MIGRATIONS: Migrator =
    sqlx::migrate!("../workload/sqlite-shared/migrations");
/// A SQLite file per tenant.
pub(crate) static DEDICATED_MIGRATIONS: Migrator = sqlx::migrate!("../workload/sqlite/migrations");
/// A PostgreSQL schema (or database) per tenant.
pub(crate) static PG_MIGRATIONS: Migrator = sqlx::migrate!("../workload/postgres/migrations");
/// The next release on PostgreSQL: what the fleet roll-out applies.
pub(crate) static PG_FLEET: Migrator = sqlx::migrate!("../workload/postgres/fleet");

/// The seed of a tenant in the shared SQLite database (`?1` is the tenant id).
pub(crate) const SHARED_SEED: &str = include_str!("../../../../workload/sqlite-shared/seed.sql");
/// The seed of a dedicated SQLite tenant.
pub(crate) const DEDICATED_SEED: &str = include_str!("../../../../workload/sqlite/seed.sql");
/// The seed of a PostgreSQL tenant (`$1` is the tenant id).
pub(crate) const PG_SEED: &str = include_str!("../../../../workload/postgres/seed.sql");

/// The shared workload's tables, parents first.
/// The tables holding a tenant's rows, parents first.
pub(crate) fn tenant_tables() -> impl Iterator<Item = &'static str> {
    include_str!("../../../../workload/tenant-tables.txt").lines()
}

/// The name the seed is recorded under in the SDK's seed ledger.
const SEED_NAME: &str = "workload-seed";

/// The shared schema as the SDK's schema manager takes it.
pub(crate) fn shared_schema() -> SqliteTenantSchema {
    TenantSchema::new(copy(&SHARED_MIGRATIONS))
        .seed(Seed::sql(SEED_NAME, 1, SHARED_SEED))
        .tenant_tables(tenant_tables())
}

/// The dedicated SQLite schema as the SDK's schema manager takes it.
pub(crate) fn dedicated_schema() -> SqliteTenantSchema {
    TenantSchema::new(copy(&DEDICATED_MIGRATIONS)).seed(Seed::sql(SEED_NAME, 1, DEDICATED_SEED))
}

/// The PostgreSQL schema, with the fleet release appended when `fleet`.
pub(crate) fn pg_schema(fleet: bool) -> PostgresTenantSchema {
    let mut all: Vec<_> = PG_MIGRATIONS.iter().cloned().collect();
    if fleet {
        all.extend(PG_FLEET.iter().cloned());
    }
    TenantSchema::new(Migrator::with_migrations(all)).seed(Seed::sql(SEED_NAME, 1, PG_SEED))
}

fn copy(migrator: &Migrator) -> Migrator {
    Migrator::with_migrations(migrator.iter().cloned().collect())
}

/// One statement of a seed script and whether it takes the tenant id.
#[derive(Debug, Clone)]
pub(crate) struct SeedStatement {
    pub(crate) sql: String,
    pub(crate) binds_tenant: bool,
}

/// Splits a seed script the way its README says to run it: statements
/// separated by `;`, the tenant id bound in those that use `param`. The
/// workload's seeds hold no `;` inside strings, which is what makes a plain
/// split enough for the hand-written floor.
pub(crate) fn seed_statements(script: &str, param: &str) -> Vec<SeedStatement> {
    script
        .split(';')
        .map(|chunk| {
            // Leading comment lines are kept out so the statement is bare SQL.
            chunk
                .lines()
                .filter(|line| !line.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|sql| !sql.trim().is_empty())
        .map(|sql| SeedStatement {
            binds_tenant: sql.contains(param),
            sql: sql.trim().to_owned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_split_into_three_statements() {
        for (script, param, binds) in [
            (SHARED_SEED, "?1", [true, true, true]),
            (DEDICATED_SEED, "?1", [false, true, true]),
            (PG_SEED, "$1", [false, true, true]),
        ] {
            let statements = seed_statements(script, param);
            assert_eq!(
                statements
                    .iter()
                    .map(|s| s.binds_tenant)
                    .collect::<Vec<_>>(),
                binds
            );
            assert!(statements.iter().all(|s| s.sql.starts_with("INSERT")));
        }
        assert_eq!(SHARED_MIGRATIONS.iter().count(), 10);
        assert_eq!(DEDICATED_MIGRATIONS.iter().count(), 10);
        assert_eq!(PG_MIGRATIONS.iter().count(), 10);
        assert_eq!(PG_FLEET.iter().count(), 2);
    }
}
