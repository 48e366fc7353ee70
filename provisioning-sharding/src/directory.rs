//! [`ShardDirectory`]: every shard, indexed by id and grouped by (region, pool).

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use provisioning_core::{Isolation, Region, ShardId};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::shard::{Shard, ShardSpec, ShardStatus};

/// The on-disk shape of a directory: a list of shards.
///
/// ```toml
/// [[shards]]
/// id = "eu-west-1"
/// region = "eu-west"
/// pool = "shared"            # default
/// capacity = 500
/// connection = "postgres://app:secret@eu1.db.internal/tenants"
///
/// [[shards]]
/// id = "eu-west-gold-1"
/// region = "eu-west"
/// pool = "dedicated"
/// capacity = 40
/// status = "draining"        # default "active"
/// connection = "/srv/tenants/{region}/{tenant}.db"
/// tags = { tier = "gold" }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DirectoryConfig {
    /// The shards, in any order.
    #[serde(default)]
    pub shards: Vec<ShardSpec>,
}

/// What a resolution needs of one shard, packed so that a group's scan reads
/// a few contiguous cache lines rather than every whole [`Shard`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Member {
    /// `stable_hash(id)`.
    pub(crate) seed: u64,
    /// Index into the directory's shards.
    pub(crate) index: usize,
    pub(crate) capacity: u32,
}

/// The shards of one (region, pool), sorted by id.
#[derive(Debug, Clone, Default)]
pub(crate) struct Group {
    pub(crate) members: Vec<Member>,
    /// Whether every member has the same capacity: rendezvous can then compare
    /// raw hashes instead of computing a logarithm per shard.
    pub(crate) uniform: bool,
}

/// Every shard the resolvers may choose from.
///
/// Built from [`ShardSpec`]s (in code, or from TOML or JSON) and validated as a
/// whole: each shard's fields, and ids unique. Shards are grouped by (region,
/// pool) once, here, so that a resolution only scans the shards of its own
/// group and allocates nothing. The directory is shared by resolvers behind an
/// `Arc`; a shard's status is live ([`ShardDirectory::set_status`]).
///
/// ```
/// use provisioning_core::{Isolation, ShardId};
/// use provisioning_sharding::ShardDirectory;
///
/// let directory = ShardDirectory::from_toml_str(r#"
///     [[shards]]
///     id = "eu-west-1"
///     region = "eu-west"
///     capacity = 500
///     connection = "postgres://app:secret@eu1.db.internal/tenants"
///
///     [[shards]]
///     id = "us-east-1"
///     region = "us-east"
///     pool = "dedicated"
///     capacity = 40
///     connection = "postgres://app:secret@us1.db.internal/tenants"
/// "#)?;
/// assert_eq!(directory.len(), 2);
/// let shard = directory.get(&"eu-west-1".parse()?).unwrap();
/// assert_eq!(shard.pool(), Isolation::Shared);
/// assert_eq!(directory.in_group(&"us-east".parse()?, Isolation::Dedicated).count(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct ShardDirectory {
    shards: Vec<Shard>,
    by_id: HashMap<ShardId, usize>,
    /// Per region, the shared group then the dedicated group.
    groups: HashMap<Region, [Group; 2]>,
}

impl fmt::Debug for ShardDirectory {
    /// The shards only: the indexes are derived from them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardDirectory")
            .field("shards", &self.shards)
            .finish()
    }
}

fn pool_index(pool: Isolation) -> usize {
    match pool {
        Isolation::Shared => 0,
        Isolation::Dedicated => 1,
    }
}

impl ShardDirectory {
    /// A directory of validated shards.
    ///
    /// # Errors
    /// [`crate::Error::DuplicateShard`] when two shards share an id.
    pub fn new(shards: impl IntoIterator<Item = Shard>) -> Result<Self> {
        let mut shards: Vec<Shard> = shards.into_iter().collect();
        // Sorted by id, so that groups and iteration do not depend on config order.
        shards.sort_by(|a, b| a.id().cmp(b.id()));
        let mut by_id = HashMap::with_capacity(shards.len());
        let mut groups: HashMap<Region, [Group; 2]> = HashMap::new();
        for (index, shard) in shards.iter().enumerate() {
            if by_id.insert(shard.id().clone(), index).is_some() {
                return Err(crate::Error::DuplicateShard {
                    shard: shard.id().to_string(),
                });
            }
            groups.entry(shard.region().clone()).or_default()[pool_index(shard.pool())]
                .members
                .push(Member {
                    seed: shard.seed,
                    index,
                    capacity: shard.capacity(),
                });
        }
        for group in groups.values_mut().flatten() {
            let mut capacities = group.members.iter().map(|m| m.capacity);
            let first = capacities.next();
            group.uniform = capacities.all(|c| Some(c) == first);
        }
        Ok(ShardDirectory {
            shards,
            by_id,
            groups,
        })
    }

    /// Validates every spec, then builds the directory.
    ///
    /// # Errors
    /// The first [`crate::Error::InvalidShard`] of a spec, or
    /// [`crate::Error::DuplicateShard`].
    pub fn from_specs(specs: impl IntoIterator<Item = ShardSpec>) -> Result<Self> {
        let shards = specs
            .into_iter()
            .map(ShardSpec::build)
            .collect::<Result<Vec<_>>>()?;
        ShardDirectory::new(shards)
    }

    /// Validates a [`DirectoryConfig`].
    ///
    /// # Errors
    /// As [`ShardDirectory::from_specs`].
    pub fn from_config(config: DirectoryConfig) -> Result<Self> {
        ShardDirectory::from_specs(config.shards)
    }

    /// Parses and validates a TOML directory (see [`DirectoryConfig`]).
    ///
    /// # Errors
    /// [`crate::Error::Parse`] for bad TOML or an unknown field, then as
    /// [`ShardDirectory::from_specs`].
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let config =
            toml::from_str(text).map_err(|e| crate::Error::toml("shard directory", text, &e))?;
        ShardDirectory::from_config(config)
    }

    /// Parses and validates a JSON directory (`{"shards": [...]}`).
    ///
    /// # Errors
    /// [`crate::Error::Parse`] for bad JSON or an unknown field, then as
    /// [`ShardDirectory::from_specs`].
    pub fn from_json_str(text: &str) -> Result<Self> {
        let config =
            serde_json::from_str(text).map_err(|e| crate::Error::json("shard directory", &e))?;
        ShardDirectory::from_config(config)
    }

    /// The directory as config, with current statuses.
    pub fn to_config(&self) -> DirectoryConfig {
        DirectoryConfig {
            shards: self.shards.iter().map(Shard::to_spec).collect(),
        }
    }

    /// The shard with this id.
    pub fn get(&self, id: &ShardId) -> Option<&Shard> {
        self.by_id.get(id).map(|&i| &self.shards[i])
    }

    /// Every shard, sorted by id.
    pub fn iter(&self) -> impl Iterator<Item = &Shard> {
        self.shards.iter()
    }

    /// Every shard's id with its connection template, real text included:
    /// what a schema manager is built from, so that the map's `connection` is
    /// the one place that says where data lives
    /// (`SqliteSchemaManager::builder().shards(directory.connections())`).
    pub fn connections(&self) -> impl Iterator<Item = (ShardId, String)> + '_ {
        self.shards
            .iter()
            .map(|s| (s.id().clone(), s.connection().expose().to_owned()))
    }

    /// How many shards there are.
    pub fn len(&self) -> usize {
        self.shards.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    /// Every region with at least one shard, sorted.
    pub fn regions(&self) -> BTreeSet<&Region> {
        self.groups.keys().collect()
    }

    /// The shards of one region and pool, whatever their status, sorted by id.
    pub fn in_group<'a>(
        &'a self,
        region: &Region,
        pool: Isolation,
    ) -> impl Iterator<Item = &'a Shard> + 'a {
        self.group(region, pool)
            .into_iter()
            .flat_map(|g| g.members.iter().map(|m| &self.shards[m.index]))
    }

    /// Sets a shard's status, live: resolvers sharing this directory see it on
    /// their next resolution. Returns the previous status.
    ///
    /// # Errors
    /// [`crate::Error::UnknownShard`] when no shard has this id.
    pub fn set_status(&self, id: &ShardId, status: ShardStatus) -> Result<ShardStatus> {
        let shard = self.get(id).ok_or_else(|| crate::Error::UnknownShard {
            shard: id.to_string(),
            field: "status",
        })?;
        Ok(shard.swap_status(status))
    }

    pub(crate) fn group(&self, region: &Region, pool: Isolation) -> Option<&Group> {
        self.groups.get(region).map(|g| &g[pool_index(pool)])
    }

    pub(crate) fn shard_at(&self, index: usize) -> &Shard {
        &self.shards[index]
    }

    pub(crate) fn index_of(&self, id: &ShardId) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// "3 shards: 1 active, 1 draining, 1 full" or "no shards", for error messages.
    pub(crate) fn describe_group(&self, region: &Region, pool: Isolation) -> String {
        let mut counts = [0usize; 3];
        for shard in self.in_group(region, pool) {
            counts[match shard.status() {
                ShardStatus::Active => 0,
                ShardStatus::Draining => 1,
                ShardStatus::Full => 2,
            }] += 1;
        }
        let total: usize = counts.iter().sum();
        if total == 0 {
            return "no shards".to_owned();
        }
        format!(
            "{total} shard{}: {} active, {} draining, {} full",
            if total == 1 { "" } else { "s" },
            counts[0],
            counts[1],
            counts[2]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str, region: &str, capacity: u32) -> ShardSpec {
        ShardSpec::new(id)
            .with_region(region)
            .with_capacity(capacity)
            .with_connection("/data/{tenant}")
    }

    #[test]
    fn groups_by_region_and_pool_sorted_by_id() {
        let dir = ShardDirectory::from_specs([
            spec("b", "eu", 5),
            spec("a", "eu", 5),
            spec("c", "eu", 5).with_pool(Isolation::Dedicated),
            spec("d", "us", 7),
            spec("e", "us", 9),
        ])
        .unwrap();
        let eu: Region = "eu".parse().unwrap();
        let ids: Vec<_> = dir
            .in_group(&eu, Isolation::Shared)
            .map(|s| s.id().as_str())
            .collect();
        assert_eq!(ids, ["a", "b"]);
        assert!(dir.group(&eu, Isolation::Shared).unwrap().uniform);
        assert!(
            !dir.group(&"us".parse().unwrap(), Isolation::Shared)
                .unwrap()
                .uniform
        );
        assert_eq!(
            dir.in_group(&"nowhere".parse().unwrap(), Isolation::Shared)
                .count(),
            0
        );
        assert_eq!(
            dir.describe_group(&eu, Isolation::Dedicated),
            "1 shard: 1 active, 0 draining, 0 full"
        );
    }

    #[test]
    fn duplicate_ids_are_rejected_by_name() {
        let err = ShardDirectory::from_specs([spec("a", "eu", 1), spec("a", "us", 1)]).unwrap_err();
        assert!(matches!(err, crate::Error::DuplicateShard { ref shard } if shard == "a"));
    }

    #[test]
    fn set_status_is_live_and_unknown_shards_are_named() {
        let dir = ShardDirectory::from_specs([spec("a", "eu", 1)]).unwrap();
        let id: ShardId = "a".parse().unwrap();
        assert_eq!(
            dir.set_status(&id, ShardStatus::Draining).unwrap(),
            ShardStatus::Active
        );
        assert_eq!(dir.get(&id).unwrap().status(), ShardStatus::Draining);
        let err = dir
            .set_status(&"zz".parse().unwrap(), ShardStatus::Full)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"shard "zz" named in status is not in the directory"#
        );
    }
}
