//! Twilio's recordings: `/v1/Recordings[/{Sid}]` (the account's) and
//! `/v1/Rooms/{Room}/Recordings[/{Sid}]` (a room's), list, fetch and delete; `.../Media`
//! answers as Twilio does (302, `{"redirect_to": ...}`) with a short-lived signed link that
//! `.../Media/Content` serves (no credentials: the signature is the grant), ranges included.

pub(crate) mod lookup;
pub(crate) mod media;
pub mod resource;

use super::respond::{get, json, resource, ListPage};
use super::room_ref::RoomRef;
use super::rooms::list::{date_filter, EchoedFilters};
use crate::auth::authenticator::Account;
use crate::db::recordings::{self, RecordingFilter};
use crate::domain::sid;
use crate::http::state::AppState;
use crate::twilio::form::Params;
use crate::twilio::paging::PageRequest;
use crate::twilio::ApiError;
use actix_web::{web, HttpRequest, HttpResponse};
use lookup::{find, not_found, recording_sid};
use media::{content, media, room_media};
use resource::RecordingResource;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/v1/Recordings").route(get().to(list)))
        .service(
            resource("/v1/Recordings/{recording}")
                .route(get().to(fetch))
                .route(web::delete().to(delete)),
        )
        .service(resource("/v1/Recordings/{recording}/Media").route(get().to(media)))
        .service(resource("/v1/Recordings/{recording}/Media/Content").route(get().to(content)))
        .service(resource("/v1/Rooms/{room}/Recordings").route(get().to(room_list)))
        .service(
            resource("/v1/Rooms/{room}/Recordings/{recording}")
                .route(get().to(room_fetch))
                .route(web::delete().to(room_delete)),
        )
        .service(
            resource("/v1/Rooms/{room}/Recordings/{recording}/Media").route(get().to(room_media)),
        );
}

const RECORDING_JSON_BYTES: usize = 900;
/// Twilio's largest page of `/v1/Recordings`.
const MAX_ACCOUNT_PAGE_SIZE: u32 = 100;

/// A SID-shaped filter value (`SourceSid`, `GroupingSid`): two letters and 32 hex digits.
fn sid_filter(key: &str, value: &str) -> Result<String, ApiError> {
    let ok = value.len() == 34
        && value[..2].bytes().all(|b| b.is_ascii_alphabetic())
        && value[2..].bytes().all(|b| b.is_ascii_hexdigit());
    if !ok {
        return Err(ApiError::invalid_parameter(format!(
            "{key} must be a SID (two letters and 32 hexadecimal digits)"
        )));
    }
    Ok(format!(
        "{}{}",
        &value[..2],
        value[2..].to_ascii_lowercase()
    ))
}

/// The filters of a recording list; the account's list also takes `GroupingSid` and
/// `MediaType`.
fn list_filter(
    params: &Params,
    account_wide: bool,
) -> Result<(RecordingFilter, EchoedFilters), ApiError> {
    let mut echo: EchoedFilters = Vec::new();
    let mut filter = RecordingFilter::default();
    if let Some(s) = params.single("Status")? {
        if !["processing", "completed", "deleted", "failed"].contains(&s) {
            return Err(ApiError::invalid_parameter(
                "Status must be one of processing, completed, deleted, failed",
            ));
        }
        echo.push(("Status", s.to_string()));
        filter.status = Some(s.to_string());
    }
    if let Some(s) = params.single("SourceSid")? {
        filter.source_sid = Some(sid_filter("SourceSid", s)?);
        echo.push(("SourceSid", s.to_string()));
    }
    filter.created_on_or_after = date_filter(params, "DateCreatedAfter", &mut echo)?;
    filter.created_before = date_filter(params, "DateCreatedBefore", &mut echo)?;
    if account_wide {
        for g in params.all("GroupingSid") {
            filter.grouping_sids.push(sid_filter("GroupingSid", g)?);
            echo.push(("GroupingSid", g.to_string()));
        }
        if filter.grouping_sids.len() > 10 {
            return Err(ApiError::invalid_parameter(
                "At most 10 GroupingSid filters",
            ));
        }
        if let Some(k) = params.single("MediaType")? {
            if !["audio", "video", "data"].contains(&k) {
                return Err(ApiError::invalid_parameter(
                    "MediaType must be one of audio, video, data",
                ));
            }
            echo.push(("MediaType", k.to_string()));
            filter.media_type = Some(k.to_string());
        }
    }
    Ok((filter, echo))
}

/// `GET /v1/Recordings`.
async fn list(
    req: HttpRequest,
    account: Account,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string().as_bytes())?;
    let (filter, echo) = list_filter(&params, true)?;
    let page = PageRequest::from_params_up_to(&params, sid::RECORDING, MAX_ACCOUNT_PAGE_SIZE)?;
    let found = state
        .pool
        .run(async |c| recordings::list(c, &account.sid, None, &filter, &page).await)
        .await?;
    let list = ListPage {
        path: "/v1/Recordings",
        key: "recordings",
        filters: &echo,
        item_bytes: RECORDING_JSON_BYTES,
    };
    Ok(list.respond(&state.public_url, &page, &found, |r| {
        RecordingResource::account(r, &state.public_url)
    }))
}

/// `GET /v1/Rooms/{Room}/Recordings`.
async fn room_list(
    req: HttpRequest,
    room: RoomRef,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string().as_bytes())?;
    let (filter, echo) = list_filter(&params, false)?;
    let page = PageRequest::from_params(&params, sid::RECORDING)?;
    let found = state
        .pool
        .run(async |c| -> Result<_, crate::db::DbError> {
            let Some(r) = room.find(c).await? else {
                return Ok(None);
            };
            let page = recordings::list(c, &room.account.sid, Some(&r.sid), &filter, &page).await?;
            Ok(Some((r, page)))
        })
        .await?;
    let (r, found) = found.ok_or_else(|| room.not_found("/Recordings"))?;
    let path = format!("/v1/Rooms/{}/Recordings", r.sid);
    let list = ListPage {
        path: &path,
        key: "recordings",
        filters: &echo,
        item_bytes: RECORDING_JSON_BYTES,
    };
    Ok(list.respond(&state.public_url, &page, &found, |r| {
        RecordingResource::in_room(r, &state.public_url)
    }))
}

async fn fetch(
    req: HttpRequest,
    account: Account,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let row = find(&req, &account.sid, None, &state).await?;
    Ok(json(
        HttpResponse::Ok(),
        &RecordingResource::account(&row, &state.public_url),
        RECORDING_JSON_BYTES,
    ))
}

async fn room_fetch(
    req: HttpRequest,
    room: RoomRef,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let row = find(&req, &room.account.sid, Some(&room), &state).await?;
    Ok(json(
        HttpResponse::Ok(),
        &RecordingResource::in_room(&row, &state.public_url),
        RECORDING_JSON_BYTES,
    ))
}

/// `DELETE` (204), and the console's Delete: the recording stays, `deleted`; its media file goes
/// after the commit.
pub(crate) async fn remove(
    req: &HttpRequest,
    account: &str,
    room: Option<&RoomRef>,
    state: &AppState,
) -> Result<(), ApiError> {
    let sid = recording_sid(req)?;
    let deleted = state
        .pool
        .transaction(async |c| -> Result<_, sqlx::Error> {
            let Some(room_sid) = lookup::scope(c, room).await? else {
                return Ok(None);
            };
            recordings::delete(&mut *c, account, room_sid.as_deref(), &sid).await
        })
        .await?;
    let file = deleted.ok_or_else(|| not_found(req))?;
    if let Some(file) = file {
        match &state.media {
            Some(media) => {
                if let Err(e) = tokio::fs::remove_file(media.media_dir.join(&file)).await {
                    tracing::warn!(error = %e, recording_sid = %sid, "removing a deleted recording's file failed");
                }
            }
            None => {
                tracing::warn!(recording_sid = %sid, "a recording was deleted by a process without a media directory: its file stays")
            }
        }
    }
    tracing::info!(recording_sid = %sid, account_sid = %account, "recording deleted");
    Ok(())
}

async fn delete(
    req: HttpRequest,
    account: Account,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    remove(&req, &account.sid, None, &state).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn room_delete(
    req: HttpRequest,
    room: RoomRef,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    remove(&req, &room.account.sid, Some(&room), &state).await?;
    Ok(HttpResponse::NoContent().finish())
}
