//! One shard: [`Shard`] (validated, in a directory), [`ShardSpec`] (its config
//! and builder) and [`ShardStatus`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};

use provisioning_core::{Isolation, Region, ShardId, TenantId};
use serde::{Deserialize, Serialize};

use crate::connection::ConnectionTarget;
use crate::error::{Result, rule_of};
use crate::hash::stable_hash;

/// Whether a shard takes new tenants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ShardStatus {
    /// Takes new tenants.
    #[default]
    Active,
    /// Being emptied: keeps its tenants, takes no new ones.
    Draining,
    /// Declared full by an operator: keeps its tenants, takes no new ones.
    Full,
}

impl ShardStatus {
    /// Whether a resolver may place a new tenant on a shard in this status.
    pub fn accepts_new_tenants(self) -> bool {
        self == ShardStatus::Active
    }

    /// `active`, `draining` or `full`.
    pub fn as_str(self) -> &'static str {
        match self {
            ShardStatus::Active => "active",
            ShardStatus::Draining => "draining",
            ShardStatus::Full => "full",
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            ShardStatus::Active => 0,
            ShardStatus::Draining => 1,
            ShardStatus::Full => 2,
        }
    }

    fn from_u8(value: u8) -> Self {
        match value {
            0 => ShardStatus::Active,
            1 => ShardStatus::Draining,
            _ => ShardStatus::Full,
        }
    }
}

impl fmt::Display for ShardStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A shard's config, as written in TOML or JSON, and the builder of a [`Shard`].
///
/// Fields are plain strings so that [`ShardSpec::build`] can say which shard and
/// which field is wrong (serde alone would only give a line number). `pool`
/// defaults to `shared` and `status` to `active`.
///
/// ```
/// use provisioning_core::Isolation;
/// use provisioning_sharding::{ShardSpec, ShardStatus};
///
/// let shard = ShardSpec::new("eu-west-dedicated-1")
///     .with_region("eu-west")
///     .with_pool(Isolation::Dedicated)
///     .with_capacity(20)
///     .with_connection("postgres://app:secret@eu1.db/tenants")
///     .with_tag("tier", "gold")
///     .build()?;
/// assert_eq!(shard.region().as_str(), "eu-west");
/// assert_eq!(shard.status(), ShardStatus::Active);
/// assert_eq!(shard.tag("tier"), Some("gold"));
/// assert_eq!(shard.connection().to_string(), "postgres://app:***@eu1.db/tenants");
/// # Ok::<(), provisioning_sharding::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ShardSpec {
    /// The shard's id (a [`ShardId`]).
    pub id: String,
    /// The region the shard's data lives in (a [`Region`]).
    #[serde(default)]
    pub region: String,
    /// `shared` or `dedicated`: which tenants it hosts.
    #[serde(default = "shared")]
    pub pool: Isolation,
    /// The most tenants it may hold; at least 1.
    #[serde(default)]
    pub capacity: u32,
    /// Whether it takes new tenants.
    #[serde(default)]
    pub status: ShardStatus,
    /// Its connection URL or path template.
    #[serde(default = "no_connection")]
    pub connection: ConnectionTarget,
    /// Free-form labels (`tier = "gold"`) for custom resolvers.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

fn shared() -> Isolation {
    Isolation::Shared
}

fn no_connection() -> ConnectionTarget {
    ConnectionTarget::new("")
}

impl ShardSpec {
    /// A spec with only an id: shared pool, active, no region, capacity or connection yet.
    pub fn new(id: impl Into<String>) -> Self {
        ShardSpec {
            id: id.into(),
            region: String::new(),
            pool: Isolation::Shared,
            capacity: 0,
            status: ShardStatus::Active,
            connection: no_connection(),
            tags: BTreeMap::new(),
        }
    }

    /// Sets the region.
    #[must_use]
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }

    /// Sets the pool.
    #[must_use]
    pub fn with_pool(mut self, pool: Isolation) -> Self {
        self.pool = pool;
        self
    }

    /// Sets the capacity (most tenants).
    #[must_use]
    pub fn with_capacity(mut self, capacity: u32) -> Self {
        self.capacity = capacity;
        self
    }

    /// Sets the status.
    #[must_use]
    pub fn with_status(mut self, status: ShardStatus) -> Self {
        self.status = status;
        self
    }

    /// Sets the connection URL or path template.
    #[must_use]
    pub fn with_connection(mut self, connection: impl Into<ConnectionTarget>) -> Self {
        self.connection = connection.into();
        self
    }

    /// Adds a tag.
    #[must_use]
    pub fn with_tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// Validates the spec into a [`Shard`].
    ///
    /// # Errors
    /// [`crate::Error::InvalidShard`] naming the shard and the first field that
    /// breaks a rule: `id` or `region` not a valid name (empty included),
    /// `capacity` zero, `connection` empty, a `tags` key empty.
    pub fn build(self) -> Result<Shard> {
        let id = ShardId::parse(self.id.as_str())
            .map_err(|e| crate::Error::shard(&self.id, "id", rule_of(e)))?;
        let region = Region::parse(self.region.as_str())
            .map_err(|e| crate::Error::shard(&self.id, "region", rule_of(e)))?;
        if self.capacity == 0 {
            return Err(crate::Error::shard(
                &self.id,
                "capacity",
                "must be at least 1",
            ));
        }
        if self.connection.is_empty() {
            return Err(crate::Error::shard(
                &self.id,
                "connection",
                "must not be empty (a URL or a path template)",
            ));
        }
        if let Some(key) = self.tags.keys().find(|k| k.trim().is_empty()) {
            return Err(crate::Error::shard(
                &self.id,
                "tags",
                format!("key {key:?} must not be empty"),
            ));
        }
        Ok(Shard {
            seed: stable_hash(id.as_str()),
            id,
            region,
            pool: self.pool,
            capacity: self.capacity,
            status: AtomicU8::new(self.status.to_u8()),
            connection: self.connection,
            tags: self.tags,
        })
    }
}

/// A validated shard: a database server or file root in one region, serving
/// one pool, holding at most `capacity` tenants.
///
/// Its status is live: [`ShardDirectory::set_status`](crate::ShardDirectory::set_status)
/// drains a shard while resolvers keep running. `Debug` redacts the connection's password.
pub struct Shard {
    id: ShardId,
    region: Region,
    pool: Isolation,
    capacity: u32,
    // An atomic so that draining takes effect on the hot path without a lock.
    status: AtomicU8,
    connection: ConnectionTarget,
    tags: BTreeMap<String, String>,
    /// `stable_hash(id)`, computed once for rendezvous scoring.
    pub(crate) seed: u64,
}

impl Shard {
    /// Its id.
    pub fn id(&self) -> &ShardId {
        &self.id
    }

    /// Its region.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// Which tenants it hosts: shared or dedicated.
    pub fn pool(&self) -> Isolation {
        self.pool
    }

    /// The most tenants it may hold.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Its current status.
    pub fn status(&self) -> ShardStatus {
        ShardStatus::from_u8(self.status.load(Ordering::Relaxed))
    }

    /// Whether it takes new tenants now.
    pub fn accepts_new_tenants(&self) -> bool {
        self.status().accepts_new_tenants()
    }

    /// Its connection URL or path template (redacted when shown).
    pub fn connection(&self) -> &ConnectionTarget {
        &self.connection
    }

    /// The connection for `tenant` on this shard: the template with `{tenant}`,
    /// `{shard}` and `{region}` filled in.
    pub fn connection_for(&self, tenant: &TenantId) -> ConnectionTarget {
        self.connection.render(tenant, &self.id, &self.region)
    }

    /// All its tags.
    pub fn tags(&self) -> &BTreeMap<String, String> {
        &self.tags
    }

    /// The value of one tag.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.get(key).map(String::as_str)
    }

    /// Its config, with the current status, e.g. to write the directory back out.
    pub fn to_spec(&self) -> ShardSpec {
        ShardSpec {
            id: self.id.to_string(),
            region: self.region.to_string(),
            pool: self.pool,
            capacity: self.capacity,
            status: self.status(),
            connection: self.connection.clone(),
            tags: self.tags.clone(),
        }
    }

    /// Sets the live status, returning the previous one.
    pub(crate) fn swap_status(&self, status: ShardStatus) -> ShardStatus {
        ShardStatus::from_u8(self.status.swap(status.to_u8(), Ordering::Relaxed))
    }
}

impl Clone for Shard {
    fn clone(&self) -> Self {
        Shard {
            id: self.id.clone(),
            region: self.region.clone(),
            pool: self.pool,
            capacity: self.capacity,
            status: AtomicU8::new(self.status.load(Ordering::Relaxed)),
            connection: self.connection.clone(),
            tags: self.tags.clone(),
            seed: self.seed,
        }
    }
}

impl fmt::Debug for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shard")
            .field("id", &self.id)
            .field("region", &self.region)
            .field("pool", &self.pool)
            .field("capacity", &self.capacity)
            .field("status", &self.status())
            .field("connection", &self.connection)
            .field("tags", &self.tags)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ShardSpec {
        ShardSpec::new("eu-1")
            .with_region("eu-west")
            .with_capacity(10)
            .with_connection("postgres://u:pw@h/db")
    }

    #[test]
    fn build_errors_name_shard_and_field() {
        let err = spec().with_region("").build().unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"shard "eu-1": invalid region: must not be empty"#
        );
        let err = spec().with_capacity(0).build().unwrap_err();
        assert!(
            matches!(err, crate::Error::InvalidShard { ref shard, field: "capacity", .. } if shard == "eu-1")
        );
        let err = ShardSpec {
            id: "EU 1".into(),
            ..spec()
        }
        .build()
        .unwrap_err();
        assert!(
            matches!(err, crate::Error::InvalidShard { field: "id", .. }),
            "{err}"
        );
        let err = spec().with_connection(" ").build().unwrap_err();
        assert!(matches!(
            err,
            crate::Error::InvalidShard {
                field: "connection",
                ..
            }
        ));
        let err = spec().with_tag("", "x").build().unwrap_err();
        assert!(matches!(
            err,
            crate::Error::InvalidShard { field: "tags", .. }
        ));
    }

    #[test]
    fn debug_redacts_and_status_is_live() {
        let shard = spec().build().unwrap();
        let shown = format!("{shard:?}");
        assert!(shown.contains("postgres://u:***@h/db"), "{shown}");
        assert!(!shown.contains("pw"), "{shown}");
        assert_eq!(
            shard.swap_status(ShardStatus::Draining),
            ShardStatus::Active
        );
        assert!(!shard.accepts_new_tenants());
        assert_eq!(shard.clone().status(), ShardStatus::Draining);
        assert_eq!(shard.to_spec().status, ShardStatus::Draining);
    }
}
