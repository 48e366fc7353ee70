//! Initialization creates the layout and writes the marker last; the dry run
//! creates nothing; a half-initialized tenant is recognised and completed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use chrono::Utc;
use common::{Harness, Write, list, marker, plan, put};
use provisioning_core::StorageInitializer;

const LAYOUT: &[&str] = &["uploads", "exports", "exports/daily"];

async fn creates_layout_and_marker(h: Harness) {
    let storage = h.initializer(LAYOUT);
    let acme = plan("acme", "eu-west");
    let before = Utc::now();

    storage.initialize(&acme).await.unwrap();

    let eu = h.store("eu-west");
    assert_eq!(
        list(eu.as_ref(), "").await,
        [
            "tenants/acme/.tenant.json",
            "tenants/acme/exports/.keep",
            "tenants/acme/exports/daily/.keep",
            "tenants/acme/uploads/.keep",
        ]
    );
    for keep in ["uploads", "exports", "exports/daily"] {
        let bytes = common::read(eu.as_ref(), &format!("tenants/acme/{keep}/.keep")).await;
        assert!(bytes.is_empty(), "{keep}/.keep is not zero bytes");
    }
    let m = marker(eu.as_ref(), "acme").await;
    assert_eq!(m.version, 1);
    assert_eq!(m.tenant_id.as_str(), "acme");
    assert_eq!(m.region.as_str(), "eu-west");
    assert_eq!(m.plan.as_str(), "free");
    assert_eq!(m.layout, ["uploads", "exports", "exports/daily"]);
    assert!(!m.suspended);
    assert_eq!(m.suspended_at, None);
    assert_eq!(m.archive_started_at, None);
    assert!(m.created >= before - chrono::Duration::seconds(1) && m.created <= Utc::now());
}

async fn marker_is_written_last(h: Harness) {
    let (storage, probe) = h.probed(LAYOUT, "eu-west");

    storage.initialize(&plan("acme", "eu-west")).await.unwrap();

    let writes = probe.writes();
    assert_eq!(writes.len(), 4, "{writes:?}");
    assert_eq!(
        writes.last(),
        Some(&Write::Put("tenants/acme/.tenant.json".into()))
    );
    let mut keeps: Vec<_> = writes[..3].iter().flat_map(|w| w.paths()).collect();
    keeps.sort();
    assert_eq!(
        keeps,
        [
            "tenants/acme/exports/.keep",
            "tenants/acme/exports/daily/.keep",
            "tenants/acme/uploads/.keep",
        ]
    );
}

async fn dry_run_creates_nothing(h: Harness) {
    let storage = h.initializer(LAYOUT);
    let acme = plan("acme", "eu-west");

    let dry = storage.preview(&acme).await.unwrap();

    assert_eq!(
        dry.paths,
        [
            "tenants/acme/uploads/",
            "tenants/acme/exports/",
            "tenants/acme/exports/daily/",
            "tenants/acme/.tenant.json",
        ]
    );
    assert!(!dry.exists);
    assert!(list(h.store("eu-west").as_ref(), "").await.is_empty());

    storage.initialize(&acme).await.unwrap();
    let after = storage.preview(&acme).await.unwrap();
    assert_eq!(after.paths, dry.paths);
    assert!(after.exists);
}

async fn completes_a_half_initialized_tenant(h: Harness) {
    let eu = h.store("eu-west");
    // A crash after the first folder, before the marker.
    put(eu.as_ref(), "tenants/acme/uploads/.keep", b"").await;
    put(eu.as_ref(), "tenants/acme/uploads/early.txt", b"kept").await;
    let (storage, probe) = h.probed(LAYOUT, "eu-west");
    let acme = plan("acme", "eu-west");
    assert!(!storage.preview(&acme).await.unwrap().exists);
    assert!(storage.read_marker(&acme).await.unwrap().is_none());

    storage.initialize(&acme).await.unwrap();

    // Only what was missing was written, the marker last.
    assert_eq!(
        probe.writes().last(),
        Some(&Write::Put("tenants/acme/.tenant.json".into()))
    );
    assert!(
        !probe
            .writes()
            .contains(&Write::Put("tenants/acme/uploads/.keep".into()))
    );
    assert_eq!(
        list(eu.as_ref(), "").await,
        [
            "tenants/acme/.tenant.json",
            "tenants/acme/exports/.keep",
            "tenants/acme/exports/daily/.keep",
            "tenants/acme/uploads/.keep",
            "tenants/acme/uploads/early.txt",
        ]
    );
    assert!(storage.preview(&acme).await.unwrap().exists);
}

on_every_backend!(
    creates_layout_and_marker,
    marker_is_written_last,
    dry_run_creates_nothing,
    completes_a_half_initialized_tenant,
);

#[cfg(feature = "fs")]
#[tokio::test]
async fn local_layout_is_real_folders_under_the_region_folder() {
    let h = Harness::new(common::Backend::Local, "local_layout").await;
    h.initializer(&["uploads", "exports"])
        .initialize(&plan("acme", "us-east"))
        .await
        .unwrap();
    let root = h.dir().unwrap().join("us-east/tenants/acme");
    assert!(root.join("uploads").is_dir());
    assert!(root.join("exports").is_dir());
    assert!(root.join(".tenant.json").is_file());
    assert!(!h.dir().unwrap().join("eu-west/tenants").exists());
}
