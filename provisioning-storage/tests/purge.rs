//! Purge deletes every object under the tenant's prefix, the marker last,
//! streaming the listing (10,000 objects), and is safe to run again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use common::{Harness, Write, list, put, put_many};
use provisioning_core::{RemovalMode, StorageInitializer};

async fn purge_leaves_no_object_under_the_prefix(h: Harness) {
    let acme = plan("acme");
    let (storage, probe) = h.probed(&["uploads", "exports"], "eu-west");
    storage.initialize(&acme).await.unwrap();
    let eu = h.store("eu-west");
    put(eu.as_ref(), "tenants/acme/uploads/a.pdf", b"a").await;
    put(eu.as_ref(), "tenants/acme/exports/2025/q1/report.csv", b"r").await;
    put(eu.as_ref(), "tenants/acme/loose.txt", b"l").await;
    probe.clear();

    storage.remove(&acme, RemovalMode::Purge).await.unwrap();

    assert_eq!(list(eu.as_ref(), "").await, Vec::<String>::new());
    let mut deleted: Vec<_> = probe
        .writes()
        .iter()
        .map(|w| match w {
            Write::Delete(p) => p.clone(),
            other => panic!("purge wrote {other:?}"),
        })
        .collect();
    assert_eq!(
        deleted.last().map(String::as_str),
        Some("tenants/acme/.tenant.json"),
        "the marker goes last"
    );
    deleted.sort();
    assert_eq!(
        deleted,
        [
            "tenants/acme/.tenant.json",
            "tenants/acme/exports/.keep",
            "tenants/acme/exports/2025/q1/report.csv",
            "tenants/acme/loose.txt",
            "tenants/acme/uploads/.keep",
            "tenants/acme/uploads/a.pdf",
        ]
    );
    assert!(storage.read_marker(&acme).await.unwrap().is_none());
    if let Some(dir) = h.dir() {
        assert!(
            !dir.join("eu-west/tenants").exists(),
            "no empty folders are left behind"
        );
    }

    // Purging a purged tenant succeeds and writes nothing.
    probe.clear();
    storage.remove(&acme, RemovalMode::Purge).await.unwrap();
    assert_eq!(probe.writes(), []);
}

async fn purge_streams_ten_thousand_objects(h: Harness) {
    let count = h.many(10_000, 1_500);
    let acme = plan("acme");
    let (storage, probe) = h.probed(&["uploads"], "eu-west");
    storage.initialize(&acme).await.unwrap();
    let eu = h.store("eu-west");
    put_many(eu.as_ref(), "acme", count).await;
    assert_eq!(list(eu.as_ref(), "tenants/acme").await.len(), count + 2);

    storage.remove(&acme, RemovalMode::Purge).await.unwrap();

    assert_eq!(list(eu.as_ref(), "").await, Vec::<String>::new());
    let deletes = probe
        .writes()
        .iter()
        .filter(|w| matches!(w, Write::Delete(_)))
        .count();
    assert_eq!(deletes, count + 2);
    // Deleting kept pace with listing: the paths were never all in memory at once.
    let ahead = probe.max_listed_ahead_of_deleted();
    assert!(
        ahead <= 2_100 && (count < 10_000 || ahead < (count as i64) / 4),
        "listing ran {ahead} objects ahead of deleting"
    );
}

async fn purge_removes_a_half_initialized_tenant(h: Harness) {
    let eu = h.store("eu-west");
    put(eu.as_ref(), "tenants/acme/uploads/.keep", b"").await;
    put(eu.as_ref(), "tenants/acme/uploads/x.bin", b"x").await;
    let storage = h.initializer(&["uploads", "exports"]);

    storage
        .remove(&plan("acme"), RemovalMode::Purge)
        .await
        .unwrap();

    assert_eq!(list(eu.as_ref(), "").await, Vec::<String>::new());
}

fn plan(tenant: &str) -> provisioning_core::Placement {
    common::plan(tenant, "eu-west")
}

on_every_backend!(
    purge_leaves_no_object_under_the_prefix,
    purge_streams_ten_thousand_objects,
    purge_removes_a_half_initialized_tenant,
);
