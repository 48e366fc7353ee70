//! Shared test harness: runs one test body against a local folder (a temp dir),
//! an in-memory store and S3 (each test in its own prefix of one bucket). The S3
//! variants are `#[ignore]`d: they need the server named by
//! `PROVISIONING_TEST_S3_ENDPOINT` and run when asked for (`--include-ignored`,
//! as `.ci/run` does), failing loudly when it is missing.

#![allow(dead_code, unreachable_pub)] // each test file uses part of the harness

pub mod probe;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use provisioning_core::{Isolation, Placement, PlacementDecision, Region, Residency, ShardChoice};
use provisioning_storage::{ObjectStoreInitializer, TenantMarker};

#[allow(unused_imports)] // not every test file needs both
pub use probe::{Probe, Write};

/// The variable naming an S3-compatible endpoint, e.g. `http://127.0.0.1:5000`.
pub const S3_ENDPOINT_VAR: &str = "PROVISIONING_TEST_S3_ENDPOINT";
/// The bucket the S3 tests use (created if missing).
pub const S3_BUCKET: &str = "provisioning-storage-tests";

/// The regions every harness has.
pub const REGIONS: [&str; 2] = ["eu-west", "us-east"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Local,
    Memory,
    S3,
}

/// One store per region on one backend, and the temp dir that holds them.
pub struct Harness {
    pub backend: Backend,
    stores: BTreeMap<Region, Arc<dyn ObjectStore>>,
    _dir: Option<tempfile::TempDir>,
}

impl Harness {
    /// The harness on `backend`; panics when S3 is asked for without a server.
    pub async fn new(backend: Backend, test: &str) -> Harness {
        match backend {
            Backend::Local => Harness::local(),
            Backend::Memory => Harness::memory(),
            Backend::S3 => Harness::s3(test).await,
        }
    }

    #[cfg(feature = "fs")]
    fn local() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let mut builder = ObjectStoreInitializer::builder();
        for region in REGIONS {
            builder = builder.with_local(region.parse().unwrap(), dir.path());
        }
        Harness::from_initializer(Backend::Local, builder.build().unwrap(), Some(dir))
    }

    #[cfg(not(feature = "fs"))]
    fn local() -> Harness {
        unreachable!("local tests are compiled only with the `fs` feature")
    }

    fn memory() -> Harness {
        let mut builder = ObjectStoreInitializer::builder();
        for region in REGIONS {
            builder = builder.with_in_memory(region.parse().unwrap());
        }
        Harness::from_initializer(Backend::Memory, builder.build().unwrap(), None)
    }

    #[cfg(feature = "aws")]
    async fn s3(test: &str) -> Harness {
        let endpoint = s3_endpoint();
        let s3: Arc<dyn ObjectStore> = Arc::new(s3_store(&endpoint, S3_BUCKET).await);
        // One prefix per test run, so tests share the bucket without seeing
        // each other's objects.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let mut stores = BTreeMap::new();
        for region in REGIONS {
            let prefix = format!("{test}-{nanos}/{region}");
            let store: Arc<dyn ObjectStore> = Arc::new(object_store::prefix::PrefixStore::new(
                Arc::clone(&s3),
                prefix,
            ));
            stores.insert(region.parse().unwrap(), store);
        }
        Harness {
            backend: Backend::S3,
            stores,
            _dir: None,
        }
    }

    #[cfg(not(feature = "aws"))]
    async fn s3(_: &str) -> Harness {
        unreachable!("S3 tests are compiled only with the `aws` feature")
    }

    fn from_initializer(
        backend: Backend,
        init: ObjectStoreInitializer,
        dir: Option<tempfile::TempDir>,
    ) -> Harness {
        let stores = init
            .regions()
            .map(|r| (r.clone(), Arc::clone(init.store(r).unwrap())))
            .collect();
        Harness {
            backend,
            stores,
            _dir: dir,
        }
    }

    /// The raw store of `region`, to look at what the initializer did.
    pub fn store(&self, region: &str) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.stores[&region.parse::<Region>().unwrap()])
    }

    /// The local folder behind the stores, on the local backend.
    pub fn dir(&self) -> Option<&std::path::Path> {
        self._dir.as_ref().map(|d| d.path())
    }

    /// An initializer over this harness's stores with `layout`.
    pub fn initializer(&self, layout: &[&str]) -> ObjectStoreInitializer {
        self.initializer_with(layout, |store| store)
    }

    /// An initializer whose stores are wrapped by `wrap` (e.g. in a [`Probe`]).
    pub fn initializer_with(
        &self,
        layout: &[&str],
        wrap: impl Fn(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore>,
    ) -> ObjectStoreInitializer {
        let mut builder = ObjectStoreInitializer::builder().layout(layout.iter().copied());
        for (region, store) in &self.stores {
            builder = builder.region(region.clone(), wrap(Arc::clone(store)));
        }
        builder.build().unwrap()
    }

    /// An initializer whose `region` store is wrapped in a [`Probe`], and the probe.
    pub fn probed(&self, layout: &[&str], region: &str) -> (ObjectStoreInitializer, Probe) {
        let probe = Probe::new(self.store(region));
        let region: Region = region.parse().unwrap();
        let mut builder = ObjectStoreInitializer::builder().layout(layout.iter().copied());
        for (r, store) in &self.stores {
            let store = if *r == region {
                Arc::new(probe.clone()) as Arc<dyn ObjectStore>
            } else {
                Arc::clone(store)
            };
            builder = builder.region(r.clone(), store);
        }
        (builder.build().unwrap(), probe)
    }

    /// How many objects to use where a test wants "many": 10,000 locally and in
    /// memory, fewer against a real server to keep the run short (still more
    /// than one 1,000-key batch).
    pub fn many(&self, local: usize, remote: usize) -> usize {
        match self.backend {
            Backend::S3 => remote,
            Backend::Local | Backend::Memory => local,
        }
    }
}

/// The S3 endpoint the tests use; panics, naming the variable, without one.
#[cfg(feature = "aws")]
pub fn s3_endpoint() -> String {
    match std::env::var(S3_ENDPOINT_VAR) {
        Ok(endpoint) if !endpoint.is_empty() => endpoint,
        _ => panic!(
            "this test needs an S3-compatible server: set {S3_ENDPOINT_VAR} \
             (.ci/run starts moto with scripts/start-moto.sh)"
        ),
    }
}

/// An S3 store on `endpoint` (path-style, plain HTTP, dummy credentials) whose
/// bucket exists.
#[cfg(feature = "aws")]
pub async fn s3_store(endpoint: &str, bucket: &str) -> object_store::aws::AmazonS3 {
    create_bucket(endpoint, bucket).await;
    s3_builder(endpoint, bucket).build().unwrap()
}

#[cfg(feature = "aws")]
pub fn s3_builder(endpoint: &str, bucket: &str) -> object_store::aws::AmazonS3Builder {
    object_store::aws::AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .with_region("us-east-1")
        .with_bucket_name(bucket)
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
}

/// Creates `bucket` with a plain `PUT /{bucket}`, which moto accepts unsigned;
/// an existing bucket is fine.
#[cfg(feature = "aws")]
pub async fn create_bucket(endpoint: &str, bucket: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let host = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut stream = tokio::net::TcpStream::connect(&host)
        .await
        .unwrap_or_else(|e| panic!("{S3_ENDPOINT_VAR}={endpoint} is not reachable: {e}"));
    let request = format!(
        "PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.split_whitespace().nth(1).unwrap_or_default();
    assert!(
        status == "200" || response.contains("BucketAlreadyOwnedByYou"),
        "creating bucket {bucket} failed: {response}"
    );
}

/// Generates one test per backend for an `async fn body(h: Harness)` in scope
/// (test files declare `#[macro_use] mod common;`).
#[allow(unused_macros)] // tests/s3.rs has no per-backend body
macro_rules! on_every_backend {
    ($($body:ident),+ $(,)?) => {$(
        mod $body {
            use super::common::{Backend, Harness};

            #[cfg(feature = "fs")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn local() {
                let h = Harness::new(Backend::Local, stringify!($body)).await;
                super::$body(h).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn in_memory() {
                let h = Harness::new(Backend::Memory, stringify!($body)).await;
                super::$body(h).await;
            }

            #[cfg(feature = "aws")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs PROVISIONING_TEST_S3_ENDPOINT (an S3-compatible server)"]
            async fn s3() {
                let h = Harness::new(Backend::S3, stringify!($body)).await;
                super::$body(h).await;
            }
        }
    )+};
}

/// A plan for `tenant` in `region`.
pub fn plan(tenant: &str, region: &str) -> Placement {
    plan_with(tenant, region, "free")
}

/// A plan for `tenant` in `region` on the commercial plan `plan_name`.
pub fn plan_with(tenant: &str, region: &str, plan_name: &str) -> Placement {
    Placement::new(
        tenant.parse().unwrap(),
        PlacementDecision::new(
            plan_name.parse().unwrap(),
            Isolation::Shared,
            region.parse().unwrap(),
            Residency::Strict,
            "test",
        ),
        ShardChoice::new("shard-1".parse().unwrap(), region.parse().unwrap(), "test"),
    )
}

/// Every object path under `prefix` (`""` for all), sorted.
pub async fn list(store: &dyn ObjectStore, prefix: &str) -> Vec<String> {
    let prefix = (!prefix.is_empty()).then(|| Path::from(prefix));
    let mut paths: Vec<String> = store
        .list(prefix.as_ref())
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .unwrap();
    paths.sort();
    paths
}

/// Path, size, last-modified and bytes of every object under `prefix`, sorted:
/// equal snapshots mean nothing was written.
pub async fn snapshot(store: &dyn ObjectStore, prefix: &str) -> Vec<(String, Vec<u8>, String)> {
    let mut out = Vec::new();
    for path in list(store, prefix).await {
        let location = Path::from(path.as_str());
        let meta = store.head(&location).await.unwrap();
        let bytes = read(store, &path).await;
        out.push((path, bytes, meta.last_modified.to_rfc3339()));
    }
    out
}

/// The bytes of the object at `path`.
pub async fn read(store: &dyn ObjectStore, path: &str) -> Vec<u8> {
    store
        .get(&Path::from(path))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

/// Writes `bytes` at `path`.
pub async fn put(store: &dyn ObjectStore, path: &str, bytes: &[u8]) {
    store
        .put(&Path::from(path), PutPayload::from(bytes.to_vec()))
        .await
        .unwrap();
}

/// Writes `count` small user files under `tenants/{tenant}/uploads/`, spread over
/// nested folders, with bounded concurrency.
pub async fn put_many(store: &dyn ObjectStore, tenant: &str, count: usize) {
    use futures_util::StreamExt;
    futures_util::stream::iter(0..count)
        .map(|i| {
            let path = format!("tenants/{tenant}/uploads/batch-{}/file-{i:05}.txt", i % 16);
            async move {
                store
                    .put(&Path::from(path), PutPayload::from(format!("file {i}")))
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(32)
        .collect::<()>()
        .await;
}

/// The parsed marker at `tenants/{tenant}/.tenant.json`.
pub async fn marker(store: &dyn ObjectStore, tenant: &str) -> TenantMarker {
    let bytes = read(store, &format!("tenants/{tenant}/.tenant.json")).await;
    serde_json::from_slice(&bytes).unwrap()
}
