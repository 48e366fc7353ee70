//! Suspend and resume record the state in the marker, idempotently, and touch
//! nothing else.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use chrono::Utc;
use common::{Harness, Write, marker, plan, read, snapshot};
use provisioning_core::{Error, StorageInitializer};

async fn suspend_and_resume_rewrite_the_marker(h: Harness) {
    let acme = plan("acme", "eu-west");
    let (storage, probe) = h.probed(&["uploads"], "eu-west");
    storage.initialize(&acme).await.unwrap();
    let eu = h.store("eu-west");
    let folders = snapshot(eu.as_ref(), "tenants/acme/uploads").await;
    let initialized = marker(eu.as_ref(), "acme").await;
    probe.clear();

    let before = Utc::now();
    storage.suspend(&acme).await.unwrap();
    let suspended = marker(eu.as_ref(), "acme").await;
    assert!(suspended.suspended);
    let at = suspended.suspended_at.expect("suspended_at is set");
    assert!(at >= before - chrono::Duration::seconds(1) && at <= Utc::now());
    assert_eq!(suspended.created, initialized.created);
    assert_eq!(suspended.layout, initialized.layout);

    // Suspending again keeps the first timestamp and writes nothing.
    let bytes = read(eu.as_ref(), "tenants/acme/.tenant.json").await;
    storage.suspend(&acme).await.unwrap();
    assert_eq!(read(eu.as_ref(), "tenants/acme/.tenant.json").await, bytes);

    storage.resume(&acme).await.unwrap();
    let resumed = marker(eu.as_ref(), "acme").await;
    assert!(!resumed.suspended);
    assert_eq!(resumed.suspended_at, None);
    assert!(resumed.resumed_at.expect("resumed_at is set") >= at);

    let bytes = read(eu.as_ref(), "tenants/acme/.tenant.json").await;
    storage.resume(&acme).await.unwrap();
    assert_eq!(read(eu.as_ref(), "tenants/acme/.tenant.json").await, bytes);

    // Only the marker was ever written, once per real change.
    let marker_put = Write::Put("tenants/acme/.tenant.json".into());
    assert_eq!(probe.writes(), [marker_put.clone(), marker_put]);
    assert_eq!(snapshot(eu.as_ref(), "tenants/acme/uploads").await, folders);

    // A suspended tenant that is initialized again stays suspended.
    storage.suspend(&acme).await.unwrap();
    storage.initialize(&acme).await.unwrap();
    assert!(marker(eu.as_ref(), "acme").await.suspended);
}

async fn suspending_an_uninitialized_tenant_is_not_found(h: Harness) {
    let storage = h.initializer(&["uploads"]);
    for result in [
        storage.suspend(&plan("ghost", "eu-west")).await,
        storage.resume(&plan("ghost", "eu-west")).await,
    ] {
        match result.unwrap_err() {
            Error::NotFound { kind, id } => {
                assert_eq!(kind, provisioning_core::Entity::TenantStorage);
                assert_eq!(id, "ghost");
            }
            other => panic!("expected NotFound, got {other:?}"),
        }
    }
    assert!(
        common::list(h.store("eu-west").as_ref(), "")
            .await
            .is_empty()
    );
}

on_every_backend!(
    suspend_and_resume_rewrite_the_marker,
    suspending_an_uninitialized_tenant_is_not_found,
);
