//! (3) The placement configuration: the plan policy and the shard map, from
//! `--config FILE` or the built-in default (`config/default.toml`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use std::collections::BTreeMap;

use provisioning_core::ShardId;
use provisioning_sharding::{
    ConnectionTarget, FallbackRegions, PlacementRules, ShardDirectory, ShardSpec, ShardStatus,
};
use serde::Deserialize;

use crate::workflows::Quotas;

/// The built-in configuration: two regions, each with a shared shard and a
/// dedicated pool, and the default plan policy.
pub(crate) const DEFAULT: &str = include_str!("../config/default.toml");

/// The built-in configuration for PostgreSQL (`config --postgres`): the
/// catalog, and the same regions and pools, on the local server.
pub(crate) const POSTGRES: &str = include_str!("../config/postgres.toml");

/// The `--config` file. A process-wide setting chosen once by `main` before
/// any command runs, like the data directory, so that every command and the
/// server wire the SDK the same way without threading it through each call.
static CONFIG_FILE: OnceLock<PathBuf> = OnceLock::new();

/// The `--catalog` URL (or `PROVISIONING_HYBRID_CATALOG`), chosen once by
/// `main` as the config file is.
static CATALOG: OnceLock<ConnectionTarget> = OnceLock::new();

/// Makes every later command keep its catalog at `url` (PostgreSQL), over
/// the config file's `catalog` key.
pub(crate) fn use_catalog(url: ConnectionTarget) {
    // Set once, by `main`; a second call would be a bug, and keeps the first.
    let _ = CATALOG.set(url);
}

/// Where the catalog lives: `--catalog`, else the config file's `catalog`,
/// else `None`: the SQLite file in the data directory.
///
/// # Errors
/// A catalog that is not a `postgres://` or `postgresql://` URL, naming the
/// field and without its password.
pub(crate) fn catalog(
    placement: &PlacementConfig,
) -> Result<Option<ConnectionTarget>, Box<dyn std::error::Error>> {
    let (field, url) = match (CATALOG.get(), &placement.catalog) {
        (Some(url), _) => ("--catalog", url),
        (None, Some(url)) => ("catalog (config)", url),
        (None, None) => return Ok(None),
    };
    if !crate::postgres::is_url(url.expose()) {
        return Err(format!(
            "invalid {field}: {url} is not a postgres:// or postgresql:// URL \
             (omit it for the SQLite catalog in the data directory)"
        )
        .into());
    }
    Ok(Some(url.clone()))
}

/// Makes every later [`load`] read `path` instead of the built-in default.
pub(crate) fn use_file(path: PathBuf) {
    // Set once, by `main`; a second call would be a bug, and keeps the first.
    let _ = CONFIG_FILE.set(path);
}

/// The file's shape: both parts optional except the shards.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    /// Omitted: the default policy (free and standard shared, premium and
    /// regulated dedicated, regulated strictly in its region).
    #[serde(default)]
    policy: Option<PlacementRules>,
    shards: Vec<ShardSpec>,
    /// Omitted: no fallbacks, every tenant stays in its region.
    #[serde(default)]
    fallbacks: FallbackRegions,
    /// Omitted: the built-in resource quotas.
    #[serde(default)]
    quotas: Quotas,
    /// Omitted: the SQLite catalog in the data directory. A PostgreSQL URL
    /// puts the catalog there (`--catalog` overrides it).
    #[serde(default)]
    catalog: Option<ConnectionTarget>,
}

/// The validated placement configuration.
#[derive(Debug)]
pub(crate) struct PlacementConfig {
    pub(crate) policy: PlacementRules,
    pub(crate) directory: ShardDirectory,
    /// Where flexible tenants may be placed or moved outside their region.
    pub(crate) fallbacks: FallbackRegions,
    /// How many resources of each type a service's tier allows.
    pub(crate) quotas: Quotas,
    /// The catalog's PostgreSQL URL, if the file names one.
    pub(crate) catalog: Option<ConnectionTarget>,
}

/// The configuration in use: the `--config` file's, or the built-in one.
///
/// # Errors
/// The file cannot be read, is not valid TOML of this shape (naming the
/// field), or describes invalid shards or rules.
pub(crate) fn load() -> Result<PlacementConfig, Box<dyn std::error::Error>> {
    match CONFIG_FILE.get() {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("config {}: {e}", path.display()))?;
            parse(&text).map_err(|e| format!("config {}: {e}", path.display()).into())
        }
        None => parse(DEFAULT),
    }
}

/// The configuration file `--config` named, if any.
pub(crate) fn file() -> Option<&'static Path> {
    CONFIG_FILE.get().map(PathBuf::as_path)
}

/// How often a running server reads the shard statuses again.
pub(crate) const STATUS_REFRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// The file under the data directory that keeps shard statuses set by
/// operators (`drain`), over the configuration's: a drain outlives the
/// process that started it.
const STATUS_FILE: &str = "shard-status.json";

/// Applies the statuses operators set (see [`set_status`]) to `directory`.
/// A shard the configuration no longer has is ignored.
pub(crate) fn apply_statuses(
    data_dir: &Path,
    directory: &ShardDirectory,
) -> Result<(), Box<dyn std::error::Error>> {
    for (shard, status) in statuses(data_dir)? {
        if directory.get(&shard).is_some() {
            directory.set_status(&shard, status)?;
        }
    }
    Ok(())
}

/// Records `status` for `shard` under `data_dir`, for every later command
/// and server on that directory (written whole, then renamed into place).
pub(crate) fn set_status(
    data_dir: &Path,
    shard: &ShardId,
    status: ShardStatus,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut all = statuses(data_dir)?;
    all.insert(shard.clone(), status);
    let path = data_dir.join(STATUS_FILE);
    let staging = data_dir.join(format!("{STATUS_FILE}.new"));
    std::fs::write(&staging, serde_json::to_vec_pretty(&all)?)?;
    std::fs::rename(&staging, &path)?;
    Ok(())
}

fn statuses(data_dir: &Path) -> Result<BTreeMap<ShardId, ShardStatus>, Box<dyn std::error::Error>> {
    let path = data_dir.join(STATUS_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()).into())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(format!("{}: {e}", path.display()).into()),
    }
}

pub(crate) fn parse(text: &str) -> Result<PlacementConfig, Box<dyn std::error::Error>> {
    // Shown without the line the parser quotes: a connection may hold a password.
    let file: ConfigFile =
        toml::from_str(text).map_err(|e| provisioning_sharding::redacted_toml_error(&e, text))?;
    Ok(PlacementConfig {
        policy: file.policy.unwrap_or_default(),
        directory: ShardDirectory::from_specs(file.shards)?,
        fallbacks: file.fallbacks,
        quotas: file.quotas,
        catalog: file.catalog,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use provisioning_core::Isolation;

    #[test]
    fn the_built_in_config_has_two_regions_with_both_pools() {
        let placement = parse(DEFAULT).unwrap();
        for region in ["eu-west", "us-east"] {
            for pool in [Isolation::Shared, Isolation::Dedicated] {
                assert!(
                    placement
                        .directory
                        .iter()
                        .any(|s| s.region().as_str() == region && s.pool() == pool),
                    "{region} {pool}"
                );
            }
        }
        assert_eq!(placement.policy.plans.len(), 4);
        assert_eq!(placement.policy.overrides.len(), 1);
    }

    #[test]
    fn the_postgres_config_places_as_the_default_one_does() {
        let sqlite = parse(DEFAULT).unwrap();
        let postgres = parse(POSTGRES).unwrap();
        let shape = |c: &PlacementConfig| {
            c.directory
                .iter()
                .map(|s| (s.id().clone(), s.region().clone(), s.pool()))
                .collect::<Vec<_>>()
        };
        assert_eq!(shape(&sqlite), shape(&postgres));
        assert_eq!(sqlite.policy, postgres.policy);
        assert_eq!(sqlite.quotas, postgres.quotas);
        assert!(postgres.catalog.is_some());
        let urls: Vec<_> = postgres
            .directory
            .connections()
            .map(|(_, url)| url)
            .collect();
        assert!(urls.iter().all(|url| crate::postgres::is_url(url)));
        // Both ways of a dedicated tenant: a schema, and a database.
        assert!(urls.iter().any(|url| url.ends_with("?schema={tenant}")));
        assert!(urls.iter().any(|url| url.ends_with("/{tenant}")));
    }

    #[test]
    fn an_unknown_field_is_named() {
        let error = parse("shards = []\nregion = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown field `region`"), "{error}");
        let error = parse("[[shards]]\nid = \"a\"\nregoin = \"eu\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("regoin"), "{error}");
    }
}
