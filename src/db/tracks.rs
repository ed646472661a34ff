//! Published tracks. Like every change to a room's participants, publishing, toggling and
//! unpublishing first lock the room's row, then act on the participant's tracks, then the room's
//! counter (`tracks_published`, bounded by a CHECK against `max_concurrent_published_tracks`).

use super::callbacks::{self, EventSource};
use super::error::{DbError, OnConstraint};
use super::list::{self, Listing, Page};
use super::participants::{self, grant_admits, ChangeError, Own, ParticipantKey, Refusal};
use super::rooms::{self, RoomKey, RoomRow};
use crate::domain::sid::TrackSid;
use crate::domain::track::{TrackKind, TrackName};
use crate::twilio::error::code;
use crate::twilio::paging::PageRequest;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use std::sync::LazyLock;

/// A published track.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TrackRow {
    pub sid: String,
    pub account_sid: String,
    pub room_sid: String,
    pub participant_sid: String,
    pub name: String,
    pub kind: String,
    pub enabled: bool,
    pub date_created: DateTime<Utc>,
    pub date_updated: DateTime<Utc>,
    /// The stream's mid, for a track the media server reports (`None`: the publish extension's).
    pub media_mid: Option<String>,
}

impl crate::twilio::paging::HasSid for TrackRow {
    fn sid(&self) -> &str {
        &self.sid
    }
}

pub(super) const COLUMNS: &str =
    "sid, account_sid, room_sid, participant_sid, name, kind, enabled, \
    date_created, date_updated, media_mid";

/// How a path names a track: its SID, or its name among its participant's tracks.
#[derive(Debug, Clone, Copy)]
pub enum TrackKey<'a> {
    Sid(&'a str),
    Name(&'a str),
}

/// The participant a track change is for, as the path names it, and who asks.
pub struct Publisher<'a> {
    pub account_sid: &'a str,
    pub room_keys: &'a [RoomKey<'a>],
    pub participant_keys: &'a [ParticipantKey<'a>],
    /// The participant's own Access Token, when it asks itself.
    pub own: Option<Own<'a>>,
}

/// Locks the room, then finds the publisher's participant: connected, and (for a token) itself.
async fn lock_publisher(
    conn: &mut PgConnection,
    who: &Publisher<'_>,
) -> Result<(RoomRow, participants::ParticipantRow), ChangeError> {
    let room = rooms::find_for_update(conn, who.account_sid, who.room_keys.iter().copied())
        .await?
        .ok_or(Refusal::RoomNotFound)?;
    if who.own.is_some_and(|o| !grant_admits(o.grant, &room)) {
        return Err(Refusal::NotGranted.into());
    }
    let participant = participants::find(conn, who.account_sid, &room.sid, who.participant_keys)
        .await?
        .ok_or(Refusal::ParticipantNotFound)?;
    if who.own.is_some_and(|o| o.identity != participant.identity) {
        return Err(Refusal::NotYours.into());
    }
    if participant.status != "connected" {
        return Err(Refusal::NotConnected.into());
    }
    Ok((room, participant))
}

/// The track a path names among the participant's tracks.
pub async fn find(
    conn: &mut PgConnection,
    account_sid: &str,
    participant_sid: &str,
    key: &[TrackKey<'_>],
) -> Result<Option<TrackRow>, sqlx::Error> {
    static BY_SID: LazyLock<String> = LazyLock::new(|| find_sql("sid = $3"));
    static BY_NAME: LazyLock<String> = LazyLock::new(|| find_sql("name = $3"));
    let mut tries = Vec::with_capacity(key.len());
    for k in key {
        tries.push(match *k {
            TrackKey::Sid(s) => (BY_SID.as_str(), s),
            TrackKey::Name(n) => (BY_NAME.as_str(), n),
        });
    }
    super::find::first_found(conn, [account_sid, participant_sid], tries).await
}

fn find_sql(condition: &str) -> String {
    format!(
        "SELECT {COLUMNS} FROM published_tracks \
         WHERE account_sid = $1 AND participant_sid = $2 AND {condition}"
    )
}

/// Publishes a track, in the caller's transaction: a connected participant, a kind the room
/// takes (no video in an audio-only room), a name unique among its tracks (default: the new
/// SID), and a place under the room's `max_concurrent_published_tracks` (a compare-and-set on the
/// room's counter, taken in the statement that inserts the track).
pub async fn publish(
    conn: &mut PgConnection,
    who: &Publisher<'_>,
    name: Option<&TrackName>,
    kind: TrackKind,
    enabled: bool,
) -> Result<TrackRow, ChangeError> {
    let (room, participant) = lock_publisher(conn, who).await?;
    if room.audio_only && kind == TrackKind::Video {
        return Err(Refusal::VideoInAudioOnlyRoom.into());
    }
    let sid = TrackSid::generate();
    let name = name.map_or(sid.as_str(), |n| n);
    // Under the room's lock nobody else publishes for this participant: a look first is exact.
    let published: i64 =
        sqlx::query_scalar("SELECT count(*) FROM published_tracks WHERE participant_sid = $1")
            .bind(&participant.sid)
            .fetch_one(&mut *conn)
            .await?;
    if published >= crate::domain::track::MAX_TRACKS_PER_PARTICIPANT {
        return Err(Refusal::MaxTracksPerParticipant.into());
    }
    if find(
        conn,
        who.account_sid,
        &participant.sid,
        &[TrackKey::Name(name)],
    )
    .await?
    .is_some()
    {
        return Err(Refusal::TrackNameDuplicated.into());
    }
    static PUBLISH: LazyLock<String> = LazyLock::new(publish_sql);
    let track: Option<TrackRow> = sqlx::query_as(&PUBLISH)
        .bind(&room.sid)
        .bind(sid.as_str())
        .bind(&participant.sid)
        .bind(name)
        .bind(kind.as_str())
        .bind(enabled)
        .bind(None::<&str>)
        .bind(None::<&str>)
        .bind(None::<i32>)
        .fetch_optional(&mut *conn)
        .await
        .on_constraint(
            "published_tracks_participant_name",
            code::TRACK_NAME_DUPLICATED,
            "Track name is duplicated",
        )
        .map_err(|e| match e {
            DbError::Sql(e) => ChangeError::Sql(e),
            DbError::Refused { .. } => ChangeError::Refused(Refusal::TrackNameDuplicated),
        })?;
    track.ok_or(Refusal::MaxTracks.into())
}

/// Publishes a track under the room's bound (the room is locked): $1 room, $2 track SID,
/// $3 participant, $4 name, $5 kind, $6 enabled, $7 media mid, $8 media codec, $9 media index;
/// no row when the room's `max_concurrent_published_tracks` are published. Writes the
/// `track-added` event, and for a media track the recording rules admit, opens its recording
/// (`recording-started`).
pub(super) fn publish_sql() -> String {
    format!(
            "WITH placed AS ( \
                UPDATE rooms r SET tracks_published = r.tracks_published + 1 \
                WHERE r.sid = $1 AND (r.max_concurrent_published_tracks = 0 \
                    OR r.tracks_published < r.max_concurrent_published_tracks) \
                RETURNING {room}, r.recording_rules, r.record_participants_on_connect), \
             published AS ( \
                INSERT INTO published_tracks (sid, account_sid, room_sid, participant_sid, name, kind, enabled, \
                    media_mid, media_codec, media_mindex) \
                SELECT $2, account_sid, sid, $3, $4, $5, $6, $7, $8, $9 FROM placed \
                RETURNING {COLUMNS}, media_codec, media_mindex), \
             {recording}, \
             {events} \
             SELECT {COLUMNS} FROM published",
            room = callbacks::room_columns("r"),
            recording = super::recordings::on_publish(),
            events = callbacks::enqueue(&[
                EventSource {
                    event: "'track-added'",
                    room: "r",
                    room_status: "'in-progress'",
                    participant: Some(("p", "connected")),
                    track: Some("t"),
                    extra: "",
                    at: "t.date_created",
                    from: "FROM published t JOIN placed r ON r.sid = t.room_sid \
                           JOIN participants p ON p.sid = t.participant_sid",
                    filter: "",
                },
                super::recordings::on_publish_event(),
            ]),
        )
}

pub async fn set_enabled(
    conn: &mut PgConnection,
    who: &Publisher<'_>,
    track: &[TrackKey<'_>],
    enabled: bool,
) -> Result<TrackRow, ChangeError> {
    let (_, participant) = lock_publisher(conn, who).await?;
    let found = rest_track(conn, who, &participant.sid, track).await?;
    static TOGGLE: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH t AS ( \
                UPDATE published_tracks SET enabled = $2, \
                    date_updated = GREATEST(roomd_now(), date_updated) \
                WHERE sid = $1 RETURNING {COLUMNS}), \
             {events} \
             SELECT {COLUMNS} FROM t",
            events = callbacks::enqueue(&[EventSource {
                event: "CASE WHEN t.enabled THEN 'track-enabled' ELSE 'track-disabled' END",
                room: "r",
                room_status: "'in-progress'",
                participant: Some(("p", "connected")),
                track: Some("t"),
                extra: "",
                at: "t.date_updated",
                from: "FROM t JOIN rooms r ON r.sid = t.room_sid \
                       JOIN participants p ON p.sid = t.participant_sid",
                filter: "$3",
            }]),
        )
    });
    let updated = sqlx::query_as(&TOGGLE)
        .bind(&found.sid)
        .bind(enabled)
        .bind(found.enabled != enabled)
        .fetch_one(&mut *conn)
        .await?;
    Ok(updated)
}

/// The track a path names, if REST may change it: not one the media server reports.
async fn rest_track(
    conn: &mut PgConnection,
    who: &Publisher<'_>,
    participant_sid: &str,
    track: &[TrackKey<'_>],
) -> Result<TrackRow, ChangeError> {
    let found = find(conn, who.account_sid, participant_sid, track)
        .await?
        .ok_or(Refusal::TrackNotFound)?;
    if found.media_mid.is_some() {
        return Err(Refusal::MediaTrack.into());
    }
    Ok(found)
}

/// Unpublishes a track, gives its place back, and writes its `track-removed` event.
pub async fn unpublish(
    conn: &mut PgConnection,
    who: &Publisher<'_>,
    track: &[TrackKey<'_>],
) -> Result<TrackRow, ChangeError> {
    let (_, participant) = lock_publisher(conn, who).await?;
    let found = rest_track(conn, who, &participant.sid, track).await?;
    static UNPUBLISH: LazyLock<String> = LazyLock::new(|| unpublish_sql("sid = $1"));
    let gone = sqlx::query_as(&UNPUBLISH)
        .bind(&found.sid)
        .fetch_one(&mut *conn)
        .await?;
    Ok(gone)
}

/// Deletes the tracks `condition` (over `published_tracks`) selects, gives their places back,
/// and writes their `track-removed` events. The room is locked.
pub(super) fn unpublish_sql(condition: &str) -> String {
    format!(
        "WITH gone AS (DELETE FROM published_tracks WHERE {condition} RETURNING {COLUMNS}), \
             freed AS (UPDATE rooms r SET tracks_published = r.tracks_published - g.n \
                FROM (SELECT room_sid, count(*)::integer AS n FROM gone GROUP BY room_sid) g \
                WHERE r.sid = g.room_sid RETURNING {room}), \
             {events} \
             SELECT {COLUMNS} FROM gone",
        room = callbacks::room_columns("r"),
        events = callbacks::enqueue(&[EventSource {
            event: "'track-removed'",
            room: "r",
            room_status: "'in-progress'",
            participant: Some(("p", "connected")),
            track: Some("t"),
            extra: "",
            at: "roomd_now()",
            from: "FROM gone t JOIN freed r ON r.sid = t.room_sid \
                       JOIN participants p ON p.sid = t.participant_sid",
            filter: "",
        }]),
    )
}

const LISTING: Listing = Listing {
    table: "published_tracks",
    columns: COLUMNS,
    order_by: "date_created",
    descending: false,
};

/// A page of a participant's published tracks, oldest first.
pub async fn list<'q>(
    conn: &mut PgConnection,
    account_sid: &'q str,
    participant_sid: &'q str,
    page: &'q PageRequest,
) -> Result<Page<TrackRow>, DbError> {
    list::page(
        conn,
        &LISTING,
        &[
            ("account_sid", account_sid),
            ("participant_sid", participant_sid),
        ],
        |_| {},
        page,
    )
    .await
}

/// The tracks `subscriber` receives under `rules` (normal form): every track of every other
/// participant in its room (published tracks exist only for connected participants) that an
/// include rule matches and no exclude rule does (exclude wins). Computed from the rules when
/// read (SQL function `track_rules_admit`, migration V10): no row per subscription is stored.
fn push_subscribed<'q>(
    q: &mut sqlx::QueryBuilder<'q, sqlx::Postgres>,
    subscriber_sid: &'q str,
    rules: &'q serde_json::Value,
) {
    q.push(" AND participant_sid <> ").push_bind(subscriber_sid);
    q.push(" AND track_rules_admit(")
        .push_bind(rules)
        .push(", publisher_identity, participant_sid, name, sid, kind)");
}

const SUBSCRIBED: Listing = Listing {
    table: "room_tracks",
    columns: COLUMNS,
    order_by: "date_created",
    descending: false,
};

/// A page of the tracks `subscriber` receives (see `push_subscribed`), oldest first.
pub async fn list_subscribed<'q>(
    conn: &mut PgConnection,
    subscriber: &'q participants::ParticipantRow,
    rules: &'q serde_json::Value,
    page: &'q PageRequest,
) -> Result<Page<TrackRow>, DbError> {
    list::page(
        conn,
        &SUBSCRIBED,
        &[
            ("account_sid", &subscriber.account_sid),
            ("room_sid", &subscriber.room_sid),
        ],
        |q| push_subscribed(q, &subscriber.sid, rules),
        page,
    )
    .await
}

/// One track `subscriber` receives, by its SID.
pub async fn find_subscribed(
    conn: &mut PgConnection,
    subscriber: &participants::ParticipantRow,
    rules: &serde_json::Value,
    track_sid: &str,
) -> Result<Option<TrackRow>, sqlx::Error> {
    let mut q = sqlx::QueryBuilder::new(format!(
        "SELECT {COLUMNS} FROM room_tracks WHERE account_sid = "
    ));
    q.push_bind(&subscriber.account_sid)
        .push(" AND room_sid = ")
        .push_bind(&subscriber.room_sid)
        .push(" AND sid = ")
        .push_bind(track_sid);
    push_subscribed(&mut q, &subscriber.sid, rules);
    q.build_query_as().fetch_optional(conn).await
}
