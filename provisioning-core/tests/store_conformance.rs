//! The store conformance suite against the in-memory store.
#![cfg(feature = "testing")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

#[tokio::test]
async fn in_memory_store_conforms() {
    let store = Arc::new(provisioning_core::InMemoryStore::new());
    provisioning_core::testing::store_conformance(store.clone()).await;
    // Twice on the same store: checks use fresh ids.
    provisioning_core::testing::store_conformance(store).await;
}
