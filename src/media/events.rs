//! A node's events (Janus's HTTP event handler posts them, grouped, in the order they happened)
//! turned into database changes, then into what Janus must be told in return (kick an impostor,
//! mute a stream an audio-only room does not carry, close a session whose participant is gone).
//! Each event is applied in its own transaction; Janus is called after it commits.

use super::replies::Reply;
use super::MediaPlane;
use crate::db::media_events::{self, Stream};
use crate::db::participants::EndReason;
use crate::db::transaction;
use serde_json::Value;
use sqlx::PgPool;

/// What one event is, for roomd.
#[derive(Debug, PartialEq, Eq)]
enum Event<'a> {
    Attached {
        session: u64,
        handle: u64,
        token: &'a str,
    },
    Detached {
        handle: u64,
    },
    SessionGone {
        session: u64,
    },
    WebrtcUp {
        handle: u64,
    },
    HungUp {
        handle: u64,
    },
    Joined {
        room: &'a str,
        id: &'a str,
        token: Option<&'a str>,
        session: Option<u64>,
        handle: Option<u64>,
    },
    Published {
        room: &'a str,
        id: &'a str,
        streams: Vec<Stream<'a>>,
        session: Option<u64>,
        handle: Option<u64>,
    },
    Unpublished {
        room: &'a str,
        id: &'a str,
    },
    Left {
        room: &'a str,
        id: &'a str,
    },
    Started,
    Other,
}

fn parse(event: &Value) -> Event<'_> {
    let body = &event["event"];
    let session = event["session_id"].as_u64();
    let handle = event["handle_id"].as_u64();
    match event["type"].as_u64() {
        Some(1) => match (body["name"].as_str(), session) {
            (Some("destroyed" | "timeout"), Some(session)) => Event::SessionGone { session },
            _ => Event::Other,
        },
        Some(2) => match (body["name"].as_str(), session, handle) {
            (Some("attached"), Some(session), Some(handle)) => match body["token"].as_str() {
                Some(token) => Event::Attached {
                    session,
                    handle,
                    token,
                },
                None => Event::Other,
            },
            (Some("detached"), _, Some(handle)) => Event::Detached { handle },
            _ => Event::Other,
        },
        Some(16) => match (body["connection"].as_str(), handle) {
            (Some("webrtcup"), Some(handle)) => Event::WebrtcUp { handle },
            (Some("hangup"), Some(handle)) => Event::HungUp { handle },
            _ => Event::Other,
        },
        Some(64) if body["plugin"] == super::janus::VIDEOROOM => {
            let data = &body["data"];
            let (Some(room), Some(id)) = (data["room"].as_str(), data["id"].as_str()) else {
                return Event::Other;
            };
            match data["event"].as_str() {
                Some("joined") => Event::Joined {
                    room,
                    id,
                    token: data["token"].as_str(),
                    session,
                    handle,
                },
                Some("published") => Event::Published {
                    room,
                    id,
                    session,
                    handle,
                    streams: data["streams"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|s| {
                            Some(Stream {
                                mid: s["mid"].as_str()?,
                                kind: s["type"].as_str()?,
                                description: s["description"].as_str(),
                                codec: s["codec"].as_str(),
                                mindex: s["mindex"].as_i64().and_then(|i| i32::try_from(i).ok()),
                            })
                        })
                        .collect(),
                },
                Some("unpublished") => Event::Unpublished { room, id },
                Some("leaving" | "kicked") => Event::Left { room, id },
                _ => Event::Other,
            }
        }
        Some(256) if body["status"] == "started" => Event::Started,
        _ => Event::Other,
    }
}

/// Applies a batch of a node's events in order. A database error stops the batch (Janus sends
/// it again: every change is idempotent).
pub async fn apply(
    plane: &MediaPlane,
    pool: &PgPool,
    node: &str,
    events: &[Value],
) -> Result<Vec<Reply>, sqlx::Error> {
    let mut replies = Vec::new();
    for event in events {
        apply_one(plane, pool, node, parse(event), &mut replies).await?;
    }
    Ok(replies)
}

async fn apply_one(
    plane: &MediaPlane,
    pool: &PgPool,
    node: &str,
    event: Event<'_>,
    replies: &mut Vec<Reply>,
) -> Result<(), sqlx::Error> {
    let db = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    match event {
        Event::Attached {
            session,
            handle,
            token,
        } => {
            let Some(participant) = plane.secrets.participant_of(token) else {
                // roomd's own tokens only: anything else has no business on this node.
                replies.push(Reply::CloseSession { session });
                return Ok(());
            };
            let connected = transaction(pool, async |c| {
                media_events::handle_attached(c, node, db(session), db(handle), participant).await
            })
            .await?;
            if !connected {
                replies.push(Reply::CloseSession { session });
            }
        }
        Event::Detached { handle } => {
            transaction(pool, async |c| {
                media_events::handle_detached(c, node, db(handle)).await
            })
            .await?;
        }
        Event::SessionGone { session } => {
            transaction(pool, async |c| {
                media_events::session_gone(c, node, db(session)).await
            })
            .await?;
        }
        Event::WebrtcUp { handle } => {
            transaction(pool, async |c| {
                media_events::media_up(c, node, db(handle)).await
            })
            .await?;
        }
        Event::HungUp { handle } => {
            transaction(pool, async |c| {
                media_events::hung_up(c, node, db(handle)).await
            })
            .await?;
        }
        Event::Joined {
            room,
            id,
            token,
            session,
            handle,
        } => {
            let owner = token.and_then(|t| plane.secrets.participant_of(t));
            if owner != Some(id) {
                // A token used to join as someone else: the impostor is kicked out of Janus,
                // and the token's participant is disconnected as kicked.
                tracing::warn!(
                    node,
                    room_sid = room,
                    claimed_id = id,
                    token_of = owner.unwrap_or("(none)"),
                    "a media join with another participant's id: kicked"
                );
                if let Some(owner) = owner {
                    transaction(pool, async |c| {
                        media_events::left(c, node, room, owner, EndReason::Kicked).await
                    })
                    .await?;
                }
                replies.push(Reply::Kick {
                    room: room.to_string(),
                    id: id.to_string(),
                });
                replies.extend(session.map(|session| Reply::CloseSession { session }));
                return Ok(());
            }
            let here = transaction(pool, async |c| {
                media_events::joined(c, node, room, id, handle.map(db)).await
            })
            .await?;
            if !here {
                replies.push(Reply::Kick {
                    room: room.to_string(),
                    id: id.to_string(),
                });
            }
        }
        Event::Published {
            room,
            id,
            streams,
            session,
            handle,
        } => {
            let muted = transaction(pool, async |c| {
                media_events::published(c, node, room, id, &streams).await
            })
            .await?;
            if let (Some(session), Some(handle)) = (session, handle) {
                replies.push(Reply::LearnRecordingFiles {
                    participant: id.to_string(),
                    session,
                    handle,
                });
            }
            replies.extend(muted.into_iter().map(|mid| Reply::Mute {
                room: room.to_string(),
                id: id.to_string(),
                mid,
            }));
        }
        Event::Unpublished { room, id } => {
            transaction(pool, async |c| media_events::unpublished(c, room, id).await).await?;
        }
        Event::Left { room, id } => {
            transaction(pool, async |c| {
                media_events::left(c, node, room, id, EndReason::Left).await
            })
            .await?;
        }
        Event::Started => {
            tracing::info!(node, "media node started: converging it");
            plane.restarted.notify_waiters();
        }
        Event::Other => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn janus_events_are_read_as_roomd_needs_them() {
        let joined = json!({"type": 64, "session_id": 5, "handle_id": 6, "event": {"plugin": "janus.plugin.videoroom",
            "data": {"event": "joined", "room": "RMx", "id": "PAy", "token": "t"}}});
        assert_eq!(
            parse(&joined),
            Event::Joined {
                room: "RMx",
                id: "PAy",
                token: Some("t"),
                session: Some(5),
                handle: Some(6)
            }
        );
        let left = json!({"type": 64, "event": {"plugin": "janus.plugin.videoroom",
            "data": {"event": "kicked", "room": "RMx", "id": "PAy"}}});
        assert_eq!(
            parse(&left),
            Event::Left {
                room: "RMx",
                id: "PAy"
            }
        );
        let attached = json!({"type": 2, "session_id": 1, "handle_id": 2,
            "event": {"name": "attached", "plugin": "janus.plugin.videoroom", "token": "tok"}});
        assert_eq!(
            parse(&attached),
            Event::Attached {
                session: 1,
                handle: 2,
                token: "tok"
            }
        );
        let up =
            json!({"type": 16, "subtype": 6, "handle_id": 9, "event": {"connection": "webrtcup"}});
        assert_eq!(parse(&up), Event::WebrtcUp { handle: 9 });
        let hangup = json!({"type": 16, "subtype": 6, "handle_id": 9, "event": {"connection": "hangup", "reason": "Close PC"}});
        assert_eq!(parse(&hangup), Event::HungUp { handle: 9 });
        let timeout = json!({"type": 1, "session_id": 3, "event": {"name": "timeout"}});
        assert_eq!(parse(&timeout), Event::SessionGone { session: 3 });
        let started = json!({"type": 256, "subtype": 1, "event": {"status": "started"}});
        assert_eq!(parse(&started), Event::Started);
        let published = json!({"type": 64, "event": {"plugin": "janus.plugin.videoroom", "data": {
            "event": "published", "room": "RMx", "id": "PAy",
            "streams": [{"type": "audio", "mid": "0"}, {"type": "video", "mid": "1", "description": "cam"}, {"bad": 1}]}}});
        match parse(&published) {
            Event::Published { streams, .. } => {
                assert_eq!(streams.len(), 2);
                assert_eq!(
                    (streams[1].mid, streams[1].kind, streams[1].description),
                    ("1", "video", Some("cam"))
                );
            }
            other => panic!("{other:?}"),
        }
        for junk in [
            json!(null),
            json!({"type": "x"}),
            json!({"type": 64, "event": {"plugin": "other"}}),
            json!({"type": 64, "event": {"plugin": "janus.plugin.videoroom", "data": {"event": "joined"}}}),
        ] {
            assert_eq!(parse(&junk), Event::Other);
        }
    }
}
