//! The console's actions on a room: End, Kick, Replay a callback, Delete a recording. Each is a
//! form post (same origin, with the session's CSRF token) that does what the REST API's own
//! route does, through the same function, and then shows the room again (303).

use super::error::{see_other, ConsoleError};
use super::room::room_ref;
use super::session::{check_post, Signed};
use crate::db::participants::EndReason;
use crate::http::extract::Form;
use crate::http::participant_ref::ParticipantRef;
use crate::http::room_ref::RoomRef;
use crate::http::state::AppState;
use crate::http::{callbacks, participants, recordings, rooms};
use actix_web::{web, HttpRequest, HttpResponse};

/// The checked post's room, for `act`; then back to the room's page, by the SID `act` returns
/// when it has one (a room named in the path by its unique name is no longer found by it once
/// it has ended).
async fn on_room(
    req: &HttpRequest,
    signed: &Signed,
    form: Form,
    act: impl AsyncFnOnce(&RoomRef) -> Result<Option<String>, ConsoleError>,
) -> Result<HttpResponse, ConsoleError> {
    let room = room_ref(req, signed)?;
    let params = form.params().await?;
    check_post(req, signed, &params)?;
    let segment = match act(&room).await? {
        Some(sid) => sid,
        // A path segment: form encoding's `+` for a space would name another room here.
        None => crate::twilio::form::encode(&room.segment).replace('+', "%20"),
    };
    Ok(see_other(&format!("/console/rooms/{segment}")))
}

/// `POST /console/rooms/{room}/end`.
pub(super) async fn end(
    req: HttpRequest,
    signed: Signed,
    form: Form,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    on_room(&req, &signed, form, async |room| {
        Ok(Some(rooms::complete_room(&state, room).await?.sid))
    })
    .await
}

/// `POST /console/rooms/{room}/participants/{participant}/kick`.
pub(super) async fn kick(
    req: HttpRequest,
    signed: Signed,
    form: Form,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    on_room(&req, &signed, form, async |room| {
        let participant = ParticipantRef::from(&req, room)?;
        let gone =
            participants::disconnect(&state, room, &participant, EndReason::Kicked, None).await?;
        Ok(Some(gone.room_sid))
    })
    .await
}

/// `POST /console/rooms/{room}/callbacks/{event}/replay`.
pub(super) async fn replay(
    req: HttpRequest,
    signed: Signed,
    form: Form,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    on_room(&req, &signed, form, async |room| {
        let sid = callbacks::event_sid(&req, room)?;
        Ok(Some(callbacks::resend(&state, room, &sid).await?.room_sid))
    })
    .await
}

/// `POST /console/rooms/{room}/recordings/{recording}/delete`.
pub(super) async fn delete_recording(
    req: HttpRequest,
    signed: Signed,
    form: Form,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    on_room(&req, &signed, form, async |room| {
        recordings::remove(&req, &room.account.sid, Some(room), &state).await?;
        Ok(None)
    })
    .await
}
