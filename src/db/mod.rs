//! PostgreSQL access: one file per aggregate, plain async functions over a pool or connection.
//! Routes and workers share them; none of them knows about HTTP.

pub mod accounts;
pub mod api_keys;
pub mod callbacks;
pub mod embedded;
pub mod error;
pub mod list;
pub mod migrate;
pub mod participants;
pub mod rooms;
pub mod test_clocks;
pub mod tracks;
pub mod worker_pool;

pub use error::{DbError, OnConstraint};
pub use worker_pool::{PoolLimits, WorkerPool, WorkerPools};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{Connection, PgPool};
use std::time::Duration;
use worker_pool::{ACQUIRE_TIMEOUT, PING_IF_IDLE_FOR};

/// PostgreSQL connection options, password included, for structs that keep them: `Debug` prints
/// nothing of them (sqlx's own `Debug` of `PgConnectOptions` shows the password).
#[derive(Clone)]
pub struct DbOptions(PgConnectOptions);

impl DbOptions {
    pub fn new(options: PgConnectOptions) -> DbOptions {
        DbOptions(options)
    }

    pub fn expose(&self) -> &PgConnectOptions {
        &self.0
    }
}

impl std::fmt::Debug for DbOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbOptions([redacted])")
    }
}

/// A pool for work off the request path (the sweeper, the CLI, bootstrap) and for tools.
///
/// sqlx's default pings every connection before handing it out: a second round trip for every
/// query. Here only a connection that sat idle for a while (and so may have been cut by a database
/// restart or a failover) is pinged; under load none is. A busy connection that breaks fails its
/// query (503, retryable) and fails sqlx's ping on release, which drops it.
pub async fn pool(options: PgConnectOptions, size: u32) -> Result<PgPool, sqlx::Error> {
    pool_options(size)
        .connect_with(worker_pool::with_session_limits(options))
        .await
}

/// Like `pool`, connecting on first use (for workers that start with the server and must not
/// fail its start).
pub fn lazy_pool(options: PgConnectOptions, size: u32) -> PgPool {
    pool_options(size).connect_lazy_with(worker_pool::with_session_limits(options))
}

fn pool_options(size: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(size)
        .min_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_IF_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// Connects once, retrying with backoff (0.1 s doubling to 2 s) until `timeout` has passed: a
/// database that starts after roomd (compose, failover) is waited for, not failed on.
pub async fn wait_for(options: &PgConnectOptions, timeout: Duration) -> anyhow::Result<()> {
    use sqlx::Connection;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut delay = Duration::from_millis(100);
    loop {
        match sqlx::PgConnection::connect_with(options).await {
            Ok(conn) => {
                let _ = conn.close().await;
                return Ok(());
            }
            // Wrong credentials or a database that does not exist will not fix themselves.
            Err(e) if error::is_permanent_connect_error(&e) => {
                anyhow::bail!("could not connect to the database (DATABASE_URL): {e}")
            }
            Err(e) if tokio::time::Instant::now() + delay < deadline => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "database not reachable yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                anyhow::bail!(
                    "could not reach the database (DATABASE_URL) within {} s: {e}",
                    timeout.as_secs()
                )
            }
        }
    }
}

/// The row the first of `tries` finds: each a statement taking `$1`, `$2` (the `scope`, e.g. the
/// account and the parent) and `$3` (the value a path segment may be, e.g. a SID then a name),
/// tried in order on one connection.
pub async fn first_found<R>(
    conn: &mut sqlx::PgConnection,
    scope: [&str; 2],
    tries: impl IntoIterator<Item = (&str, &str)>,
) -> Result<Option<R>, sqlx::Error>
where
    R: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
{
    for (sql, value) in tries {
        let found = sqlx::query_as(sql)
            .bind(scope[0])
            .bind(scope[1])
            .bind(value)
            .fetch_optional(&mut *conn)
            .await?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}
