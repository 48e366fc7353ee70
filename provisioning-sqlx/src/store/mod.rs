//! Durable [`TenantStore`](provisioning_core::TenantStore)s: the catalog
//! (tenants, requests), the saga journal and the event outbox.

mod codec;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "sqlite")]
pub use sqlite::{Durability, SqliteStore};
