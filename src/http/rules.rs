//! What participants receive and what rooms record: `SubscribeRules` and `SubscribedTracks` under
//! a participant, `RecordingRules` under a room. Subscribed tracks are computed from the rules
//! when read (`db::tracks::list_subscribed`).

use super::extract::{path_segment, Form};
use super::participant_ref::{refused, ParticipantRef, TrackList};
use super::respond::json;
use super::room_ref::RoomRef;
use crate::db::participants::ParticipantRow;
use crate::db::subscribe_rules;
use crate::db::tracks::{self, TrackRow};
use crate::db::{recording_rules, recordings};
use crate::domain::room::RoomStatus;
use crate::domain::rules::{self, Grammar};
use crate::domain::sid::TrackSid;
use crate::http::respond::{get, resource};
use crate::http::state::AppState;
use crate::twilio::error::code;
use crate::twilio::form::Params;
use crate::twilio::time;
use crate::twilio::urls::PublicUrl;
use crate::twilio::urls::ResourceUrl;
use crate::twilio::ApiError;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/v1/Rooms/{room}/Participants/{participant}/SubscribeRules")
            .route(get().to(get_subscribe_rules))
            .route(web::post().to(set_subscribe_rules)),
    )
    .service(
        resource("/v1/Rooms/{room}/Participants/{participant}/SubscribedTracks")
            .route(get().to(list_subscribed)),
    )
    .service(
        resource("/v1/Rooms/{room}/Participants/{participant}/SubscribedTracks/{track}")
            .route(get().to(fetch_subscribed)),
    )
    .service(
        resource("/v1/Rooms/{room}/RecordingRules")
            .route(get().to(get_recording_rules))
            .route(web::post().to(set_recording_rules)),
    );
}

/// `Rules` from a POST body, parsed by `grammar` (missing: 20001).
fn rules_param(params: &Params, grammar: &Grammar) -> Result<Value, ApiError> {
    rules::parse(params.required("Rules")?, grammar)
}

/// Twilio's rules resources (not lists: no `meta`): a participant's subscribe rules, or (without
/// `participant_sid`) a room's recording rules.
#[derive(Serialize)]
struct RulesResource<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    participant_sid: Option<&'a str>,
    room_sid: &'a str,
    rules: Value,
    #[serde(serialize_with = "time::serialize")]
    date_created: DateTime<Utc>,
    #[serde(serialize_with = "time::serialize")]
    date_updated: DateTime<Utc>,
}

impl RulesResource<'_> {
    fn respond(self) -> HttpResponse {
        json(HttpResponse::Ok(), &self, 1024)
    }
}

fn subscribe_rules_body(
    p: &ParticipantRow,
    rules: &Value,
    updated: Option<DateTime<Utc>>,
) -> HttpResponse {
    RulesResource {
        participant_sid: Some(&p.sid),
        room_sid: &p.room_sid,
        rules: rules::with_every_key(rules),
        date_created: p.date_created,
        date_updated: updated.unwrap_or(p.date_created),
    }
    .respond()
}

/// `GET .../Participants/{Participant}/SubscribeRules`: the rules (default: include all).
async fn get_subscribe_rules(
    req: HttpRequest,
    room: RoomRef,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let who = ParticipantRef::from(&req, &room)?;
    let found = who
        .with(&state.pool, &room, async |c, p| -> Result<_, sqlx::Error> {
            Ok(Ok(subscribe_rules::subscribe_rules(&mut *c, &p.sid).await?))
        })
        .await?;
    let (p, (rules, updated)) = found.map_err(|r| refused(r, &room, Some(&who.segment)))?;
    Ok(subscribe_rules_body(&p, &rules, updated))
}

/// `POST .../Participants/{Participant}/SubscribeRules` with `Rules` (JSON): replaces them all.
/// When an include and an exclude rule both match a track, the exclude rule wins.
async fn set_subscribe_rules(
    req: HttpRequest,
    room: RoomRef,
    form: Form,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let who = ParticipantRef::from(&req, &room)?;
    let params = form.params().await?;
    let rules = rules_param(&params, &rules::SUBSCRIBE)?;
    let found = who
        .with(&state.pool, &room, async |c, p| -> Result<_, sqlx::Error> {
            Ok(Ok(subscribe_rules::set_subscribe_rules(
                &mut *c, &p.sid, &rules,
            )
            .await?))
        })
        .await?;
    let (p, updated) = found.map_err(|r| refused(r, &room, Some(&who.segment)))?;
    Ok(subscribe_rules_body(&p, &rules, Some(updated)))
}

/// A subscribed track: the publisher's track, seen from the subscriber.
#[derive(Serialize)]
struct SubscribedTrackResource<'a> {
    room_sid: &'a str,
    #[serde(serialize_with = "time::serialize")]
    date_created: DateTime<Utc>,
    #[serde(serialize_with = "time::serialize")]
    date_updated: DateTime<Utc>,
    participant_sid: &'a str,
    publisher_sid: &'a str,
    sid: &'a str,
    name: &'a str,
    kind: &'a str,
    enabled: bool,
    url: ResourceUrl<'a>,
}

impl<'a> SubscribedTrackResource<'a> {
    fn new(
        row: &'a TrackRow,
        subscriber: &'a str,
        base: &'a crate::twilio::urls::PublicUrl,
    ) -> Self {
        SubscribedTrackResource {
            room_sid: &row.room_sid,
            date_created: row.date_created,
            date_updated: row.date_updated,
            participant_sid: subscriber,
            publisher_sid: &row.participant_sid,
            sid: &row.sid,
            name: &row.name,
            kind: &row.kind,
            enabled: row.enabled,
            url: ResourceUrl::new(
                base,
                &[
                    "Rooms",
                    &row.room_sid,
                    "Participants",
                    subscriber,
                    "SubscribedTracks",
                    &row.sid,
                ],
            ),
        }
    }
}

const SUBSCRIBED_JSON_BYTES: usize = 480;

/// `GET .../Participants/{Participant}/SubscribedTracks`: what its rules let it receive now.
async fn list_subscribed(
    req: HttpRequest,
    room: RoomRef,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    ParticipantRef::from(&req, &room)?
        .list_tracks::<Subscribed>(&req, &room, &state, async |c, p, page| {
            let (rules, _) = subscribe_rules::subscribe_rules(&mut *c, &p.sid).await?;
            tracks::list_subscribed(c, p, &rules, page).await
        })
        .await
}

/// `SubscribedTracks`, as a participant's track list.
struct Subscribed;

impl TrackList for Subscribed {
    const LEAF: &'static str = "SubscribedTracks";
    const KEY: &'static str = "subscribed_tracks";
    const ITEM_BYTES: usize = SUBSCRIBED_JSON_BYTES;
    type Resource<'a> = SubscribedTrackResource<'a>;
    fn render<'a>(
        row: &'a TrackRow,
        of: &'a ParticipantRow,
        base: &'a PublicUrl,
    ) -> SubscribedTrackResource<'a> {
        SubscribedTrackResource::new(row, &of.sid, base)
    }
}

/// `GET .../Participants/{Participant}/SubscribedTracks/{TrackSid}`.
async fn fetch_subscribed(
    req: HttpRequest,
    room: RoomRef,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let who = ParticipantRef::from(&req, &room)?;
    let segment = path_segment(&req, "track")?;
    let not_found = || {
        room.not_found(&format!(
            "/Participants/{}/SubscribedTracks/{segment}",
            who.segment
        ))
    };
    let track_sid = TrackSid::parse(&segment).ok_or_else(not_found)?;
    let found = who
        .with(&state.pool, &room, async |c, p| -> Result<_, sqlx::Error> {
            let (rules, _) = subscribe_rules::subscribe_rules(&mut *c, &p.sid).await?;
            Ok(Ok(tracks::find_subscribed(c, p, &rules, &track_sid).await?))
        })
        .await?;
    let (p, track) = found.map_err(|r| refused(r, &room, Some(&who.segment)))?;
    let track = track.ok_or_else(not_found)?;
    Ok(json(
        HttpResponse::Ok(),
        &SubscribedTrackResource::new(&track, &p.sid, &state.public_url),
        SUBSCRIBED_JSON_BYTES,
    ))
}

/// `GET /v1/Rooms/{Room}/RecordingRules`.
async fn get_recording_rules(
    room: RoomRef,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let found = state
        .pool
        .run(async |c| -> Result<_, sqlx::Error> {
            let Some(r) = room.find(c).await? else {
                return Ok(None);
            };
            let (rules, updated) = recording_rules::recording_rules(&mut *c, &r.sid).await?;
            Ok(Some((r, rules, updated)))
        })
        .await?;
    let (r, rules, updated) = found.ok_or_else(|| room.not_found("/RecordingRules"))?;
    Ok(RulesResource {
        participant_sid: None,
        room_sid: &r.sid,
        rules,
        date_created: r.date_created,
        date_updated: updated.unwrap_or(r.date_created),
    }
    .respond())
}

/// `POST /v1/Rooms/{Room}/RecordingRules` with `Rules` (JSON): replaces them all (in-progress
/// rooms only: 53118 otherwise).
async fn set_recording_rules(
    room: RoomRef,
    form: Form,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = form.params().await?;
    let rules = rules_param(&params, &rules::RECORDING)?;
    let found = state
        .pool
        .transaction(async |c| -> Result<_, sqlx::Error> {
            let Some(r) = room.find(c).await? else {
                return Ok(None);
            };
            if r.status != RoomStatus::InProgress
                || crate::db::rooms::lock_by_sid(&mut *c, &r.sid)
                    .await?
                    .is_none()
            {
                return Ok(Some((r, None)));
            }
            let updated = recordings::set_rules(&mut *c, &r.sid, &rules).await?;
            Ok(Some((r, updated)))
        })
        .await?;
    let (r, updated) = found.ok_or_else(|| room.not_found("/RecordingRules"))?;
    let updated =
        updated.ok_or_else(|| ApiError::bad_request(code::ROOM_COMPLETED, "Room completed"))?;
    if let Some(media) = &state.media {
        // The node records the room while the rules include anything (convergence repairs a
        // call that fails here).
        media.set_recording(&r.sid).await;
    }
    Ok(RulesResource {
        participant_sid: None,
        room_sid: &r.sid,
        rules,
        date_created: r.date_created,
        date_updated: updated,
    }
    .respond())
}
