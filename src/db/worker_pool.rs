//! The connections each HTTP worker keeps for itself.
//!
//! Each actix-web worker runs its own single-threaded Tokio runtime, and a connection's socket is
//! driven by the runtime that opened it. A worker's pool is used only by that worker's requests
//! and opens its connections lazily, inside them, so a query's I/O stays on the thread serving
//! the request: one thread woken per reply from PostgreSQL, not two.
//!
//! It is not sqlx's `Pool` because that one confirms every connection with a round trip to the
//! server (a `Sync`) each time it is returned: a third message, and a third wake-up of a
//! PostgreSQL backend and of roomd, for every one-statement request. Here a connection goes back
//! to the pool when the work on it completed or failed with a statement error that leaves it
//! usable; one whose work was cancelled midway, or that failed at the connection level, is
//! closed instead, so no connection comes back in an unknown state. A connection that sat idle
//! for over a second (and so may have been cut by a restart or failover) is pinged before use.

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

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

tokio::task_local! {
    /// When the current request's database budget runs out (set by its first `run`).
    static BUDGET_ENDS: std::cell::Cell<Option<tokio::time::Instant>>;
}

/// Runs `request` with one database budget (`REQUEST_DB_BUDGET`) for all its pool work.
pub async fn with_request_budget<F: std::future::Future>(request: F) -> F::Output {
    BUDGET_ENDS.scope(std::cell::Cell::new(None), request).await
}

/// When the current request's budget ends (starting it now if this is its first use); outside a
/// request, each `run` has a budget of its own.
fn budget_deadline() -> tokio::time::Instant {
    let fresh = || tokio::time::Instant::now() + REQUEST_DB_BUDGET;
    BUDGET_ENDS
        .try_with(|ends| {
            let end = ends.get().unwrap_or_else(fresh);
            ends.set(Some(end));
            end
        })
        .unwrap_or_else(|_| fresh())
}

fn budget_spent() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "the database did not answer within the request's budget",
    ))
}
/// A connection idle longer than this is pinged before it is handed out.
pub const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);
/// Idle longer than this, a connection is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Older than this, a connection is closed when it comes back (as sqlx's pool does), so server
/// memory held by long-lived backends is returned and load balancers can rebalance.
const MAX_LIFETIME: Duration = Duration::from_secs(1800);

/// Whether an error means the connection it happened on can no longer be trusted.
pub trait BreaksConnection {
    fn breaks_connection(&self) -> bool;
}

impl BreaksConnection for sqlx::Error {
    fn breaks_connection(&self) -> bool {
        match self {
            // A statement error (constraint, bad input): the server is ready for the next one,
            // unless it is a fatal one that ends the session.
            sqlx::Error::Database(db) => super::is_fatal_database_error(db.as_ref()),
            sqlx::Error::RowNotFound => false,
            _ => true,
        }
    }
}

struct Idle {
    conn: PgConnection,
    since: Instant,
    opened: Instant,
    _counted: Counted,
}

/// One open connection in the pool's count, for as long as the connection exists, however it
/// ends (closed on purpose, or dropped with a cancelled request).
struct Counted(Arc<AtomicU32>);

impl Counted {
    fn new(open: &Arc<AtomicU32>) -> Counted {
        open.fetch_add(1, Ordering::Relaxed);
        Counted(open.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One worker's connections: at most `max` open, handed out in most-recently-used order.
pub struct WorkerPool {
    connect: super::DbOptions,
    acquire_timeout: Duration,
    permits: Semaphore,
    idle: Mutex<Vec<Idle>>,
    open: Arc<AtomicU32>,
    max: u32,
}

impl WorkerPool {
    /// At most `max` connections; waiting for one gives up after `acquire_timeout`.
    pub fn new(connect: PgConnectOptions, max: u32, acquire_timeout: Duration) -> WorkerPool {
        WorkerPool {
            connect: super::DbOptions::new(with_session_limits(connect)),
            acquire_timeout,
            permits: Semaphore::new(max.max(1) as usize),
            max: max.max(1),
            idle: Mutex::new(Vec::new()),
            open: Arc::new(AtomicU32::new(0)),
        }
    }

    /// Runs `work` on one of this pool's connections. Waiting for a free connection, or for a
    /// new one to open, gives up after the acquire timeout with `PoolTimedOut`.
    pub async fn run<T, E>(
        &self,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<sqlx::Error> + BreaksConnection,
    {
        let budget = budget_deadline();
        let deadline = budget.min(tokio::time::Instant::now() + self.acquire_timeout);
        let _permit = tokio::time::timeout_at(deadline, self.permits.acquire())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let mut lease = Lease {
            pool: self,
            conn: Some(self.checkout(deadline).await?),
        };
        // Past the budget the work is dropped mid-statement; so is the lease, which closes the
        // connection (its state is unknown).
        let result = tokio::time::timeout_at(budget, work(&mut lease.conn_mut().conn))
            .await
            .map_err(|_| E::from(budget_spent()))?;
        match &result {
            Err(e) if e.breaks_connection() => drop(lease),
            _ => lease.give_back(),
        }
        result
    }

    /// An idle connection (pinged if it sat a while), else a new one.
    async fn checkout(&self, deadline: tokio::time::Instant) -> Result<Idle, sqlx::Error> {
        loop {
            // (The lock is released before any await below.)
            let popped = self.lock().pop();
            let Some(mut idle) = popped else { break };
            let idle_for = idle.since.elapsed();
            if idle_for > IDLE_TIMEOUT {
                continue;
            }
            if idle_for > PING_IF_IDLE_FOR {
                match tokio::time::timeout_at(deadline, idle.conn.ping()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => continue,
                    Err(_) => return Err(sqlx::Error::PoolTimedOut),
                }
            }
            return Ok(idle);
        }
        let conn =
            tokio::time::timeout_at(deadline, PgConnection::connect_with(self.connect.expose()))
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)??;
        let now = Instant::now();
        Ok(Idle {
            conn,
            since: now,
            opened: now,
            _counted: Counted::new(&self.open),
        })
    }

    /// (open connections, idle connections).
    pub fn usage(&self) -> (u32, usize) {
        (self.open.load(Ordering::Relaxed), self.lock().len())
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Idle>> {
        // Only whole connections are pushed and popped: a panic cannot leave the list torn.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A connection out of the pool. Dropped without `give_back` (the work was cancelled, or failed
/// at the connection level), its connection is dropped too, which closes it.
struct Lease<'a> {
    pool: &'a WorkerPool,
    conn: Option<Idle>,
}

impl Lease<'_> {
    fn conn_mut(&mut self) -> &mut Idle {
        self.conn
            .as_mut()
            .expect("a lease holds its connection until it ends")
    }

    /// Returns the connection to the idle list, unless it has lived long enough.
    fn give_back(mut self) {
        if let Some(mut idle) = self.conn.take() {
            if idle.opened.elapsed() <= MAX_LIFETIME {
                idle.since = Instant::now();
                self.pool.lock().push(idle);
            }
        }
    }
}

/// The serving pools of one process: one per HTTP worker, `ROOMD_DB_POOL_SIZE` split between
/// them so that together they never open more than that (the first `total % workers` workers get
/// one more than the rest). Listed for the pool gauges, without keeping them alive: a pool (and
/// its connections) goes with the worker that owns it.
pub struct WorkerPools {
    connect: super::DbOptions,
    base: u32,
    extra: usize,
    /// (serves requests, the pool).
    pools: Mutex<Vec<(bool, Weak<WorkerPool>)>>,
}

impl WorkerPools {
    /// `workers` must not exceed `total` (each worker needs a connection).
    pub fn new(connect: PgConnectOptions, total: u32, workers: usize) -> WorkerPools {
        let workers = u32::try_from(workers.max(1)).unwrap_or(u32::MAX);
        WorkerPools {
            connect: super::DbOptions::new(connect),
            base: (total / workers).max(1),
            extra: (total % workers) as usize,
            pools: Mutex::new(Vec::new()),
        }
    }

    /// A new pool for one HTTP worker (its share of the total), or with `max` connections for
    /// another single-threaded server (the metrics listener).
    pub fn add(&self, max: Option<u32>) -> Arc<WorkerPool> {
        let mut pools = self.lock();
        pools.retain(|(_, p)| p.strong_count() > 0);
        let size = max.unwrap_or_else(|| {
            let serving = pools.iter().filter(|(serving, _)| *serving).count();
            self.base + u32::from(serving < self.extra)
        });
        let pool = Arc::new(WorkerPool::new(
            self.connect.expose().clone(),
            size,
            ACQUIRE_TIMEOUT,
        ));
        pools.push((max.is_none(), Arc::downgrade(&pool)));
        pool
    }

    /// (open connections, idle connections) over all the pools.
    pub fn usage(&self) -> (u32, usize) {
        self.lock()
            .iter()
            .filter_map(|(_, p)| p.upgrade())
            .fold((0, 0), |(open, idle), p| {
                let (o, i) = p.usage();
                (open + o, idle + i)
            })
    }

    /// The most connections `add` hands out, so far, to the serving pools.
    pub fn serving_capacity(&self) -> u32 {
        self.lock()
            .iter()
            .filter(|(serving, _)| *serving)
            .filter_map(|(_, p)| p.upgrade())
            .map(|p| p.max)
            .sum()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(bool, Weak<WorkerPool>)>> {
        self.pools.lock().unwrap_or_else(|e| e.into_inner())
    }
}
