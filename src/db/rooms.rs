//! Rooms. Every query is scoped by account_sid; state changes are compare-and-set; deadlines and
//! end times come from the database clock.

use super::callbacks::{self, EventSource};
use super::error::{DbError, OnConstraint};
use crate::domain::create_room::CreateRoom;
use crate::domain::room::{RoomStatus, RoomType};
use crate::twilio::error::code;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use std::sync::LazyLock;

/// The partial unique index that keeps in-progress names unique per account (53113).
const UNIQUE_NAME_CONSTRAINT: &str = "rooms_in_progress_unique_name";

/// A stored room, as the database returns it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RoomRow {
    pub sid: String,
    pub account_sid: String,
    pub status: RoomStatus,
    #[sqlx(rename = "type")]
    pub room_type: RoomType,
    pub unique_name: String,
    pub status_callback: Option<String>,
    pub status_callback_method: String,
    pub max_participants: i32,
    pub max_participant_duration: i32,
    pub max_concurrent_published_tracks: i32,
    pub record_participants_on_connect: bool,
    pub video_codecs: Vec<String>,
    pub media_region: String,
    pub audio_only: bool,
    pub empty_room_timeout: i32,
    pub unused_room_timeout: i32,
    pub large_room: bool,
    pub date_created: DateTime<Utc>,
    pub date_updated: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    pub duration: Option<i32>,
    /// Participants a statement that ended the room disconnected (0 when it ended none).
    #[sqlx(default)]
    pub participants_disconnected: i32,
}

impl crate::twilio::paging::HasSid for RoomRow {
    fn sid(&self) -> &str {
        &self.sid
    }
}

pub(super) const COLUMNS: &str = "sid, account_sid, status, type, unique_name, status_callback, \
    status_callback_method, max_participants, max_participant_duration, \
    max_concurrent_published_tracks, record_participants_on_connect, video_codecs, media_region, \
    audio_only, empty_room_timeout, unused_room_timeout, large_room, date_created, date_updated, \
    end_time, duration";

/// Ends a room: the assignments shared by a REST completion and the sweeper. `duration` is the
/// difference of the whole-second times the API shows, so `end_time - date_created == duration`
/// holds for what clients see.
pub(super) const END_ROOM_SET: &str = "status = 'completed', \
    end_time = GREATEST(roomd_now(), date_created), \
    date_updated = GREATEST(roomd_now(), date_created), \
    duration = GREATEST(0, EXTRACT(EPOCH FROM date_trunc('second', GREATEST(roomd_now(), date_created)) - date_trunc('second', date_created)))::integer, \
    deadline = NULL, deadline_reason = NULL, participants_connected = 0, tracks_published = 0";

/// Disconnects everyone still connected to the rooms of the CTE `ended` (which returns the
/// room's columns and `end_time`, `duration`), with the room's end time, unpublishes their
/// tracks, and writes the status callback events: each track's removal, each participant's
/// disconnection, then the room's end. Appended to the statement that ends the rooms, so a room,
/// its participants, its tracks and its events end in one statement. The room rows are locked
/// (updated) before any participant or track row, the order every join, publication and
/// disconnect takes too.
pub(super) static DISCONNECT_EVERYONE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "gone AS ( \
            UPDATE participants p SET status = 'disconnected', end_time = e.end_time, \
                date_updated = e.end_time, end_reason = 'room_ended', deadline = NULL, \
                duration = GREATEST(0, EXTRACT(EPOCH FROM date_trunc('second', e.end_time) - date_trunc('second', p.start_time)))::integer \
            FROM ended e WHERE p.room_sid = e.sid AND p.status = 'connected' \
            RETURNING p.sid, p.room_sid, p.identity, p.end_time, p.duration), \
         unpublished AS ( \
            DELETE FROM published_tracks t USING ended e WHERE t.room_sid = e.sid \
            RETURNING t.sid, t.room_sid, t.participant_sid, t.kind, t.name), \
         {}",
        callbacks::departures(
            "e",
            "JOIN ended e ON e.sid = g.room_sid",
            Some(&EventSource {
                event: "'room-ended'",
                room: "e",
                room_status: "'completed'",
                participant: None,
                track: None,
                extra: "'RoomDuration', e.duration::text",
                at: "e.end_time",
                from: "FROM ended e",
                filter: "",
            })
        )
    )
});

/// Inserts a new in-progress room. Its first deadline is the unused-room timeout: Twilio ends a
/// REST-created room that nobody joins `unused_room_timeout` minutes after creation. An
/// in-progress room of the account with the same name is 53113 (the partial unique index); an
/// account at its quota of rooms in progress is 53119.
pub async fn insert(
    db: impl PgExecutor<'_>,
    account_sid: &str,
    sid: &str,
    room: &CreateRoom,
) -> Result<RoomRow, DbError> {
    bind_new_room(sqlx::query_as(&INSERT), account_sid, sid, room)
        .fetch_optional(db)
        .await
        .on_constraint(UNIQUE_NAME_CONSTRAINT, code::ROOM_EXISTS, "Room exists")?
        .ok_or(DbError::Refused {
            code: code::ROOMS_QUOTA,
            message: ROOMS_QUOTA_MESSAGE,
        })
}

pub const ROOMS_QUOTA_MESSAGE: &str =
    "Room creation failed: the account has as many rooms in progress as its quota allows";

/// Whether the account may have one more room in progress (its quota; see migration V8).
pub async fn rooms_quota_left(
    db: impl PgExecutor<'_>,
    account_sid: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT roomd_quota_left($1, 'rooms')")
        .bind(account_sid)
        .fetch_one(db)
        .await
}

/// Inserts a new in-progress room unless the account has an in-progress room of that name, or
/// is at its quota of rooms in progress (`None`), for a join that creates its room: two joins racing to create one name end in one
/// room, the loser waiting for the winner's transaction and then finding its room.
pub async fn insert_unless_named(
    db: impl PgExecutor<'_>,
    account_sid: &str,
    sid: &str,
    room: &CreateRoom,
) -> Result<Option<RoomRow>, sqlx::Error> {
    bind_new_room(sqlx::query_as(&INSERT_UNLESS_NAMED), account_sid, sid, room)
        .fetch_optional(db)
        .await
}

static INSERT: LazyLock<String> = LazyLock::new(|| insert_sql(""));
static INSERT_UNLESS_NAMED: LazyLock<String> = LazyLock::new(|| {
    insert_sql("ON CONFLICT (account_sid, unique_name) WHERE status = 'in-progress' DO NOTHING")
});

/// The INSERT of a new room (its first deadline: the unused-room timeout), and its
/// `room-created` event.
fn insert_sql(on_conflict: &str) -> String {
    format!(
        "WITH r AS ( \
            INSERT INTO rooms (sid, account_sid, status, type, unique_name, status_callback, \
                status_callback_method, max_participants, max_participant_duration, \
                max_concurrent_published_tracks, record_participants_on_connect, video_codecs, \
                media_region, audio_only, empty_room_timeout, unused_room_timeout, large_room, \
                recording_rules, deadline, deadline_reason) \
            SELECT $1, $2, 'in-progress', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                $16, $17, roomd_now() + make_interval(mins => $15), 'unused_timeout' \
            WHERE roomd_quota_left($2, 'rooms') \
            {on_conflict} RETURNING {COLUMNS}), \
         {} \
         SELECT {COLUMNS} FROM r",
        callbacks::enqueue(&[EventSource {
            event: "'room-created'",
            room: "r",
            room_status: "'in-progress'",
            participant: None,
            track: None,
            extra: "",
            at: "r.date_created",
            from: "FROM r",
            filter: "",
        }])
    )
}

type RoomQuery<'q> = sqlx::query::QueryAs<'q, sqlx::Postgres, RoomRow, sqlx::postgres::PgArguments>;

fn bind_new_room<'q>(
    query: RoomQuery<'q>,
    account_sid: &'q str,
    sid: &'q str,
    room: &'q CreateRoom,
) -> RoomQuery<'q> {
    query
        .bind(sid)
        .bind(account_sid)
        .bind(room.room_type.as_str())
        .bind(room.unique_name.as_deref().unwrap_or(sid))
        .bind(room.status_callback.as_deref())
        .bind(room.status_callback_method)
        .bind(room.max_participants)
        .bind(room.max_participant_duration)
        .bind(room.max_concurrent_published_tracks)
        .bind(room.record_participants_on_connect)
        .bind(&room.video_codecs)
        .bind(&room.media_region)
        .bind(room.audio_only)
        .bind(room.empty_room_timeout)
        .bind(room.unused_room_timeout)
        .bind(room.large_room)
        .bind(room.recording_rules.as_ref())
}

/// How a path names a room: its SID (any status) or its unique name (in-progress rooms only).
#[derive(Debug, Clone, Copy)]
pub enum RoomKey<'a> {
    Sid(&'a str),
    Name(&'a str),
}

/// The fetch and completion statements, built once per process rather than once per request.
static FETCH_BY_SID: LazyLock<String> = LazyLock::new(|| fetch_sql("sid = $2"));
static FETCH_BY_NAME: LazyLock<String> = LazyLock::new(|| fetch_sql(NAME_CONDITION));
static LOCK_BY_SID: LazyLock<String> =
    LazyLock::new(|| format!("{} FOR UPDATE", fetch_sql("sid = $2")));
static LOCK_BY_NAME: LazyLock<String> =
    LazyLock::new(|| format!("{} FOR UPDATE", fetch_sql(NAME_CONDITION)));
static COMPLETE_BY_SID: LazyLock<String> = LazyLock::new(|| complete_sql("sid = $2"));
static COMPLETE_BY_NAME: LazyLock<String> = LazyLock::new(|| complete_sql(NAME_CONDITION));
const NAME_CONDITION: &str = "unique_name = $2 AND status = 'in-progress'";

fn fetch_sql(condition: &str) -> String {
    format!("SELECT {COLUMNS} FROM rooms WHERE account_sid = $1 AND {condition}")
}

fn complete_sql(condition: &str) -> String {
    format!(
        "WITH ended AS ( \
            UPDATE rooms SET {END_ROOM_SET}, end_reason = 'rest' \
            WHERE account_sid = $1 AND {condition} AND status = 'in-progress' RETURNING {COLUMNS}), \
         {} \
         SELECT ended.*, (SELECT count(*) FROM gone)::integer AS participants_disconnected FROM ended",
        *DISCONNECT_EVERYONE
    )
}

impl RoomKey<'_> {
    fn value(&self) -> &str {
        match self {
            RoomKey::Sid(v) | RoomKey::Name(v) => v,
        }
    }
}

pub async fn fetch(
    db: impl PgExecutor<'_>,
    account_sid: &str,
    key: RoomKey<'_>,
) -> Result<Option<RoomRow>, sqlx::Error> {
    one_by_key(db, [&FETCH_BY_SID, &FETCH_BY_NAME], account_sid, key).await
}

/// The first room that one of `keys` names, tried in order on one connection.
pub async fn find(
    conn: &mut PgConnection,
    account_sid: &str,
    keys: impl IntoIterator<Item = RoomKey<'_>>,
) -> Result<Option<RoomRow>, sqlx::Error> {
    for key in keys {
        if let Some(row) = fetch(&mut *conn, account_sid, key).await? {
            return Ok(Some(row));
        }
    }
    Ok(None)
}

/// Like `find`, and locks the room's row until the transaction ends: what every change to the
/// room's participants does first, so that changes to one room are serialised on its row.
pub async fn find_for_update(
    conn: &mut PgConnection,
    account_sid: &str,
    keys: impl IntoIterator<Item = RoomKey<'_>>,
) -> Result<Option<RoomRow>, sqlx::Error> {
    for key in keys {
        let found = one_by_key(&mut *conn, [&LOCK_BY_SID, &LOCK_BY_NAME], account_sid, key).await?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

/// Locks a room by SID alone (for a media node's events, which name no account).
pub async fn lock_by_sid(
    conn: &mut PgConnection,
    sid: &str,
) -> Result<Option<RoomRow>, sqlx::Error> {
    static SQL: LazyLock<String> =
        LazyLock::new(|| format!("SELECT {COLUMNS} FROM rooms WHERE sid = $1 FOR UPDATE"));
    sqlx::query_as(&SQL).bind(sid).fetch_optional(conn).await
}

/// What ending a room by REST found.
pub enum Completion {
    Completed(Box<RoomRow>),
    /// The SID names a room that is no longer in progress (53118).
    AlreadyEnded,
    NotFound,
}

/// Ends the room a path names, in the caller's transaction: locks it (by SID when the segment
/// is SID-shaped, else by name; a SID names its room in any status, so one that is no longer in
/// progress is 53118), then completes it. Taking the lock first matters: the completing
/// statement then starts after every change that held the lock before it committed, so it
/// disconnects a participant who joined a moment earlier, and numbers its events after theirs.
pub async fn complete_named(
    conn: &mut PgConnection,
    account_sid: &str,
    sid: Option<&str>,
    name: &str,
) -> Result<Completion, sqlx::Error> {
    let mut keys = Vec::with_capacity(2);
    if let Some(sid) = sid {
        keys.push(RoomKey::Sid(sid));
    }
    keys.push(RoomKey::Name(name));
    let Some(room) = find_for_update(&mut *conn, account_sid, keys).await? else {
        return Ok(Completion::NotFound);
    };
    Ok(
        match complete(conn, account_sid, RoomKey::Sid(&room.sid)).await? {
            Some(row) => Completion::Completed(Box::new(row)),
            None => Completion::AlreadyEnded,
        },
    )
}

/// Completes an in-progress room in one compare-and-set UPDATE; `None` when no in-progress room
/// matched (absent, another account's, or already ended). Run it after locking the room in the
/// same transaction (`complete_named` does), so that its snapshot holds every earlier change.
pub async fn complete(
    db: impl PgExecutor<'_>,
    account_sid: &str,
    key: RoomKey<'_>,
) -> Result<Option<RoomRow>, sqlx::Error> {
    one_by_key(db, [&COMPLETE_BY_SID, &COMPLETE_BY_NAME], account_sid, key).await
}

/// Runs the statement for `key`'s kind (`[by SID, by name]`, each taking `$1` the account and
/// `$2` the key) and returns the room it yields, if any.
async fn one_by_key(
    db: impl PgExecutor<'_>,
    [by_sid, by_name]: [&str; 2],
    account_sid: &str,
    key: RoomKey<'_>,
) -> Result<Option<RoomRow>, sqlx::Error> {
    let sql = match key {
        RoomKey::Sid(_) => by_sid,
        RoomKey::Name(_) => by_name,
    };
    sqlx::query_as(sql)
        .bind(account_sid)
        .bind(key.value())
        .fetch_optional(db)
        .await
}
