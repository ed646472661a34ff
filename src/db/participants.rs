//! Participants. Every change to a room's participants first locks the room's row (`FOR UPDATE`),
//! then changes participant rows, then the room's counter: one lock order everywhere (the
//! sweeper's statements and ending a room take it too), so concurrent joins, disconnects and
//! sweeps of one room serialise on its row and never deadlock. The connected count is a column
//! of the room, bounded by a CHECK (`rooms_participants_within_max`), so `max_participants`
//! holds across replicas.

use super::callbacks::{self};
use super::error::{BreaksConnection, DbError, OnConstraint};
use super::list::{self, Listing, Page};
use super::rooms::{self, RoomKey, RoomRow};
use crate::domain::participant::ParticipantStatus;
use crate::domain::room::RoomStatus;
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

pub(super) const COLUMNS: &str =
    "sid, room_sid, account_sid, status, identity, date_created, date_updated, \
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
    /// 53300: a track the media server reports is changed by its client, not over REST.
    MediaTrack,
    /// A media plane is attached but none of its nodes answers (503).
    NoMediaNode,
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
    /// Its media session ended without a goodbye: hung up, timed out, never joined in time, or
    /// its Janus node restarted or stopped answering.
    MediaLost,
}

impl EndReason {
    pub const ALL: [EndReason; 6] = [
        EndReason::Left,
        EndReason::Kicked,
        EndReason::DuplicateIdentity,
        EndReason::MaxDuration,
        EndReason::RoomEnded,
        EndReason::MediaLost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Left => "left",
            EndReason::Kicked => "kicked",
            EndReason::DuplicateIdentity => "duplicate_identity",
            EndReason::MaxDuration => "max_duration",
            EndReason::RoomEnded => "room_ended",
            EndReason::MediaLost => "media_lost",
        }
    }
}

/// Disconnects the connected participants that `condition` (over `participants p`) selects, for
/// `reason`, unpublishes their tracks, and takes both off their rooms' counts; a room left empty
/// gets its empty-room deadline. Writes the status callback events: each track's removal, then
/// each participant's disconnection. The caller holds the rooms' locks already, taken in an
/// earlier statement of its transaction.
pub(super) fn disconnect_sql(condition: &str, reason: EndReason) -> String {
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

/// Whether an Access Token's room grant (none: any room) admits `room`, by name or SID.
pub fn grant_admits(grant: Option<&str>, room: &RoomRow) -> bool {
    grant.is_none_or(|g| {
        g == room.unique_name || RoomSid::parse(g).is_some_and(|sid| *sid == *room.sid)
    })
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
            list::push_created(q, filter.created_on_or_after, filter.created_before);
        },
        page,
    )
    .await
}
