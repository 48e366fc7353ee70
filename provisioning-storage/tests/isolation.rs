//! Removing tenant `acme` never touches tenant `acme-eu` (a tenant whose id
//! starts with the same letters), and no input can build a path outside the
//! tenant's prefix.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use common::{Harness, list, plan, put, snapshot};
use provisioning_core::{Error, RemovalMode, StorageInitializer, TenantId};
use provisioning_storage::{Error as StorageError, ObjectStoreInitializer};

/// `acme` and `acme-eu` initialized with files; `acme-eu` also has an archive.
async fn two_tenants(h: &Harness) {
    let storage = h.initializer(&["uploads", "exports"]);
    let eu = h.store("eu-west");
    for tenant in ["acme", "acme-eu"] {
        storage.initialize(&plan(tenant, "eu-west")).await.unwrap();
        put(
            eu.as_ref(),
            &format!("tenants/{tenant}/uploads/a.pdf"),
            tenant.as_bytes(),
        )
        .await;
    }
    put(
        eu.as_ref(),
        "archive/acme-eu/20240101T000000.000000Z/uploads/old.pdf",
        b"old",
    )
    .await;
}

async fn removing_acme_never_touches_acme_eu(h: Harness, mode: RemovalMode) {
    two_tenants(&h).await;
    let eu = h.store("eu-west");
    let neighbour = snapshot(eu.as_ref(), "tenants/acme-eu").await;
    let neighbour_archive = snapshot(eu.as_ref(), "archive/acme-eu").await;
    assert_eq!(neighbour.len(), 4);

    let (storage, probe) = h.probed(&["uploads", "exports"], "eu-west");
    storage
        .remove(&plan("acme", "eu-west"), mode)
        .await
        .unwrap();

    let writes = probe.writes();
    assert!(!writes.is_empty());
    for write in &writes {
        for path in write.paths() {
            assert!(
                path.starts_with("tenants/acme/") || path.starts_with("archive/acme/"),
                "{mode:?} of acme wrote {path}"
            );
        }
    }
    assert_eq!(
        list(eu.as_ref(), "tenants/acme").await,
        Vec::<String>::new()
    );
    assert_eq!(snapshot(eu.as_ref(), "tenants/acme-eu").await, neighbour);
    assert_eq!(
        snapshot(eu.as_ref(), "archive/acme-eu").await,
        neighbour_archive
    );
    let eu_marker = storage
        .read_marker(&plan("acme-eu", "eu-west"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(eu_marker.tenant_id.as_str(), "acme-eu");
}

async fn purging_acme_never_touches_acme_eu(h: Harness) {
    removing_acme_never_touches_acme_eu(h, RemovalMode::Purge).await;
}

async fn archiving_acme_never_touches_acme_eu(h: Harness) {
    removing_acme_never_touches_acme_eu(h, RemovalMode::Archive).await;
}

async fn initializing_acme_eu_leaves_acme_alone(h: Harness) {
    let storage = h.initializer(&["uploads"]);
    storage.initialize(&plan("acme", "eu-west")).await.unwrap();
    let eu = h.store("eu-west");
    let acme = snapshot(eu.as_ref(), "tenants/acme").await;

    storage
        .initialize(&plan("acme-eu", "eu-west"))
        .await
        .unwrap();
    storage.suspend(&plan("acme-eu", "eu-west")).await.unwrap();

    assert_eq!(snapshot(eu.as_ref(), "tenants/acme").await, acme);
    assert!(
        !storage
            .preview(&plan("acme", "eu-west"))
            .await
            .unwrap()
            .paths
            .is_empty()
    );
}

on_every_backend!(
    purging_acme_never_touches_acme_eu,
    archiving_acme_never_touches_acme_eu,
    initializing_acme_eu_leaves_acme_alone,
);

#[test]
fn tenant_ids_that_could_escape_are_rejected_before_any_path_exists() {
    for hostile in [
        "../acme-eu",
        "acme/../acme-eu",
        "acme/",
        "acme-eu/..",
        "tenants",
        "archive",
        "acme%2F..",
        "ACME",
        "acme\u{0}",
        "acme.eu",
    ] {
        assert!(
            matches!(TenantId::parse(hostile), Err(Error::InvalidTenantId { .. })),
            "{hostile:?} was accepted"
        );
    }
}

#[test]
fn layout_folders_that_could_escape_are_rejected_at_build() {
    for hostile in [
        "..",
        "../acme-eu",
        "uploads/../../x",
        ".tenant.json",
        "a//b",
        "a\\b",
    ] {
        let err = ObjectStoreInitializer::builder()
            .with_in_memory("eu-west".parse().unwrap())
            .layout(["uploads", hostile])
            .build()
            .unwrap_err();
        assert!(
            matches!(&err, StorageError::InvalidLayoutFolder { folder, .. } if folder == hostile),
            "{hostile:?}: {err:?}"
        );
    }
}
