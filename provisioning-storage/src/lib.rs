#![cfg_attr(feature = "fs", doc = include_str!("../README.md"))]
#![cfg_attr(not(feature = "fs"), doc = "# provisioning-storage")]
//!
//! ## What is where
//!
//! - **One path convention** ([`TenantPaths`]): `tenants/{tenant_id}/`, one
//!   zero-byte `.keep` object per layout folder (`tenants/acme/uploads/.keep`),
//!   and the marker `tenants/{tenant_id}/.tenant.json` ([`TenantMarker`]) written
//!   last, so a half-initialized tenant is recognisable. Archives go to
//!   `archive/{tenant_id}/{timestamp}/`. Paths are built only from a validated
//!   [`TenantId`](provisioning_core::TenantId) and matched with the trailing
//!   slash: `acme` never reaches `acme-eu`.
//! - **Region-aware** ([`ObjectStoreInitializerBuilder`]): one store per region;
//!   a tenant whose region has no store is an error, never a fallback.
//! - **Idempotent and resumable** ([`ObjectStoreInitializer`]): initializing
//!   twice writes nothing the second time; suspend and resume record the state in
//!   the marker; purge and archive stream the listing with bounded concurrency and
//!   finish on a retry after a crash.
//!
//! ## Errors
//!
//! The builder returns [`Error`]; the trait methods return
//! [`provisioning_core::Error`] (via `From<Error>`): store failures become
//! `Backend { component: "object store", .. }`, transient for connection,
//! timeout and server errors and permanent for not-found, precondition and
//! permission errors; an unconfigured region becomes `NotFound` on
//! `object store for region`.
//!
//! ## Limits
//!
//! Archiving copies objects within the store; on S3 a single copy is limited to
//! 5 GiB per object.

mod builder;
#[cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]
mod cloud;
mod error;
mod initializer;
mod layout;
mod marker;
mod paths;
mod relocation;
mod removal;

pub use builder::{DEFAULT_CONCURRENCY, ObjectStoreInitializerBuilder};
pub use error::{Error, Result};
pub use initializer::ObjectStoreInitializer;
pub use marker::{MARKER_VERSION, TenantMarker};
pub use paths::{ARCHIVE_ROOT, KEEP_NAME, MARKER_NAME, TENANTS_ROOT, TenantPaths};

/// The object_store version this crate is built on, re-exported so callers build
/// stores with exactly the types the builder takes.
pub use object_store;
