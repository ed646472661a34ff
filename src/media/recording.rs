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
    pub async fn set_recording(self: &std::sync::Arc<Self>, room_sid: &str) {
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
                }) => return Ok(()),
                other => other?,
            }
            // Segments the change opened: their files are learnt from their publishers' handles
            // (in the background: Janus's recorders may take a moment).
            let publishers =
                crate::db::recordings::publishers_awaiting_files(&self.pool, room_sid).await?;
            if !publishers.is_empty() {
                let plane = self.clone();
                tokio::spawn(async move {
                    for (participant, session, handle) in publishers {
                        learn_files(
                            &plane,
                            &node.admin,
                            &participant,
                            session as u64,
                            handle as u64,
                        )
                        .await;
                    }
                });
            }
            Ok(())
        };
        let done: anyhow::Result<()> = done.await;
        if let Err(e) = done {
            tracing::warn!(error = %e, room_sid, "telling a media node whether to record a room failed");
        }
    }

    /// A link to a recording's media that works until `expires` (Unix seconds) without
    /// credentials: `{public_url}/v1/Recordings/{sid}/Media/Content?Expires=...&Signature=...`.
    pub fn media_link(&self, public_url: &str, sid: &str, expires: i64) -> String {
        // A composition's media is under `/v1/Compositions`, a recording's under `/v1/Recordings`
        // (the signature covers the SID, whose prefix says which).
        let collection = if sid.starts_with(crate::domain::sid::COMPOSITION) {
            "Compositions"
        } else {
            "Recordings"
        };
        format!(
            "{}/v1/{collection}/{sid}/Media/Content?Expires={expires}&Signature={}",
            public_url.trim_end_matches('/'),
            self.secrets.media_signature(sid, expires)
        )
    }
}

/// Learns, from the node, which stream files a publisher's open segments are recorded into
/// (Janus says so in the handle's info; a few tries, as its recorders open with the media). The
/// conversion then reads exactly those files: a file named like another participant's cannot
/// stand in for it.
pub async fn learn_files(
    plane: &MediaPlane,
    admin: &super::janus::JanusAdmin,
    participant: &str,
    session: u64,
    handle: u64,
) {
    for wait in [0, 500, 1500, 3000] {
        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
        let missing = match crate::db::recordings::awaiting_files(&plane.pool, participant).await {
            Ok(missing) => missing,
            Err(e) => {
                tracing::warn!(error = %e, "reading the segments awaiting their files failed");
                return;
            }
        };
        if missing == 0 {
            return;
        }
        let files = match admin.recording_files(session, handle).await {
            Ok(files) => files,
            Err(e) => {
                tracing::debug!(error = %e, participant, "asking a node for its stream files failed");
                continue;
            }
        };
        // A file name, never a path: Janus names it in the room's folder.
        let files: Vec<(i32, String)> = files
            .into_iter()
            .filter(|(_, f)| valid_file_name(f))
            .filter_map(|(i, f)| Some((i32::try_from(i).ok()?, f)))
            .collect();
        if files.is_empty() {
            continue;
        }
        match crate::db::recordings::set_media_files(&plane.pool, participant, &files).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                participant,
                segments = n,
                "stream files learnt from the node"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "recording the segments' stream files failed");
                return;
            }
        }
    }
}

/// A stream file's name as Janus writes it: no folder, no way out of one.
pub fn valid_file_name(name: &str) -> bool {
    name.ends_with(".mjr")
        && !name.contains('/')
        && !name.contains('\\')
        && !name.starts_with('.')
        && name.len() <= 255
}

/// Where the nodes write stream files: `<media dir>/rooms/<room SID>/`.
pub fn rooms_dir(media_dir: &Path) -> PathBuf {
    media_dir.join("rooms")
}

/// Where converted recordings are kept: `<media dir>/recordings/<RT SID>.<mka|mkv>`.
pub fn recordings_dir(media_dir: &Path) -> PathBuf {
    media_dir.join("recordings")
}
