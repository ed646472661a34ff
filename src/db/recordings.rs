//! Recordings (`RT`): one row per recorded segment of a published track. A segment opens when a
//! media track is published and the room's recording rules admit it, or when a rule change
//! admits a published one (with its `recording-started` event); it closes when the track goes
//! (trigger `published_tracks_recording_ends`, migration V10) or a rule change excludes it. The
//! row is then the conversion job (`recording_jobs`), and ends `completed` or `failed` with its
//! event.

use super::callbacks::{self, EventSource};
use super::error::DbError;
use super::list::{self, Listing, Page};
use crate::twilio::paging::PageRequest;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use std::sync::LazyLock;

/// A recording as the API shows it (with its room's status callback, which the account-level
/// resource carries).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RecordingRow {
    pub sid: String,
    pub account_sid: String,
    pub room_sid: String,
    pub participant_sid: String,
    pub source_sid: String,
    pub track_name: String,
    pub kind: String,
    pub codec: String,
    pub status: String,
    pub media_started_at: DateTime<Utc>,
    pub duration: Option<i32>,
    pub size: Option<i64>,
    pub media_path: Option<String>,
    pub status_callback: Option<String>,
    pub status_callback_method: Option<String>,
    pub date_created: DateTime<Utc>,
}

impl RecordingRow {
    /// Twilio's container: Matroska audio or video.
    pub fn container(&self) -> &'static str {
        container(&self.kind)
    }

    /// Twilio's `offset`: milliseconds from a point common to all rooms (the Unix epoch) to the
    /// segment's start, so that a room's recordings line up.
    pub fn offset(&self) -> i64 {
        self.media_started_at.timestamp_millis()
    }
}

impl crate::twilio::paging::HasSid for RecordingRow {
    fn sid(&self) -> &str {
        &self.sid
    }
}

/// `mka` for audio, `mkv` for video.
pub fn container(kind: &str) -> &'static str {
    if kind == "audio" {
        "mka"
    } else {
        "mkv"
    }
}

const COLUMNS: &str = "sid, account_sid, room_sid, participant_sid, source_sid, track_name, kind, \
    codec, status, media_started_at, duration, size, media_path, status_callback, \
    status_callback_method, date_created";

/// The filters of the recording lists (a room's takes the first four).
#[derive(Debug, Default, Clone)]
pub struct RecordingFilter {
    pub status: Option<String>,
    pub source_sid: Option<String>,
    pub created_on_or_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    /// Each must be the recording's room or participant.
    pub grouping_sids: Vec<String>,
    pub media_type: Option<String>,
}

/// The recordings with their room's callback (view `recordings_shown`).
const LISTING: Listing = Listing {
    table: "recordings_shown",
    columns: COLUMNS,
    order_by: "date_created",
    descending: true,
};

/// A page of recordings, newest first: the account's, or (with `room_sid`) one room's.
pub async fn list<'q>(
    conn: &mut PgConnection,
    account_sid: &'q str,
    room_sid: Option<&'q str>,
    filter: &'q RecordingFilter,
    page: &'q PageRequest,
) -> Result<Page<RecordingRow>, DbError> {
    let mut owner = vec![("account_sid", account_sid)];
    owner.extend(room_sid.map(|r| ("room_sid", r)));
    list::page(
        conn,
        &LISTING,
        &owner,
        |q| {
            if let Some(s) = &filter.status {
                q.push(" AND status = ").push_bind(s);
            }
            if let Some(s) = &filter.source_sid {
                q.push(" AND source_sid = ").push_bind(s);
            }
            list::push_created(q, filter.created_on_or_after, filter.created_before);
            for g in &filter.grouping_sids {
                q.push(" AND ")
                    .push_bind(g)
                    .push(" IN (room_sid, participant_sid)");
            }
            if let Some(k) = &filter.media_type {
                q.push(" AND kind = ").push_bind(k);
            }
        },
        page,
    )
    .await
}

/// One of the account's recordings (in `room_sid`, when given).
pub async fn find(
    db: impl PgExecutor<'_>,
    account_sid: &str,
    room_sid: Option<&str>,
    sid: &str,
) -> Result<Option<RecordingRow>, sqlx::Error> {
    static FIND: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT {COLUMNS} FROM recordings_shown \
             WHERE account_sid = $1 AND sid = $2 AND ($3::text IS NULL OR room_sid = $3)"
        )
    });
    sqlx::query_as(&FIND)
        .bind(account_sid)
        .bind(sid)
        .bind(room_sid)
        .fetch_optional(db)
        .await
}

/// Deletes a recording's media: it stays, `deleted`, without a file. Returns the file it had
/// (to remove after the commit), `Some(None)` when it had none, `None` when there is no such
/// recording.
pub async fn delete(
    conn: &mut PgConnection,
    account_sid: &str,
    room_sid: Option<&str>,
    sid: &str,
) -> Result<Option<Option<String>>, sqlx::Error> {
    sqlx::query_scalar(
        "WITH old AS (SELECT sid, media_path FROM recordings \
            WHERE account_sid = $1 AND sid = $2 AND ($3::text IS NULL OR room_sid = $3) FOR UPDATE), \
         done AS (UPDATE recordings rec SET status = 'deleted', media_path = NULL, \
            lease_owner = NULL, date_updated = roomd_now() \
            FROM old WHERE rec.sid = old.sid) \
         SELECT media_path FROM old",
    )
    .bind(account_sid)
    .bind(sid)
    .bind(room_sid)
    .fetch_optional(conn)
    .await
}

/// The parameters of a recording event (the recording `rec`, its participant `p`).
const EVENT_PARAMS: &str = "'ParticipantSid', p.sid, 'ParticipantIdentity', p.identity, \
    'RecordingSid', rec.sid, 'SourceSid', rec.source_sid, \
    'RecordingUri', '/v1/Recordings/' || rec.sid, \
    'Container', CASE rec.kind WHEN 'audio' THEN 'mka' ELSE 'mkv' END, 'Codec', rec.codec, \
    'TrackName', rec.track_name, 'Type', rec.kind, \
    'OffsetFromTwilioVideoEpoch', floor(extract(epoch FROM rec.media_started_at) * 1000)::bigint::text";

/// `recording-started` for the segments of the CTE `rec` (new `recordings` rows), whose room
/// is the CTE `room` (with `callbacks::room_columns`).
fn started_event(from: &str) -> EventSource<'_> {
    EventSource {
        event: "'recording-started'",
        room: "r",
        room_status: "'in-progress'",
        participant: None,
        track: None,
        extra: EVENT_PARAMS,
        at: "rec.date_created",
        from,
        filter: "",
    }
}

/// The columns a new segment takes from a published track `t` (with `publisher_identity`):
/// for `INSERT INTO recordings ({OPEN_COLUMNS}) SELECT {open_values("t")} ...`.
const OPEN_COLUMNS: &str =
    "sid, account_sid, room_sid, participant_sid, source_sid, track_name, kind, codec, media_mindex";
const OPEN_VALUES: &str = "'RT' || replace(gen_random_uuid()::text, '-', ''), t.account_sid, \
    t.room_sid, t.participant_sid, t.sid, t.name, t.kind, upper(t.media_codec), t.media_mindex";
/// Which published tracks can be recorded: a media server's audio or video stream, with a codec
/// Twilio's recordings know.
const RECORDABLE: &str = "t.media_mid IS NOT NULL AND t.media_mindex IS NOT NULL \
    AND t.kind IN ('audio', 'video') AND upper(t.media_codec) IN ('VP8', 'H264', 'OPUS', 'PCMU')";

/// The CTEs, for the statement that publishes tracks (`published`, with the room `placed` that
/// returned its `recording_rules` and `record_participants_on_connect` too), that open a
/// segment for each new track the rules admit and write its `recording-started`. The whole of
/// it goes after `published`'s CTE, before the statement's own events.
pub(super) fn on_publish() -> String {
    format!(
        "rec AS ( \
            INSERT INTO recordings ({OPEN_COLUMNS}) \
            SELECT {OPEN_VALUES} FROM published t JOIN placed r ON r.sid = t.room_sid \
                JOIN participants p ON p.sid = t.participant_sid \
            WHERE {RECORDABLE} AND track_rules_admit( \
                room_recording_rules(r.recording_rules, r.record_participants_on_connect), \
                p.identity, p.sid, t.name, t.sid, t.kind) \
            RETURNING *)"
    )
}

/// The event source of `on_publish`'s segments.
pub(super) fn on_publish_event() -> EventSource<'static> {
    started_event(
        "FROM rec JOIN placed r ON r.sid = rec.room_sid JOIN participants p ON p.sid = rec.participant_sid",
    )
}

/// Replaces an in-progress room's recording rules (the room is locked): segments of published
/// tracks the new rules exclude end now, published tracks they admit without a segment start
/// one (with `recording-started`). `None` when the room is not in progress.
pub async fn set_rules(
    conn: &mut PgConnection,
    room_sid: &str,
    rules: &serde_json::Value,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    static SET: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH r AS ( \
                UPDATE rooms r SET recording_rules = $2, recording_rules_updated = roomd_now() \
                WHERE r.sid = $1 AND r.status = 'in-progress' \
                RETURNING {room}, r.recording_rules_updated, \
                    room_recording_rules(r.recording_rules, r.record_participants_on_connect) AS rules), \
             t AS ( \
                SELECT t.*, track_rules_admit(r.rules, t.publisher_identity, t.participant_sid, \
                    t.name, t.sid, t.kind) AS admitted \
                FROM room_tracks t JOIN r ON t.room_sid = r.sid WHERE {RECORDABLE}), \
             closed AS ( \
                UPDATE recordings rec SET media_ended_at = clock_timestamp(), \
                    not_before = clock_timestamp() + interval '2 seconds' \
                FROM t WHERE rec.source_sid = t.sid AND rec.media_ended_at IS NULL AND NOT t.admitted), \
             rec AS ( \
                INSERT INTO recordings ({OPEN_COLUMNS}) SELECT {OPEN_VALUES} FROM t \
                WHERE t.admitted AND NOT EXISTS (SELECT 1 FROM recordings o \
                    WHERE o.source_sid = t.sid AND o.media_ended_at IS NULL) \
                RETURNING *), \
             {events} \
             SELECT recording_rules_updated FROM r",
            room = callbacks::room_columns("r"),
            events = callbacks::enqueue(&[started_event(
                "FROM rec JOIN r ON r.sid = rec.room_sid JOIN participants p ON p.sid = rec.participant_sid",
            )]),
        )
    });
    sqlx::query_scalar(&SET)
        .bind(room_sid)
        .bind(rules)
        .fetch_optional(conn)
        .await
}

/// Whether a room's rules in force record anything (an include rule): then its media node
/// records the room.
pub async fn room_records(db: impl PgExecutor<'_>, room_sid: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COALESCE((SELECT EXISTS (SELECT 1 FROM jsonb_array_elements( \
            room_recording_rules(recording_rules, record_participants_on_connect)) x \
            WHERE x->>'type' = 'include') FROM rooms WHERE sid = $1), false)",
    )
    .bind(room_sid)
    .fetch_one(db)
    .await
}

/// The status callbacks of a conversion's end, in the statement that records it: `rec` is the
/// updated recording, `r` its room (locked by the caller).
pub(super) fn ended_event(event: &'static str, extra: &'static str) -> EventSource<'static> {
    EventSource {
        event,
        room: "r",
        room_status: "r.status",
        participant: None,
        track: None,
        extra,
        at: "rec.date_updated",
        from: "FROM rec JOIN rooms r ON r.sid = rec.room_sid JOIN participants p ON p.sid = rec.participant_sid",
        filter: "",
    }
}

/// What `recording-completed` adds to the common parameters.
pub(super) static COMPLETED_PARAMS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{EVENT_PARAMS}, 'MediaUri', '/v1/Recordings/' || rec.sid || '/Media', \
         'Duration', rec.duration::text, 'Size', rec.size::text"
    )
});
/// What `recording-failed` adds.
pub(super) static FAILED_PARAMS: LazyLock<String> =
    LazyLock::new(|| format!("{EVENT_PARAMS}, 'FailedOperation', 'RecordingComplete'"));

/// A completed recording's kind and file, whatever its account (for a signed media link, which
/// names the recording and is the grant).
pub async fn find_any(
    db: impl PgExecutor<'_>,
    sid: &str,
) -> Result<Option<(String, Option<String>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT kind, media_path FROM recordings WHERE sid = $1 AND status = 'completed'",
    )
    .bind(sid)
    .fetch_optional(db)
    .await
}

/// How many of a participant's open segments do not know their stream file yet.
pub async fn awaiting_files(
    db: impl PgExecutor<'_>,
    participant_sid: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM recordings \
         WHERE participant_sid = $1 AND media_ended_at IS NULL AND media_file IS NULL",
    )
    .bind(participant_sid)
    .fetch_one(db)
    .await
}

/// Records the stream files (`(mindex, file name)`) of a participant's open segments.
pub async fn set_media_files(
    db: impl PgExecutor<'_>,
    participant_sid: &str,
    files: &[(i32, String)],
) -> Result<u64, sqlx::Error> {
    let (mindexes, names): (Vec<i32>, Vec<String>) = files.iter().cloned().unzip();
    sqlx::query(
        "UPDATE recordings r SET media_file = f.name \
         FROM unnest($2::integer[], $3::text[]) AS f(mindex, name) \
         WHERE r.participant_sid = $1 AND r.media_mindex = f.mindex \
           AND r.media_ended_at IS NULL AND r.media_file IS NULL",
    )
    .bind(participant_sid)
    .bind(&mindexes)
    .bind(&names)
    .execute(db)
    .await
    .map(|done| done.rows_affected())
}

/// The publisher handles (`participant, session, handle`) of a room's participants whose open
/// segments do not know their stream file yet.
pub async fn publishers_awaiting_files(
    db: impl PgExecutor<'_>,
    room_sid: &str,
) -> Result<Vec<(String, i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT DISTINCT h.participant_sid, h.session_id, h.handle_id \
         FROM recordings r JOIN media_handles h ON h.participant_sid = r.participant_sid AND h.publisher \
         WHERE r.room_sid = $1 AND r.media_ended_at IS NULL AND r.media_file IS NULL",
    )
    .bind(room_sid)
    .fetch_all(db)
    .await
}
