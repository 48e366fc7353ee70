//! [`CancellationToken`]: cooperative cancellation of a run.
//!
//! Hand-written on `event-listener` because core must not depend on tokio (whose
//! `tokio-util` has the usual token); it is a flag and a wake-up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use event_listener::Event;

/// Asks a running saga to stop: the executor notices before the next step or
/// attempt, or while a step or a backoff is pending, and then compensates what ran.
///
/// Clones share the flag; cancelling one cancels all.
///
/// ```
/// use provisioning_core::CancellationToken;
///
/// let token = CancellationToken::new();
/// let handle = token.clone();
/// handle.cancel();
/// assert!(token.is_cancelled());
/// ```
#[derive(Debug, Clone, Default)]
pub struct CancellationToken {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    cancelled: AtomicBool,
    event: Event,
}

impl CancellationToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels every holder of this token. Idempotent.
    pub fn cancel(&self) {
        if !self.inner.cancelled.swap(true, Ordering::SeqCst) {
            self.inner.event.notify(usize::MAX);
        }
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// Completes once the token is cancelled.
    pub async fn cancelled(&self) {
        loop {
            if self.is_cancelled() {
                return;
            }
            let listener = self.inner.event.listen();
            // Checked again after registering, so a cancel in between is not missed.
            if self.is_cancelled() {
                return;
            }
            listener.await;
        }
    }
}
