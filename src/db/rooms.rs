//! Rooms. Every query is scoped by account_sid; state changes are compare-and-set; deadlines and
//! end times come from the database clock.

use super::worker_pool::BreaksConnection;
use crate::domain::room::{CreateRoom, RoomStatus};
use crate::twilio::paging::{Cursor, PageRequest};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor, Postgres, QueryBuilder};
use std::sync::LazyLock;

/// The partial unique index that keeps in-progress names unique per account (53113).
pub const UNIQUE_NAME_CONSTRAINT: &str = "rooms_in_progress_unique_name";

/// A stored room, as the database returns it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RoomRow {
    pub sid: String,
    pub account_sid: String,
    pub status: String,
    #[sqlx(rename = "type")]
    pub room_type: String,
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
}

const COLUMNS: &str = "sid, account_sid, status, type, unique_name, status_callback, \
    status_callback_method, max_participants, max_participant_duration, \
    max_concurrent_published_tracks, record_participants_on_connect, video_codecs, media_region, \
    audio_only, empty_room_timeout, unused_room_timeout, large_room, date_created, date_updated, \
    end_time, duration";

/// Ends a room: the assignments shared by a REST completion and the sweeper. `duration` is the
/// difference of the whole-second times the API shows, so `end_time - date_created == duration`
/// holds for what clients see.
const END_ROOM_SET: &str = "status = 'completed', \
    end_time = GREATEST(now(), date_created), \
    date_updated = GREATEST(now(), date_created), \
    duration = GREATEST(0, EXTRACT(EPOCH FROM date_trunc('second', GREATEST(now(), date_created)) - date_trunc('second', date_created)))::integer, \
    deadline = NULL, deadline_reason = NULL";

/// Inserts a new in-progress room. Its first deadline is the unused-room timeout: Twilio ends a
/// REST-created room that nobody joins `unused_room_timeout` minutes after creation.
pub async fn insert(
    db: impl PgExecutor<'_>,
    account_sid: &str,
    sid: &str,
    room: &CreateRoom,
) -> Result<RoomRow, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO rooms (sid, account_sid, status, type, unique_name, status_callback, \
            status_callback_method, max_participants, max_participant_duration, \
            max_concurrent_published_tracks, record_participants_on_connect, video_codecs, \
            media_region, audio_only, empty_room_timeout, unused_room_timeout, large_room, \
            recording_rules, deadline, deadline_reason) \
         VALUES ($1, $2, 'in-progress', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
            $16, $17, now() + make_interval(mins => $15), 'unused_timeout') \
         RETURNING {COLUMNS}"
    ))
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
    .fetch_one(db)
    .await
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
static COMPLETE_BY_SID: LazyLock<String> = LazyLock::new(|| complete_sql("sid = $2"));
static COMPLETE_BY_NAME: LazyLock<String> = LazyLock::new(|| complete_sql(NAME_CONDITION));
const NAME_CONDITION: &str = "unique_name = $2 AND status = 'in-progress'";

fn fetch_sql(condition: &str) -> String {
    format!("SELECT {COLUMNS} FROM rooms WHERE account_sid = $1 AND {condition}")
}

fn complete_sql(condition: &str) -> String {
    format!(
        "UPDATE rooms SET {END_ROOM_SET}, end_reason = 'rest' \
         WHERE account_sid = $1 AND {condition} AND status = 'in-progress' RETURNING {COLUMNS}"
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

/// Completes an in-progress room in one compare-and-set UPDATE; `None` when no in-progress room
/// matched (absent, another account's, or already ended).
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

/// The list filters of `GET /v1/Rooms`.
#[derive(Debug, Clone)]
pub struct RoomFilter {
    pub status: RoomStatus,
    pub unique_name: Option<String>,
    pub created_on_or_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
}

/// One page in display order (newest first), and whether rows lie beyond it in the direction it
/// was read.
pub struct RoomPage {
    pub rooms: Vec<RoomRow>,
    pub more_beyond: bool,
}

/// Result of resolving a page token: the row it names must belong to the account.
pub enum PageError {
    UnknownToken,
    Db(sqlx::Error),
}

impl From<sqlx::Error> for PageError {
    fn from(e: sqlx::Error) -> Self {
        PageError::Db(e)
    }
}

impl BreaksConnection for PageError {
    fn breaks_connection(&self) -> bool {
        match self {
            PageError::UnknownToken => false,
            PageError::Db(e) => e.breaks_connection(),
        }
    }
}

/// Reads a page with keyset pagination on `(date_created, sid)`: the token's row is looked up by
/// primary key inside the same statement, and the page continues strictly after (or before) its
/// position, so a deep page costs what the first one does.
pub async fn list(
    conn: &mut PgConnection,
    account_sid: &str,
    filter: &RoomFilter,
    page: &PageRequest,
) -> Result<RoomPage, PageError> {
    let token_sid = match &page.cursor {
        Cursor::Start => None,
        Cursor::After(sid) | Cursor::Before(sid) => Some(sid.as_str()),
    };
    let backwards = matches!(page.cursor, Cursor::Before(_));

    let mut q: QueryBuilder<'_, Postgres> =
        QueryBuilder::new(format!("SELECT {COLUMNS} FROM rooms WHERE account_sid = "));
    q.push_bind(account_sid);
    q.push(" AND status = ").push_bind(filter.status.as_str());
    if let Some(name) = &filter.unique_name {
        q.push(" AND unique_name = ").push_bind(name);
    }
    if let Some(t) = filter.created_on_or_after {
        q.push(" AND date_created >= ").push_bind(t);
    }
    if let Some(t) = filter.created_before {
        q.push(" AND date_created < ").push_bind(t);
    }
    if let Some(sid) = token_sid {
        // The token's row position, looked up in the same statement. The date is a scalar
        // subquery (an InitPlan, evaluated once), so the row comparison stays an index condition.
        q.push(if backwards {
            " AND (date_created, sid) > ((SELECT t.date_created FROM rooms t WHERE t.account_sid = "
        } else {
            " AND (date_created, sid) < ((SELECT t.date_created FROM rooms t WHERE t.account_sid = "
        });
        q.push_bind(account_sid)
            .push(" AND t.sid = ")
            .push_bind(sid);
        q.push("), ").push_bind(sid).push(")");
    }
    q.push(if backwards {
        " ORDER BY date_created ASC, sid ASC"
    } else {
        " ORDER BY date_created DESC, sid DESC"
    });
    q.push(" LIMIT ").push_bind(i64::from(page.page_size) + 1);
    if page.offset() > 0 {
        q.push(" OFFSET ")
            .push_bind(i64::try_from(page.offset()).unwrap_or(i64::MAX));
    }
    let mut rooms: Vec<RoomRow> = q.build_query_as().fetch_all(&mut *conn).await?;
    // An empty page may mean the token names no room of this account: only then ask.
    if let (true, Some(sid)) = (rooms.is_empty(), token_sid) {
        let known: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM rooms WHERE account_sid = $1 AND sid = $2)",
        )
        .bind(account_sid)
        .bind(sid)
        .fetch_one(&mut *conn)
        .await?;
        if !known {
            return Err(PageError::UnknownToken);
        }
    }
    let more_beyond = rooms.len() > page.page_size as usize;
    rooms.truncate(page.page_size as usize);
    if backwards {
        rooms.reverse();
    }
    Ok(RoomPage { rooms, more_beyond })
}

/// Rooms the sweeper ended in one batch.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EndedRoom {
    pub sid: String,
    pub account_sid: String,
    pub end_reason: String,
}

/// Ends up to `limit` in-progress rooms whose deadline has passed, in one statement (one
/// transaction): due rows are claimed with `FOR UPDATE SKIP LOCKED`, so concurrent sweepers in
/// other processes take disjoint rows, and the UPDATE re-checks each claimed row's status and
/// deadline, so a room completed meanwhile is left alone.
pub async fn end_due(db: impl PgExecutor<'_>, limit: i64) -> Result<Vec<EndedRoom>, sqlx::Error> {
    sqlx::query_as(&format!(
        "WITH due AS ( \
            SELECT sid FROM rooms \
            WHERE status = 'in-progress' AND deadline <= now() \
            ORDER BY deadline LIMIT $1 \
            FOR UPDATE SKIP LOCKED) \
         UPDATE rooms r SET {END_ROOM_SET}, end_reason = r.deadline_reason \
         FROM due WHERE r.sid = due.sid AND r.status = 'in-progress' AND r.deadline <= now() \
         RETURNING r.sid, r.account_sid, r.end_reason"
    ))
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Inserts `n` in-progress group rooms with default settings for `account_sid` in one statement,
/// named `{prefix}-1` .. `{prefix}-n`, whose deadline is `deadline_in_seconds` from now (negative:
/// already due). For tests and the benchmark, which need many rooms fast; returns their SIDs.
pub async fn insert_many_in_progress(
    db: impl PgExecutor<'_>,
    account_sid: &str,
    prefix: &str,
    n: i64,
    deadline_in_seconds: f64,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO rooms (sid, account_sid, status, type, unique_name, status_callback_method, \
            max_participants, max_participant_duration, max_concurrent_published_tracks, \
            record_participants_on_connect, video_codecs, media_region, audio_only, \
            empty_room_timeout, unused_room_timeout, large_room, deadline, deadline_reason) \
         SELECT 'RM' || md5($1 || $2 || '-' || g), $1, 'in-progress', 'group', $2 || '-' || g, 'POST', \
            50, 14400, 0, false, ARRAY['VP8'], 'us1', false, 5, 5, false, \
            now() + make_interval(secs => $4), 'unused_timeout' \
         FROM generate_series(1, $3::bigint) g RETURNING sid",
    )
    .bind(account_sid)
    .bind(prefix)
    .bind(n)
    .bind(deadline_in_seconds)
    .fetch_all(db)
    .await
}
