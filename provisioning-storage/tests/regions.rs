//! A tenant's objects live only in its region's store; a region without a store
//! is a typed error, and nothing is written anywhere.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use common::{Harness, REGIONS, list, plan};
use provisioning_core::{Error, RemovalMode, StorageInitializer};
use provisioning_storage::Error as StorageError;

async fn objects_live_in_the_tenants_region(h: Harness) {
    let storage = h.initializer(&["uploads"]);

    storage.initialize(&plan("acme", "eu-west")).await.unwrap();
    storage
        .initialize(&plan("globex", "us-east"))
        .await
        .unwrap();

    assert_eq!(
        list(h.store("eu-west").as_ref(), "").await,
        ["tenants/acme/.tenant.json", "tenants/acme/uploads/.keep"]
    );
    assert_eq!(
        list(h.store("us-east").as_ref(), "").await,
        [
            "tenants/globex/.tenant.json",
            "tenants/globex/uploads/.keep"
        ]
    );

    storage
        .remove(&plan("globex", "us-east"), RemovalMode::Purge)
        .await
        .unwrap();
    assert_eq!(
        list(h.store("us-east").as_ref(), "").await,
        Vec::<String>::new()
    );
    assert_eq!(list(h.store("eu-west").as_ref(), "").await.len(), 2);
}

async fn an_unknown_region_is_a_typed_error_and_writes_nothing(h: Harness) {
    let storage = h.initializer(&["uploads"]);
    let lost = plan("acme", "ap-south");

    let results = [
        storage.preview(&lost).await.map(drop),
        storage.initialize(&lost).await,
        storage.suspend(&lost).await,
        storage.resume(&lost).await,
        storage.remove(&lost, RemovalMode::Purge).await,
        storage.remove(&lost, RemovalMode::Archive).await,
    ];

    for result in results {
        match result.unwrap_err() {
            Error::NotFound { kind, id } => {
                assert_eq!(kind, provisioning_core::Entity::RegionStore);
                assert_eq!(id, "ap-south");
            }
            other => panic!("expected NotFound for the region, got {other:?}"),
        }
    }
    for region in REGIONS {
        assert_eq!(
            list(h.store(region).as_ref(), "").await,
            Vec::<String>::new()
        );
    }
    match storage.store(&"ap-south".parse().unwrap()).unwrap_err() {
        err @ StorageError::UnknownRegion { .. } => assert_eq!(
            err.to_string(),
            "no object store configured for region ap-south (configured: eu-west, us-east)"
        ),
        other => panic!("expected UnknownRegion, got {other:?}"),
    }
}

on_every_backend!(
    objects_live_in_the_tenants_region,
    an_unknown_region_is_a_typed_error_and_writes_nothing,
);
