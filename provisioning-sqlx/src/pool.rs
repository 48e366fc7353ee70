//! Pool settings shared by every pool this crate opens.

use std::time::Duration;

use sqlx::pool::{PoolConnectionMetadata, PoolOptions};
use sqlx::{Connection, Database};

/// A connection idle for less than this is handed out without a ping.
pub(crate) const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Pool options without sqlx's background reaper (no idle timeout, no
/// maximum lifetime, no minimum size), so that no maintenance task runs.
///
/// sqlx 0.9.0's maintenance task can read a transiently underflowed idle
/// count and then spin through ~2^64 iterations without yielding, pinning a
/// core and hanging runtime shutdown (launchbadge/sqlx#3645; the fix,
/// #4289, is in no release yet). This SDK's pools are small and long-lived:
/// SQLite files need no reaping, and PostgreSQL connections are still checked
/// before use, so nothing is lost by going without.
///
/// The check before use is a ping only for a connection idle for
/// [`PING_AFTER_IDLE`] or longer (one that fails it is closed and another
/// taken). sqlx's default pings on every acquire: one more round trip for
/// each catalog write and schema step, which for a busy worker is all cost,
/// since a connection used a moment ago is alive. A server restart, or an
/// idle connection cut by the network, is still caught by the ping.
pub(crate) fn pool_options<DB: Database>() -> PoolOptions<DB> {
    PoolOptions::new()
        .min_connections(0)
        .idle_timeout(None)
        .max_lifetime(None)
        .test_before_acquire(false)
        .before_acquire(|conn: &mut DB::Connection, meta: PoolConnectionMetadata| {
            Box::pin(
                async move { Ok(meta.idle_for < PING_AFTER_IDLE || conn.ping().await.is_ok()) },
            )
        })
}
