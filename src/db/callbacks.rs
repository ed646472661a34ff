//! Room status callbacks: the outbox (`callback_events`). The statements that change rooms,
//! participants and tracks write the events they imply through `enqueue`, in the same statement;
//! dispatchers claim, deliver and settle them with the functions below.

use super::error::DbError;
use super::list::{self, Listing, Page};
use crate::twilio::paging::PageRequest;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use std::time::Duration;

/// One kind of event that a statement writes, and the rows it is written for.
pub(super) struct EventSource<'a> {
    /// `StatusCallbackEvent`: a literal (`'room-created'`) or an expression.
    pub event: &'a str,
    /// The alias of a row with the room's `sid, account_sid, unique_name, type,
    /// status_callback, status_callback_method` (see `room_columns`).
    pub room: &'a str,
    /// `RoomStatus` as the event reports it.
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
                room_status: "in-progress",
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
                room_status: "in-progress",
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
                 'RoomStatus', '{}', 'RoomType', {r}.type",
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

/// An event as a dispatcher delivers it.
#[derive(Debug, sqlx::FromRow)]
pub struct Claimed {
    pub sid: String,
    pub account_sid: String,
    pub room_sid: String,
    pub sequence_number: i32,
    pub url: String,
    pub method: String,
    pub params: sqlx::types::Json<serde_json::Map<String, serde_json::Value>>,
    /// This claim's attempt number (1 for the first): the fence of `settle`.
    pub attempts: i32,
    pub date_created: DateTime<Utc>,
    /// The destination its delivery slot counts against (`callback_host`).
    pub host: String,
    /// The account's auth token, sealed (NULL for an account created before tokens were sealed).
    pub auth_token_sealed: Option<Vec<u8>>,
}

/// What a claim may take: free slots in all, per account and per destination host, given the
/// deliveries this process has in flight.
#[derive(Debug, Clone, Default)]
pub struct ClaimLimits {
    /// Events to claim at most.
    pub free: i64,
    /// Deliveries in flight at once for one account.
    pub per_account: i64,
    /// Deliveries in flight at once to one host (`callback_host`: host and port).
    pub per_host: i64,
    /// `(account_sid, deliveries in flight)` for the accounts with any.
    pub busy_accounts: Vec<(String, i64)>,
    /// `(host, deliveries in flight)` for the hosts with any.
    pub busy_hosts: Vec<(String, i64)>,
}

/// Claims due head events (a room's next event waits for the one before it), leasing them for
/// `lease`: until it ends, no dispatcher takes them again. Accounts take turns: every account's
/// oldest due head comes before any account's second, and none gets more than its free slots
/// (per account, then per host). The accounts are walked one index probe each (a loose index
/// scan), then each account's due heads through the same index, so a claim reads about as much
/// with a million events queued behind dead receivers as with none. The candidates are locked
/// as they are read (`FOR UPDATE SKIP LOCKED`, which re-checks them against their latest
/// version), so replicas claim at once without waiting for each other, and every step is an
/// index probe whatever the plan's age: the dispatcher's connections keep generic plans.
pub async fn claim(
    db: impl PgExecutor<'_>,
    limits: &ClaimLimits,
    lease: Duration,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let (busy_accounts, account_counts): (Vec<&str>, Vec<i64>) = limits
        .busy_accounts
        .iter()
        .map(|(a, n)| (a.as_str(), *n))
        .unzip();
    let (busy_hosts, host_counts): (Vec<&str>, Vec<i64>) = limits
        .busy_hosts
        .iter()
        .map(|(h, n)| (h.as_str(), *n))
        .unzip();
    sqlx::query_as(
        "WITH RECURSIVE accounts_with_heads(account_sid) AS ( \
            (SELECT h.account_sid FROM callback_events h WHERE h.status = 'pending' AND h.head \
             ORDER BY h.account_sid LIMIT 1) \
            UNION ALL \
            SELECT (SELECT h.account_sid FROM callback_events h \
                    WHERE h.status = 'pending' AND h.head AND h.account_sid > a.account_sid \
                    ORDER BY h.account_sid LIMIT 1) \
            FROM accounts_with_heads a WHERE a.account_sid IS NOT NULL), \
         busy_accounts AS (SELECT * FROM unnest($4::text[], $5::bigint[]) AS b(account_sid, n)), \
         busy_hosts AS (SELECT * FROM unnest($7::text[], $8::bigint[]) AS b(host, n)), \
         candidates AS ( \
            SELECT c.sid, c.account_sid, c.next_attempt, c.host, \
                row_number() OVER (PARTITION BY c.account_sid ORDER BY c.next_attempt, c.sid) AS turn \
            FROM accounts_with_heads a CROSS JOIN LATERAL ( \
                SELECT h.sid, h.account_sid, h.next_attempt, callback_host(h.url) AS host \
                FROM callback_events h \
                WHERE h.account_sid = a.account_sid AND h.status = 'pending' AND h.head \
                AND h.next_attempt <= now() \
                ORDER BY h.next_attempt \
                LIMIT greatest(0, $3 - coalesce((SELECT b.n FROM busy_accounts b \
                                                 WHERE b.account_sid = a.account_sid), 0)) \
                FOR UPDATE SKIP LOCKED) c \
            WHERE a.account_sid IS NOT NULL), \
         placed AS ( \
            SELECT c.*, row_number() OVER (PARTITION BY c.host ORDER BY c.turn, c.next_attempt, c.sid) \
                AS host_turn \
            FROM candidates c), \
         picked AS ( \
            SELECT p.sid FROM placed p \
            WHERE p.host_turn <= $6 - coalesce((SELECT b.n FROM busy_hosts b WHERE b.host = p.host), 0) \
            ORDER BY p.turn, p.next_attempt, p.sid LIMIT $1), \
         claimed AS ( \
            UPDATE callback_events e SET attempts = e.attempts + 1, \
                next_attempt = now() + make_interval(secs => $2), date_updated = now() \
            FROM picked k WHERE e.sid = k.sid \
            RETURNING e.sid, e.account_sid, e.room_sid, e.sequence_number, e.url, e.method, \
                e.params, e.attempts, e.date_created) \
         SELECT c.*, callback_host(c.url) AS host, a.auth_token_sealed \
         FROM claimed c JOIN accounts a ON a.sid = c.account_sid",
    )
    .bind(limits.free)
    .bind(lease.as_secs_f64())
    .bind(limits.per_account)
    .bind(busy_accounts)
    .bind(account_counts)
    .bind(limits.per_host)
    .bind(busy_hosts)
    .bind(host_counts)
    .fetch_all(db)
    .await
}

/// How one attempt ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Delivered {
        status: u16,
    },
    /// Retried at `retry_at`, or marked failed when `None`.
    Failed {
        status: Option<u16>,
        error: String,
        retry_at: Option<Duration>,
    },
}

/// Records attempts' outcomes (`(sid, attempt, outcome)`) in one call (one commit for many
/// deliveries); an outcome counts only if the event is still that attempt's (a dispatcher
/// whose lease ran out, and whose event another took, changes nothing). A settled event's room
/// gets its next event as head. Returns the events taken, each with whether its outcome
/// counted; an event not returned was held by a writer for a moment, and is to be tried again.
pub async fn settle(
    db: impl PgExecutor<'_>,
    outcomes: &[(&str, i32, &Outcome)],
) -> Result<Vec<(String, bool)>, sqlx::Error> {
    let n = outcomes.len();
    let (mut sids, mut attempts, mut statuses, mut codes, mut errors, mut retries) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (sid, attempt, outcome) in outcomes {
        let (status, code, error, retry_in) = match outcome {
            Outcome::Delivered { status } => ("delivered", Some(*status), None, None),
            Outcome::Failed {
                status,
                error,
                retry_at: Some(after),
            } => (
                "pending",
                *status,
                Some(error.as_str()),
                Some(after.as_secs_f64()),
            ),
            Outcome::Failed { status, error, .. } => {
                ("failed", *status, Some(error.as_str()), None)
            }
        };
        sids.push(*sid);
        attempts.push(*attempt);
        statuses.push(status);
        codes.push(code.map(i32::from));
        errors.push(error);
        retries.push(retry_in);
    }
    sqlx::query_as("SELECT sid, recorded FROM callback_settle($1, $2, $3, $4, $5, $6)")
        .bind(sids)
        .bind(attempts)
        .bind(statuses)
        .bind(codes)
        .bind(errors)
        .bind(retries)
        .fetch_all(db)
        .await
}

/// Deletes up to `limit` delivered or failed events last changed more than `retention` ago,
/// except each room's last event (the next one's `SequenceNumber` follows it). How many.
pub async fn prune(
    db: impl PgExecutor<'_>,
    retention: Duration,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM callback_events WHERE sid IN ( \
            SELECT e.sid FROM callback_events e \
            WHERE e.status <> 'pending' AND e.date_updated < now() - make_interval(secs => $1) \
            AND EXISTS (SELECT 1 FROM callback_events n \
                        WHERE n.room_sid = e.room_sid AND n.sequence_number > e.sequence_number) \
            ORDER BY e.date_updated LIMIT $2 FOR UPDATE SKIP LOCKED)",
    )
    .bind(retention.as_secs_f64())
    .bind(limit)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Gives leased events back at once (a dispatcher stopping with deliveries unfinished): as if
/// the attempt had not been made.
pub async fn release(db: impl PgExecutor<'_>, claims: &[(String, i32)]) -> Result<(), sqlx::Error> {
    let (sids, attempts): (Vec<&str>, Vec<i32>) =
        claims.iter().map(|(s, a)| (s.as_str(), *a)).unzip();
    sqlx::query(
        "UPDATE callback_events e SET attempts = e.attempts - 1, next_attempt = now(), \
            date_updated = now() \
         FROM unnest($1::text[], $2::integer[]) AS c(sid, attempts) \
         WHERE e.sid = c.sid AND e.attempts = c.attempts AND e.status = 'pending'",
    )
    .bind(sids)
    .bind(attempts)
    .execute(db)
    .await?;
    Ok(())
}

/// Registers a dispatcher, or says whether it is idle (a commit notifies only while one is),
/// and that it is alive. Rows of dispatchers gone for an hour are cleared.
pub async fn set_idle(db: impl PgExecutor<'_>, id: &str, idle: bool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH gone AS (DELETE FROM callback_dispatchers WHERE seen < now() - interval '1 hour') \
         INSERT INTO callback_dispatchers (id, idle, seen) VALUES ($1, $2, now()) \
         ON CONFLICT (id) DO UPDATE SET idle = EXCLUDED.idle, seen = EXCLUDED.seen",
    )
    .bind(id)
    .bind(idle)
    .execute(db)
    .await?;
    Ok(())
}

/// A dispatcher that stops.
pub async fn unregister(db: impl PgExecutor<'_>, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM callback_dispatchers WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
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
