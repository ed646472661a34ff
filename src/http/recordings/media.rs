//! A recording's media: `.../Media` answers as Twilio does (302, `{"redirect_to": ...}`) with a
//! link that works for a few minutes; `.../Media/Content` serves the file to whoever holds such a
//! link (the signature is the grant), ranges and conditional requests included.

use super::lookup::{find, not_found, recording_sid};
use crate::auth::authenticator::Account;
use crate::db::recordings::{self, RecordingRow};
use crate::http::respond::json;
use crate::http::room_ref::RoomRef;
use crate::http::state::AppState;
use crate::media::recording::LINK_LIFETIME_SECS;
use crate::twilio::error::code;
use crate::twilio::form::Params;
use crate::twilio::ApiError;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;

/// `GET .../Media`: a completed recording's media, as Twilio gives it: 302 to a link that
/// works for a few minutes, named in the body too (`redirect_to`).
pub(super) async fn redirect(
    row: &RecordingRow,
    req: &HttpRequest,
    state: &AppState,
) -> Result<HttpResponse, ApiError> {
    let ready = row.status == "completed" && row.media_path.is_some();
    redirect_to_media(&row.sid, ready, req, state)
}

/// `302` to a signed link to `sid`'s media (when `ready`, and this process serves media; else
/// 404), as Twilio answers a `.../Media` request.
pub(crate) fn redirect_to_media(
    sid: &str,
    ready: bool,
    req: &HttpRequest,
    state: &AppState,
) -> Result<HttpResponse, ApiError> {
    let media = match &state.media {
        Some(media) if ready => media,
        _ => return Err(not_found(req)),
    };
    let expires = Utc::now().timestamp() + LINK_LIFETIME_SECS;
    let link = media.media_link(state.public_url.as_str(), sid, expires);
    let mut found = HttpResponse::build(StatusCode::FOUND);
    found
        .insert_header((header::LOCATION, link.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    Ok(json(
        found,
        &serde_json::json!({ "redirect_to": link }),
        link.len() + 32,
    ))
}

pub(super) async fn media(
    req: HttpRequest,
    account: Account,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let row = find(&req, &account.sid, None, &state).await?;
    redirect(&row, &req, &state).await
}

pub(super) async fn room_media(
    req: HttpRequest,
    room: RoomRef,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let row = find(&req, &room.account.sid, Some(&room), &state).await?;
    redirect(&row, &req, &state).await
}

/// `GET /v1/Recordings/{Sid}/Media/Content?Expires=...&Signature=...`: the file, for whoever
/// holds a link that has not expired (ranges, `If-None-Match` and the like as HTTP has them).
pub(super) async fn content(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let sid = recording_sid(&req)?;
    serve_signed(&req, &state, &sid, async |c| {
        let row = recordings::find_any(c, &sid).await?;
        Ok(row.and_then(|(kind, path)| {
            let mime = if kind == "audio" {
                "audio/x-matroska"
            } else {
                "video/x-matroska"
            };
            Some((
                path?,
                mime,
                format!("{sid}.{}", recordings::container(&kind)),
            ))
        }))
    })
    .await
}

/// Serves the media file `find` names (its path under the media directory, MIME type and file
/// name), once the request's `Expires` and `Signature` are checked for `sid` (before any
/// database work): 403/20403 for a link that is not valid or has expired.
pub(crate) async fn serve_signed(
    req: &HttpRequest,
    state: &AppState,
    sid: &str,
    find: impl AsyncFnOnce(
        &mut sqlx::PgConnection,
    ) -> Result<Option<(String, &'static str, String)>, sqlx::Error>,
) -> Result<HttpResponse, ApiError> {
    let refused = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            code::FORBIDDEN,
            "The media link is not valid or has expired",
        )
    };
    let params = Params::parse(req.query_string().as_bytes())?;
    let expires: i64 = params
        .single("Expires")?
        .and_then(|e| e.parse().ok())
        .ok_or_else(refused)?;
    let signature = params.single("Signature")?.ok_or_else(refused)?;
    let media = state.media.as_ref().ok_or_else(refused)?;
    if expires < Utc::now().timestamp()
        || !media
            .secrets
            .media_signature_matches(sid, expires, signature)
    {
        return Err(refused());
    }
    let (path, mime, name) = state
        .pool
        .run(async |c| find(c).await)
        .await?
        .ok_or_else(|| not_found(req))?;
    let file = actix_files::NamedFile::open_async(media.media_dir.join(&path))
        .await
        .map_err(|_| not_found(req))?;
    let file = file
        .set_content_type(mime.parse().expect("a valid MIME type"))
        .set_content_disposition(header::ContentDisposition {
            disposition: header::DispositionType::Attachment,
            parameters: vec![header::DispositionParam::Filename(name)],
        });
    Ok(file.into_response(req))
}
