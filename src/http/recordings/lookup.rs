//! The recording a path names (`{recording}`, under the account or a room), and its 404.

use crate::db::recordings::{self, RecordingRow};
use crate::domain::sid::RecordingSid;
use crate::http::extract::path_segment;
use crate::http::room_ref::RoomRef;
use crate::http::state::AppState;
use crate::twilio::ApiError;
use actix_web::HttpRequest;

/// The `{recording}` segment as an RT SID, or the 404 for `path` (without `/v1`).
pub fn recording_sid(req: &HttpRequest) -> Result<RecordingSid, ApiError> {
    let segment = path_segment(req, "recording")?;
    RecordingSid::parse(&segment).ok_or_else(|| not_found(req))
}

pub fn not_found(req: &HttpRequest) -> ApiError {
    let path = req.path();
    ApiError::not_found(path.strip_prefix("/v1").unwrap_or(path))
}

/// Where a recording path looks: `Some(None)` the whole account, `Some(Some(room))` the room the
/// path names, `None` when that room does not exist.
pub async fn scope(
    c: &mut sqlx::PgConnection,
    room: Option<&RoomRef>,
) -> Result<Option<Option<String>>, sqlx::Error> {
    Ok(match room {
        Some(room) => room.find(c).await?.map(|r| Some(r.sid)),
        None => Some(None),
    })
}

/// The recording a path names: the account's, or one of the room's.
pub async fn find(
    req: &HttpRequest,
    account: &str,
    room: Option<&RoomRef>,
    state: &AppState,
) -> Result<RecordingRow, ApiError> {
    let sid = recording_sid(req)?;
    let found = state
        .pool
        .run(async |c| -> Result<_, sqlx::Error> {
            let Some(room_sid) = scope(c, room).await? else {
                return Ok(None);
            };
            recordings::find(&mut *c, account, room_sid.as_deref(), &sid).await
        })
        .await?;
    found.ok_or_else(|| not_found(req))
}
