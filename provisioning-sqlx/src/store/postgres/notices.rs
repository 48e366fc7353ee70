//! Request notices over `LISTEN`/`NOTIFY`: queueing a request for workers
//! and finishing one notify [`CHANNEL`] (in the same statement, so the
//! notice is sent when the write commits), and one listening connection per
//! store fans the notices out to every waiter and idle worker of the process.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use provisioning_core::{RequestId, RequestNotice, RequestNotices, Result};
use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::{OnceCell, broadcast};

use crate::error::db_error;

/// The channel every store notifies, whatever its schema; the payload is
/// `"<schema> <request id>"`, so that stores in other schemas ignore it.
pub(super) const CHANNEL: &str = "provisioning_requests";

/// Notices a slow waiter may fall behind by before it is told it missed some.
const BACKLOG: usize = 1024;

/// The store's fan-out of notices, started by its first waiter.
pub(super) type Notices = Arc<OnceCell<broadcast::Sender<RequestNotice>>>;

/// A stream of the notices for `schema`, listening from now on: the `LISTEN`
/// has been executed when this returns.
pub(super) async fn subscribe(
    cell: &Notices,
    pool: &PgPool,
    schema: &str,
) -> Result<RequestNotices> {
    let sender = cell
        .get_or_try_init(|| start(Arc::downgrade(cell), pool, schema))
        .await?;
    let receiver = sender.subscribe();
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
    cell: Weak<OnceCell<broadcast::Sender<RequestNotice>>>,
    pool: &PgPool,
    schema: &str,
) -> Result<broadcast::Sender<RequestNotice>> {
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
    tokio::spawn(forward(
        listener,
        cell,
        format!("{schema} "),
        sender.clone(),
    ));
    Ok(sender)
}

async fn forward(
    mut listener: PgListener,
    cell: Weak<OnceCell<broadcast::Sender<RequestNotice>>>,
    prefix: String,
    sender: broadcast::Sender<RequestNotice>,
) {
    loop {
        let notice = match listener.try_recv().await {
            Ok(Some(notification)) => {
                let Some(id) = notification.payload().strip_prefix(&prefix) else {
                    continue;
                };
                match id.parse::<RequestId>() {
                    Ok(id) => RequestNotice::Changed(id),
                    Err(_) => continue,
                }
            }
            // The connection dropped and was made again: what was sent
            // meanwhile is lost.
            Ok(None) => RequestNotice::Missed,
            Err(error) => {
                tracing::warn!(%error, "request listener failed; listening again in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                RequestNotice::Missed
            }
        };
        // The store (every clone) is gone: nobody can subscribe any more.
        if cell.strong_count() == 0 {
            return;
        }
        // No receiver at the moment is fine: waiters come and go.
        let _ = sender.send(notice);
    }
}
