//! The `aws` feature end to end: an initializer built with `with_s3` against the
//! S3-compatible server named by `PROVISIONING_TEST_S3_ENDPOINT` (moto in CI, see
//! `scripts/start-moto.sh`), in a bucket of its own. `#[ignore]`d: it runs when
//! asked for (`--include-ignored`, as `.ci/run` does) and fails without a server.
//! Every behaviour test also runs on S3 (their `s3` variants).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

#[cfg(feature = "aws")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PROVISIONING_TEST_S3_ENDPOINT (an S3-compatible server)"]
async fn lifecycle_on_s3_through_with_s3() {
    use common::{create_bucket, list, marker, plan, put, s3_builder};
    use object_store::ObjectStore;
    use provisioning_core::{RemovalMode, StorageInitializer};
    use provisioning_storage::ObjectStoreInitializer;

    let endpoint = common::s3_endpoint();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let bucket = format!("provisioning-lifecycle-{nanos}");
    create_bucket(&endpoint, &bucket).await;

    let storage = ObjectStoreInitializer::builder()
        .with_s3("eu-west".parse().unwrap(), s3_builder(&endpoint, &bucket))
        .layout(["uploads", "exports"])
        .build()
        .unwrap();
    let store: &dyn ObjectStore = storage.store(&"eu-west".parse().unwrap()).unwrap().as_ref();
    let acme = plan("acme", "eu-west");
    let acme_eu = plan("acme-eu", "eu-west");

    storage.initialize(&acme).await.unwrap();
    storage.initialize(&acme).await.unwrap();
    storage.initialize(&acme_eu).await.unwrap();
    assert_eq!(
        list(store, "tenants/acme").await,
        [
            "tenants/acme/.tenant.json",
            "tenants/acme/exports/.keep",
            "tenants/acme/uploads/.keep",
        ]
    );
    put(store, "tenants/acme/uploads/a.pdf", b"a").await;

    storage.suspend(&acme).await.unwrap();
    assert!(marker(store, "acme").await.suspended);
    storage.resume(&acme).await.unwrap();
    assert!(!marker(store, "acme").await.suspended);

    storage.remove(&acme, RemovalMode::Archive).await.unwrap();
    assert_eq!(list(store, "tenants/acme").await, Vec::<String>::new());
    let archived = list(store, "archive/acme").await;
    assert_eq!(archived.len(), 4, "{archived:?}");
    assert!(archived.iter().any(|p| p.ends_with("/uploads/a.pdf")));

    storage.remove(&acme_eu, RemovalMode::Purge).await.unwrap();
    assert_eq!(list(store, "tenants").await, Vec::<String>::new());
    assert_eq!(list(store, "archive/acme").await, archived);
}
