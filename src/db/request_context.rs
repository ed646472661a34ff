//! What a request carries to the database: one budget for all its work, and the clock (real
//! time or its account's test clock) that work runs on. Both are task-locals set by the
//! request's middleware and authentication, read by `WorkerPool`.

use super::connect::REQUEST_DB_BUDGET;
use sqlx::postgres::PgConnection;
use sqlx::Connection;

tokio::task_local! {
    /// When the current request's database budget runs out (set by its first `run`).
    static BUDGET_ENDS: std::cell::Cell<Option<tokio::time::Instant>>;
    /// The account whose test clock the current request's database work runs on, if any (set
    /// once the request is authenticated; see `on_test_clock`).
    static REQUEST_CLOCK: std::cell::RefCell<Option<String>>;
}

/// Runs `request` with one database budget (`REQUEST_DB_BUDGET`) for all its pool work.
pub async fn with_request_budget<F: std::future::Future>(request: F) -> F::Output {
    BUDGET_ENDS
        .scope(
            std::cell::Cell::new(None),
            REQUEST_CLOCK.scope(std::cell::RefCell::new(None), request),
        )
        .await
}

/// From now on, the current request's database work runs on `account`'s test clock (`None`:
/// on real time). Outside a request it changes nothing.
pub fn use_test_clock(account: Option<&str>) {
    let _ = REQUEST_CLOCK.try_with(|c| *c.borrow_mut() = account.map(str::to_string));
}

pub(super) fn request_clock() -> Option<String> {
    REQUEST_CLOCK
        .try_with(|c| c.borrow().clone())
        .ok()
        .flatten()
}

/// Runs `work` on `account`'s test clock: in a transaction that first takes the clock's row
/// lock (FOR SHARE: an advance, which holds it FOR UPDATE, never interleaves with it) and sets
/// `roomd.clock` to the clock's time for `roomd_now()` (migration V7).
pub(super) async fn on_test_clock<T, E>(
    conn: &mut PgConnection,
    account: &str,
    work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<sqlx::Error>,
{
    in_transaction(conn, async |tx: &mut PgConnection| {
        sqlx::query(
            "SELECT set_config('roomd.clock', frozen_time::text, true) FROM test_clocks \
             WHERE account_sid = $1 FOR SHARE",
        )
        .bind(account)
        .execute(&mut *tx)
        .await?;
        work(tx).await
    })
    .await
}

/// Runs `work` in a transaction on `conn` (a savepoint inside one already open): committed when
/// it returns `Ok`, rolled back when it returns `Err`.
pub(super) async fn in_transaction<T, E>(
    conn: &mut PgConnection,
    work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<sqlx::Error>,
{
    let mut tx = conn.begin().await?;
    match work(&mut tx).await {
        Ok(value) => {
            tx.commit().await?;
            Ok(value)
        }
        Err(e) => {
            // A failed ROLLBACK fails the connection too, so `run` closes it.
            tx.rollback().await?;
            Err(e)
        }
    }
}

/// When the current request's budget ends (starting it now if this is its first use); outside a
/// request, each `run` has a budget of its own.
pub(super) fn budget_deadline() -> tokio::time::Instant {
    let fresh = || tokio::time::Instant::now() + REQUEST_DB_BUDGET;
    BUDGET_ENDS
        .try_with(|ends| {
            let end = ends.get().unwrap_or_else(fresh);
            ends.set(Some(end));
            end
        })
        .unwrap_or_else(|_| fresh())
}

pub(super) fn budget_spent() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "the database did not answer within the request's budget",
    ))
}
