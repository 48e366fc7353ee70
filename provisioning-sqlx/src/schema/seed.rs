//! Seeds: named, versioned data a new tenant starts with, and the pure logic of
//! the seed ledger (what is pending, what was tampered with).

use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use provisioning_core::{Entity, Error, Result, SeedInfo, TenantId};
use sha2::{Digest, Sha256};

use crate::schema::sql::hex;

/// A Rust seed: given the tenant's connection (inside the seed's transaction)
/// and the tenant, inserts its rows.
pub type SeedFn<C> =
    Arc<dyn for<'a> Fn(&'a mut C, &'a TenantId) -> BoxFuture<'a, Result<()>> + Send + Sync>;

/// What a seed runs.
pub enum SeedBody<C> {
    /// SQL statements separated by `;`, run in order, with the tenant id as
    /// the one parameter (`?1` on SQLite, `$1` on PostgreSQL) in the
    /// statements that use it: bound on SQLite; on PostgreSQL written into the
    /// script as a quoted literal, so that the whole seed goes to the server
    /// in one round trip. Placeholders inside quotes, dollar-quoted bodies
    /// (`$$ ... $$`, `$fn$ ... $fn$`), comments and names are left alone.
    Sql(String),
    /// A Rust function, and a fingerprint standing for its behaviour in the
    /// checksum (code cannot be hashed: change the fingerprint, or better the
    /// version, when the function changes).
    Rust {
        /// The function.
        run: SeedFn<C>,
        /// Stands for the function's body in the checksum.
        fingerprint: String,
    },
}

impl<C> Clone for SeedBody<C> {
    fn clone(&self) -> Self {
        match self {
            SeedBody::Sql(sql) => SeedBody::Sql(sql.clone()),
            SeedBody::Rust { run, fingerprint } => SeedBody::Rust {
                run: Arc::clone(run),
                fingerprint: fingerprint.clone(),
            },
        }
    }
}

/// A named, versioned seed for a connection type `C`
/// ([`SqliteConnection`](sqlx::SqliteConnection) or `PgConnection`).
///
/// A seed is applied once per tenant and recorded in the `_tenant_seeds` ledger
/// of the tenant's database with its checksum (SHA-256 of the body), in the same
/// transaction as its rows: a re-run applies only the seeds missing from the
/// ledger, and a seed whose body changed under a version already applied is an
/// error (give the new body a new version instead).
///
/// ```
/// use provisioning_sqlx::Seed;
/// use provisioning_sqlx::sqlx::SqliteConnection;
///
/// let roles = Seed::<SqliteConnection>::sql("default-roles", 1,
///     "INSERT INTO roles (tenant_id, name) VALUES (?1, 'owner')");
/// assert_eq!(roles.name(), "default-roles");
/// assert_eq!(roles.checksum().len(), 64); // hex SHA-256
/// ```
pub struct Seed<C> {
    name: String,
    version: i64,
    body: SeedBody<C>,
    checksum: String,
}

impl<C> Clone for Seed<C> {
    fn clone(&self) -> Self {
        Seed {
            name: self.name.clone(),
            version: self.version,
            body: self.body.clone(),
            checksum: self.checksum.clone(),
        }
    }
}

impl<C> fmt::Debug for Seed<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Seed")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("checksum", &self.checksum)
            .finish_non_exhaustive()
    }
}

impl<C> Seed<C> {
    /// A seed of SQL statements (see [`SeedBody::Sql`]). Its name must be 1
    /// to [`SEED_NAME_MAX_LEN`] characters, which building the schema checks.
    pub fn sql(name: impl Into<String>, version: i64, sql: impl Into<String>) -> Self {
        let sql = sql.into();
        let checksum = checksum(&["sql", &sql]);
        Seed {
            name: name.into(),
            version,
            body: SeedBody::Sql(sql),
            checksum,
        }
    }

    /// A seed run by a Rust function (see [`SeedBody::Rust`]).
    pub fn from_fn<F>(
        name: impl Into<String>,
        version: i64,
        fingerprint: impl Into<String>,
        run: F,
    ) -> Self
    where
        F: for<'a> Fn(&'a mut C, &'a TenantId) -> BoxFuture<'a, Result<()>> + Send + Sync + 'static,
    {
        let fingerprint = fingerprint.into();
        let checksum = checksum(&["rust", &fingerprint]);
        Seed {
            name: name.into(),
            version,
            body: SeedBody::Rust {
                run: Arc::new(run),
                fingerprint,
            },
            checksum,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its version.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// Its body.
    pub fn body(&self) -> &SeedBody<C> {
        &self.body
    }

    /// Hex SHA-256 of its body: what the ledger compares on a re-run.
    pub fn checksum(&self) -> &str {
        &self.checksum
    }

    /// The seed as the dry run lists it.
    pub fn info(&self) -> SeedInfo {
        SeedInfo::new(self.name.clone(), self.version)
    }
}

fn checksum(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        // Length-prefixed so that ("ab", "c") and ("a", "bc") differ.
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex(&hasher.finalize())
}

/// One row of the `_tenant_seeds` ledger: `(name, version, checksum)`.
pub(crate) type LedgerRow = (String, i64, String);

/// The seeds not in the ledger, in declaration order; an error if a seed in the
/// ledger now has another checksum, checked before anything is applied.
pub(crate) fn pending_seeds<'s, C>(
    seeds: &'s [Seed<C>],
    ledger: &[LedgerRow],
    tenant: &TenantId,
) -> Result<Vec<&'s Seed<C>>> {
    let mut pending = Vec::new();
    for seed in seeds {
        match ledger
            .iter()
            .find(|(name, version, _)| *name == seed.name && *version == seed.version)
        {
            Some((_, _, applied)) if *applied != seed.checksum => {
                return Err(Error::Conflict {
                    kind: Entity::Seed,
                    id: format!("{}@{}", seed.name, seed.version),
                    reason: format!(
                        "tenant {tenant} applied this version with checksum {applied}, \
                         the seed now has {}; give a changed seed a new version",
                        seed.checksum
                    ),
                });
            }
            Some(_) => {}
            None => pending.push(seed),
        }
    }
    Ok(pending)
}

/// The longest seed name, in characters: the PostgreSQL ledger's column is
/// bounded so that its table needs no TOAST table (two relations fewer to
/// create per tenant database).
pub const SEED_NAME_MAX_LEN: usize = 200;

/// Rejects an empty or overlong seed name, and two seeds with the same name
/// and version: the ledger could not tell them apart.
pub(crate) fn check_unique<C>(seeds: &[Seed<C>]) -> std::result::Result<(), String> {
    if let Some(seed) = seeds
        .iter()
        .find(|s| s.name.is_empty() || s.name.chars().count() > SEED_NAME_MAX_LEN)
    {
        return Err(format!(
            "seed name {:?} must be 1 to {SEED_NAME_MAX_LEN} characters (got {})",
            seed.name,
            seed.name.chars().count()
        ));
    }
    for (i, a) in seeds.iter().enumerate() {
        if seeds[..i]
            .iter()
            .any(|b| b.name == a.name && b.version == a.version)
        {
            return Err(format!("seed {}@{} is declared twice", a.name, a.version));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    type S = Seed<()>;

    #[test]
    fn pending_skips_applied_and_rejects_changed_bodies() {
        let tenant = TenantId::parse("acme").unwrap();
        let seeds = vec![S::sql("roles", 1, "A"), S::sql("users", 1, "B")];
        let ledger = vec![("roles".to_owned(), 1, seeds[0].checksum().to_owned())];
        let pending = pending_seeds(&seeds, &ledger, &tenant).unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].name(), "users");

        let changed = vec![S::sql("roles", 1, "A changed")];
        let err = pending_seeds(&changed, &ledger, &tenant).err().unwrap();
        assert!(
            matches!(
                err,
                Error::Conflict {
                    kind: Entity::Seed,
                    ..
                }
            ),
            "{err}"
        );

        // A new version of the same name is a new seed, not a conflict.
        let v2 = vec![S::sql("roles", 2, "A changed")];
        assert_eq!(pending_seeds(&v2, &ledger, &tenant).unwrap().len(), 1);
    }

    #[test]
    fn checksums_distinguish_sql_and_fingerprints() {
        assert_ne!(
            S::sql("a", 1, "x").checksum(),
            S::sql("a", 1, "y").checksum()
        );
        let f = S::from_fn("a", 1, "x", |_, _| Box::pin(async { Ok(()) }));
        assert_ne!(f.checksum(), S::sql("a", 1, "x").checksum());
        assert!(check_unique(&[S::sql("a", 1, "x"), S::sql("a", 1, "y")]).is_err());
        assert!(check_unique(&[S::sql("a", 1, "x"), S::sql("a", 2, "y")]).is_ok());
        let long = "n".repeat(SEED_NAME_MAX_LEN + 1);
        let err = check_unique(&[S::sql(long, 1, "x")]).unwrap_err();
        assert!(err.contains("1 to 200 characters (got 201)"), "{err}");
        assert!(check_unique(&[S::sql("", 1, "x")]).is_err());
        assert!(check_unique(&[S::sql("n".repeat(SEED_NAME_MAX_LEN), 1, "x")]).is_ok());
    }
}
