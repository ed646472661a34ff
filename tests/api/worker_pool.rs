//! The HTTP workers' own connection pool, against a real database: reuse, bounds, and what
//! happens to a connection after an error, a cancellation or a server-side kill.

use crate::helpers::fresh_database;
use roomd::db::WorkerPool;
use sqlx::{PgConnection, PgPool};
use std::sync::Arc;
use std::time::Duration;

async fn backend_pid(pool: &WorkerPool) -> i32 {
    pool.run(async |c: &mut PgConnection| {
        sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(c)
            .await
    })
    .await
    .unwrap()
}

async fn kill(admin: &PgPool, pid: i32) {
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(admin)
        .await
        .unwrap();
    assert!(killed);
    // pg_terminate_backend only signals: wait until the backend is gone.
    for _ in 0..100 {
        let alive: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)")
                .bind(pid)
                .fetch_one(admin)
                .await
                .unwrap();
        if !alive {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("backend {pid} did not exit");
}

#[tokio::test]
async fn connections_are_reused_and_survive_statement_errors() {
    let db = fresh_database().await;
    let pool = WorkerPool::new(db.options.clone(), 4, Duration::from_secs(3));
    assert_eq!(pool.usage(), (0, 0), "connections open lazily");
    let first = backend_pid(&pool).await;
    assert_eq!(backend_pid(&pool).await, first);
    assert_eq!(pool.usage(), (1, 1));

    // A statement error leaves the session usable: the connection stays.
    let err = pool
        .run(async |c: &mut PgConnection| sqlx::query("SELECT 1/0").execute(c).await)
        .await
        .unwrap_err();
    assert!(matches!(err, sqlx::Error::Database(_)), "{err:?}");
    assert_eq!(backend_pid(&pool).await, first);
    assert_eq!(pool.usage(), (1, 1));
}

#[tokio::test]
async fn a_cancelled_query_closes_its_connection_instead_of_returning_it() {
    let db = fresh_database().await;
    let pool = WorkerPool::new(db.options.clone(), 1, Duration::from_secs(3));
    let first = backend_pid(&pool).await;
    let cancelled = tokio::time::timeout(
        Duration::from_millis(100),
        pool.run(async |c: &mut PgConnection| sqlx::query("SELECT pg_sleep(5)").execute(c).await),
    )
    .await;
    assert!(cancelled.is_err(), "the query should have been cut short");
    assert_eq!(
        pool.usage(),
        (0, 0),
        "the interrupted connection was closed"
    );
    // The next run gets a fresh connection (not one mid-way through a reply) at once.
    let started = std::time::Instant::now();
    let next = backend_pid(&pool).await;
    assert_ne!(next, first);
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// `n` tasks, each holding one of the pool's connections for `secs`.
fn sleep_on(
    pool: &Arc<WorkerPool>,
    n: usize,
    secs: f64,
) -> Vec<tokio::task::JoinHandle<Result<sqlx::postgres::PgQueryResult, sqlx::Error>>> {
    (0..n)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.run(async |c: &mut PgConnection| {
                    sqlx::query("SELECT pg_sleep($1)")
                        .bind(secs)
                        .execute(c)
                        .await
                })
                .await
            })
        })
        .collect()
}

#[tokio::test]
async fn at_most_max_connections_open_and_waiters_time_out() {
    let db = fresh_database().await;
    let pool = Arc::new(WorkerPool::new(
        db.options.clone(),
        2,
        Duration::from_millis(300),
    ));
    let sleepers = sleep_on(&pool, 6, 0.05);
    for s in sleepers {
        s.await.unwrap().unwrap();
    }
    assert_eq!(pool.usage(), (2, 2));

    // Both connections busy for longer than the acquire timeout: a third caller gives up.
    let busy = sleep_on(&pool, 2, 1.0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = pool
        .run(async |c: &mut PgConnection| sqlx::query("SELECT 1").execute(c).await)
        .await
        .unwrap_err();
    assert!(matches!(err, sqlx::Error::PoolTimedOut), "{err:?}");
    for b in busy {
        b.await.unwrap().unwrap();
    }
    assert_eq!(pool.usage(), (2, 2));
}

#[tokio::test]
async fn killed_connections_are_dropped_and_replaced() {
    let db = fresh_database().await;
    let admin = roomd::db::pool(db.options.clone(), 1).await.unwrap();
    let pool = WorkerPool::new(db.options.clone(), 1, Duration::from_secs(3));

    // Killed while in use (just returned, so not pinged): the next query fails at the
    // connection level, and that connection is not kept.
    let first = backend_pid(&pool).await;
    kill(&admin, first).await;
    let err = pool
        .run(async |c: &mut PgConnection| sqlx::query("SELECT 1").execute(c).await)
        .await
        .unwrap_err();
    assert!(roomd::twilio::error::is_unavailable(&err), "{err:?}");
    assert_eq!(pool.usage(), (0, 0));
    let second = backend_pid(&pool).await;
    assert_ne!(second, first);

    // Killed while idle for over a second: the ping before use finds out, and the caller just
    // gets a new connection.
    kill(&admin, second).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let third = backend_pid(&pool).await;
    assert_ne!(third, second);
    assert_eq!(pool.usage(), (1, 1));
    admin.close().await;
}
