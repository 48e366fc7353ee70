//! The storage conformance kit (`provisioning_core::testing`) on every
//! backend: local folders, memory and S3, in both regions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::sync::Arc;

use common::{Harness, REGIONS, plan};

async fn storage_conforms(h: Harness) {
    for region in REGIONS {
        let storage = Arc::new(h.initializer(&["uploads", "exports"]));
        provisioning_core::testing::storage_conformance(storage, |tenant| {
            plan(tenant.as_str(), region)
        })
        .await;
    }
}

on_every_backend!(storage_conforms);
