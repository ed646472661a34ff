//! Test clocks (migration V7): reading one, and advancing it with everything that fell due.

use chrono::{DateTime, Datelike, Utc};
use sqlx::{PgConnection, PgExecutor};

/// Whether `account` has a test clock.
pub async fn exists(db: impl PgExecutor<'_>, account: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM test_clocks WHERE account_sid = $1)")
        .bind(account)
        .fetch_one(db)
        .await
}

/// The clock's time; `None` for an account without one.
pub async fn frozen_time(
    db: impl PgExecutor<'_>,
    account: &str,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar("SELECT frozen_time FROM test_clocks WHERE account_sid = $1")
        .bind(account)
        .fetch_optional(db)
        .await
}

/// Where an advance goes.
#[derive(Debug, Clone, Copy)]
pub enum Advance {
    /// Forward by this many seconds.
    By(i64),
    /// To this time.
    To(DateTime<Utc>),
}

/// What an advance did.
#[derive(Debug)]
pub enum Advanced {
    /// The clock's new time, and how many rooms and participants it ended on the way.
    Moved {
        frozen_time: DateTime<Utc>,
        rooms_ended: usize,
        participants_disconnected: usize,
    },
    /// The target is not later than the clock's time.
    Backwards { frozen_time: DateTime<Utc> },
    /// The target is past the year 9999 (the last year Twilio's date format, and the date
    /// filters, can hold).
    TooFar,
    /// The account has no test clock.
    NoClock,
}

/// Moves `account`'s clock forward, in the caller's transaction: holds the clock (FOR UPDATE,
/// so advances of one clock, and that account's requests, wait for each other; other accounts
/// are not touched), then applies what falls due up to the target in deadline order, each at
/// its deadline (`roomd.clock` is set to it, so end times, durations and the callbacks'
/// `Timestamp`s are the deadline's): participants past `MaxParticipantDuration`, then rooms past
/// their unused or empty timeout. A departure can start an empty-room timeout, which the same
/// loop then finds if it falls due before the target.
pub async fn advance(
    conn: &mut PgConnection,
    account: &str,
    how: Advance,
) -> Result<Advanced, sqlx::Error> {
    let now: Option<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT frozen_time FROM test_clocks WHERE account_sid = $1 FOR NO KEY UPDATE",
    )
    .bind(account)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(now) = now else {
        return Ok(Advanced::NoClock);
    };
    let target = match how {
        Advance::By(seconds) => now + chrono::Duration::seconds(seconds),
        Advance::To(t) => t,
    };
    if target <= now {
        return Ok(Advanced::Backwards { frozen_time: now });
    }
    if target.year() > 9999 {
        return Ok(Advanced::TooFar);
    }
    let (mut rooms_ended, mut participants_disconnected) = (0, 0);
    while let Some(due) = next_deadline(conn, account, target).await? {
        sqlx::query("SELECT set_config('roomd.clock', $1::timestamptz::text, true)")
            .bind(due)
            .execute(&mut *conn)
            .await?;
        let rooms: Vec<String> = sqlx::query_scalar(
            "SELECT sid FROM rooms WHERE sid = ANY(ARRAY( \
                SELECT room_sid FROM participants WHERE account_sid = $1 AND clocked \
                AND status = 'connected' AND deadline <= roomd_now())) \
             AND status = 'in-progress' ORDER BY sid FOR UPDATE",
        )
        .bind(account)
        .fetch_all(&mut *conn)
        .await?;
        let disconnected = super::participant_deadlines::disconnect_overdue_in(conn, rooms)
            .await?
            .len();
        let rooms: Vec<String> = sqlx::query_scalar(
            "SELECT sid FROM rooms WHERE account_sid = $1 AND clocked \
             AND status = 'in-progress' AND deadline <= roomd_now() ORDER BY sid FOR UPDATE",
        )
        .bind(account)
        .fetch_all(&mut *conn)
        .await?;
        let ended = super::room_deadlines::end_at_deadline(conn, rooms)
            .await?
            .len();
        if disconnected + ended == 0 {
            // Something is due that neither step ends: stop rather than loop.
            return Err(sqlx::Error::Protocol(format!(
                "test clock advance: a deadline at {due} that nothing ends"
            )));
        }
        participants_disconnected += disconnected;
        rooms_ended += ended;
    }
    sqlx::query(
        "UPDATE test_clocks SET frozen_time = $2, date_updated = now() WHERE account_sid = $1",
    )
    .bind(account)
    .bind(target)
    .execute(&mut *conn)
    .await?;
    Ok(Advanced::Moved {
        frozen_time: target,
        rooms_ended,
        participants_disconnected,
    })
}

/// The earliest deadline of `account`'s rooms and participants at or before `target`.
async fn next_deadline(
    conn: &mut PgConnection,
    account: &str,
    target: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT least( \
            (SELECT min(deadline) FROM rooms WHERE account_sid = $1 AND clocked \
                AND status = 'in-progress' AND deadline <= $2), \
            (SELECT min(deadline) FROM participants WHERE account_sid = $1 AND clocked \
                AND status = 'connected' AND deadline <= $2))",
    )
    .bind(account)
    .bind(target)
    .fetch_one(conn)
    .await
}
