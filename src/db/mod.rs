//! PostgreSQL access: one file per aggregate, plain async functions over a pool or connection.
//! Routes and workers share them; none of them knows about HTTP.

pub mod accounts;
pub mod embedded;
pub mod migrate;
pub mod rooms;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};
use std::sync::Mutex;
use std::time::Duration;

/// A connection idle longer than this is pinged before it is handed out.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// The pool the server and workers share.
///
/// sqlx's default pings every connection before handing it out: a second round trip for every
/// query. Here only a connection that sat idle for a while (and so may have been cut by a database
/// restart or a failover) is pinged; under load none is. A busy connection that breaks fails its
/// query (503, retryable) and fails sqlx's ping on release, which drops it.
pub async fn pool(options: PgConnectOptions, size: u32) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(size)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(3))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_IF_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(options)
        .await
}

/// The pools that serve requests: one per HTTP worker thread.
///
/// Each actix-web worker runs its own single-threaded Tokio runtime, and a connection's socket is
/// driven by the runtime that opened it. With one shared pool, a request on one worker often got a
/// connection opened by another, and every reply from PostgreSQL then woke two threads instead of
/// one. A worker's pool is created on its own thread and opens its connections lazily there, so
/// a query's I/O stays on the thread that serves the request. The serving connections are split
/// evenly between the workers (rounded up).
pub struct WorkerPools {
    options: PgPoolOptions,
    connect: PgConnectOptions,
    pools: Mutex<Vec<PgPool>>,
}

impl WorkerPools {
    /// `total` connections shared out among `workers` pools shaped like `template`.
    pub fn new(template: &PgPool, total: u32, workers: usize) -> WorkerPools {
        let workers = u32::try_from(workers.max(1)).unwrap_or(u32::MAX);
        WorkerPools {
            options: template
                .options()
                .clone()
                .max_connections(total.div_ceil(workers).max(1)),
            connect: (*template.connect_options()).clone(),
            pools: Mutex::new(Vec::new()),
        }
    }

    /// A new pool for the calling worker; call it on that worker's thread, inside its runtime.
    pub fn for_this_worker(&self) -> PgPool {
        let pool = self.options.clone().connect_lazy_with(self.connect.clone());
        self.lock().push(pool.clone());
        pool
    }

    /// (open connections, idle connections) over all the workers' pools.
    pub fn usage(&self) -> (u32, usize) {
        self.lock().iter().fold((0, 0), |(size, idle), p| {
            (size + p.size(), idle + p.num_idle())
        })
    }

    /// Forgets the pools (after the workers have stopped): their connections close as the last
    /// handles go.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<PgPool>> {
        // The list is only pushed to and read: a panic elsewhere cannot leave it half-written.
        self.pools.lock().unwrap_or_else(|e| e.into_inner())
    }
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

/// Unique-violation constraint name, if `e` is one.
pub fn violated_unique_constraint(e: &sqlx::Error) -> Option<&str> {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => db.constraint(),
        _ => None,
    }
}
