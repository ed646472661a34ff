//! Recording on the media plane: where a room's stream files go and where converted recordings
//! are kept (one media directory, shared by the nodes and every roomd process), whether a room's
//! node records it, and the signed links that serve a recording's media.
//!
//! Janus 1.1 records a whole room or nothing (`enable_recording`): a room's node records while
//! its recording rules include anything, and the rules decide which streams become recordings.
//! The files of streams no rule admits are removed with the room's folder once the room ended
//! and its recordings are converted.

use super::MediaPlane;
use std::path::{Path, PathBuf};

/// How long a media link works.
pub const LINK_LIFETIME_SECS: i64 = 600;

impl MediaPlane {
    /// The folder a room's node writes its stream files to.
    pub fn rec_dir(&self, room_sid: &str) -> String {
        rooms_dir(&self.media_dir)
            .join(room_sid)
            .to_string_lossy()
            .into_owned()
    }

    /// Tells the room's node whether to record it, as its rules now say (a failure is logged:
    /// convergence repairs it).
    pub async fn set_recording(&self, room_sid: &str) {
        let done = async {
            let Some(node) = crate::db::media_nodes::node_of_room(&self.pool, room_sid).await?
            else {
                return Ok(());
            };
            let record = crate::db::recordings::room_records(&self.pool, room_sid).await?;
            let node = self.node(&node).await?;
            let secret = self.secrets.room_secret(room_sid);
            match node.admin.enable_recording(room_sid, &secret, record).await {
                Err(super::janus::JanusError::Refused {
                    code: super::janus::plugin_code::NO_SUCH_ROOM,
                    ..
                }) => Ok(()),
                other => other.map_err(anyhow::Error::from),
            }
        };
        let done: anyhow::Result<()> = done.await;
        if let Err(e) = done {
            tracing::warn!(error = %e, room_sid, "telling a media node whether to record a room failed");
        }
    }

    /// A link to a recording's media that works until `expires` (Unix seconds) without
    /// credentials: `{public_url}/v1/Recordings/{sid}/Media/Content?Expires=...&Signature=...`.
    pub fn media_link(&self, public_url: &str, sid: &str, expires: i64) -> String {
        format!(
            "{}/v1/Recordings/{sid}/Media/Content?Expires={expires}&Signature={}",
            public_url.trim_end_matches('/'),
            self.secrets.media_signature(sid, expires)
        )
    }
}

/// Where the nodes write stream files: `<media dir>/rooms/<room SID>/`.
pub fn rooms_dir(media_dir: &Path) -> PathBuf {
    media_dir.join("rooms")
}

/// Where converted recordings are kept: `<media dir>/recordings/<RT SID>.<mka|mkv>`.
pub fn recordings_dir(media_dir: &Path) -> PathBuf {
    media_dir.join("recordings")
}
