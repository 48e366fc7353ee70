//! Relocation moves a tenant's objects to another region's store for a move
//! between regions: every object byte for byte, the marker last and
//! rewritten for the new region, the source untouched until it is purged;
//! running it again changes nothing; another tenant's marker at the target
//! stops it before anything is written.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use common::{Harness, list, plan, plan_with, put, read};
use provisioning_core::{Error, Placement, StorageInitializer};
use provisioning_storage::ObjectStoreInitializer;

async fn relocation_copies_every_object_and_the_marker(h: Harness) {
    let storage = h.initializer(&["uploads", "exports"]);
    let acme_eu = plan("acme", "eu-west");
    let acme_us = plan_with("acme", "us-east", "premium");
    storage.initialize(&acme_eu).await.unwrap();
    storage.suspend(&acme_eu).await.unwrap();
    let (eu, us) = (h.store("eu-west"), h.store("us-east"));
    let files = [
        ("uploads/a.pdf", b"%PDF-a".as_slice()),
        ("exports/2025/q1/report.csv", b"id,total\n1,2\n"),
    ];
    for (path, bytes) in files {
        put(eu.as_ref(), &format!("tenants/acme/{path}"), bytes).await;
    }
    let before = list(eu.as_ref(), "tenants/acme").await;

    assert!(!storage.keeps_objects(&acme_eu, &acme_us));
    assert!(storage.keeps_objects(&acme_eu, &plan_with("acme", "eu-west", "premium")));
    // Left at the target by an earlier stay there: gone after the copy.
    put(
        us.as_ref(),
        "tenants/acme/uploads/deleted-since.txt",
        b"old",
    )
    .await;
    storage.relocate(&acme_eu, &acme_us).await.unwrap();
    storage.relocate(&acme_eu, &acme_us).await.unwrap(); // again: the same

    assert_eq!(list(us.as_ref(), "tenants/acme").await, before);
    for (path, bytes) in files {
        assert_eq!(
            read(us.as_ref(), &format!("tenants/acme/{path}")).await,
            bytes
        );
    }
    let source = storage.read_marker(&acme_eu).await.unwrap().unwrap();
    let moved = storage.read_marker(&acme_us).await.unwrap().unwrap();
    assert_eq!(moved.region.as_str(), "us-east");
    assert_eq!(moved.plan.as_str(), "premium");
    assert_eq!((moved.created, moved.suspended), (source.created, true));
    assert_eq!(source.region.as_str(), "eu-west");
    // The source stays whole until the move purges it.
    assert_eq!(list(eu.as_ref(), "tenants/acme").await, before);
    storage.release_relocated(&acme_eu, &acme_us).await.unwrap();
    assert!(list(eu.as_ref(), "tenants/acme").await.is_empty());
    assert_eq!(list(us.as_ref(), "tenants/acme").await, before);
    // The tenant's storage works at its new region.
    storage.resume(&acme_us).await.unwrap();
    assert!(storage.preview(&acme_us).await.unwrap().exists);
}

/// An initializer with `uploads`, and acme initialized in eu-west with one
/// file.
async fn acme_in_eu(h: &Harness) -> (ObjectStoreInitializer, Placement) {
    let storage = h.initializer(&["uploads"]);
    let acme_eu = plan("acme", "eu-west");
    storage.initialize(&acme_eu).await.unwrap();
    put(
        h.store("eu-west").as_ref(),
        "tenants/acme/uploads/a.txt",
        b"a",
    )
    .await;
    (storage, acme_eu)
}

async fn another_tenants_marker_at_the_target_stops_relocation(h: Harness) {
    let (storage, acme_eu) = acme_in_eu(&h).await;
    let us = h.store("us-east");
    // A marker naming another tenant under acme's prefix in us-east.
    let foreign = br#"{"version":1,"tenant_id":"bolt","region":"us-east","plan":"free","created":"2025-03-01T12:30:05Z","layout":[]}"#;
    put(us.as_ref(), "tenants/acme/.tenant.json", foreign).await;

    let err = storage
        .relocate(&acme_eu, &plan("acme", "us-east"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert!(err.to_string().contains("bolt"), "{err}");
    // The move's rollback leaves what is not its own.
    storage
        .discard_relocated(&acme_eu, &plan("acme", "us-east"))
        .await
        .unwrap();
    assert_eq!(
        list(us.as_ref(), "tenants/acme").await,
        ["tenants/acme/.tenant.json"]
    );
}

async fn a_rolled_back_relocation_leaves_only_the_source(h: Harness) {
    let (storage, acme_eu) = acme_in_eu(&h).await;
    let acme_us = plan("acme", "us-east");
    let before = list(h.store("eu-west").as_ref(), "tenants/acme").await;
    storage.relocate(&acme_eu, &acme_us).await.unwrap();
    storage.discard_relocated(&acme_eu, &acme_us).await.unwrap();
    assert!(
        list(h.store("us-east").as_ref(), "tenants/acme")
            .await
            .is_empty()
    );
    assert_eq!(
        list(h.store("eu-west").as_ref(), "tenants/acme").await,
        before
    );
    // A region without a store: nothing was written there, nothing to undo.
    storage
        .discard_relocated(&acme_eu, &plan("acme", "ap-south"))
        .await
        .unwrap();
}

on_every_backend!(
    relocation_copies_every_object_and_the_marker,
    another_tenants_marker_at_the_target_stops_relocation,
    a_rolled_back_relocation_leaves_only_the_source,
);

/// Two regions configured with two stores over one folder: relocating is
/// refused, and neither the undo nor the release deletes the only copy.
#[cfg(feature = "fs")]
#[tokio::test]
async fn two_stores_over_one_folder_are_found_out_and_nothing_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let store = || -> std::sync::Arc<dyn object_store::ObjectStore> {
        std::sync::Arc::new(
            object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap(),
        )
    };
    let (eu, us) = (store(), store());
    let storage = provisioning_storage::ObjectStoreInitializer::builder()
        .region("eu-west".parse().unwrap(), eu.clone())
        .region("us-east".parse().unwrap(), us)
        .layout(["uploads"])
        .build()
        .unwrap();
    let (acme_eu, acme_us) = (plan("acme", "eu-west"), plan("acme", "us-east"));
    storage.initialize(&acme_eu).await.unwrap();
    put(eu.as_ref(), "tenants/acme/uploads/a.txt", b"a").await;
    let before = list(eu.as_ref(), "tenants/acme").await;
    let err = storage.relocate(&acme_eu, &acme_us).await.unwrap_err();
    assert!(err.to_string().contains("hold the same objects"), "{err}");
    storage.discard_relocated(&acme_eu, &acme_us).await.unwrap();
    storage.release_relocated(&acme_eu, &acme_us).await.unwrap();
    assert_eq!(list(eu.as_ref(), "tenants/acme").await, before);
}

#[tokio::test]
async fn two_regions_on_one_store_are_refused() {
    let store: std::sync::Arc<dyn object_store::ObjectStore> =
        std::sync::Arc::new(object_store::memory::InMemory::new());
    let storage = provisioning_storage::ObjectStoreInitializer::builder()
        .region("eu-west".parse().unwrap(), store.clone())
        .region("us-east".parse().unwrap(), store)
        .build()
        .unwrap();
    let acme = plan("acme", "eu-west");
    storage.initialize(&acme).await.unwrap();
    let err = storage
        .relocate(&acme, &plan("acme", "us-east"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("share one object store"), "{err}");
}
