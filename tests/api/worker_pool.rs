//! The HTTP workers' own connection pool, against a real database: reuse, bounds, and what
//! happens to a connection after an error, a cancellation or a server-side kill.

use crate::helpers::fresh_database;
use roomd::db::{PoolLimits, WorkerPool};
use sqlx::{Connection, PgConnection, PgPool};
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
    let pool = WorkerPool::new(db.options.clone(), 4, PoolLimits::default());
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
    let pool = WorkerPool::new(db.options.clone(), 1, PoolLimits::default());
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
    let pool = WorkerPool::new(
        db.options.clone(),
        2,
        PoolLimits {
            acquire_timeout: Duration::from_millis(300),
            ..PoolLimits::default()
        },
    );
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
    let pool = WorkerPool::new(db.options.clone(), 1, PoolLimits::default());

    // Killed while in use (just returned, so not pinged): the next query fails at the
    // connection level, and that connection is not kept.
    let first = backend_pid(&pool).await;
    kill(&admin, first).await;
    let err = pool
        .run(async |c: &mut PgConnection| sqlx::query("SELECT 1").execute(c).await)
        .await
        .unwrap_err();
    assert!(roomd::db::error::is_unavailable(&err), "{err:?}");
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

/// A table with one row that a test can lock, and a pool-independent way to see whether the
/// row is still locked.
async fn one_lockable_row(admin: &PgPool) {
    sqlx::query("CREATE TABLE lockable (id int PRIMARY KEY)")
        .execute(admin)
        .await
        .unwrap();
    sqlx::query("INSERT INTO lockable VALUES (1)")
        .execute(admin)
        .await
        .unwrap();
}

async fn row_is_locked(admin: &PgPool) -> bool {
    let mut tx = admin.begin().await.unwrap();
    let result = sqlx::query("SELECT id FROM lockable WHERE id = 1 FOR UPDATE NOWAIT")
        .execute(&mut *tx)
        .await;
    tx.rollback().await.unwrap();
    match result {
        Ok(_) => false,
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => true,
        Err(e) => panic!("{e:?}"),
    }
}

/// Locks the row, then gives up with an error that leaves the connection usable (as a route
/// would on finding a room full), so the connection goes back to the pool. (A statement error
/// would not do: PostgreSQL aborts the transaction, and releases its locks, at once.)
async fn lock_then_give_up(c: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT id FROM lockable WHERE id = 1 FOR UPDATE")
        .execute(&mut *c)
        .await?;
    Err(sqlx::Error::RowNotFound)
}

#[tokio::test]
async fn a_transaction_dropped_unfinished_releases_its_locks_before_the_connection_goes_back() {
    let db = fresh_database().await;
    let admin = roomd::db::pool(db.options.clone(), 2).await.unwrap();
    one_lockable_row(&admin).await;
    let pool = WorkerPool::new(db.options.clone(), 1, PoolLimits::default());

    // sqlx queues the ROLLBACK of a dropped transaction for the connection's next use; the
    // pool sends it before the connection goes back idle.
    let err = pool
        .run(async |c: &mut PgConnection| {
            let mut tx = c.begin().await?;
            lock_then_give_up(&mut tx).await
        })
        .await
        .unwrap_err();
    assert!(matches!(err, sqlx::Error::RowNotFound), "{err:?}");
    assert_eq!(pool.usage(), (1, 1), "the connection was kept");
    assert!(!row_is_locked(&admin).await, "the lock outlived the call");
    admin.close().await;
}

#[tokio::test]
async fn transactions_commit_on_ok_and_roll_back_on_err_before_the_connection_is_reused() {
    let db = fresh_database().await;
    let admin = roomd::db::pool(db.options.clone(), 2).await.unwrap();
    one_lockable_row(&admin).await;
    let pool = WorkerPool::new(db.options.clone(), 1, PoolLimits::default());

    let err = pool.transaction(lock_then_give_up).await.unwrap_err();
    assert!(matches!(err, sqlx::Error::RowNotFound), "{err:?}");
    assert!(!row_is_locked(&admin).await, "the lock outlived the call");

    // An Err after a successful write undoes the write; an Ok commits it.
    let _ = pool
        .transaction(async |c: &mut PgConnection| {
            sqlx::query("INSERT INTO lockable VALUES (2)")
                .execute(&mut *c)
                .await?;
            sqlx::query("SELECT 1/0").execute(&mut *c).await
        })
        .await
        .unwrap_err();
    pool.transaction(async |c: &mut PgConnection| {
        sqlx::query("INSERT INTO lockable VALUES (3)")
            .execute(&mut *c)
            .await
    })
    .await
    .unwrap();
    let ids: Vec<i32> = sqlx::query_scalar("SELECT id FROM lockable ORDER BY id")
        .fetch_all(&admin)
        .await
        .unwrap();
    assert_eq!(ids, [1, 3]);
    assert_eq!(pool.usage(), (1, 1), "one connection served all three");
    admin.close().await;
}

#[tokio::test]
async fn idle_connections_past_their_idle_timeout_or_lifetime_are_closed_even_if_never_taken() {
    let db = fresh_database().await;
    let admin = roomd::db::pool(db.options.clone(), 1).await.unwrap();
    let alive = async |pid: i32| -> bool {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)")
            .bind(pid)
            .fetch_one(&admin)
            .await
            .unwrap()
    };
    let wait_closed = async |pid: i32| {
        for _ in 0..100 {
            if !alive(pid).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("connection {pid} was not closed");
    };

    let by_idle = WorkerPool::new(
        db.options.clone(),
        1,
        PoolLimits {
            idle_timeout: Duration::from_millis(200),
            ..PoolLimits::default()
        },
    );
    let pid = backend_pid(&by_idle).await;
    assert_eq!(by_idle.usage(), (1, 1));
    wait_closed(pid).await;
    assert_eq!(by_idle.usage(), (0, 0));

    let by_lifetime = WorkerPool::new(
        db.options.clone(),
        1,
        PoolLimits {
            max_lifetime: Duration::from_millis(1000),
            ..PoolLimits::default()
        },
    );
    // Kept busy, the connection is reused until its lifetime ends, and never after it.
    let first = backend_pid(&by_lifetime).await;
    let started = std::time::Instant::now();
    let mut last = first;
    while started.elapsed() < Duration::from_millis(500) {
        last = backend_pid(&by_lifetime).await;
    }
    assert_eq!(last, first);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_ne!(backend_pid(&by_lifetime).await, first);
    wait_closed(first).await;
    admin.close().await;
}
