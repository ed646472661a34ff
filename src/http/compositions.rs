//! Twilio's compositions: `POST /v1/Compositions` (of an ended room with recordings), the list,
//! fetch, `DELETE` (the resource stays, `deleted`; the file goes), and `.../Media` answered as a
//! recording's is (302 to a signed link that `.../Media/Content` serves).

use super::extract::{path_segment, Form};
use super::recordings::lookup::not_found;
use super::recordings::media::{redirect_to_media, serve_signed};
use super::respond::{get, json, resource, ListPage};
use super::rooms::list::{date_filter, EchoedFilters};
use crate::auth::authenticator::Account;
use crate::db::compositions::{self, CompositionFilter, CompositionRow, Refusal};
use crate::domain::composition::CompositionSpec;
use crate::domain::sid::{self, CompositionSid, RoomSid};
use crate::http::state::AppState;
use crate::twilio::form::Params;
use crate::twilio::paging::PageRequest;
use crate::twilio::time;
use crate::twilio::urls::{PublicUrl, ResourceUrl};
use crate::twilio::ApiError;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/v1/Compositions")
            .route(get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        resource("/v1/Compositions/{composition}")
            .route(get().to(fetch))
            .route(web::delete().to(delete)),
    )
    .service(resource("/v1/Compositions/{composition}/Media").route(get().to(media)))
    .service(resource("/v1/Compositions/{composition}/Media/Content").route(get().to(content)));
}

const JSON_BYTES: usize = 2048;
/// Twilio's largest page of `/v1/Compositions`.
const MAX_PAGE_SIZE: u32 = 100;

/// A composition, keys in the order of Twilio's examples.
#[derive(Serialize)]
pub struct CompositionResource<'a> {
    account_sid: &'a str,
    status: &'a str,
    #[serde(serialize_with = "time::serialize")]
    date_created: DateTime<Utc>,
    #[serde(serialize_with = "time::serialize_opt")]
    date_completed: Option<DateTime<Utc>>,
    #[serde(serialize_with = "time::serialize_opt")]
    date_deleted: Option<DateTime<Utc>>,
    sid: &'a str,
    room_sid: &'a str,
    audio_sources: &'a [String],
    audio_sources_excluded: &'a [String],
    video_layout: &'a serde_json::Value,
    resolution: &'a str,
    format: &'a str,
    bitrate: i32,
    size: i64,
    duration: i32,
    trim: bool,
    media_external_location: Option<&'a str>,
    status_callback: Option<&'a str>,
    status_callback_method: &'a str,
    url: ResourceUrl<'a>,
    links: Links<'a>,
}

#[derive(Serialize)]
struct Links<'a> {
    media: ResourceUrl<'a>,
}

impl<'a> CompositionResource<'a> {
    pub fn new(row: &'a CompositionRow, base: &'a PublicUrl) -> Self {
        let url = ResourceUrl::new(base, &["Compositions", &row.sid]);
        CompositionResource {
            account_sid: &row.account_sid,
            status: &row.status,
            date_created: row.date_created,
            date_completed: row.date_completed,
            date_deleted: row.date_deleted,
            sid: &row.sid,
            room_sid: &row.room_sid,
            audio_sources: &row.audio_sources,
            audio_sources_excluded: &row.audio_sources_excluded,
            video_layout: &row.video_layout.0,
            resolution: &row.resolution,
            format: &row.format,
            bitrate: row.bitrate,
            size: row.size,
            duration: row.duration,
            trim: row.trimmed,
            media_external_location: None,
            status_callback: row.status_callback.as_deref(),
            status_callback_method: &row.status_callback_method,
            url,
            links: Links {
                media: url.child("Media"),
            },
        }
    }
}

/// `POST /v1/Compositions` (201).
async fn create(
    account: Account,
    form: Form,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = form.params().await?;
    let room_raw = params.required("RoomSid")?;
    let room = RoomSid::parse(room_raw)
        .ok_or_else(|| ApiError::invalid_parameter("RoomSid must be a room's SID (RM...)"))?;
    let spec = CompositionSpec::from_params(&params, CompositionSpec::default())?;
    let made = state
        .pool
        .transaction(async |c| compositions::create(c, &account.sid, &room, &spec).await)
        .await?;
    let row = made.map_err(|refusal| {
        ApiError::invalid_parameter(match refusal {
            Refusal::NoSuchRoom => format!("Room {room} is not a room of this account"),
            Refusal::InProgress => {
                format!("Room {room} is in progress: a composition is made once the room has ended")
            }
            Refusal::NoRecordings => format!("Room {room} has no recordings to compose"),
            Refusal::TooMany => format!(
                "The account has {} compositions waiting or being made: create more once some are done",
                compositions::MAX_PENDING
            ),
        })
    })?;
    tracing::info!(composition_sid = %row.sid, room_sid = %row.room_sid, "composition enqueued");
    Ok(json(
        HttpResponse::Created(),
        &CompositionResource::new(&row, &state.public_url),
        JSON_BYTES,
    ))
}

/// `GET /v1/Compositions`, newest first.
async fn list(
    req: HttpRequest,
    account: Account,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string().as_bytes())?;
    let mut echo: EchoedFilters = Vec::new();
    let mut filter = CompositionFilter::default();
    if let Some(s) = params.single("Status")? {
        if !["enqueued", "processing", "completed", "deleted", "failed"].contains(&s) {
            return Err(ApiError::invalid_parameter(
                "Status must be one of enqueued, processing, completed, deleted, failed",
            ));
        }
        echo.push(("Status", s.to_string()));
        filter.status = Some(s.to_string());
    }
    if let Some(r) = params.single("RoomSid")? {
        let room = RoomSid::parse(r)
            .ok_or_else(|| ApiError::invalid_parameter("RoomSid must be a room's SID (RM...)"))?;
        echo.push(("RoomSid", r.to_string()));
        filter.room_sid = Some(room.to_string());
    }
    filter.created_on_or_after = date_filter(&params, "DateCreatedAfter", &mut echo)?;
    filter.created_before = date_filter(&params, "DateCreatedBefore", &mut echo)?;
    let page = PageRequest::from_params_up_to(&params, sid::COMPOSITION, MAX_PAGE_SIZE)?;
    let found = state
        .pool
        .run(async |c| compositions::list(c, &account.sid, &filter, &page).await)
        .await?;
    let list = ListPage {
        path: "/v1/Compositions",
        key: "compositions",
        filters: &echo,
        item_bytes: JSON_BYTES,
    };
    Ok(list.respond(&state.public_url, &page, &found, |r| {
        CompositionResource::new(r, &state.public_url)
    }))
}

/// The composition a path names, or its 404.
async fn find(
    req: &HttpRequest,
    account: &str,
    state: &AppState,
) -> Result<CompositionRow, ApiError> {
    let sid = composition_sid(req)?;
    state
        .pool
        .run(async |c| compositions::find(c, account, &sid).await)
        .await?
        .ok_or_else(|| not_found(req))
}

fn composition_sid(req: &HttpRequest) -> Result<CompositionSid, ApiError> {
    CompositionSid::parse(&path_segment(req, "composition")?).ok_or_else(|| not_found(req))
}

async fn fetch(
    req: HttpRequest,
    account: Account,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let row = find(&req, &account.sid, &state).await?;
    Ok(json(
        HttpResponse::Ok(),
        &CompositionResource::new(&row, &state.public_url),
        JSON_BYTES,
    ))
}

/// `DELETE` (204): the composition stays, `deleted`; its file goes after the commit.
async fn delete(
    req: HttpRequest,
    account: Account,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let sid = composition_sid(&req)?;
    let deleted = state
        .pool
        .transaction(async |c| compositions::delete(c, &account.sid, &sid).await)
        .await?;
    let file = deleted.ok_or_else(|| not_found(&req))?;
    if let Some(file) = file {
        match &state.media {
            Some(media) => crate::media::composition_jobs::remove_file(media, &file).await,
            None => {
                tracing::warn!(composition_sid = %sid, "a composition was deleted by a process without a media directory: its file stays")
            }
        }
    }
    tracing::info!(composition_sid = %sid, account_sid = %account.sid, "composition deleted");
    Ok(HttpResponse::NoContent().finish())
}

async fn media(
    req: HttpRequest,
    account: Account,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let row = find(&req, &account.sid, &state).await?;
    let ready = row.status == "completed" && row.media_path.is_some();
    redirect_to_media(&row.sid, ready, &req, &state)
}

/// `GET /v1/Compositions/{Sid}/Media/Content?Expires=...&Signature=...`.
async fn content(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let sid = composition_sid(&req)?;
    serve_signed(&req, &state, &sid, async |c| {
        let row = compositions::find_file(c, &sid).await?;
        Ok(row.and_then(|(format, path)| {
            let mime = if format == "mp4" {
                "video/mp4"
            } else {
                "video/webm"
            };
            Some((path?, mime, format!("{sid}.{format}")))
        }))
    })
    .await
}
