//! `/v1/Rooms` and `/v1/Rooms/{RoomNameOrSid}`: parse, call db, render Twilio's JSON.

pub mod list;

use super::room_ref::RoomRef;
use super::{json, Form};
use crate::auth::Account;
use crate::db::rooms::{self, Completion, RoomRow};
use crate::domain::room::CreateRoom;
use crate::domain::sid::RoomSid;
use crate::state::AppState;
use crate::twilio::error::code;
use crate::twilio::time;
use crate::twilio::urls::{PublicUrl, ResourceUrl};
use crate::twilio::ApiError;
use actix_web::{web, HttpResponse};
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
    url: ResourceUrl<'a>,
    links: RoomLinks<'a>,
}

#[derive(Serialize)]
struct RoomLinks<'a> {
    participants: ResourceUrl<'a>,
    recordings: ResourceUrl<'a>,
    transcriptions: ResourceUrl<'a>,
    recording_rules: ResourceUrl<'a>,
}

impl<'a> RoomResource<'a> {
    pub fn new(row: &'a RoomRow, base: &'a PublicUrl) -> Self {
        let url = ResourceUrl::new(base, &["Rooms", &row.sid]);
        RoomResource {
            account_sid: &row.account_sid,
            date_created: row.date_created,
            date_updated: row.date_updated,
            status: row.status.as_str(),
            room_type: row.room_type.as_str(),
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
                participants: url.child("Participants"),
                recordings: url.child("Recordings"),
                transcriptions: url.child("Transcriptions"),
                recording_rules: url.child("RecordingRules"),
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
            .route(super::get().to(list::list))
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
    account: Account,
    form: Form,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = form.params().await?;
    let room = CreateRoom::from_params(&params)?;
    let new_sid = RoomSid::generate();
    let created: Result<_, ApiError> = state
        .pool
        .run(async |c| rooms::insert(c, &account.sid, &new_sid, &room).await)
        .await
        .map_err(ApiError::from);
    let row = created.inspect_err(|e| {
        if e.code() == crate::twilio::error::code::ROOMS_QUOTA {
            state
                .metrics
                .account_limits_hit
                .with_label_values(&["rooms_in_progress"])
                .inc();
        }
    })?;
    state.metrics.rooms_created.inc();
    tracing::info!(room_sid = %row.sid, account_sid = %account.sid, "room created");
    Ok(json(
        HttpResponse::Created(),
        &RoomResource::new(&row, &state.public_url),
        ROOM_JSON_BYTES,
    ))
}

/// `GET /v1/Rooms/{RoomNameOrSid}`: by SID in any status, by name while in progress.
async fn fetch(room: RoomRef, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match state.pool.run(async |c| room.find(c).await).await? {
        Some(row) => Ok(json(
            HttpResponse::Ok(),
            &RoomResource::new(&row, &state.public_url),
            ROOM_JSON_BYTES,
        )),
        None => Err(room.not_found("")),
    }
}

/// `POST /v1/Rooms/{RoomNameOrSid}` with `Status=completed` (202): in one transaction, the room
/// locked (which tells 53118 from 404), then ended with its participants, tracks and events.
async fn update(
    room: RoomRef,
    form: Form,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = form.params().await?;
    match params.required("Status")? {
        "completed" => {}
        _ => {
            return Err(ApiError::bad_request(
                code::ROOM_STATUS_INVALID,
                "Status is invalid",
            ))
        }
    }
    let account = &room.account.sid;
    let completion = state
        .pool
        .transaction(async |c| {
            rooms::complete_named(c, account, room.sid.as_deref(), &room.segment).await
        })
        .await?;
    match completion {
        Completion::Completed(row) => {
            state.metrics.room_ended("rest");
            state.metrics.participants_disconnected(
                crate::metrics::EndReason::RoomEnded,
                row.participants_disconnected as usize,
            );
            tracing::info!(room_sid = %row.sid, account_sid = %account, "room completed");
            Ok(json(
                HttpResponse::Accepted(),
                &RoomResource::new(&row, &state.public_url),
                ROOM_JSON_BYTES,
            ))
        }
        Completion::AlreadyEnded => Err(ApiError::bad_request(
            code::ROOM_COMPLETED,
            "Room completed",
        )),
        Completion::NotFound => Err(room.not_found("")),
    }
}
