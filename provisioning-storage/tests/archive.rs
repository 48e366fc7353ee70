//! Archive moves every object, byte for byte, to
//! `archive/{tenant_id}/{timestamp}/`, and a retry after a crash in the middle
//! finishes the same archive.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use common::{Harness, Probe, Write, list, marker, plan, put, put_many, read};
use provisioning_core::{RemovalMode, StorageInitializer};
use provisioning_storage::TenantPaths;

/// The one archive folder of `tenant`, `archive/{tenant}/{timestamp}`.
async fn archive_folder(store: &dyn object_store::ObjectStore, tenant: &str) -> String {
    let mut folders: Vec<String> = list(store, &format!("archive/{tenant}"))
        .await
        .iter()
        .map(|p| p.split('/').take(3).collect::<Vec<_>>().join("/"))
        .collect();
    folders.dedup();
    assert_eq!(folders.len(), 1, "expected one archive folder: {folders:?}");
    folders.remove(0)
}

async fn archive_keeps_every_object(h: Harness) {
    let acme = plan("acme", "eu-west");
    let storage = h.initializer(&["uploads", "exports"]);
    storage.initialize(&acme).await.unwrap();
    let eu = h.store("eu-west");
    let files = [
        ("uploads/a.pdf", b"%PDF-a".as_slice()),
        ("exports/2025/q1/report.csv", b"id,total\n1,2\n"),
        ("loose.txt", b"loose"),
    ];
    for (path, bytes) in files {
        put(eu.as_ref(), &format!("tenants/acme/{path}"), bytes).await;
    }
    let marker_bytes = read(eu.as_ref(), "tenants/acme/.tenant.json").await;

    storage.remove(&acme, RemovalMode::Archive).await.unwrap();

    assert_eq!(list(eu.as_ref(), "tenants").await, Vec::<String>::new());
    let folder = archive_folder(eu.as_ref(), "acme").await;
    assert_eq!(
        list(eu.as_ref(), &folder).await,
        [
            format!("{folder}/.tenant.json"),
            format!("{folder}/exports/.keep"),
            format!("{folder}/exports/2025/q1/report.csv"),
            format!("{folder}/loose.txt"),
            format!("{folder}/uploads/.keep"),
            format!("{folder}/uploads/a.pdf"),
        ]
    );
    for (path, bytes) in files {
        assert_eq!(read(eu.as_ref(), &format!("{folder}/{path}")).await, bytes);
    }
    // The archived marker is the original plus the archive's timestamp, which
    // names the folder.
    let archived: provisioning_storage::TenantMarker =
        serde_json::from_slice(&read(eu.as_ref(), &format!("{folder}/.tenant.json")).await)
            .unwrap();
    let started = archived.archive_started_at.expect("timestamp recorded");
    let original: provisioning_storage::TenantMarker =
        serde_json::from_slice(&marker_bytes).unwrap();
    assert_eq!(archived.created, original.created);
    assert_eq!(
        TenantPaths::new(&"acme".parse().unwrap())
            .archive_root(started)
            .as_ref(),
        folder
    );
    if let Some(dir) = h.dir() {
        assert!(!dir.join("eu-west/tenants").exists());
    }

    // Archiving an archived tenant succeeds and writes nothing.
    let (storage, probe) = h.probed(&["uploads", "exports"], "eu-west");
    storage.remove(&acme, RemovalMode::Archive).await.unwrap();
    assert_eq!(probe.writes(), []);
}

async fn archive_moves_many_objects(h: Harness) {
    let count = h.many(2_000, 300);
    let acme = plan("acme", "eu-west");
    let storage = h.initializer(&["uploads"]);
    storage.initialize(&acme).await.unwrap();
    let eu = h.store("eu-west");
    put_many(eu.as_ref(), "acme", count).await;

    storage.remove(&acme, RemovalMode::Archive).await.unwrap();

    assert_eq!(list(eu.as_ref(), "tenants").await, Vec::<String>::new());
    let folder = archive_folder(eu.as_ref(), "acme").await;
    assert_eq!(list(eu.as_ref(), &folder).await.len(), count + 2);
    let sample = format!("{folder}/uploads/batch-7/file-00007.txt");
    assert_eq!(read(eu.as_ref(), &sample).await, b"file 7");
}

/// Fails the archive part-way with `fail`, checks the error is transient and the
/// tenant is half-moved, then retries without faults and checks the archive is
/// complete, in one folder.
async fn retry_finishes_the_archive(h: &Harness, fail: impl Fn(&Probe)) {
    let acme = plan("acme", "eu-west");
    let eu = h.store("eu-west");
    h.initializer(&["uploads", "exports"])
        .initialize(&acme)
        .await
        .unwrap();
    put_many(eu.as_ref(), "acme", 40).await;
    let total = list(eu.as_ref(), "tenants/acme").await.len();

    let (faulty, probe) = h.probed(&["uploads", "exports"], "eu-west");
    fail(&probe);
    let err = faulty
        .remove(&acme, RemovalMode::Archive)
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");

    // Half-moved: the marker still says whose prefix it is and when the archive
    // began.
    let started = marker(eu.as_ref(), "acme")
        .await
        .archive_started_at
        .expect("archive timestamp recorded before moving");
    let left = list(eu.as_ref(), "tenants/acme").await.len();
    assert!(left > 1 && left < total, "{left} of {total} left");
    assert!(probe.writes().iter().any(|w| matches!(w, Write::Copy(..))));

    // The retry, through a healthy store.
    h.initializer(&["uploads", "exports"])
        .remove(&acme, RemovalMode::Archive)
        .await
        .unwrap();

    assert_eq!(list(eu.as_ref(), "tenants").await, Vec::<String>::new());
    let folder = archive_folder(eu.as_ref(), "acme").await;
    assert_eq!(
        folder,
        TenantPaths::new(&"acme".parse().unwrap())
            .archive_root(started)
            .as_ref()
    );
    assert_eq!(list(eu.as_ref(), &folder).await.len(), total);
    let sample = format!("{folder}/uploads/batch-3/file-00035.txt");
    assert_eq!(read(eu.as_ref(), &sample).await, b"file 35");
}

async fn retry_after_a_failed_copy_finishes_the_archive(h: Harness) {
    retry_finishes_the_archive(&h, |probe| probe.fail_copies_after(10)).await;
}

async fn retry_after_a_failed_delete_finishes_the_archive(h: Harness) {
    // Copies succeed, originals stay: the retry copies them again and deletes.
    retry_finishes_the_archive(&h, |probe| probe.fail_deletes_after(10)).await;
}

on_every_backend!(
    archive_keeps_every_object,
    archive_moves_many_objects,
    retry_after_a_failed_copy_finishes_the_archive,
    retry_after_a_failed_delete_finishes_the_archive,
);
