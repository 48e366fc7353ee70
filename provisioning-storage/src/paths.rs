//! The one path convention: every object of a tenant lives under
//! `tenants/{tenant_id}/`, its archive under `archive/{tenant_id}/{timestamp}/`.

use chrono::{DateTime, Utc};
use object_store::path::Path;
use provisioning_core::TenantId;

/// The folder that holds every tenant's prefix.
pub const TENANTS_ROOT: &str = "tenants";
/// The folder that holds archived tenants.
pub const ARCHIVE_ROOT: &str = "archive";
/// The marker object's name, directly under the tenant's prefix.
pub const MARKER_NAME: &str = ".tenant.json";
/// The zero-byte object that makes a layout folder exist (object stores have no
/// empty folders).
pub const KEEP_NAME: &str = ".keep";

/// How archive timestamps are written in paths: sortable, and without `:` so the
/// segment is also a valid file name on every local filesystem.
const ARCHIVE_TIMESTAMP_FORMAT: &str = "%Y%m%dT%H%M%S%.6fZ";

/// The paths of one tenant, built only from its validated [`TenantId`].
///
/// A `TenantId` is a lowercase slug (no `/`, no `.`), so every path here stays
/// under the tenant's own prefix; [`TenantPaths::contains`] compares with the
/// trailing `/`, so `acme` never matches `acme-eu`.
///
/// ```
/// use provisioning_storage::TenantPaths;
///
/// let acme = TenantPaths::new(&"acme".parse()?);
/// assert_eq!(acme.prefix(), "tenants/acme/");
/// assert_eq!(acme.marker().as_ref(), "tenants/acme/.tenant.json");
/// assert!(acme.contains(&"tenants/acme/uploads/a.pdf".into()));
/// assert!(!acme.contains(&"tenants/acme-eu/uploads/a.pdf".into()));
/// # Ok::<(), provisioning_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantPaths {
    tenant: TenantId,
    root: Path,
    prefix: String,
}

impl TenantPaths {
    /// The paths of `tenant`.
    pub fn new(tenant: &TenantId) -> Self {
        let root = Path::from_iter([TENANTS_ROOT, tenant.as_str()]);
        let prefix = format!("{root}/");
        TenantPaths {
            tenant: tenant.clone(),
            root,
            prefix,
        }
    }

    /// The tenant.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// `tenants/{tenant_id}`: the prefix to list (object_store matches whole
    /// segments, so this lists only this tenant's objects).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `tenants/{tenant_id}/`: the prefix with its trailing slash, as a string.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `tenants/{tenant_id}/.tenant.json`.
    pub fn marker(&self) -> Path {
        self.root.clone().join(MARKER_NAME)
    }

    /// `tenants/{tenant_id}/{folder}/` as a prefix string.
    pub fn folder_prefix(&self, folder: &str) -> String {
        format!("{}{folder}/", self.prefix)
    }

    /// `tenants/{tenant_id}/{folder}/.keep`: the object that makes `folder` exist.
    ///
    /// `folder` is normally a validated layout folder (see the builder's
    /// `layout`). Any other input still stays inside the prefix: object_store
    /// percent-encodes `.` and `..` segments, so they name nothing above.
    pub fn keep(&self, folder: &str) -> Path {
        Path::from_iter(self.root.parts().chain(folder.split('/').map(Into::into))).join(KEEP_NAME)
    }

    /// Whether `location` lies under this tenant's prefix (trailing slash included).
    pub fn contains(&self, location: &Path) -> bool {
        location.as_ref().starts_with(&self.prefix)
    }

    /// `archive/{tenant_id}/{timestamp}`: where an archive started at `started_at`
    /// keeps the tenant's objects, each at its path relative to the tenant prefix.
    pub fn archive_root(&self, started_at: DateTime<Utc>) -> Path {
        let stamp = started_at.format(ARCHIVE_TIMESTAMP_FORMAT).to_string();
        Path::from_iter([ARCHIVE_ROOT, self.tenant.as_str(), stamp.as_str()])
    }

    /// Where `location` goes in the archive under `archive_root`, or `None` when
    /// `location` is not under this tenant's prefix.
    pub fn archived(&self, archive_root: &Path, location: &Path) -> Option<Path> {
        if !self.contains(location) {
            return None;
        }
        let relative = location.prefix_match(&self.root)?;
        Some(Path::from_iter(archive_root.parts().chain(relative)))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn paths(id: &str) -> TenantPaths {
        TenantPaths::new(&id.parse().unwrap())
    }

    #[test]
    fn builds_the_convention() {
        let acme = paths("acme");
        assert_eq!(acme.root().as_ref(), "tenants/acme");
        assert_eq!(acme.prefix(), "tenants/acme/");
        assert_eq!(acme.marker().as_ref(), "tenants/acme/.tenant.json");
        assert_eq!(acme.folder_prefix("uploads"), "tenants/acme/uploads/");
        assert_eq!(acme.keep("uploads").as_ref(), "tenants/acme/uploads/.keep");
        assert_eq!(
            acme.keep("exports/daily").as_ref(),
            "tenants/acme/exports/daily/.keep"
        );
    }

    #[test]
    fn no_folder_input_leaves_the_prefix() {
        let acme = paths("acme");
        for hostile in ["..", "../acme-eu", "a/../../acme-eu", "."] {
            let keep = acme.keep(hostile);
            assert!(acme.contains(&keep), "{hostile:?} gave {keep}");
            assert!(!keep.parts().any(|p| p.as_ref() == ".."), "{keep}");
        }
    }

    #[test]
    fn prefix_matching_uses_the_trailing_slash() {
        let acme = paths("acme");
        assert!(acme.contains(&Path::from("tenants/acme/.tenant.json")));
        assert!(!acme.contains(&Path::from("tenants/acme-eu/.tenant.json")));
        assert!(!acme.contains(&Path::from("tenants/acme")));
        assert!(!acme.contains(&Path::from("archive/acme/x")));
    }

    #[test]
    fn archive_keeps_relative_paths() {
        let acme = paths("acme");
        let at = Utc.with_ymd_and_hms(2025, 3, 1, 12, 30, 5).unwrap();
        let root = acme.archive_root(at);
        assert_eq!(root.as_ref(), "archive/acme/20250301T123005.000000Z");
        let moved = acme
            .archived(&root, &Path::from("tenants/acme/uploads/a.pdf"))
            .unwrap();
        assert_eq!(
            moved.as_ref(),
            "archive/acme/20250301T123005.000000Z/uploads/a.pdf"
        );
        assert_eq!(
            acme.archived(&root, &Path::from("tenants/acme-eu/uploads/a.pdf")),
            None
        );
    }
}
