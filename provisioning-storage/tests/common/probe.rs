//! A store wrapper for tests: records every write (put, copy, delete) with its
//! path, measures how far listing runs ahead of deleting, and can fail the n-th
//! copy or delete the way a network error would, to simulate a crash mid-way.

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// A write the store saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    Put(String),
    Copy(String, String),
    Delete(String),
}

impl Write {
    /// Every path the write touched.
    pub fn paths(&self) -> Vec<&str> {
        match self {
            Write::Put(p) | Write::Delete(p) => vec![p],
            Write::Copy(from, to) => vec![from, to],
        }
    }
}

#[derive(Default)]
struct State {
    writes: Mutex<Vec<Write>>,
    listed: AtomicI64,
    deleted: AtomicI64,
    max_ahead: AtomicI64,
    /// Copies (or deletes) still allowed before each one fails; `usize::MAX` = never fail.
    copies_left: AtomicUsize,
    deletes_left: AtomicUsize,
}

/// Wraps a store; clones share the record.
#[derive(Clone)]
pub struct Probe {
    inner: Arc<dyn ObjectStore>,
    state: Arc<State>,
}

impl Probe {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        let state = State {
            copies_left: AtomicUsize::new(usize::MAX),
            deletes_left: AtomicUsize::new(usize::MAX),
            ..State::default()
        };
        Probe {
            inner,
            state: Arc::new(state),
        }
    }

    /// Lets `n` more copies succeed, then fails every copy.
    pub fn fail_copies_after(&self, n: usize) {
        self.state.copies_left.store(n, Ordering::SeqCst);
    }

    /// Lets `n` more deletes succeed, then fails every delete.
    pub fn fail_deletes_after(&self, n: usize) {
        self.state.deletes_left.store(n, Ordering::SeqCst);
    }

    pub fn writes(&self) -> Vec<Write> {
        self.state.writes.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.state.writes.lock().unwrap().clear();
    }

    /// The most objects that were listed but not yet deleted at any moment.
    pub fn max_listed_ahead_of_deleted(&self) -> i64 {
        self.state.max_ahead.load(Ordering::SeqCst)
    }

    fn record(&self, write: Write) {
        self.state.writes.lock().unwrap().push(write);
    }

    fn injected(what: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "Probe",
            source: format!("injected {what} failure").into(),
        }
    }

    fn take(counter: &AtomicUsize) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| match left {
                usize::MAX => Some(usize::MAX),
                0 => None,
                n => Some(n - 1),
            })
            .is_ok()
    }
}

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Probe({})", self.inner)
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Probe({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Probe {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.record(Write::Put(location.to_string()));
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.record(Write::Put(location.to_string()));
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let gate = self.clone();
        let locations = locations
            .and_then(move |location| {
                let allowed = Probe::take(&gate.state.deletes_left);
                futures_util::future::ready(if allowed {
                    Ok(location)
                } else {
                    Err(Probe::injected("delete"))
                })
            })
            .boxed();
        let probe = self.clone();
        self.inner
            .delete_stream(locations)
            .inspect(move |result| {
                if let Ok(location) = result {
                    probe.record(Write::Delete(location.to_string()));
                    probe.state.deleted.fetch_add(1, Ordering::SeqCst);
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let state = Arc::clone(&self.state);
        self.inner
            .list(prefix)
            .inspect(move |_| {
                let listed = state.listed.fetch_add(1, Ordering::SeqCst) + 1;
                let ahead = listed - state.deleted.load(Ordering::SeqCst);
                state.max_ahead.fetch_max(ahead, Ordering::SeqCst);
            })
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        if !Probe::take(&self.state.copies_left) {
            return Err(Probe::injected("copy"));
        }
        self.record(Write::Copy(from.to_string(), to.to_string()));
        self.inner.copy_opts(from, to, options).await
    }
}
