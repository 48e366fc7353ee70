//! Request notices over `LISTEN`/`NOTIFY`: queueing a request for workers
//! and finishing one notify [`CHANNEL`] (in the same statement, so the
//! notice is sent when the write commits), and one listening connection per
//! store fans the notices out to every waiter and idle worker of the process.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use provisioning_core::{RequestId, RequestNotice, RequestNotices, Result};
use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::{Mutex, broadcast};

use crate::error::db_error;

/// The channel every store notifies, whatever its schema; the payload is
/// `"<schema> <request id>"`, so that stores in other schemas ignore it.
pub(super) const CHANNEL: &str = "provisioning_requests";

/// Notices a slow waiter may fall behind by before it is told it missed some.
const BACKLOG: usize = 1024;

/// The listening task's fan-out, and whether the task still runs (it ends
/// with the runtime it was spawned on, or when the store is dropped).
pub(super) struct Listening {
    sender: broadcast::Sender<RequestNotice>,
    alive: Arc<AtomicBool>,
}

/// The store's fan-out of notices, started by its first waiter and started
/// again by the next one if its task has ended.
pub(super) type Notices = Arc<Mutex<Option<Listening>>>;

/// A stream of the notices for `schema`, listening from now on: the `LISTEN`
/// has been executed when this returns.
pub(super) async fn subscribe(
    cell: &Notices,
    pool: &PgPool,
    schema: &str,
) -> Result<RequestNotices> {
    let receiver = {
        let mut slot = cell.lock().await;
        match slot.as_ref() {
            Some(listening) if listening.alive.load(Ordering::Acquire) => {
                listening.sender.subscribe()
            }
            _ => {
                let listening = start(Arc::downgrade(cell), pool, schema).await?;
                let receiver = listening.sender.subscribe();
                *slot = Some(listening);
                receiver
            }
        }
    };
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let notice = match receiver.recv().await {
            Ok(notice) => notice,
            Err(broadcast::error::RecvError::Lagged(_)) => RequestNotice::Missed,
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((notice, receiver))
    });
    Ok(stream.boxed())
}

/// Connects the listener (on a one-connection pool of its own, so that it
/// never takes one of the store's), listens, and spawns the task that
/// forwards notices until the store is dropped.
async fn start(
    cell: Weak<Mutex<Option<Listening>>>,
    pool: &PgPool,
    schema: &str,
) -> Result<Listening> {
    let own = crate::pool::pool_options::<sqlx::Postgres>()
        .max_connections(1)
        .connect_lazy_with((*pool.connect_options()).clone());
    let mut listener = PgListener::connect_with(&own)
        .await
        .map_err(|e| db_error(super::COMPONENT, "connecting the request listener", e))?;
    listener
        .listen(CHANNEL)
        .await
        .map_err(|e| db_error(super::COMPONENT, "listening for request notices", e))?;
    let (sender, _) = broadcast::channel(BACKLOG);
    let alive = Arc::new(AtomicBool::new(true));
    let task = Forward {
        listener,
        cell,
        prefix: format!("{schema} "),
        sender: sender.clone(),
        alive: Arc::clone(&alive),
    };
    tokio::spawn(task.run());
    Ok(Listening { sender, alive })
}

/// The forwarding task's state; dropping it (the task ended, or its
/// runtime shut down) marks the fan-out dead, so the next waiter starts
/// another.
struct Forward {
    listener: PgListener,
    cell: Weak<Mutex<Option<Listening>>>,
    prefix: String,
    sender: broadcast::Sender<RequestNotice>,
    alive: Arc<AtomicBool>,
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::Release);
    }
}

impl Forward {
    /// Forwards notices until the store is gone (checked at each notice: a
    /// dropped store's listener ends at the next notice on the channel).
    async fn run(mut self) {
        loop {
            let notice = match self.listener.try_recv().await {
                Ok(Some(notification)) => {
                    let Some(id) = notification.payload().strip_prefix(&self.prefix) else {
                        continue;
                    };
                    match id.parse::<RequestId>() {
                        Ok(id) => RequestNotice::Changed(id),
                        Err(_) => continue,
                    }
                }
                // The connection dropped and was made again (listening
                // again): what was sent meanwhile is lost.
                Ok(None) => RequestNotice::Missed,
                Err(error) => {
                    tracing::warn!(%error, "request listener failed; listening again");
                    self.reconnected().await;
                    RequestNotice::Missed
                }
            };
            if self.cell.strong_count() == 0 {
                return;
            }
            // No receiver at the moment is fine: waiters come and go.
            let _ = self.sender.send(notice);
        }
    }

    /// Waits until the listener answers a query again (reconnecting and
    /// listening again if its connection was lost), retrying every second,
    /// so that `Missed` is sent only once notices flow again.
    async fn reconnected(&mut self) {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if sqlx::query("SELECT 1")
                .execute(&mut self.listener)
                .await
                .is_ok()
            {
                return;
            }
            if self.cell.strong_count() == 0 {
                return;
            }
        }
    }
}
