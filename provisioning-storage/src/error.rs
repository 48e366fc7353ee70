//! The crate's one error type, and how it maps onto [`provisioning_core::Error`].

use std::path::PathBuf;

use provisioning_core::{Entity, Region, TenantId};

/// `Result` with this crate's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong configuring or running an
/// [`ObjectStoreInitializer`](crate::ObjectStoreInitializer).
///
/// The builder returns it directly; the [`StorageInitializer`] methods return
/// [`provisioning_core::Error`], converted with the `From` impl below, so callers
/// of the trait match on one type. [`Error::is_transient`] tells whether
/// retrying may succeed.
///
/// [`StorageInitializer`]: provisioning_core::StorageInitializer
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `build()` was called without any region.
    #[error("no region configured: call `region`, `with_local` or `with_in_memory` on the builder")]
    NoRegions,

    /// The same region was configured twice.
    #[error("region {region} is configured twice")]
    DuplicateRegion {
        /// The region.
        region: Region,
    },

    /// A layout folder name broke a rule.
    #[error("invalid layout folder {folder:?}: {rule}")]
    InvalidLayoutFolder {
        /// The folder, as given.
        folder: String,
        /// The rule it broke.
        rule: &'static str,
    },

    /// The bounded concurrency was set to zero.
    #[error("invalid concurrency 0: must be at least 1")]
    ZeroConcurrency,

    /// A local region folder could not be created or opened.
    #[error("cannot use local folder {path} for region {region}")]
    LocalRoot {
        /// The region it was meant for.
        region: Region,
        /// The folder.
        path: PathBuf,
        /// The I/O or object store error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },

    /// A cloud store builder rejected its configuration.
    #[error("cannot build the object store for region {region}")]
    StoreConfig {
        /// The region it was meant for.
        region: Region,
        /// object_store's error, naming what is missing.
        #[source]
        source: object_store::Error,
    },

    /// A tenant's region has no store: its objects may not go anywhere else.
    #[error(
        "no object store configured for region {region} (configured: {})",
        list(configured)
    )]
    UnknownRegion {
        /// The tenant's region.
        region: Region,
        /// The regions that are configured.
        configured: Vec<Region>,
    },

    /// A tenant's storage has no marker: it was never initialized (or was removed).
    #[error("storage of tenant {tenant} is not initialized")]
    NotInitialized {
        /// The tenant.
        tenant: TenantId,
    },

    /// The marker found under a tenant's prefix contradicts the plan.
    #[error("storage marker of tenant {tenant} conflicts with the placement: {reason}")]
    MarkerConflict {
        /// The tenant.
        tenant: TenantId,
        /// What differs, with both values.
        reason: String,
    },

    /// The marker object is not valid marker JSON.
    #[error("storage marker {path} is unreadable")]
    CorruptMarker {
        /// The marker's path.
        path: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },

    /// An object store call failed.
    #[error("{operation} {path} failed")]
    ObjectStore {
        /// The call (`put`, `head`, `list`, `copy`, `delete`...).
        operation: &'static str,
        /// The path (or prefix) it was made on.
        path: String,
        /// object_store's error.
        #[source]
        source: object_store::Error,
    },
}

fn list(regions: &[Region]) -> String {
    if regions.is_empty() {
        return "none".to_owned();
    }
    regions
        .iter()
        .map(Region::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Error {
    /// Whether retrying the same operation may succeed.
    ///
    /// Only object store failures that look like the network or the service
    /// (object_store's `Generic` errors, which carry connection failures, timeouts
    /// and 5xx answers after its own retries) qualify; not-found, precondition,
    /// permission and configuration errors fail the same way every time.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::ObjectStore { source, .. } => is_transient(source),
            _ => false,
        }
    }

    pub(crate) fn store(
        operation: &'static str,
        path: impl ToString,
        source: object_store::Error,
    ) -> Self {
        Error::ObjectStore {
            operation,
            path: path.to_string(),
            source,
        }
    }
}

fn is_transient(error: &object_store::Error) -> bool {
    // object_store reports connection failures, timeouts and 5xx answers (after its
    // own retries) as `Generic`; every other variant (not found, already exists,
    // precondition, permission, invalid path, not supported...) fails the same way
    // on a retry. A variant added later is treated as permanent: compensating is
    // safer than retrying forever.
    matches!(error, object_store::Error::Generic { .. })
}

impl From<Error> for provisioning_core::Error {
    fn from(error: Error) -> Self {
        use provisioning_core::Error as Core;
        let message = error.to_string();
        match error {
            Error::UnknownRegion { region, .. } => Core::NotFound {
                kind: Entity::RegionStore,
                id: region.to_string(),
            },
            Error::NotInitialized { tenant } => Core::NotFound {
                kind: Entity::TenantStorage,
                id: tenant.to_string(),
            },
            Error::MarkerConflict { tenant, reason } => Core::Conflict {
                kind: Entity::TenantStorage,
                id: tenant.to_string(),
                reason,
            },
            Error::InvalidLayoutFolder { rule, folder } => Core::InvalidInput {
                field: "layout",
                rule: format!("{folder:?} {rule}"),
            },
            Error::ObjectStore { ref source, .. } => {
                let transient = is_transient(source);
                Core::Backend {
                    component: "object store",
                    message,
                    transient,
                    source: Some(Box::new(error)),
                }
            }
            other => Core::Backend {
                component: "object store",
                message,
                transient: false,
                source: Some(Box::new(other)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic() -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: "connection reset".into(),
        }
    }

    fn not_found() -> object_store::Error {
        object_store::Error::NotFound {
            path: "tenants/acme/.tenant.json".into(),
            source: "404".into(),
        }
    }

    #[test]
    fn generic_store_errors_are_transient_backend_errors() {
        let err = Error::store("put", "tenants/acme/uploads/.keep", generic());
        assert!(err.is_transient());
        let core: provisioning_core::Error = err.into();
        assert!(core.is_transient());
        match core {
            provisioning_core::Error::Backend {
                component,
                message,
                source,
                ..
            } => {
                assert_eq!(component, "object store");
                assert_eq!(message, "put tenants/acme/uploads/.keep failed");
                assert!(source.is_some());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn not_found_and_permission_errors_are_permanent() {
        for source in [
            not_found(),
            object_store::Error::PermissionDenied {
                path: "x".into(),
                source: "403".into(),
            },
            object_store::Error::Precondition {
                path: "x".into(),
                source: "412".into(),
            },
        ] {
            let err = Error::store("get", "x", source);
            assert!(!err.is_transient());
            assert!(!provisioning_core::Error::from(err).is_transient());
        }
    }

    #[test]
    fn unknown_region_names_the_region() {
        let err = Error::UnknownRegion {
            region: "ap-south".parse().unwrap(),
            configured: vec!["eu-west".parse().unwrap(), "us-east".parse().unwrap()],
        };
        assert_eq!(
            err.to_string(),
            "no object store configured for region ap-south (configured: eu-west, us-east)"
        );
        let core: provisioning_core::Error = err.into();
        assert!(matches!(
            &core,
            provisioning_core::Error::NotFound { kind: Entity::RegionStore, id } if id == "ap-south"
        ));
        assert!(!core.is_transient());
    }
}
