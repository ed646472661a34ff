//! Joining a room: the room locked (or created for a name), an older participant with the same
//! identity replaced, a place taken by compare-and-set, the participant inserted.

use super::callbacks::{self, EventSource};
use super::participants::{
    disconnect_sql, grant_admits, ChangeError, EndReason, ParticipantRow, Refusal, COLUMNS,
};
use super::rooms::{self, RoomKey, RoomRow};
use crate::domain::create_room::CreateRoom;
use crate::domain::participant::Identity;
use crate::domain::room::RoomStatus;
use crate::domain::sid::RoomSid;
use sqlx::PgConnection;
use std::sync::LazyLock;

/// A join that took a place: the participant, its room, and what the join did besides.
#[derive(Debug)]
pub struct Joined {
    pub participant: ParticipantRow,
    pub room: RoomRow,
    /// The room did not exist: the join created it (Twilio's client-side room creation).
    pub room_created: bool,
    /// The media node the participant is admitted to (when a media plane is attached).
    pub media_node: Option<String>,
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
    /// With a media plane: the process placing the room (its own embedded node or an
    /// external one), and the seconds the participant has to join its media (`None`: no limit).
    pub media: Option<MediaJoin<'a>>,
}

/// What a join with a media plane asks for besides.
#[derive(Clone, Copy)]
pub struct MediaJoin<'a> {
    pub owner: &'a str,
    pub connect_timeout: Option<f64>,
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
    let media_node = match join.media {
        Some(media) => Some(
            super::media_nodes::place_room(&mut *conn, &room.sid, media.owner)
                .await?
                .ok_or(Refusal::NoMediaNode)?,
        ),
        None => None,
    };
    static ENTER: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH placed AS ( \
                UPDATE rooms r SET participants_connected = r.participants_connected + 1, \
                    deadline = NULL, deadline_reason = NULL \
                WHERE r.sid = $1 AND r.participants_connected < r.max_participants \
                RETURNING {room}, r.max_participant_duration), \
             joined AS ( \
                INSERT INTO participants (sid, account_sid, room_sid, identity, status, deadline, \
                    media_node, media_deadline) \
                SELECT $2, account_sid, sid, $3, 'connected', \
                    roomd_now() + make_interval(secs => max_participant_duration), \
                    $4, roomd_now() + make_interval(secs => $5::float8) FROM placed \
                RETURNING {COLUMNS}), \
             {events} \
             SELECT {COLUMNS} FROM joined",
            room = callbacks::room_columns("r"),
            events = callbacks::enqueue(&[EventSource {
                event: "'participant-connected'",
                room: "r",
                room_status: "'in-progress'",
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
        .bind(&media_node)
        .bind(join.media.and_then(|m| m.connect_timeout))
        .fetch_optional(&mut *conn)
        .await?;
    let participant = participant.ok_or(Refusal::RoomFull)?;
    Ok(Joined {
        participant,
        room,
        room_created,
        replaced,
        media_node,
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
