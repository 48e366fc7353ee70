//! Pool settings shared by every pool this crate opens.

use sqlx::Database;
use sqlx::pool::PoolOptions;

/// Pool options without sqlx's background reaper (no idle timeout, no
/// maximum lifetime, no minimum size), so that no maintenance task runs.
///
/// sqlx 0.9.0's maintenance task can read a transiently underflowed idle
/// count and then spin through ~2^64 iterations without yielding, pinning a
/// core and hanging runtime shutdown (launchbadge/sqlx#3645; the fix,
/// #4289, is in no release yet). This SDK's pools are small and long-lived:
/// SQLite files need no reaping, and PostgreSQL connections are still checked
/// before use (`test_before_acquire`), so nothing is lost by going without.
pub(crate) fn pool_options<DB: Database>() -> PoolOptions<DB> {
    PoolOptions::new()
        .min_connections(0)
        .idle_timeout(None)
        .max_lifetime(None)
}
