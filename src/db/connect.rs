//! Connecting to PostgreSQL: the session limits every connection of roomd's carries, options
//! whose `Debug` hides the password, sqlx pools for work off the request path, and waiting for a
//! database that starts after roomd.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{Connection, PgPool};
use std::time::Duration;

/// How long a request waits for a connection (all in use) or for a new one to open.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// The most one request spends on the database, from its first use of a pool to its last
/// result, however many statements and checkouts that takes. Past it the work is dropped (its
/// connection closed) and the request answers 503: a stalled or frozen server (SIGSTOP, a lock
/// held elsewhere, a network partition) costs a client seconds, never the length of the stall.
pub const REQUEST_DB_BUDGET: Duration = Duration::from_secs(4);
/// The server-side limits every connection of roomd's carries (`statement_timeout`,
/// `idle_in_transaction_session_timeout`): PostgreSQL cancels a statement, or ends a session
/// left idle inside a transaction, before the client-side budget above runs out.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(3);
pub const IDLE_IN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(10);

/// `options` with roomd's session limits.
pub fn with_session_limits(options: PgConnectOptions) -> PgConnectOptions {
    options.options([
        (
            "statement_timeout",
            format!("{}ms", STATEMENT_TIMEOUT.as_millis()),
        ),
        (
            "idle_in_transaction_session_timeout",
            format!("{}ms", IDLE_IN_TRANSACTION_TIMEOUT.as_millis()),
        ),
    ])
}

/// A connection idle longer than this is pinged before it is handed out.
pub const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

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

/// `options` without TLS when they reach PostgreSQL over a Unix socket, which carries none: as
/// libpq does, `sslmode` then applies only to TCP. Otherwise sqlx would ask for TLS on every new
/// socket connection (a wasted round trip), and refuse `sslmode=require` outright.
pub fn without_tls_on_sockets(options: PgConnectOptions) -> PgConnectOptions {
    if options.get_socket().is_some() || options.get_host().starts_with('/') {
        options.ssl_mode(PgSslMode::Disable)
    } else {
        options
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
        .connect_with(with_session_limits(options))
        .await
}

/// Like `pool`, connecting on first use (for workers that start with the server and must not
/// fail its start).
pub fn lazy_pool(options: PgConnectOptions, size: u32) -> PgPool {
    pool_options(size).connect_lazy_with(with_session_limits(options))
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
            Err(e) if super::error::is_permanent_connect_error(&e) => {
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

/// Runs `work` in a transaction on one of `pool`'s connections: committed when it returns `Ok`,
/// rolled back (the transaction dropped) when it returns `Err` (for work off the request path).
pub async fn transaction<T>(
    pool: &PgPool,
    work: impl AsyncFnOnce(&mut sqlx::PgConnection) -> Result<T, sqlx::Error>,
) -> Result<T, sqlx::Error> {
    let mut tx = pool.begin().await?;
    match work(&mut tx).await {
        Ok(value) => {
            tx.commit().await?;
            Ok(value)
        }
        Err(e) => {
            // Rolled back now: dropped, the transaction would end only when its connection is
            // next used, keeping its row locks (a `SKIP LOCKED` retry would pass over them).
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}
