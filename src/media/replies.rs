//! What roomd tells a node after its events committed (`Reply`, from `events`): kick an
//! impostor, mute a stream, close a stray session, learn a publisher's recording files; and how a
//! participant's media is closed (`close_sessions`, also the media worker's).

use super::janus::JanusAdmin;
use super::MediaPlane;
use std::time::Duration;

/// What Janus must be told after an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    Kick {
        room: String,
        id: String,
    },
    Mute {
        room: String,
        id: String,
        mid: String,
    },
    CloseSession {
        session: u64,
    },
    /// Ask the publisher's handle which stream files the node records its streams into.
    LearnRecordingFiles {
        participant: String,
        session: u64,
        handle: u64,
    },
}

/// Tells Janus what the events call for (after their transactions committed).
pub async fn reply(plane: &MediaPlane, admin: &JanusAdmin, mut replies: Vec<Reply>) {
    // Learning files may wait for Janus's recorders: everything else goes first.
    replies.sort_by_key(|r| matches!(r, Reply::LearnRecordingFiles { .. }));
    for reply in replies {
        let result = match &reply {
            Reply::Kick { room, id } => {
                admin.kick(room, &plane.secrets.room_secret(room), id).await
            }
            Reply::Mute { room, id, mid } => {
                admin
                    .mute(room, &plane.secrets.room_secret(room), id, mid)
                    .await
            }
            Reply::CloseSession { session } => close_sessions(admin, &[], &[*session]).await,
            Reply::LearnRecordingFiles {
                participant,
                session,
                handle,
            } => {
                super::recording::learn_files(plane, admin, participant, *session, *handle).await;
                Ok(())
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, ?reply, "telling the media node failed");
        }
    }
}

/// Hangs up `handles` (the browsers see their PeerConnections close at once), then, a moment
/// later, ends `sessions` (a session destroyed right away would lose the hang-up).
pub async fn close_sessions(
    admin: &JanusAdmin,
    handles: &[(u64, u64)],
    sessions: &[u64],
) -> Result<(), super::janus::JanusError> {
    let mut ended: Vec<u64> = sessions.to_vec();
    for &(session, handle) in handles {
        admin.hangup(session, handle).await?;
        ended.push(session);
    }
    if !handles.is_empty() {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    ended.sort_unstable();
    ended.dedup();
    for session in ended {
        admin.destroy_session(session).await?;
    }
    Ok(())
}
