//! `/v1/Rooms/{RoomNameOrSid}/Callbacks[/{Sid}]` (a roomd extension): a room's status callback
//! events and how their delivery went, and `Status=pending` to send one again.

use super::extract::{path_segment, Form};
use super::respond::json;
use super::room_ref::RoomRef;
use crate::db::callbacks::{self, EventRow};
use crate::db::rooms::RoomRow;
use crate::domain::sid::{self, CallbackEventSid};
use crate::http::respond::ListPage;
use crate::http::respond::{get, resource};
use crate::http::state::AppState;
use crate::twilio::error::code;
use crate::twilio::form::Params;
use crate::twilio::paging::PageRequest;
use crate::twilio::time;
use crate::twilio::urls::{PublicUrl, ResourceUrl};
use crate::twilio::ApiError;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// One event of the delivery log.
#[derive(Serialize)]
pub struct CallbackResource<'a> {
    sid: &'a str,
    account_sid: &'a str,
    room_sid: &'a str,
    sequence_number: i32,
    event: &'a str,
    /// Where and how it is sent: the room's `StatusCallback` and `StatusCallbackMethod`.
    request_url: &'a str,
    request_method: &'a str,
    /// The parameters sent.
    parameters: &'a serde_json::Map<String, serde_json::Value>,
    /// `pending`, `delivered` or `failed`.
    status: &'a str,
    attempts: i32,
    last_response_status: Option<i32>,
    last_error: Option<&'a str>,
    #[serde(serialize_with = "time::serialize")]
    date_created: DateTime<Utc>,
    #[serde(serialize_with = "time::serialize")]
    date_updated: DateTime<Utc>,
    #[serde(serialize_with = "time::serialize_opt")]
    date_delivered: Option<DateTime<Utc>>,
    url: ResourceUrl<'a>,
}

impl<'a> CallbackResource<'a> {
    pub fn new(row: &'a EventRow, base: &'a PublicUrl) -> Self {
        CallbackResource {
            sid: &row.sid,
            account_sid: &row.account_sid,
            room_sid: &row.room_sid,
            sequence_number: row.sequence_number,
            event: &row.event,
            request_url: &row.url,
            request_method: &row.method,
            parameters: &row.params,
            status: &row.status,
            attempts: row.attempts,
            last_response_status: row.last_response_status,
            last_error: row.last_error.as_deref(),
            date_created: row.date_created,
            date_updated: row.date_updated,
            date_delivered: row.date_delivered,
            url: ResourceUrl::new(base, &["Rooms", &row.room_sid, "Callbacks", &row.sid]),
        }
    }
}

const CALLBACK_JSON_BYTES: usize = 1200;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/v1/Rooms/{room}/Callbacks").route(get().to(list)))
        .service(
            resource("/v1/Rooms/{room}/Callbacks/{event}")
                .route(get().to(fetch))
                .route(web::post().to(update)),
        );
}

/// The `{event}` segment, an EV SID; anything else names no event (404).
pub(crate) fn event_sid(req: &HttpRequest, room: &RoomRef) -> Result<CallbackEventSid, ApiError> {
    let segment = path_segment(req, "event")?;
    CallbackEventSid::parse(&segment)
        .ok_or_else(|| room.not_found(&format!("/Callbacks/{segment}")))
}

/// The room, then `read` on it, on one connection; a 404 when there is no such room.
async fn in_room<T, E>(
    state: &AppState,
    room: &RoomRef,
    read: impl AsyncFnOnce(&mut sqlx::PgConnection, &RoomRow) -> Result<T, E>,
) -> Result<T, ApiError>
where
    E: From<sqlx::Error> + crate::db::error::BreaksConnection,
    ApiError: From<E>,
{
    let found = state
        .pool
        .run(async |c| -> Result<_, E> {
            match room.find(c).await? {
                Some(r) => Ok(Some(read(c, &r).await?)),
                None => Ok(None),
            }
        })
        .await?;
    found.ok_or_else(|| room.not_found(""))
}

/// `GET .../Callbacks`: the room's events in `SequenceNumber` order, paged.
async fn list(
    req: HttpRequest,
    room: RoomRef,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string().as_bytes())?;
    let page = PageRequest::from_params(&params, sid::CALLBACK_EVENT)?;
    let account = &room.account.sid;
    let (room_sid, found) = in_room(&state, &room, async |c, r| {
        let found = callbacks::list(c, account, &r.sid, &page).await?;
        Ok::<_, crate::db::DbError>((r.sid.clone(), found))
    })
    .await?;
    let list = ListPage {
        path: &format!("/v1/Rooms/{room_sid}/Callbacks"),
        key: "callbacks",
        filters: &[],
        item_bytes: CALLBACK_JSON_BYTES,
    };
    Ok(list.respond(&state.public_url, &page, &found, |r| {
        CallbackResource::new(r, &state.public_url)
    }))
}

/// `GET .../Callbacks/{Sid}`.
async fn fetch(
    req: HttpRequest,
    room: RoomRef,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let sid = event_sid(&req, &room)?;
    let account = &room.account.sid;
    let row = in_room(&state, &room, async |c, r| {
        callbacks::find(c, account, &r.sid, &sid).await
    })
    .await?
    .ok_or_else(|| room.not_found(&format!("/Callbacks/{sid}")))?;
    Ok(json(
        HttpResponse::Ok(),
        &CallbackResource::new(&row, &state.public_url),
        CALLBACK_JSON_BYTES,
    ))
}

/// `POST .../Callbacks/{Sid}` with `Status=pending` (200): sends the event again, with a fresh
/// retry budget, in its room's order (it waits for the room's earlier pending events, and the
/// later ones wait for it). An event already pending stays as it is.
async fn update(
    req: HttpRequest,
    room: RoomRef,
    form: Form,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let sid = event_sid(&req, &room)?;
    let params = form.params().await?;
    if params.required("Status")? != "pending" {
        return Err(ApiError::bad_request(
            code::INVALID_PARAMETER,
            "Status must be pending",
        ));
    }
    let row = resend(&state, &room, &sid).await?;
    Ok(json(
        HttpResponse::Ok(),
        &CallbackResource::new(&row, &state.public_url),
        CALLBACK_JSON_BYTES,
    ))
}

/// Sends the event `sid` of `room`'s room again (the REST `Status=pending` and the console's
/// Replay).
pub(crate) async fn resend(
    state: &AppState,
    room: &RoomRef,
    sid: &CallbackEventSid,
) -> Result<EventRow, ApiError> {
    let account = &room.account.sid;
    let row = in_room(state, room, async |c, r| {
        callbacks::resend(c, account, &r.sid, sid).await
    })
    .await?
    .ok_or_else(|| room.not_found(&format!("/Callbacks/{sid}")))?;
    tracing::info!(event_sid = %row.sid, room_sid = %row.room_sid, "status callback queued again");
    Ok(row)
}
