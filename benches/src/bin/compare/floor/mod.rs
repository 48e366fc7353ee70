//! The floor: hand-written sqlx code doing the same database and file work per
//! tenant as the SDK, with no orchestration, journal, events or ledgers of its
//! own. It is meant to be what a competent engineer would write by hand: the
//! same durability settings and pool sizes as the SDK's, statements prepared
//! once per connection, one transaction where one suffices; nothing padded,
//! nothing skipped.

pub(crate) mod postgres;
pub(crate) mod sqlite;

use std::path::{Path, PathBuf};

use crate::runner::Result;

/// Where a tenant's marker goes under a storage root: the SDK's path
/// convention (`{region}/tenants/{id}/.tenant.json`), so both sides create
/// the same folders and files.
pub(crate) fn marker_path(root: &Path, region: &str, tenant: &str) -> PathBuf {
    root.join(region)
        .join("tenants")
        .join(tenant)
        .join(".tenant.json")
}

/// Writes the tenant's marker file as the SDK's local store does: into a
/// staging file next to it, renamed into place (so a reader never sees half a
/// marker), no fsync (the local store does not sync either).
pub(crate) async fn write_marker(
    root: &Path,
    region: &str,
    tenant: &str,
    plan: &str,
) -> Result<()> {
    let path = marker_path(root, region, tenant);
    let body = serde_json::to_vec_pretty(&serde_json::json!({
        "version": 1,
        "tenant_id": tenant,
        "region": region,
        "plan": plan,
        "created": chrono_now(),
        "layout": [],
    }))?;
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut staging = path.clone().into_os_string();
        staging.push("#1");
        std::fs::write(&staging, body)?;
        std::fs::rename(&staging, &path)
    })
    .await??;
    Ok(())
}

/// Seconds since the epoch, as the marker's creation time (the floor needs
/// no calendar formatting to write a comparable file).
fn chrono_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How many tenant markers exist under a storage root's region: the check
/// that every tenant got its file, SDK and floor alike.
pub(crate) fn count_markers(root: &Path, region: &str) -> Result<usize> {
    let tenants = root.join(region).join("tenants");
    if !tenants.exists() {
        return Ok(0);
    }
    let mut n = 0;
    for entry in std::fs::read_dir(tenants)? {
        if entry?.path().join(".tenant.json").is_file() {
            n += 1;
        }
    }
    Ok(n)
}
