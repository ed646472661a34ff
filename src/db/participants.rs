//! Participants. Every change to a room's participants first locks the room's row (`FOR UPDATE`),
//! then changes participant rows, then the room's counter: one lock order everywhere (the
//! sweeper's statements and ending a room take it too), so concurrent joins, disconnects and
//! sweeps of one room serialise on its row and never deadlock. The connected count is a column
//! of the room, bounded by a CHECK (`rooms_participants_within_max`), so `max_participants`
//! holds across replicas.

use super::callbacks::{self, EventSource};
use super::error::{BreaksConnection, DbError, OnConstraint};
use super::list::{self, Listing, Page};
use super::rooms::{self, RoomKey, RoomRow};
use crate::domain::participant::{Identity, ParticipantStatus};
use crate::domain::room::{CreateRoom, RoomStatus};
use crate::domain::sid::RoomSid;
use crate::twilio::error::code;
use crate::twilio::paging::PageRequest;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use std::sync::LazyLock;

/// A stored participant.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ParticipantRow {
    pub sid: String,
    pub room_sid: String,
    pub account_sid: String,
    pub status: String,
    pub identity: String,
    pub date_created: DateTime<Utc>,
    pub date_updated: DateTime<Utc>,
    pub start_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    pub duration: Option<i32>,
    pub end_reason: Option<String>,
}

impl crate::twilio::paging::HasSid for ParticipantRow {
    fn sid(&self) -> &str {
        &self.sid
    }
}

const COLUMNS: &str = "sid, room_sid, account_sid, status, identity, date_created, date_updated, \
    start_time, end_time, duration, end_reason";

/// How a path names a participant: its SID (any status) or its identity (connected only).
#[derive(Debug, Clone, Copy)]
pub enum ParticipantKey<'a> {
    Sid(&'a str),
    Identity(&'a str),
}

/// Why a change to a room's participants was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    RoomNotFound,
    /// 53118
    RoomCompleted,
    /// 53105
    RoomFull,
    /// The Access Token's room grant names another room (20106).
    NotGranted,
    ParticipantNotFound,
    /// A join naming a room that does not exist, for an account that turned client-side room
    /// creation off (answered as `RoomNotFound`).
    RoomCreationOff,
    /// 53119: the account has as many rooms in progress as its quota allows.
    RoomsQuota,
    /// 53206: the account has as many participants connected as its quota allows.
    ParticipantsQuota,
    /// Disconnecting a participant that is not connected.
    NotConnected,
    /// An Access Token acting on another identity's participant (20106).
    NotYours,
    TrackNotFound,
    /// 53304
    TrackNameDuplicated,
    /// 53203: the room's `max_concurrent_published_tracks` are published.
    MaxTracks,
    /// 53203: the participant publishes `MAX_TRACKS_PER_PARTICIPANT` tracks already.
    MaxTracksPerParticipant,
    /// 53300: an audio-only room takes no video track.
    VideoInAudioOnlyRoom,
}

/// A participant change's error: a refusal (nothing was written; the transaction rolls back), or
/// the database's.
#[derive(Debug)]
pub enum ChangeError {
    Refused(Refusal),
    Sql(sqlx::Error),
}

impl From<sqlx::Error> for ChangeError {
    fn from(e: sqlx::Error) -> Self {
        ChangeError::Sql(e)
    }
}

impl From<Refusal> for ChangeError {
    fn from(r: Refusal) -> Self {
        ChangeError::Refused(r)
    }
}

impl BreaksConnection for ChangeError {
    fn breaks_connection(&self) -> bool {
        match self {
            ChangeError::Sql(e) => e.breaks_connection(),
            ChangeError::Refused(_) => false,
        }
    }
}

/// Why participants leave, as stored in `end_reason` and counted in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// With its own Access Token.
    Left,
    /// `Status=disconnected` over REST.
    Kicked,
    /// A newer join with the same identity.
    DuplicateIdentity,
    /// Connected longer than the room's `max_participant_duration` (the sweeper).
    MaxDuration,
    /// The room ended.
    RoomEnded,
}

impl EndReason {
    pub const ALL: [EndReason; 5] = [
        EndReason::Left,
        EndReason::Kicked,
        EndReason::DuplicateIdentity,
        EndReason::MaxDuration,
        EndReason::RoomEnded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Left => "left",
            EndReason::Kicked => "kicked",
            EndReason::DuplicateIdentity => "duplicate_identity",
            EndReason::MaxDuration => "max_duration",
            EndReason::RoomEnded => "room_ended",
        }
    }
}

/// Disconnects the connected participants that `condition` (over `participants p`) selects, for
/// `reason`, unpublishes their tracks, and takes both off their rooms' counts; a room left empty
/// gets its empty-room deadline. Writes the status callback events: each track's removal, then
/// each participant's disconnection. The caller holds the rooms' locks already, taken in an
/// earlier statement of its transaction.
fn disconnect_sql(condition: &str, reason: EndReason) -> String {
    let reason = reason.as_str();
    format!(
        "WITH gone AS ( \
            UPDATE participants p SET status = 'disconnected', \
                end_time = GREATEST(roomd_now(), p.start_time), \
                date_updated = GREATEST(roomd_now(), p.start_time), \
                duration = GREATEST(0, EXTRACT(EPOCH FROM date_trunc('second', GREATEST(roomd_now(), p.start_time)) - date_trunc('second', p.start_time)))::integer, \
                end_reason = '{reason}', deadline = NULL \
            WHERE {condition} AND p.status = 'connected' \
            RETURNING p.*), \
         unpublished AS ( \
            DELETE FROM published_tracks t WHERE t.participant_sid IN (SELECT sid FROM gone) \
            RETURNING t.sid, t.room_sid, t.participant_sid, t.kind, t.name), \
         counts AS ( \
            SELECT g.room_sid, g.n, COALESCE(u.n, 0) AS tracks \
            FROM (SELECT room_sid, count(*)::integer AS n FROM gone GROUP BY room_sid) g \
            LEFT JOIN (SELECT room_sid, count(*)::integer AS n FROM unpublished GROUP BY room_sid) u \
                ON u.room_sid = g.room_sid), \
         rooms_left AS ( \
            UPDATE rooms r SET participants_connected = r.participants_connected - c.n, \
                tracks_published = r.tracks_published - c.tracks, \
                deadline = CASE WHEN r.participants_connected = c.n \
                    THEN roomd_now() + make_interval(mins => r.empty_room_timeout) ELSE r.deadline END, \
                deadline_reason = CASE WHEN r.participants_connected = c.n \
                    THEN 'empty_timeout' ELSE r.deadline_reason END \
            FROM counts c WHERE r.sid = c.room_sid RETURNING {room}), \
         {events} \
         SELECT {COLUMNS} FROM gone",
        room = callbacks::room_columns("r"),
        events = callbacks::departures("r", "JOIN rooms_left r ON r.sid = g.room_sid", None),
    )
}

/// A join that took a place: the participant, its room, and what the join did besides.
#[derive(Debug)]
pub struct Joined {
    pub participant: ParticipantRow,
    pub room: RoomRow,
    /// The room did not exist: the join created it (Twilio's client-side room creation).
    pub room_created: bool,
    /// The older participant with the same identity, disconnected by this join.
    pub replaced: Option<ParticipantRow>,
}

/// What a join asks for.
pub struct Join<'a> {
    pub account_sid: &'a str,
    /// The `{room}` segment; `sid` when it is SID-shaped (then no room is created for it).
    pub segment: &'a str,
    pub sid: Option<&'a RoomSid>,
    pub identity: &'a Identity,
    /// An Access Token's `grants.video.room`: the one room (name or SID) it may join.
    pub grant: Option<&'a str>,
    /// The settings of a room the join creates.
    pub new_room: &'a CreateRoom,
}

/// Whether an Access Token's room grant (none: any room) admits `room`, by name or SID.
pub fn grant_admits(grant: Option<&str>, room: &RoomRow) -> bool {
    grant.is_none_or(|g| {
        g == room.unique_name || RoomSid::parse(g).is_some_and(|sid| *sid == *room.sid)
    })
}

/// Joins a room, in the caller's transaction: locks the room (creating it for a name that no
/// in-progress room has), disconnects a connected participant with the same identity, takes a
/// place if one is free (compare-and-set on the counter) and inserts the participant, whose
/// deadline is `max_participant_duration` from now. Joining clears the room's deadline (unused
/// or empty timeout).
pub async fn join(conn: &mut PgConnection, join: &Join<'_>) -> Result<Joined, ChangeError> {
    // A plain list (not an iterator adapter with a closure), so that the join's future is Send
    // for any lifetime: tools spawning joins on a multi-threaded runtime need that.
    let mut keys = Vec::with_capacity(2);
    if let Some(sid) = join.sid {
        keys.push(RoomKey::Sid(sid));
    }
    keys.push(RoomKey::Name(join.segment));
    let (room, room_created) = match rooms::find_for_update(conn, join.account_sid, keys).await? {
        Some(room) => (room, false),
        None if join.sid.is_some() => return Err(Refusal::RoomNotFound.into()),
        None => {
            if join.grant.is_some_and(|g| g != join.segment) {
                return Err(Refusal::NotGranted.into());
            }
            create_room_to_join(conn, join).await?
        }
    };
    if !grant_admits(join.grant, &room) {
        return Err(Refusal::NotGranted.into());
    }
    if room.status != RoomStatus::InProgress {
        return Err(Refusal::RoomCompleted.into());
    }
    static TAKE_OVER: LazyLock<String> = LazyLock::new(|| {
        disconnect_sql(
            "p.room_sid = $1 AND p.identity = $2",
            EndReason::DuplicateIdentity,
        )
    });
    let replaced: Option<ParticipantRow> = sqlx::query_as(&TAKE_OVER)
        .bind(&room.sid)
        .bind(&**join.identity)
        .fetch_optional(&mut *conn)
        .await?;
    let quota_left: bool = sqlx::query_scalar("SELECT roomd_quota_left($1, 'participants')")
        .bind(join.account_sid)
        .fetch_one(&mut *conn)
        .await?;
    if !quota_left {
        return Err(Refusal::ParticipantsQuota.into());
    }
    static ENTER: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH placed AS ( \
                UPDATE rooms r SET participants_connected = r.participants_connected + 1, \
                    deadline = NULL, deadline_reason = NULL \
                WHERE r.sid = $1 AND r.participants_connected < r.max_participants \
                RETURNING {room}, r.max_participant_duration), \
             joined AS ( \
                INSERT INTO participants (sid, account_sid, room_sid, identity, status, deadline) \
                SELECT $2, account_sid, sid, $3, 'connected', \
                    roomd_now() + make_interval(secs => max_participant_duration) FROM placed \
                RETURNING {COLUMNS}), \
             {events} \
             SELECT {COLUMNS} FROM joined",
            room = callbacks::room_columns("r"),
            events = callbacks::enqueue(&[EventSource {
                event: "'participant-connected'",
                room: "r",
                room_status: "in-progress",
                participant: Some(("p", "connected")),
                track: None,
                extra: "",
                at: "p.start_time",
                from: "FROM joined p JOIN placed r ON r.sid = p.room_sid",
                filter: "",
            }]),
        )
    });
    let participant: Option<ParticipantRow> = sqlx::query_as(&ENTER)
        .bind(&room.sid)
        .bind(crate::domain::sid::ParticipantSid::generate().as_str())
        .bind(&**join.identity)
        .fetch_optional(&mut *conn)
        .await?;
    let participant = participant.ok_or(Refusal::RoomFull)?;
    Ok(Joined {
        participant,
        room,
        room_created,
        replaced,
    })
}

/// Creates the room a join names, or finds the one a concurrent join just created (its INSERT
/// waits for that transaction; the name is then taken and the room is read, locked, again).
async fn create_room_to_join(
    conn: &mut PgConnection,
    join: &Join<'_>,
) -> Result<(RoomRow, bool), ChangeError> {
    let mut new_room = join.new_room.clone();
    new_room.unique_name = Some(
        crate::domain::room::UniqueName::parse(join.segment).map_err(|_| Refusal::RoomNotFound)?,
    );
    let allowed: bool =
        sqlx::query_scalar("SELECT client_room_creation FROM accounts WHERE sid = $1")
            .bind(join.account_sid)
            .fetch_one(&mut *conn)
            .await?;
    if !allowed {
        return Err(Refusal::RoomCreationOff.into());
    }
    let sid = RoomSid::generate();
    if let Some(room) =
        rooms::insert_unless_named(&mut *conn, join.account_sid, &sid, &new_room).await?
    {
        return Ok((room, true));
    }
    match rooms::find_for_update(&mut *conn, join.account_sid, [RoomKey::Name(join.segment)])
        .await?
    {
        Some(room) => Ok((room, false)),
        None if !rooms::rooms_quota_left(&mut *conn, join.account_sid).await? => {
            Err(Refusal::RoomsQuota.into())
        }
        // Taken and already ended again between the two statements: as if never found.
        None => Err(Refusal::RoomNotFound.into()),
    }
}

/// What an Access Token allows a participant to do to itself: its identity's participant, in
/// the room its grant names (if it names one).
#[derive(Debug, Clone, Copy)]
pub struct Own<'a> {
    pub identity: &'a str,
    pub grant: Option<&'a str>,
}

/// Disconnects one participant of a room, in the caller's transaction: `Kicked` (REST), or
/// `Left` with `own`, the participant's own Access Token.
pub async fn disconnect(
    conn: &mut PgConnection,
    account_sid: &str,
    room_keys: impl IntoIterator<Item = RoomKey<'_>>,
    participant_keys: &[ParticipantKey<'_>],
    reason: EndReason,
    own: Option<Own<'_>>,
) -> Result<(RoomRow, ParticipantRow), ChangeError> {
    let room = rooms::find_for_update(conn, account_sid, room_keys)
        .await?
        .ok_or(Refusal::RoomNotFound)?;
    if own.is_some_and(|o| !grant_admits(o.grant, &room)) {
        return Err(Refusal::NotGranted.into());
    }
    let participant = find(conn, account_sid, &room.sid, participant_keys)
        .await?
        .ok_or(Refusal::ParticipantNotFound)?;
    if own.is_some_and(|o| o.identity != participant.identity) {
        return Err(Refusal::NotYours.into());
    }
    static LEFT: LazyLock<String> = LazyLock::new(|| disconnect_sql("p.sid = $1", EndReason::Left));
    static KICKED: LazyLock<String> =
        LazyLock::new(|| disconnect_sql("p.sid = $1", EndReason::Kicked));
    let sql = match reason {
        EndReason::Left => &*LEFT,
        _ => &*KICKED,
    };
    let gone: Option<ParticipantRow> = sqlx::query_as(sql)
        .bind(&participant.sid)
        .fetch_optional(&mut *conn)
        .await?;
    let gone = gone.ok_or(Refusal::NotConnected)?;
    Ok((room, gone))
}

static FETCH_BY_SID: LazyLock<String> = LazyLock::new(|| fetch_sql("sid = $3"));
static FETCH_BY_IDENTITY: LazyLock<String> =
    LazyLock::new(|| fetch_sql("identity = $3 AND status = 'connected'"));

fn fetch_sql(condition: &str) -> String {
    format!(
        "SELECT {COLUMNS} FROM participants \
         WHERE account_sid = $1 AND room_sid = $2 AND {condition}"
    )
}

/// The first participant of the room that one of `keys` names.
pub async fn find(
    conn: &mut PgConnection,
    account_sid: &str,
    room_sid: &str,
    keys: &[ParticipantKey<'_>],
) -> Result<Option<ParticipantRow>, sqlx::Error> {
    // (A list built by a plain loop: a closure held across the await would make the future
    // not Send for every lifetime, which the benchmark's spawned tasks need.)
    let mut tries = Vec::with_capacity(keys.len());
    for key in keys {
        tries.push(match *key {
            ParticipantKey::Sid(s) => (FETCH_BY_SID.as_str(), s),
            ParticipantKey::Identity(i) => (FETCH_BY_IDENTITY.as_str(), i),
        });
    }
    super::find::first_found(conn, [account_sid, room_sid], tries).await
}

/// One connected participant per identity in a room (V4).
const CONNECTED_IDENTITY_CONSTRAINT: &str = "participants_connected_identity";

/// Replaces a participant's identity with its SID (Twilio's Anonymize); its status stays.
/// Joins refuse identities shaped like a participant SID, so the new identity collides with no
/// connected participant's; one that joined with such an identity before that rule keeps it, and
/// anonymizing the participant whose SID it is, while both are connected, is refused (53200).
pub async fn anonymize(
    db: impl PgExecutor<'_>,
    account_sid: &str,
    room_sid: &str,
    sid: &str,
) -> Result<Option<ParticipantRow>, DbError> {
    sqlx::query_as(&format!(
        "UPDATE participants SET identity = sid, date_updated = GREATEST(roomd_now(), date_updated) \
         WHERE account_sid = $1 AND room_sid = $2 AND sid = $3 RETURNING {COLUMNS}"
    ))
    .bind(account_sid)
    .bind(room_sid)
    .bind(sid)
    .fetch_optional(db)
    .await
    .on_constraint(
        CONNECTED_IDENTITY_CONSTRAINT,
        code::IDENTITY_INVALID,
        "Participant identity is in use by another connected participant",
    )
}

/// The list filters of `GET .../Participants`.
#[derive(Debug, Clone)]
pub struct ParticipantFilter {
    /// `None`: Twilio's default, `connected` for an in-progress room and `disconnected` for an
    /// ended one (whose participants all are).
    pub status: Option<ParticipantStatus>,
    pub identity: Option<String>,
    pub created_on_or_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
}

const LISTING: Listing = Listing {
    table: "participants",
    columns: COLUMNS,
    order_by: "date_created",
    descending: false,
};

/// A page of a room's participants, oldest first (join order), keyset-paged.
pub async fn list<'q>(
    conn: &mut PgConnection,
    room: &'q RoomRow,
    filter: &'q ParticipantFilter,
    page: &'q PageRequest,
) -> Result<Page<ParticipantRow>, DbError> {
    let status = filter.status.unwrap_or(match room.status {
        RoomStatus::InProgress => ParticipantStatus::Connected,
        _ => ParticipantStatus::Disconnected,
    });
    list::page(
        conn,
        &LISTING,
        &[("account_sid", &room.account_sid), ("room_sid", &room.sid)],
        |q| {
            q.push(" AND status = ").push_bind(status.as_str());
            if let Some(identity) = &filter.identity {
                q.push(" AND identity = ").push_bind(identity.as_str());
            }
            if let Some(t) = filter.created_on_or_after {
                q.push(" AND date_created >= ").push_bind(t);
            }
            if let Some(t) = filter.created_before {
                q.push(" AND date_created < ").push_bind(t);
            }
        },
        page,
    )
    .await
}

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

/// A participant's subscribe rules (normal form; Twilio's default, include all, when never set)
/// and when they were last set.
pub async fn subscribe_rules(
    db: impl PgExecutor<'_>,
    participant_sid: &str,
) -> Result<(serde_json::Value, Option<DateTime<Utc>>), sqlx::Error> {
    let (rules, updated): (Option<serde_json::Value>, Option<DateTime<Utc>>) = sqlx::query_as(
        "SELECT subscribe_rules, subscribe_rules_updated FROM participants WHERE sid = $1",
    )
    .bind(participant_sid)
    .fetch_one(db)
    .await?;
    Ok((
        rules.unwrap_or_else(crate::domain::rules::include_all),
        updated,
    ))
}

/// Replaces a participant's subscribe rules; when they were set.
pub async fn set_subscribe_rules(
    db: impl PgExecutor<'_>,
    participant_sid: &str,
    rules: &serde_json::Value,
) -> Result<DateTime<Utc>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE participants SET subscribe_rules = $2, subscribe_rules_updated = roomd_now() \
         WHERE sid = $1 RETURNING subscribe_rules_updated",
    )
    .bind(participant_sid)
    .bind(rules)
    .fetch_one(db)
    .await
}
