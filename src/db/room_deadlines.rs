//! The sweeper's side of rooms: those past their deadline (unused or empty timeout, or
//! `max_participant_duration`'s end), ended in batches with their participants and tracks.

use super::callbacks::{self};
use super::rooms::{DISCONNECT_EVERYONE, END_ROOM_SET};
use sqlx::{PgConnection, PgExecutor};
use std::sync::LazyLock;

/// Rooms the sweeper ended in one batch.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EndedRoom {
    pub sid: String,
    pub account_sid: String,
    pub end_reason: String,
    /// The participants still connected, disconnected with it.
    pub participants_disconnected: i32,
}

/// Ends up to `limit` in-progress rooms whose deadline has passed, disconnects their
/// participants and writes their events, in the caller's transaction. First the due rooms are
/// claimed with `FOR UPDATE SKIP LOCKED`, so concurrent sweepers in other processes take
/// disjoint rooms and none waits for a room a request holds. Then a second statement (whose
/// snapshot holds everything committed before the locks were taken) ends the claimed rooms
/// through their primary key: with the deadline statistics stale (a burst just fell due), a join
/// on the deadline index would compare every due room with every claimed one.
/// Rooms in `skip` (which failed earlier in the pass) are left alone.
pub async fn end_due(
    conn: &mut PgConnection,
    limit: i64,
    skip: &[String],
) -> Result<Vec<EndedRoom>, sqlx::Error> {
    let claimed = due(&mut *conn, limit, skip, " FOR UPDATE SKIP LOCKED").await?;
    end_at_deadline(conn, claimed).await
}

/// Ends one room if it is in progress and past its deadline (the sweeper, one room at a time,
/// after a batch failed); `None` when another process has it or it is not due.
pub async fn end_one_due(
    conn: &mut PgConnection,
    sid: &str,
) -> Result<Vec<EndedRoom>, sqlx::Error> {
    let claimed: Vec<String> = sqlx::query_scalar(
        "SELECT sid FROM rooms WHERE sid = $1 AND status = 'in-progress' AND NOT clocked \
         AND deadline <= now() FOR UPDATE SKIP LOCKED",
    )
    .bind(sid)
    .fetch_all(&mut *conn)
    .await?;
    end_at_deadline(conn, claimed).await
}

/// Up to `limit` in-progress rooms past their deadline, not in `skip`, oldest deadline first,
/// with `lock` (`""`: read only, for the sweeper to take them one at a time).
pub async fn due(
    db: impl PgExecutor<'_>,
    limit: i64,
    skip: &[String],
    lock: &str,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "SELECT sid FROM rooms WHERE status = 'in-progress' AND NOT clocked AND deadline <= now() \
         AND sid <> ALL($2) ORDER BY deadline LIMIT $1{lock}"
    ))
    .bind(limit)
    .bind(skip)
    .fetch_all(db)
    .await
}

/// Ends the rooms `claimed` (locked by the caller's transaction, in an earlier statement) for
/// the deadline they passed, disconnecting everyone in them, with their events.
pub async fn end_at_deadline(
    conn: &mut PgConnection,
    claimed: Vec<String>,
) -> Result<Vec<EndedRoom>, sqlx::Error> {
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH ended AS ( \
                UPDATE rooms r SET {END_ROOM_SET}, end_reason = r.deadline_reason \
                WHERE r.sid = ANY($1) AND r.status = 'in-progress' \
                RETURNING {}, r.end_reason, r.end_time, r.duration), \
             {} \
             SELECT e.sid, e.account_sid, e.end_reason, \
                COALESCE(g.n, 0)::integer AS participants_disconnected \
             FROM ended e LEFT JOIN (SELECT room_sid, count(*) AS n FROM gone GROUP BY room_sid) g \
                ON g.room_sid = e.sid",
            callbacks::room_columns("r"),
            *DISCONNECT_EVERYONE
        )
    });
    sqlx::query_as(&SQL).bind(claimed).fetch_all(conn).await
}
