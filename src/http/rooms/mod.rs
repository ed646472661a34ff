//! `/v1/Rooms` and `/v1/Rooms/{RoomNameOrSid}`: parse, call db, render Twilio's JSON.

pub mod list;
pub mod resource;

use crate::http::respond::{get, resource};
use resource::{RoomResource, ROOM_JSON_BYTES};

use super::room_ref::RoomRef;
use crate::auth::authenticator::Account;
use crate::db::rooms::{self, Completion, RoomRow};
use crate::domain::create_room::CreateRoom;
use crate::domain::sid::AccountSid;
use crate::domain::sid::RoomSid;
use crate::http::extract::Form;
use crate::http::respond::json;
use crate::http::state::AppState;
use crate::twilio::error::code;
use crate::twilio::form::Params;
use crate::twilio::ApiError;
use actix_web::{web, HttpResponse};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/v1/Rooms")
            .route(web::post().to(create))
            .route(get().to(list::list)),
    )
    .service(
        resource("/v1/Rooms/{room}")
            .route(get().to(fetch))
            .route(web::post().to(update)),
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
    let row = create_room(&state, &account.sid, &params).await?;
    Ok(json(
        HttpResponse::Created(),
        &RoomResource::new(&row, &state.public_url),
        ROOM_JSON_BYTES,
    ))
}

/// Creates a room from Twilio's parameters (the REST create and the console's).
pub(crate) async fn create_room(
    state: &AppState,
    account: &AccountSid,
    params: &Params,
) -> Result<RoomRow, ApiError> {
    let room = CreateRoom::from_params(params)?;
    let new_sid = RoomSid::generate();
    let created: Result<_, ApiError> = state
        .pool
        .run(async |c| rooms::insert(c, account, &new_sid, &room).await)
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
    tracing::info!(room_sid = %row.sid, account_sid = %account, "room created");
    Ok(row)
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
    let row = complete_room(&state, &room).await?;
    Ok(json(
        HttpResponse::Accepted(),
        &RoomResource::new(&row, &state.public_url),
        ROOM_JSON_BYTES,
    ))
}

/// Ends the room `room` names (the REST update and the console's End): 53118 when it already
/// ended.
pub(crate) async fn complete_room(state: &AppState, room: &RoomRef) -> Result<RoomRow, ApiError> {
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
                crate::telemetry::metrics::EndReason::RoomEnded,
                row.participants_disconnected as usize,
            );
            tracing::info!(room_sid = %row.sid, account_sid = %account, "room completed");
            Ok(*row)
        }
        Completion::AlreadyEnded => Err(ApiError::bad_request(
            code::ROOM_COMPLETED,
            "Room completed",
        )),
        Completion::NotFound => Err(room.not_found("")),
    }
}
