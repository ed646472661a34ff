//! What a Janus node's events change in the database, each idempotent (an event may come twice,
//! late, or after roomd already acted): a participant's media joining, its streams published and
//! unpublished (PublishedTracks with their callbacks), its handles, and its leaving.

use super::media_nodes::disconnect_media_participants;
use super::participants::{disconnect_sql, EndReason};
use super::rooms;
use super::tracks::publish_sql;
use crate::domain::sid::TrackSid;
use sqlx::PgConnection;
use std::sync::LazyLock;

/// Records a handle a participant's token opened. `false`: the participant is not connected on
/// this node (its handle must be closed).
pub async fn handle_attached(
    conn: &mut PgConnection,
    node: &str,
    session: i64,
    handle: i64,
    participant_sid: &str,
) -> Result<bool, sqlx::Error> {
    let recorded = sqlx::query(
        "INSERT INTO media_handles (node, handle_id, session_id, participant_sid) \
         SELECT $1, $2, $3, sid FROM participants \
         WHERE sid = $4 AND status = 'connected' AND media_node = $1 \
         ON CONFLICT (node, handle_id) DO NOTHING",
    )
    .bind(node)
    .bind(handle)
    .bind(session)
    .bind(participant_sid)
    .execute(&mut *conn)
    .await?;
    if recorded.rows_affected() == 1 {
        return Ok(true);
    }
    connected_on(conn, node, participant_sid).await
}

async fn connected_on(
    conn: &mut PgConnection,
    node: &str,
    participant_sid: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM participants WHERE sid = $1 AND status = 'connected' AND media_node = $2)",
    )
    .bind(participant_sid)
    .bind(node)
    .fetch_one(conn)
    .await
}

/// Forgets a handle Janus closed.
pub async fn handle_detached(
    conn: &mut PgConnection,
    node: &str,
    handle: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM media_handles WHERE node = $1 AND handle_id = $2")
        .bind(node)
        .bind(handle)
        .execute(conn)
        .await
        .map(drop)
}

/// A participant's publisher joined its room on the node (with `handle`, when the event names
/// it): its media deadline is met. `false`: it is not connected there (Janus must kick it).
pub async fn joined(
    conn: &mut PgConnection,
    node: &str,
    room_sid: &str,
    participant_sid: &str,
    handle: Option<i64>,
) -> Result<bool, sqlx::Error> {
    if let Some(handle) = handle {
        sqlx::query(
            "UPDATE media_handles SET publisher = true \
             WHERE node = $1 AND handle_id = $2 AND participant_sid = $3",
        )
        .bind(node)
        .bind(handle)
        .bind(participant_sid)
        .execute(&mut *conn)
        .await?;
    }
    let found: Option<String> = sqlx::query_scalar(
        "UPDATE participants SET media_joined_at = COALESCE(media_joined_at, roomd_now()), \
            media_deadline = NULL \
         WHERE sid = $1 AND room_sid = $2 AND media_node = $3 AND status = 'connected' \
         RETURNING sid",
    )
    .bind(participant_sid)
    .bind(room_sid)
    .bind(node)
    .fetch_optional(conn)
    .await?;
    Ok(found.is_some())
}

/// A participant's media is up (some handle of it connected): its media deadline is met.
pub async fn media_up(conn: &mut PgConnection, node: &str, handle: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE participants SET media_deadline = NULL \
         WHERE sid = (SELECT participant_sid FROM media_handles WHERE node = $1 AND handle_id = $2) \
           AND status = 'connected' AND media_deadline IS NOT NULL",
    )
    .bind(node)
    .bind(handle)
    .execute(conn)
    .await
    .map(drop)
}

/// A handle's PeerConnection was hung up: when it was a publisher's, that participant's media
/// ended (`media_lost`).
pub async fn hung_up(conn: &mut PgConnection, node: &str, handle: i64) -> Result<u64, sqlx::Error> {
    let key = format!("{node}/{handle}");
    disconnect_media_participants(
        conn,
        "p.sid IN (SELECT h.participant_sid FROM media_handles h \
            WHERE h.publisher AND h.node || '/' || h.handle_id = $1)",
        &key,
    )
    .await
}

/// One stream of a `published` event.
#[derive(Debug, PartialEq, Eq)]
pub struct Stream<'a> {
    pub mid: &'a str,
    /// `audio`, `video` or `data`.
    pub kind: &'a str,
    pub description: Option<&'a str>,
    /// Its codec (`opus`, `vp8`...) and index in the SDP: what a recording of it needs.
    pub codec: Option<&'a str>,
    pub mindex: Option<i32>,
}

/// A participant published streams: each new one (by mid) becomes a published track, named by
/// its description (or its mid), with its `track-added` callback, while the room's bound
/// allows. Returns the mids that must not reach subscribers: video in an audio-only room, and
/// streams over the room's bound.
pub async fn published(
    conn: &mut PgConnection,
    node: &str,
    room_sid: &str,
    participant_sid: &str,
    streams: &[Stream<'_>],
) -> Result<Vec<String>, sqlx::Error> {
    let Some(room) = rooms::lock_by_sid(&mut *conn, room_sid).await? else {
        return Ok(Vec::new());
    };
    if !connected_on(&mut *conn, node, participant_sid).await? {
        return Ok(Vec::new());
    }
    static PUBLISH: LazyLock<String> = LazyLock::new(publish_sql);
    let mut muted = Vec::new();
    for stream in streams {
        if !matches!(stream.kind, "audio" | "video" | "data") {
            continue;
        }
        if room.audio_only && stream.kind == "video" {
            muted.push(stream.mid.to_string());
            continue;
        }
        let known: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM published_tracks WHERE participant_sid = $1 AND media_mid = $2)",
        )
        .bind(participant_sid)
        .bind(stream.mid)
        .fetch_one(&mut *conn)
        .await?;
        if known {
            continue;
        }
        let name = track_name(&mut *conn, participant_sid, stream).await?;
        let added: Option<super::tracks::TrackRow> = sqlx::query_as(&PUBLISH)
            .bind(room_sid)
            .bind(TrackSid::generate().as_str())
            .bind(participant_sid)
            .bind(&name)
            .bind(stream.kind)
            .bind(true)
            .bind(stream.mid)
            .bind(stream.codec)
            .bind(stream.mindex)
            .fetch_optional(&mut *conn)
            .await?;
        if added.is_none() {
            muted.push(stream.mid.to_string());
        }
    }
    Ok(muted)
}

/// The description if it is a valid track name free among the participant's tracks, else the
/// mid (else the mid with the track's SID).
async fn track_name(
    conn: &mut PgConnection,
    participant_sid: &str,
    stream: &Stream<'_>,
) -> Result<String, sqlx::Error> {
    let candidates = stream
        .description
        .filter(|d| crate::domain::track::TrackName::parse(d).is_ok())
        .into_iter()
        .chain([stream.mid]);
    for name in candidates {
        let taken: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM published_tracks WHERE participant_sid = $1 AND name = $2)",
        )
        .bind(participant_sid)
        .bind(name)
        .fetch_one(&mut *conn)
        .await?;
        if !taken {
            return Ok(name.to_string());
        }
    }
    Ok(format!("{}-{}", stream.mid, TrackSid::generate().as_str()))
}

/// A participant unpublished: every track the media server reported for it is removed, with
/// its `track-removed` callback.
pub async fn unpublished(
    conn: &mut PgConnection,
    room_sid: &str,
    participant_sid: &str,
) -> Result<u64, sqlx::Error> {
    if rooms::lock_by_sid(&mut *conn, room_sid).await?.is_none() {
        return Ok(0);
    }
    static UNPUBLISH: LazyLock<String> = LazyLock::new(|| {
        super::tracks::unpublish_sql("participant_sid = $1 AND media_mid IS NOT NULL")
    });
    let gone = sqlx::query(&UNPUBLISH)
        .bind(participant_sid)
        .execute(&mut *conn)
        .await?;
    Ok(gone.rows_affected())
}

/// A participant's publisher left its room on the node (or was kicked there): it is
/// disconnected, with `reason`, unless it already was (`Left`: only once its publisher had
/// joined).
pub async fn left(
    conn: &mut PgConnection,
    node: &str,
    room_sid: &str,
    participant_sid: &str,
    reason: EndReason,
) -> Result<bool, sqlx::Error> {
    if rooms::lock_by_sid(&mut *conn, room_sid).await?.is_none() {
        return Ok(false);
    }
    const WHO: &str = "p.sid = $1 AND p.media_node = $2 AND p.room_sid = $3";
    // Leaving is only for a participant whose own publisher joined: Janus names the publisher
    // id only, and an impostor kicked out of that id must not take its owner with it.
    static LEFT: LazyLock<String> = LazyLock::new(|| {
        disconnect_sql(
            &format!("{WHO} AND p.media_joined_at IS NOT NULL"),
            EndReason::Left,
        )
    });
    static KICKED: LazyLock<String> = LazyLock::new(|| disconnect_sql(WHO, EndReason::Kicked));
    static LOST: LazyLock<String> = LazyLock::new(|| disconnect_sql(WHO, EndReason::MediaLost));
    let sql = match reason {
        EndReason::Left => &*LEFT,
        EndReason::Kicked => &*KICKED,
        _ => &*LOST,
    };
    let gone = sqlx::query(sql)
        .bind(participant_sid)
        .bind(node)
        .bind(room_sid)
        .execute(&mut *conn)
        .await?;
    Ok(gone.rows_affected() > 0)
}

/// A Janus session ended (destroyed or timed out): the participants whose publisher handle was
/// in it (a joined participant with a handle there) are disconnected (`media_lost`); its handles
/// are forgotten.
pub async fn session_gone(
    conn: &mut PgConnection,
    node: &str,
    session: i64,
) -> Result<u64, sqlx::Error> {
    let key = format!("{node}/{session}");
    let gone = disconnect_media_participants(
        conn,
        "p.media_joined_at IS NOT NULL AND p.sid IN (SELECT h.participant_sid FROM media_handles h \
            WHERE h.node || '/' || h.session_id = $1)",
        &key,
    )
    .await?;
    sqlx::query("DELETE FROM media_handles WHERE node = $1 AND session_id = $2")
        .bind(node)
        .bind(session)
        .execute(&mut *conn)
        .await?;
    Ok(gone)
}

/// Participants whose media deadline passed (`ROOMD_MEDIA_CONNECT_TIMEOUT`) are disconnected
/// (`media_lost`). Returns how many.
pub async fn sweep_media_deadlines(conn: &mut PgConnection) -> Result<u64, sqlx::Error> {
    disconnect_media_participants(
        conn,
        "p.media_deadline < roomd_now() AND p.status = 'connected' AND $1 = $1",
        "",
    )
    .await
}
