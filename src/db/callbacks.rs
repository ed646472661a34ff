//! Room status callbacks: the outbox (`callback_events`). The statements that change rooms,
//! participants and tracks write the events they imply through `enqueue`, in the same statement;
//! dispatchers claim, deliver and settle them with the functions below.

use super::error::DbError;
use super::list::{self, Listing, Page};
use crate::twilio::paging::PageRequest;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

/// One kind of event that a statement writes, and the rows it is written for.
pub(super) struct EventSource<'a> {
    /// `StatusCallbackEvent`: a literal (`'room-created'`) or an expression.
    pub event: &'a str,
    /// The alias of a row with the room's `sid, account_sid, unique_name, type,
    /// status_callback, status_callback_method` (see `room_columns`).
    pub room: &'a str,
    /// `RoomStatus` as the event reports it: a literal (`'in-progress'`) or an expression.
    pub room_status: &'a str,
    /// The alias of a row with the participant's `sid, identity`, and `ParticipantStatus`.
    pub participant: Option<(&'a str, &'a str)>,
    /// The alias of a row with the track's `sid, kind, name`.
    pub track: Option<&'a str>,
    /// Further parameters: `'Name', expression` pairs.
    pub extra: &'a str,
    /// When it happened (`Timestamp`).
    pub at: &'a str,
    /// `FROM ...` with the aliases above.
    pub from: &'a str,
    /// A further condition (`""`: none).
    pub filter: &'a str,
}

/// The events of participants leaving with their tracks: each track's removal (from the CTE
/// `unpublished t`: `sid, participant_sid, kind, name`), then each participant's disconnection
/// (from the CTE `gone g`: `sid, identity, end_time, duration`), at the participant's end time.
/// `join_room` joins the room row `room` to `g` (e.g. `JOIN ended e ON e.sid = g.room_sid`);
/// `then` comes after them (the room's end). The whole `enqueue` CTE.
pub(super) fn departures(room: &str, join_room: &str, then: Option<&EventSource<'_>>) -> String {
    let tracks = format!("FROM unpublished t JOIN gone g ON g.sid = t.participant_sid {join_room}");
    let participants = format!("FROM gone g {join_room}");
    enqueue_with(
        &[
            EventSource {
                event: "'track-removed'",
                room,
                room_status: "'in-progress'",
                participant: Some(("g", "connected")),
                track: Some("t"),
                extra: "",
                at: "g.end_time",
                from: &tracks,
                filter: "",
            },
            EventSource {
                event: "'participant-disconnected'",
                room,
                room_status: "'in-progress'",
                participant: Some(("g", "disconnected")),
                track: None,
                extra: "'ParticipantDuration', g.duration::text",
                at: "g.end_time",
                from: &participants,
                filter: "",
            },
        ],
        then,
    )
}

/// The room columns an event needs, with `alias.` in front (for `RETURNING`).
pub(super) fn room_columns(alias: &str) -> String {
    [
        "sid",
        "account_sid",
        "unique_name",
        "type",
        "status_callback",
        "status_callback_method",
    ]
    .map(|c| format!("{alias}.{c}"))
    .join(", ")
}

/// A CTE (`callback_events_written AS (...)`, to put in a statement's `WITH`) that inserts the
/// events of `sources` for rooms that have a `StatusCallback`. Within the statement, a room's
/// events are numbered in the order of `sources` (so a track's removal comes before its
/// participant's disconnection, and both before the room's end), then by time and SID; after
/// the room's last number. That number is read with the statement's snapshot: every caller has
/// locked the room in an earlier statement of its transaction (or inserts it), so the snapshot
/// holds every event of the room, and none can be added concurrently. The first event is the
/// room's head (a claim candidate) when the room has no pending event; the earliest pending one
/// is locked `FOR SHARE` to decide that (see migration V8).
pub(super) fn enqueue(sources: &[EventSource<'_>]) -> String {
    enqueue_with(sources, None)
}

/// `enqueue`, with `then` after `sources` (the room's end after its departures).
pub(super) fn enqueue_with(sources: &[EventSource<'_>], then: Option<&EventSource<'_>>) -> String {
    let selects: Vec<String> = sources
        .iter()
        .chain(then)
        .enumerate()
        .map(|(ord, s)| {
            let r = s.room;
            let mut params = format!(
                "'AccountSid', {r}.account_sid, 'RoomSid', {r}.sid, 'RoomName', {r}.unique_name, \
                 'RoomStatus', {}, 'RoomType', {r}.type",
                s.room_status
            );
            let mut tiebreak = format!("{r}.sid");
            if let Some((p, status)) = s.participant {
                params.push_str(&format!(
                    ", 'ParticipantSid', {p}.sid, 'ParticipantIdentity', {p}.identity, \
                     'ParticipantStatus', '{status}'"
                ));
                tiebreak = format!("{p}.sid");
            }
            if let Some(t) = s.track {
                params.push_str(&format!(
                    ", 'TrackSid', {t}.sid, 'TrackKind', {t}.kind, 'TrackName', {t}.name"
                ));
                tiebreak = format!("{t}.sid");
            }
            if !s.extra.is_empty() {
                params.push_str(", ");
                params.push_str(s.extra);
            }
            let filter = if s.filter.is_empty() {
                String::new()
            } else {
                format!(" AND ({})", s.filter)
            };
            format!(
                "SELECT {r}.account_sid, {r}.sid AS room_sid, {r}.status_callback AS url, \
                    {r}.status_callback_method AS method, {ord} AS ord, ({at})::timestamptz AS at, \
                    {tiebreak} AS tiebreak, ({event})::text AS event, \
                    jsonb_build_object({params}) AS params \
                 {from} WHERE {r}.status_callback IS NOT NULL{filter}",
                at = s.at,
                event = s.event,
                from = s.from,
            )
        })
        .collect();
    // The room's next number, and whether an event of the room is pending (then the first new
    // one is not the head), are read once per room (`callback_rooms`), not once per event: a
    // departure writes an event per track.
    format!(
        r#"callback_sources AS ({}),
        callback_rooms AS (
            SELECT r.room_sid,
                (SELECT COALESCE(max(c.sequence_number) + 1, 0) FROM callback_events c
                 WHERE c.room_sid = r.room_sid) AS base,
                EXISTS (SELECT 1 FROM callback_events c
                 WHERE c.room_sid = r.room_sid AND c.status = 'pending'
                 ORDER BY c.sequence_number LIMIT 1 FOR SHARE) AS waiting
            FROM (SELECT DISTINCT room_sid FROM callback_sources) r),
        callback_events_written AS (
            INSERT INTO callback_events (sid, account_sid, room_sid, sequence_number, event, url, method, params, head)
            SELECT 'EV' || replace(gen_random_uuid()::text, '-', ''), s.account_sid, s.room_sid,
                s.seq, s.event, s.url, s.method,
                s.params || jsonb_build_object('StatusCallbackEvent', s.event,
                    'SequenceNumber', s.seq::text,
                    'Timestamp', to_char(s.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
                s.seq = s.base AND NOT s.waiting
            FROM (SELECT u.*, b.base, b.waiting,
                    b.base
                    + (row_number() OVER (PARTITION BY u.room_sid ORDER BY u.ord, u.at, u.tiebreak))::integer
                    - 1 AS seq
                  FROM callback_sources u JOIN callback_rooms b ON b.room_sid = u.room_sid) s)"#,
        selects.join(" UNION ALL ")
    )
}

/// An event as the delivery log shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub sid: String,
    pub account_sid: String,
    pub room_sid: String,
    pub sequence_number: i32,
    pub event: String,
    pub url: String,
    pub method: String,
    pub params: sqlx::types::Json<serde_json::Map<String, serde_json::Value>>,
    pub status: String,
    pub attempts: i32,
    pub last_response_status: Option<i32>,
    pub last_error: Option<String>,
    pub date_created: DateTime<Utc>,
    pub date_updated: DateTime<Utc>,
    pub date_delivered: Option<DateTime<Utc>>,
}

impl crate::twilio::paging::HasSid for EventRow {
    fn sid(&self) -> &str {
        &self.sid
    }
}

const COLUMNS: &str = "sid, account_sid, room_sid, sequence_number, event, url, method, params, \
    status, attempts, last_response_status, last_error, date_created, date_updated, date_delivered";

const LISTING: Listing = Listing {
    table: "callback_events",
    columns: COLUMNS,
    order_by: "sequence_number",
    descending: false,
};

/// A page of a room's events, in `SequenceNumber` order.
pub async fn list<'q>(
    conn: &mut PgConnection,
    account_sid: &'q str,
    room_sid: &'q str,
    page: &'q PageRequest,
) -> Result<Page<EventRow>, DbError> {
    list::page(
        conn,
        &LISTING,
        &[("account_sid", account_sid), ("room_sid", room_sid)],
        |_| {},
        page,
    )
    .await
}

pub async fn find(
    db: impl PgExecutor<'_>,
    account_sid: &str,
    room_sid: &str,
    sid: &str,
) -> Result<Option<EventRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM callback_events WHERE account_sid = $1 AND room_sid = $2 AND sid = $3"
    ))
    .bind(account_sid)
    .bind(room_sid)
    .bind(sid)
    .fetch_optional(db)
    .await
}

/// Queues an event again (`Status=pending`): due now, in its room's order, with one more
/// attempt (its attempt count stays, so a resend never renews the retry budget). An event being
/// delivered right now keeps its lease (it stays pending either way).
pub async fn resend(
    conn: &mut PgConnection,
    account_sid: &str,
    room_sid: &str,
    sid: &str,
) -> Result<Option<EventRow>, sqlx::Error> {
    sqlx::query_scalar::<_, bool>("SELECT callback_requeue($1, $2, $3)")
        .bind(account_sid)
        .bind(room_sid)
        .bind(sid)
        .fetch_one(&mut *conn)
        .await?;
    find(&mut *conn, account_sid, room_sid, sid).await
}
