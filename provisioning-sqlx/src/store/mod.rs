//! Durable [`TenantStore`](provisioning_core::TenantStore)s: the catalog
//! (tenants, requests), the saga journal and the event outbox.

mod codec;
#[cfg(all(feature = "sharding", any(feature = "sqlite", feature = "postgres")))]
mod load;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sqlite::{Durability, SqliteStore};
