//! `/v1/Rooms/{Room}/Transcriptions[/{Ttid}]`: this server has no speech engine, so a room has
//! no transcriptions (an empty list with Twilio's `meta`) and starting one is refused with
//! Twilio's error body saying so, rather than the 404 of a path that does not exist.

use super::respond::{get, resource, ListPage};
use super::room_ref::RoomRef;
use crate::db::list::Page;
use crate::http::state::AppState;
use crate::twilio::error::code;
use crate::twilio::form::Params;
use crate::twilio::paging::{HasSid, PageRequest};
use crate::twilio::ApiError;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/v1/Rooms/{room}/Transcriptions")
            .route(get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        resource("/v1/Rooms/{room}/Transcriptions/{ttid}")
            .route(get().to(one))
            .route(web::post().to(one)),
    );
}

/// A transcription (none exist).
#[derive(serde::Serialize)]
struct Transcription {
    ttid: String,
}

impl HasSid for Transcription {
    fn sid(&self) -> &str {
        &self.ttid
    }
}

/// `GET`: the room's transcriptions, none.
async fn list(
    req: HttpRequest,
    room: RoomRef,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string().as_bytes())?;
    let page = PageRequest::from_params(&params, "TT")?;
    let r = state
        .pool
        .run(async |c| room.find(c).await)
        .await?
        .ok_or_else(|| room.not_found("/Transcriptions"))?;
    let path = format!("/v1/Rooms/{}/Transcriptions", r.sid);
    let none: Page<Transcription> = Page {
        rows: Vec::new(),
        more_beyond: false,
    };
    Ok(ListPage {
        path: &path,
        key: "transcriptions",
        filters: &[],
        item_bytes: 0,
    }
    .respond(&state.public_url, &page, &none, |t| t))
}

/// `POST` (create): refused, for a room that exists.
async fn create(room: RoomRef, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state
        .pool
        .run(async |c| room.find(c).await)
        .await?
        .ok_or_else(|| room.not_found("/Transcriptions"))?;
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        code::FORBIDDEN,
        "Transcriptions are not available: this server has no speech engine",
    ))
}

/// One transcription (fetch or update): there are none.
async fn one(req: HttpRequest, room: RoomRef) -> Result<HttpResponse, ApiError> {
    let ttid = super::extract::path_segment(&req, "ttid")?;
    Err(room.not_found(&format!("/Transcriptions/{ttid}")))
}
