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

use super::connect::{with_session_limits, DbOptions, ACQUIRE_TIMEOUT, PING_IF_IDLE_FOR};
pub use super::error::BreaksConnection;
use super::request_context::{
    budget_deadline, budget_spent, in_transaction, on_test_clock, request_clock,
};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// How often, at most, the reaper looks at the idle connections.
const MAX_REAP_INTERVAL: Duration = Duration::from_secs(30);

/// How long connections may wait, sit and live.
#[derive(Debug, Clone, Copy)]
pub struct PoolLimits {
    /// How long a `run` waits for a free connection, or for a new one to open.
    pub acquire_timeout: Duration,
    /// Idle longer than this, a connection is closed (by the reaper, or when next taken).
    pub idle_timeout: Duration,
    /// Older than this, a connection is never handed out again (as sqlx's pool does), so server
    /// memory held by long-lived backends is returned and load balancers can rebalance. Each
    /// connection's own lifetime is up to a tenth shorter, at random, so that connections
    /// opened together do not all reconnect together.
    pub max_lifetime: Duration,
}

impl Default for PoolLimits {
    fn default() -> Self {
        PoolLimits {
            acquire_timeout: ACQUIRE_TIMEOUT,
            idle_timeout: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(1800),
        }
    }
}

/// `d` less up to `fraction` of it, at random.
fn jitter(d: Duration, fraction: f64) -> Duration {
    use rand::Rng;
    d.mul_f64(1.0 - rand::thread_rng().gen_range(0.0..fraction))
}

struct Idle {
    conn: PgConnection,
    since: Instant,
    /// When this connection's (jittered) lifetime ends.
    expires: Instant,
    _counted: Counted,
}

impl Idle {
    fn expired(&self, now: Instant, idle_timeout: Duration) -> bool {
        now >= self.expires || now.duration_since(self.since) > idle_timeout
    }
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
    connect: DbOptions,
    limits: PoolLimits,
    permits: Semaphore,
    idle: Mutex<Vec<Idle>>,
    open: Arc<AtomicU32>,
    max: u32,
}

impl WorkerPool {
    /// At most `max` connections, within `limits`. Called inside a Tokio runtime, it starts the
    /// reaper there, which closes idle connections past their idle timeout or lifetime even when
    /// nothing takes them; it ends with the pool.
    pub fn new(connect: PgConnectOptions, max: u32, limits: PoolLimits) -> Arc<WorkerPool> {
        let pool = Arc::new(WorkerPool {
            connect: DbOptions::new(with_session_limits(connect)),
            limits,
            permits: Semaphore::new(max.max(1) as usize),
            max: max.max(1),
            idle: Mutex::new(Vec::new()),
            open: Arc::new(AtomicU32::new(0)),
        });
        if tokio::runtime::Handle::try_current().is_ok() {
            let every = (limits.idle_timeout.min(limits.max_lifetime) / 4)
                .clamp(Duration::from_millis(10), MAX_REAP_INTERVAL);
            tokio::spawn(reap(Arc::downgrade(&pool), every));
        }
        pool
    }

    /// Runs `work` inside a transaction on one of this pool's connections: committed when `work`
    /// returns `Ok`, rolled back when it returns `Err`, both before the connection can be used
    /// again. If `work` is cancelled (the request's budget ran out, the client went away), the
    /// connection is closed, which ends the transaction on the server at once.
    pub async fn transaction<T, E>(
        &self,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<sqlx::Error> + BreaksConnection,
    {
        self.run(async |conn: &mut PgConnection| in_transaction(conn, work).await)
            .await
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
        let clock = request_clock();
        let deadline = budget.min(tokio::time::Instant::now() + self.limits.acquire_timeout);
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
        let result = tokio::time::timeout_at(budget, async {
            let conn = &mut lease.conn_mut().conn;
            let result = match &clock {
                None => work(conn).await,
                Some(account) => on_test_clock(conn, account, work).await,
            };
            // A transaction that `work` dropped unfinished has queued its ROLLBACK for the next
            // use of the connection; send it now, so that no lock it holds outlives this call.
            if conn.should_flush() && !matches!(&result, Err(e) if e.breaks_connection()) {
                conn.ping().await?;
            }
            Ok::<_, E>(result)
        })
        .await
        .map_err(|_| E::from(budget_spent()))?;
        let result = match result {
            Ok(result) => result,
            Err(flush_failed) => {
                drop(lease);
                return Err(flush_failed);
            }
        };
        match &result {
            Err(e) if e.breaks_connection() => drop(lease),
            _ => lease.give_back(),
        }
        result
    }

    /// Takes the idle connections past their idle timeout or lifetime out of the pool.
    fn take_expired(&self) -> Vec<Idle> {
        let now = Instant::now();
        let mut idle = self.lock();
        let (expired, kept) = std::mem::take(&mut *idle)
            .into_iter()
            .partition(|c| c.expired(now, self.limits.idle_timeout));
        *idle = kept;
        expired
    }

    /// An idle connection (pinged if it sat a while), else a new one.
    async fn checkout(&self, deadline: tokio::time::Instant) -> Result<Idle, sqlx::Error> {
        loop {
            // (The lock is released before any await below.)
            let popped = self.lock().pop();
            let Some(mut idle) = popped else { break };
            if idle.expired(Instant::now(), self.limits.idle_timeout) {
                continue;
            }
            if idle.since.elapsed() > PING_IF_IDLE_FOR {
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
            expires: now + jitter(self.limits.max_lifetime, 0.1),
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
            if Instant::now() < idle.expires {
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
    connect: DbOptions,
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
            connect: DbOptions::new(connect),
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
        let pool = WorkerPool::new(self.connect.expose().clone(), size, PoolLimits::default());
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

/// Every `every` (less up to a quarter, at random, so that the workers' reapers do not wake
/// together), closes the pool's idle connections past their idle timeout or lifetime. Holds
/// only a weak handle between rounds, and ends when the pool is gone.
async fn reap(pool: std::sync::Weak<WorkerPool>, every: Duration) {
    loop {
        tokio::time::sleep(jitter(every, 0.25)).await;
        let Some(strong) = pool.upgrade() else { return };
        let expired = strong.take_expired();
        drop(strong);
        for idle in expired {
            // Terminate politely, but never wait on a server that does not answer.
            let _ = tokio::time::timeout(Duration::from_secs(1), idle.conn.close()).await;
        }
    }
}
