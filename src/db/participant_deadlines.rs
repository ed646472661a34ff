//! The sweeper's side of participants: those connected longer than their room's
//! `max_participant_duration`, disconnected in batches cut to a budget of rows.

use super::participants::{disconnect_sql, EndReason, ParticipantRow};
use sqlx::PgConnection;
use std::sync::LazyLock;

/// Disconnects the participants connected longer than their room's `max_participant_duration`,
/// in the rooms of up to `limit` of them, in the caller's transaction. First their rooms are
/// claimed (`FOR UPDATE SKIP LOCKED`, so replicas take disjoint rooms and none waits on a busy
/// one); then a second statement, whose snapshot holds everything committed before the locks
/// were taken, disconnects them (and writes their events) through the claimed rooms.
/// Rooms in `skip` (which failed earlier in the pass) are left alone.
pub async fn disconnect_overdue(
    conn: &mut PgConnection,
    limit: i64,
    skip: &[String],
) -> Result<Vec<ParticipantRow>, sqlx::Error> {
    let claimed = overdue_rooms(&mut *conn, limit, skip, " FOR UPDATE SKIP LOCKED").await?;
    disconnect_overdue_in(conn, claimed).await
}

/// The rows one statement of the sweeper may touch when it disconnects overdue participants:
/// each participant, and each track it removes (a room's rows count whole; the first room is
/// always taken).
pub const SWEEP_ROW_BUDGET: i64 = 5_000;

/// The rooms (not in `skip`) of up to `limit` participants past their deadline, as many as fit
/// in `SWEEP_ROW_BUDGET` rows (their overdue participants and those participants' tracks), with
/// `lock` (`""`: read only, for the sweeper to take them one at a time).
pub async fn overdue_rooms(
    conn: &mut PgConnection,
    limit: i64,
    skip: &[String],
    lock: &str,
) -> Result<Vec<String>, sqlx::Error> {
    // The rooms by primary key from one array (an InitPlan): however stale the statistics
    // after a burst falls due, no plan compares every due participant with every room.
    sqlx::query_scalar(&format!(
        "WITH due AS ( \
            SELECT room_sid, deadline FROM participants \
            WHERE status = 'connected' AND NOT clocked AND deadline <= now() \
            AND room_sid <> ALL($2) ORDER BY deadline LIMIT $1), \
         weighed AS ( \
            SELECT d.room_sid, min(d.deadline) AS first, \
                (SELECT count(*) + coalesce(sum((SELECT count(*) FROM published_tracks t \
                                                 WHERE t.participant_sid = p.sid)), 0) \
                 FROM participants p WHERE p.room_sid = d.room_sid AND p.status = 'connected' \
                 AND p.deadline <= now()) AS rows \
            FROM due d GROUP BY d.room_sid), \
         budgeted AS ( \
            SELECT room_sid, sum(rows) OVER (ORDER BY first, room_sid) AS upto, \
                row_number() OVER (ORDER BY first, room_sid) AS n \
            FROM weighed) \
         SELECT sid FROM rooms \
         WHERE sid = ANY(ARRAY(SELECT room_sid FROM budgeted WHERE upto <= $3 OR n = 1)) \
         AND status = 'in-progress'{lock}"
    ))
    .bind(limit)
    .bind(skip)
    .bind(SWEEP_ROW_BUDGET)
    .fetch_all(&mut *conn)
    .await
}

/// Disconnects the participants past their deadline in one room (the sweeper, one room at a
/// time, after a batch failed); nothing when another process holds the room.
pub async fn disconnect_overdue_in_one(
    conn: &mut PgConnection,
    room_sid: &str,
) -> Result<Vec<ParticipantRow>, sqlx::Error> {
    let claimed: Vec<String> = sqlx::query_scalar(
        "SELECT sid FROM rooms WHERE sid = $1 AND status = 'in-progress' FOR UPDATE SKIP LOCKED",
    )
    .bind(room_sid)
    .fetch_all(&mut *conn)
    .await?;
    disconnect_overdue_in(conn, claimed).await
}

/// Disconnects the participants past their deadline in the rooms `claimed` (locked by the
/// caller's transaction, in an earlier statement), with their events.
pub async fn disconnect_overdue_in(
    conn: &mut PgConnection,
    claimed: Vec<String>,
) -> Result<Vec<ParticipantRow>, sqlx::Error> {
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    static SQL: LazyLock<String> = LazyLock::new(|| {
        disconnect_sql(
            "p.room_sid = ANY($1) AND p.deadline <= roomd_now()",
            EndReason::MaxDuration,
        )
    });
    sqlx::query_as(&SQL).bind(claimed).fetch_all(conn).await
}
