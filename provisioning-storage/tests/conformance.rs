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
        provisioning_core::testing::storage_conformance(storage.clone(), |tenant| {
            plan(tenant.as_str(), region)
        })
        .await;
        // A region the initializer has no store for.
        let tenant = provisioning_core::testing::unique_tenant("refused");
        let nowhere = plan(tenant.as_str(), "zz-nowhere-9");
        provisioning_core::testing::storage_bad_input_is_refused_and_writes_nothing(
            &*storage, &nowhere,
        )
        .await;
    }
}

on_every_backend!(storage_conforms);
