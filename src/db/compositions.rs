//! Compositions (`CJ`): one file mixed from an ended room's recordings. The row is also the job
//! (`composition_jobs`). A composition is made by a request or by a hook (`composition_hooks`),
//! with `composition-enqueued` in the same statement; its events go to its own status callback,
//! numbered in its room's sequence (the room is locked first, as every event writer does).

use super::callbacks::{self, EventSource};
use super::error::DbError;
use super::list::{self, Listing, Page};
use super::recording_jobs::lock_room;
use crate::domain::composition::CompositionSpec;
use crate::twilio::paging::PageRequest;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use std::sync::LazyLock;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CompositionRow {
    pub sid: String,
    pub account_sid: String,
    pub room_sid: String,
    pub status: String,
    pub video_layout: sqlx::types::Json<serde_json::Value>,
    pub audio_sources: Vec<String>,
    pub audio_sources_excluded: Vec<String>,
    pub resolution: String,
    pub format: String,
    pub trimmed: bool,
    pub status_callback: Option<String>,
    pub status_callback_method: String,
    pub duration: i32,
    pub size: i64,
    pub bitrate: i32,
    pub media_path: Option<String>,
    pub date_created: DateTime<Utc>,
    pub date_completed: Option<DateTime<Utc>>,
    pub date_deleted: Option<DateTime<Utc>>,
}

impl crate::twilio::paging::HasSid for CompositionRow {
    fn sid(&self) -> &str {
        &self.sid
    }
}

pub(super) const COLUMNS: &str =
    "sid, account_sid, room_sid, status, video_layout, audio_sources, \
    audio_sources_excluded, resolution, format, trimmed, status_callback, status_callback_method, \
    duration, size, bitrate, media_path, date_created, date_completed, date_deleted";

/// The settings columns a composition takes (from a request or a hook).
pub(super) const SPEC_COLUMNS: &str = "video_layout, audio_sources, audio_sources_excluded, \
    resolution, format, trimmed, status_callback, status_callback_method";

/// A composition event for the compositions of the CTE `c` (with `COLUMNS`), whose rooms are
/// read from `rooms`; `extra` adds parameters (`'Name', expression` pairs over `c`).
pub(super) fn event<'a>(event: &'a str, extra: &'a str, filter: &'a str) -> EventSource<'a> {
    EventSource {
        event,
        room: "x",
        room_status: "x.status",
        participant: None,
        track: None,
        extra,
        at: "roomd_now()",
        from: "FROM c JOIN LATERAL (SELECT r.sid, r.account_sid, r.unique_name, r.type, r.status, \
                c.status_callback, c.status_callback_method FROM rooms r WHERE r.sid = c.room_sid) x ON true",
        filter,
    }
}

/// The parameters every composition event carries.
pub(super) const EVENT_PARAMS: &str =
    "'CompositionSid', c.sid, 'CompositionUri', '/v1/Compositions/' || c.sid";

/// Why a composition cannot be made of a room.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    NoSuchRoom,
    InProgress,
    NoRecordings,
    /// The account has `MAX_PENDING` compositions not yet made.
    TooMany,
}

/// The most compositions an account may have waiting or being made.
pub const MAX_PENDING: i64 = 100;

/// Serializes, until the caller's transaction ends, the account's changes of one kind (`what`)
/// across processes, so that a count read next holds. An advisory lock, not the account's row:
/// it takes part in no lock order with rows, and leaves the account's other writes (whose
/// foreign keys share-lock that row) alone.
pub(super) async fn serialize_per_account(
    conn: &mut PgConnection,
    what: &str,
    account_sid: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1 || ' ' || $2))")
        .bind(what)
        .bind(account_sid)
        .execute(conn)
        .await
        .map(drop)
}

/// Makes a composition of an ended room of the account that has recordings, with
/// `composition-enqueued`.
pub async fn create(
    conn: &mut PgConnection,
    account_sid: &str,
    room_sid: &str,
    spec: &CompositionSpec,
) -> Result<Result<CompositionRow, Refusal>, sqlx::Error> {
    serialize_per_account(&mut *conn, "compositions", account_sid).await?;
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM compositions \
         WHERE account_sid = $1 AND status IN ('enqueued', 'processing')",
    )
    .bind(account_sid)
    .fetch_one(&mut *conn)
    .await?;
    if pending >= MAX_PENDING {
        return Ok(Err(Refusal::TooMany));
    }
    let room: Option<(String, bool)> = sqlx::query_as(
        "SELECT status, EXISTS (SELECT 1 FROM recordings rec WHERE rec.room_sid = r.sid \
            AND rec.status IN ('processing', 'completed')) \
         FROM rooms r WHERE sid = $1 AND account_sid = $2 FOR UPDATE",
    )
    .bind(room_sid)
    .bind(account_sid)
    .fetch_optional(&mut *conn)
    .await?;
    match room {
        None => return Ok(Err(Refusal::NoSuchRoom)),
        Some((status, _)) if status == "in-progress" => return Ok(Err(Refusal::InProgress)),
        Some((_, false)) => return Ok(Err(Refusal::NoRecordings)),
        Some(_) => {}
    }
    static CREATE: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH c AS ( \
                INSERT INTO compositions (sid, account_sid, room_sid, {SPEC_COLUMNS}) \
                VALUES ('CJ' || replace(gen_random_uuid()::text, '-', ''), $1, $2, $3, $4, $5, $6, \
                    $7, $8, $9, $10) RETURNING *), \
             {events} \
             SELECT {COLUMNS} FROM c",
            events = callbacks::enqueue(&[event("'composition-enqueued'", EVENT_PARAMS, "")]),
        )
    });
    let row = sqlx::query_as(&CREATE)
        .bind(account_sid)
        .bind(room_sid)
        .bind(sqlx::types::Json(spec.layout_json()))
        .bind(&spec.audio_sources)
        .bind(&spec.audio_sources_excluded)
        .bind(spec.resolution.to_string())
        .bind(spec.format.as_str())
        .bind(spec.trim)
        .bind(&spec.status_callback)
        .bind(spec.status_callback_method)
        .fetch_one(conn)
        .await?;
    Ok(Ok(row))
}

/// The filters of the composition list.
#[derive(Debug, Default, Clone)]
pub struct CompositionFilter {
    pub status: Option<String>,
    pub room_sid: Option<String>,
    pub created_on_or_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
}

const LISTING: Listing = Listing {
    table: "compositions",
    columns: COLUMNS,
    order_by: "date_created",
    descending: true,
};

/// A page of the account's compositions, newest first.
pub async fn list<'q>(
    conn: &mut PgConnection,
    account_sid: &'q str,
    filter: &'q CompositionFilter,
    page: &'q PageRequest,
) -> Result<Page<CompositionRow>, DbError> {
    list::page(
        conn,
        &LISTING,
        &[("account_sid", account_sid)],
        |q| {
            if let Some(s) = &filter.status {
                q.push(" AND status = ").push_bind(s);
            }
            if let Some(r) = &filter.room_sid {
                q.push(" AND room_sid = ").push_bind(r);
            }
            list::push_created(q, filter.created_on_or_after, filter.created_before);
        },
        page,
    )
    .await
}

/// One of the account's compositions.
pub async fn find(
    db: impl PgExecutor<'_>,
    account_sid: &str,
    sid: &str,
) -> Result<Option<CompositionRow>, sqlx::Error> {
    static FIND: LazyLock<String> = LazyLock::new(|| {
        format!("SELECT {COLUMNS} FROM compositions WHERE account_sid = $1 AND sid = $2")
    });
    sqlx::query_as(&FIND)
        .bind(account_sid)
        .bind(sid)
        .fetch_optional(db)
        .await
}

/// A composition's file by SID alone (the signed media link names no account).
pub async fn find_file(
    db: impl PgExecutor<'_>,
    sid: &str,
) -> Result<Option<(String, Option<String>)>, sqlx::Error> {
    sqlx::query_as("SELECT format, media_path FROM compositions WHERE sid = $1")
        .bind(sid)
        .fetch_optional(db)
        .await
}

/// Deletes a composition's media: it stays, `deleted`, without a file (a job in flight loses
/// its claim and removes what it made). Returns the file it had (to remove after the commit),
/// `Some(None)` when it had none, `None` when there is no such composition.
pub async fn delete(
    conn: &mut PgConnection,
    account_sid: &str,
    sid: &str,
) -> Result<Option<Option<String>>, sqlx::Error> {
    let room: Option<String> =
        sqlx::query_scalar("SELECT room_sid FROM compositions WHERE account_sid = $1 AND sid = $2")
            .bind(account_sid)
            .bind(sid)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(room) = room else {
        return Ok(None);
    };
    lock_room(&mut *conn, &room).await?;
    sqlx::query_scalar(
        "WITH old AS (SELECT sid, media_path FROM compositions WHERE sid = $1 FOR UPDATE), \
         done AS (UPDATE compositions c SET status = 'deleted', media_path = NULL, \
            lease_owner = NULL, lease_until = '-infinity', \
            date_deleted = COALESCE(c.date_deleted, roomd_now()) \
            FROM old WHERE c.sid = old.sid) \
         SELECT media_path FROM old",
    )
    .bind(sid)
    .fetch_optional(conn)
    .await
}

/// Whether a composition holds the file `media_path`.
pub async fn holds_file(db: impl PgExecutor<'_>, media_path: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM compositions WHERE media_path = $1)")
        .bind(media_path)
        .fetch_one(db)
        .await
}

/// The bytes of composed media the database knows of (the `compositions_stored_bytes` gauge).
pub async fn stored_bytes(db: impl PgExecutor<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COALESCE(sum(size), 0)::bigint FROM compositions WHERE status = 'completed'",
    )
    .fetch_one(db)
    .await
}
