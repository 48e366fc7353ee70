//! Initializing again changes nothing; a plan or layout change writes only what
//! is new; a marker that belongs to another region is a conflict.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::sync::Arc;

use common::{Harness, Write, list, marker, plan, plan_with, snapshot};
use provisioning_core::{Error, StorageInitializer};
use provisioning_storage::ObjectStoreInitializer;

async fn initializing_again_changes_nothing(h: Harness) {
    let acme = plan("acme", "eu-west");
    h.initializer(&["uploads", "exports"])
        .initialize(&acme)
        .await
        .unwrap();
    let eu = h.store("eu-west");
    let before = snapshot(eu.as_ref(), "").await;
    assert_eq!(before.len(), 3);

    let (storage, probe) = h.probed(&["uploads", "exports"], "eu-west");
    storage.initialize(&acme).await.unwrap();
    storage.initialize(&acme).await.unwrap();

    assert_eq!(probe.writes(), []);
    // Same objects, same bytes (marker included), same last-modified.
    assert_eq!(snapshot(eu.as_ref(), "").await, before);
}

async fn a_grown_layout_adds_only_the_new_folder(h: Harness) {
    let acme = plan("acme", "eu-west");
    h.initializer(&["uploads"]).initialize(&acme).await.unwrap();
    let eu = h.store("eu-west");
    let created = marker(eu.as_ref(), "acme").await.created;
    let keep_before = snapshot(eu.as_ref(), "tenants/acme/uploads").await;

    let (storage, probe) = h.probed(&["uploads", "exports"], "eu-west");
    storage.initialize(&acme).await.unwrap();

    assert_eq!(
        probe.writes(),
        [
            Write::Put("tenants/acme/exports/.keep".into()),
            Write::Put("tenants/acme/.tenant.json".into()),
        ]
    );
    assert_eq!(
        snapshot(eu.as_ref(), "tenants/acme/uploads").await,
        keep_before
    );
    let m = marker(eu.as_ref(), "acme").await;
    assert_eq!(m.layout, ["uploads", "exports"]);
    assert_eq!(m.created, created, "created is kept");
}

async fn a_plan_change_rewrites_only_the_marker(h: Harness) {
    let storage = h.initializer(&["uploads"]);
    storage.initialize(&plan("acme", "eu-west")).await.unwrap();
    let eu = h.store("eu-west");
    let created = marker(eu.as_ref(), "acme").await.created;

    let (storage, probe) = h.probed(&["uploads"], "eu-west");
    storage
        .initialize(&plan_with("acme", "eu-west", "premium"))
        .await
        .unwrap();

    assert_eq!(
        probe.writes(),
        [Write::Put("tenants/acme/.tenant.json".into())]
    );
    let m = marker(eu.as_ref(), "acme").await;
    assert_eq!(m.plan.as_str(), "premium");
    assert_eq!(m.created, created);
}

async fn a_marker_from_another_region_is_a_conflict(h: Harness) {
    // One physical store configured for two regions (a misconfiguration).
    let shared = h.store("eu-west");
    let storage = ObjectStoreInitializer::builder()
        .region("eu-west".parse().unwrap(), Arc::clone(&shared))
        .region("us-east".parse().unwrap(), Arc::clone(&shared))
        .layout(["uploads"])
        .build()
        .unwrap();
    storage.initialize(&plan("acme", "eu-west")).await.unwrap();
    let before = snapshot(shared.as_ref(), "").await;

    let err = storage
        .initialize(&plan("acme", "us-east"))
        .await
        .unwrap_err();

    match &err {
        Error::Conflict { kind, id, reason } => {
            assert_eq!(*kind, provisioning_core::Entity::TenantStorage);
            assert_eq!(id, "acme");
            assert_eq!(
                reason,
                "marker records region eu-west but the placement says us-east"
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(!err.is_transient());
    assert!(storage.preview(&plan("acme", "us-east")).await.is_err());
    assert_eq!(snapshot(shared.as_ref(), "").await, before);
    assert_eq!(list(shared.as_ref(), "").await.len(), 2);
}

on_every_backend!(
    initializing_again_changes_nothing,
    a_grown_layout_adds_only_the_new_folder,
    a_plan_change_rewrites_only_the_marker,
    a_marker_from_another_region_is_a_conflict,
);
