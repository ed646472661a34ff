//! `/v1/Rooms` and `/v1/Rooms/{RoomNameOrSid}`: parse, call db, render Twilio's JSON.

use super::{json, path_segment, read_form, resource_not_found};
use crate::auth::Account;
use crate::db::rooms::{self, PageError, RoomFilter, RoomKey, RoomRow};
use crate::domain::room::{validate_unique_name, CreateRoom, RoomStatus};
use crate::domain::sid;
use crate::startup::AppState;
use crate::twilio::error::code;
use crate::twilio::form::Params;
use crate::twilio::paging::{self, PageRequest, PageResult};
use crate::twilio::time;
use crate::twilio::urls::PublicUrl;
use crate::twilio::ApiError;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// The Room resource, keys in the order of Twilio's examples. It borrows the row and writes
/// its URLs and dates straight into the JSON output (a page of 50 rooms would otherwise build
/// some 400 short-lived strings).
#[derive(Serialize)]
pub struct RoomResource<'a> {
    account_sid: &'a str,
    #[serde(serialize_with = "time::serialize")]
    date_created: DateTime<Utc>,
    #[serde(serialize_with = "time::serialize")]
    date_updated: DateTime<Utc>,
    status: &'a str,
    #[serde(rename = "type")]
    room_type: &'a str,
    sid: &'a str,
    enable_turn: bool,
    unique_name: &'a str,
    max_participants: i32,
    max_participant_duration: i32,
    max_concurrent_published_tracks: i32,
    duration: Option<i32>,
    status_callback_method: &'a str,
    status_callback: Option<&'a str>,
    record_participants_on_connect: bool,
    video_codecs: &'a [String],
    media_region: &'a str,
    audio_only: bool,
    empty_room_timeout: i32,
    unused_room_timeout: i32,
    #[serde(serialize_with = "time::serialize_opt")]
    end_time: Option<DateTime<Utc>>,
    large_room: bool,
    url: RoomUrl<'a>,
    links: RoomLinks<'a>,
}

/// `{base}/v1/Rooms/{sid}{suffix}`, serialized without an intermediate string.
#[derive(Clone, Copy)]
struct RoomUrl<'a> {
    base: &'a PublicUrl,
    sid: &'a str,
    suffix: &'static str,
}

impl std::fmt::Display for RoomUrl<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.base.as_str())?;
        f.write_str("/v1/Rooms/")?;
        f.write_str(self.sid)?;
        f.write_str(self.suffix)
    }
}

impl Serialize for RoomUrl<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Serialize)]
struct RoomLinks<'a> {
    participants: RoomUrl<'a>,
    recordings: RoomUrl<'a>,
    transcriptions: RoomUrl<'a>,
    recording_rules: RoomUrl<'a>,
}

impl<'a> RoomResource<'a> {
    pub fn new(row: &'a RoomRow, base: &'a PublicUrl) -> Self {
        let url = RoomUrl {
            base,
            sid: &row.sid,
            suffix: "",
        };
        let link = |suffix| RoomUrl { suffix, ..url };
        RoomResource {
            account_sid: &row.account_sid,
            date_created: row.date_created,
            date_updated: row.date_updated,
            status: &row.status,
            room_type: &row.room_type,
            sid: &row.sid,
            enable_turn: true,
            unique_name: &row.unique_name,
            max_participants: row.max_participants,
            max_participant_duration: row.max_participant_duration,
            max_concurrent_published_tracks: row.max_concurrent_published_tracks,
            duration: row.duration,
            status_callback_method: &row.status_callback_method,
            status_callback: row.status_callback.as_deref(),
            record_participants_on_connect: row.record_participants_on_connect,
            video_codecs: &row.video_codecs,
            media_region: &row.media_region,
            audio_only: row.audio_only,
            empty_room_timeout: row.empty_room_timeout,
            unused_room_timeout: row.unused_room_timeout,
            end_time: row.end_time,
            large_room: row.large_room,
            url,
            links: RoomLinks {
                participants: link("/Participants"),
                recordings: link("/Recordings"),
                transcriptions: link("/Transcriptions"),
                recording_rules: link("/RecordingRules"),
            },
        }
    }
}

/// About what one room's JSON takes, to size the output buffer once.
const ROOM_JSON_BYTES: usize = 1280;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/Rooms")
            .route(web::post().to(create))
            .route(super::get().to(list))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/v1/Rooms/{room}")
            .route(super::get().to(fetch))
            .route(web::post().to(update))
            .default_service(web::to(super::method_not_allowed)),
    );
}

/// `POST /v1/Rooms` (201). The unique name is enforced by the partial unique index alone: a
/// violation of it, by name, is 53113.
async fn create(
    req: HttpRequest,
    body: web::Payload,
    account: Account,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = read_form(&req, body).await?;
    let room = CreateRoom::from_params(&params)?;
    let new_sid = sid::generate(sid::ROOM);
    let row = state
        .pool
        .run(async |c| rooms::insert(c, &account.sid, &new_sid, &room).await)
        .await
        .map_err(|e| match crate::db::violated_unique_constraint(&e) {
            Some(rooms::UNIQUE_NAME_CONSTRAINT) => {
                ApiError::bad_request(code::ROOM_EXISTS, "Room exists")
            }
            _ => e.into(),
        })?;
    state.metrics.rooms_created.inc();
    tracing::info!(room_sid = %row.sid, account_sid = %account.sid, "room created");
    Ok(json(
        HttpResponse::Created(),
        &RoomResource::new(&row, &state.public_url),
        ROOM_JSON_BYTES,
    ))
}

/// The ways a path segment may name a room, in order: a SID-shaped segment is first a SID (any
/// status), then, like any other segment, the name of an in-progress room (a name may look like
/// a SID).
fn candidate_keys<'a>(
    raw: &'a str,
    normalized: Option<&'a str>,
) -> impl Iterator<Item = RoomKey<'a>> {
    normalized
        .map(RoomKey::Sid)
        .into_iter()
        .chain(std::iter::once(RoomKey::Name(raw)))
}

/// The decoded `{RoomNameOrSid}`, or 404 when it cannot name any room (e.g. control characters).
fn room_segment(req: &HttpRequest) -> Result<(String, Option<String>), ApiError> {
    let raw = path_segment(req, "room")?;
    let not_found = || resource_not_found(&format!("/Rooms/{raw}"));
    validate_unique_name(&raw).map_err(|_| not_found())?;
    let normalized = sid::is_sid(sid::ROOM, &raw).then(|| sid::normalize(sid::ROOM, &raw));
    Ok((raw, normalized))
}

async fn find(
    state: &AppState,
    account: &str,
    raw: &str,
    normalized: Option<&str>,
) -> Result<Option<RoomRow>, ApiError> {
    for key in candidate_keys(raw, normalized) {
        if let Some(row) = state
            .pool
            .run(async |c| rooms::fetch(c, account, key).await)
            .await?
        {
            return Ok(Some(row));
        }
    }
    Ok(None)
}

/// `GET /v1/Rooms/{RoomNameOrSid}`: by SID in any status, by name while in progress.
async fn fetch(
    req: HttpRequest,
    account: Account,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (raw, normalized) = room_segment(&req)?;
    match find(&state, &account.sid, &raw, normalized.as_deref()).await? {
        Some(row) => Ok(json(
            HttpResponse::Ok(),
            &RoomResource::new(&row, &state.public_url),
            ROOM_JSON_BYTES,
        )),
        None => Err(resource_not_found(&format!("/Rooms/{raw}"))),
    }
}

fn completed(state: &AppState, account: &Account, row: RoomRow) -> HttpResponse {
    state.metrics.room_ended("rest");
    tracing::info!(room_sid = %row.sid, account_sid = %account.sid, "room completed");
    json(
        HttpResponse::Accepted(),
        &RoomResource::new(&row, &state.public_url),
        ROOM_JSON_BYTES,
    )
}

/// `POST /v1/Rooms/{RoomNameOrSid}` with `Status=completed` (202): one compare-and-set UPDATE.
async fn update(
    req: HttpRequest,
    body: web::Payload,
    account: Account,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = read_form(&req, body).await?;
    let (raw, normalized) = room_segment(&req)?;
    match params.single("Status")? {
        None => {
            return Err(ApiError::bad_request(
                code::INVALID_PARAMETER,
                "Missing required parameter Status in the post body",
            ))
        }
        Some("completed") => {}
        Some(_) => {
            return Err(ApiError::bad_request(
                code::ROOM_STATUS_INVALID,
                "Status is invalid",
            ))
        }
    }
    // A SID names that room in any status: if it is not in progress, that is 53118, and the
    // segment is not then tried as the name of some other room.
    if let Some(sid) = normalized.as_deref() {
        let by_sid = RoomKey::Sid(sid);
        if let Some(row) = state
            .pool
            .run(async |c| rooms::complete(c, &account.sid, by_sid).await)
            .await?
        {
            return Ok(completed(&state, &account, row));
        }
        if state
            .pool
            .run(async |c| rooms::fetch(c, &account.sid, by_sid).await)
            .await?
            .is_some()
        {
            return Err(ApiError::bad_request(
                code::ROOM_COMPLETED,
                "Room completed",
            ));
        }
    }
    // A name only ever names an in-progress room, so no match is "not found".
    let by_name = RoomKey::Name(&raw);
    match state
        .pool
        .run(async |c| rooms::complete(c, &account.sid, by_name).await)
        .await?
    {
        Some(row) => Ok(completed(&state, &account, row)),
        None => Err(resource_not_found(&format!("/Rooms/{raw}"))),
    }
}

/// The filters as given, in the order every paging URL repeats them.
type EchoedFilters = Vec<(&'static str, String)>;

fn list_filter(params: &Params) -> Result<(RoomFilter, EchoedFilters), ApiError> {
    let mut echo: EchoedFilters = Vec::new();
    let status = match params.single("Status")? {
        None => RoomStatus::InProgress,
        Some(s) => {
            let status = RoomStatus::parse(s).ok_or_else(|| {
                ApiError::invalid_parameter("Status must be one of in-progress, completed, failed")
            })?;
            echo.push(("Status", s.to_string()));
            status
        }
    };
    let unique_name = params.single("UniqueName")?.map(str::to_string);
    if let Some(n) = &unique_name {
        echo.push(("UniqueName", n.clone()));
    }
    let mut date = |key: &'static str| -> Result<Option<DateTime<Utc>>, ApiError> {
        params
            .single(key)?
            .map(|v| {
                let t = time::parse_filter(key, v)?;
                echo.push((key, v.to_string()));
                Ok(t)
            })
            .transpose()
    };
    let created_on_or_after = date("DateCreatedAfter")?;
    let created_before = date("DateCreatedBefore")?;
    Ok((
        RoomFilter {
            status,
            // A name no room can have (e.g. with NUL) matches nothing; don't send it to the database.
            unique_name,
            created_on_or_after,
            created_before,
        },
        echo,
    ))
}

/// `GET /v1/Rooms`: newest first, keyset-paged.
async fn list(
    req: HttpRequest,
    account: Account,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string().as_bytes())?;
    let (filter, echo) = list_filter(&params)?;
    let page = PageRequest::from_params(&params, sid::ROOM)?;

    let invalid_name = filter
        .unique_name
        .as_deref()
        .is_some_and(|n| validate_unique_name(n).is_err());
    let (rows, more_beyond) = if invalid_name {
        (Vec::new(), false)
    } else {
        match state
            .pool
            .run(async |c| rooms::list(c, &account.sid, &filter, &page).await)
            .await
        {
            Ok(p) => (p.rooms, p.more_beyond),
            Err(PageError::UnknownToken) => {
                return Err(ApiError::bad_request(
                    code::INVALID_PAGE_TOKEN,
                    "Invalid PageToken",
                ))
            }
            Err(PageError::Db(e)) => return Err(e.into()),
        }
    };

    let backwards = matches!(page.cursor, paging::Cursor::Before(_));
    let found = PageResult {
        first_sid: rows.first().map(|r| r.sid.as_str()),
        last_sid: rows.last().map(|r| r.sid.as_str()),
        has_next: if backwards { true } else { more_beyond },
        has_previous: if backwards {
            more_beyond
        } else {
            page.token.is_some() || page.offset() > 0
        },
    };
    let meta = paging::meta(&state.public_url, "/v1/Rooms", "rooms", &echo, &page, found);
    let rooms: Vec<RoomResource> = rows
        .iter()
        .map(|r| RoomResource::new(r, &state.public_url))
        .collect();

    #[derive(Serialize)]
    struct ListBody<'a> {
        rooms: Vec<RoomResource<'a>>,
        meta: paging::Meta,
    }
    let capacity = (rooms.len() + 1) * ROOM_JSON_BYTES;
    Ok(json(
        HttpResponse::Ok(),
        &ListBody { rooms, meta },
        capacity,
    ))
}
