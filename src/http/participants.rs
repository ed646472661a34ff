//! `/v1/Rooms/{RoomNameOrSid}/Participants[/{ParticipantSidOrIdentity}[/Anonymize]]`: Twilio's
//! participant resource, and roomd's join (`POST .../Participants`, an extension).

use super::extract::Form;
use super::participant_ref::{change_error, refused, ParticipantRef};
use super::respond::json;
use super::room_ref::RoomRef;
use super::rooms::list::{date_filter, EchoedFilters};
use crate::auth::authenticator::{Authenticated, Caller};
use crate::db::list::Page;
use crate::db::participant_join::{self, Join, MediaJoin};
use crate::db::participants::{
    self, ChangeError, EndReason, Own, ParticipantFilter, ParticipantRow, Refusal,
};
use crate::domain::create_room::CreateRoom;
use crate::domain::participant::{Identity, ParticipantStatus};
use crate::domain::sid;
use crate::http::respond::{get, resource, ListPage};
use crate::http::state::AppState;
use crate::media::MediaGrant;
use crate::telemetry::metrics::JoinOutcome;
use crate::twilio::form::Params;
use crate::twilio::paging::PageRequest;
use crate::twilio::time;
use crate::twilio::urls::{PublicUrl, ResourceUrl};
use crate::twilio::ApiError;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::LazyLock;

/// The participant resource, keys in the order of Twilio's examples. Anonymize's answer is the
/// same without `links`, its `url` ending in `/Anonymize`.
#[derive(Serialize)]
pub struct ParticipantResource<'a> {
    account_sid: &'a str,
    room_sid: &'a str,
    #[serde(serialize_with = "time::serialize")]
    date_created: DateTime<Utc>,
    #[serde(serialize_with = "time::serialize")]
    date_updated: DateTime<Utc>,
    #[serde(serialize_with = "time::serialize")]
    start_time: DateTime<Utc>,
    #[serde(serialize_with = "time::serialize_opt")]
    end_time: Option<DateTime<Utc>>,
    sid: &'a str,
    identity: &'a str,
    status: &'a str,
    url: ResourceUrl<'a>,
    duration: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    links: Option<ParticipantLinks<'a>>,
    /// roomd's join with a media plane: where and how its client joins the room's media.
    #[serde(skip_serializing_if = "Option::is_none")]
    media: Option<&'a MediaGrant>,
}

#[derive(Serialize)]
struct ParticipantLinks<'a> {
    published_tracks: ResourceUrl<'a>,
    subscribed_tracks: ResourceUrl<'a>,
    subscribe_rules: ResourceUrl<'a>,
    anonymize: ResourceUrl<'a>,
}

impl<'a> ParticipantResource<'a> {
    pub fn new(row: &'a ParticipantRow, base: &'a PublicUrl) -> Self {
        let url = ResourceUrl::new(base, &["Rooms", &row.room_sid, "Participants", &row.sid]);
        ParticipantResource {
            links: Some(ParticipantLinks {
                published_tracks: url.child("PublishedTracks"),
                subscribed_tracks: url.child("SubscribedTracks"),
                subscribe_rules: url.child("SubscribeRules"),
                anonymize: url.child("Anonymize"),
            }),
            ..Self::bare(row, url)
        }
    }

    fn anonymized(row: &'a ParticipantRow, base: &'a PublicUrl) -> Self {
        let url = ResourceUrl::new(base, &["Rooms", &row.room_sid, "Participants", &row.sid]);
        Self::bare(row, url.child("Anonymize"))
    }

    fn bare(row: &'a ParticipantRow, url: ResourceUrl<'a>) -> Self {
        ParticipantResource {
            account_sid: &row.account_sid,
            room_sid: &row.room_sid,
            date_created: row.date_created,
            date_updated: row.date_updated,
            start_time: row.start_time,
            end_time: row.end_time,
            sid: &row.sid,
            identity: &row.identity,
            status: &row.status,
            url,
            duration: row.duration,
            links: None,
            media: None,
        }
    }
}

/// About what one participant's JSON takes, to size the output buffer once.
const PARTICIPANT_JSON_BYTES: usize = 900;

/// `cors_origins`: the origins whose pages may join and leave from the browser (CORS, for these
/// two resources only; none by default).
pub fn configure(cfg: &mut web::ServiceConfig, cors_origins: &[String]) {
    cfg.service(
        resource("/v1/Rooms/{room}/Participants")
            .route(get().to(list))
            .route(web::post().to(join))
            .wrap(super::cors::join_and_leave(cors_origins)),
    )
    .service(
        resource("/v1/Rooms/{room}/Participants/{participant}")
            .route(get().to(fetch))
            .route(web::post().to(update))
            .wrap(super::cors::join_and_leave(cors_origins)),
    )
    .service(
        resource("/v1/Rooms/{room}/Participants/{participant}/Anonymize")
            .route(web::post().to(anonymize)),
    );
}

/// The settings of a room a join creates: `POST /v1/Rooms`'s defaults.
static DEFAULT_ROOM: LazyLock<CreateRoom> = LazyLock::new(|| {
    CreateRoom::from_params(&Params::default()).expect("the defaults are a valid room")
});

/// `POST /v1/Rooms/{RoomNameOrSid}/Participants` (roomd's join, 201): as a participant with its
/// Access Token (identity and room grant from the token), or as the account with `Identity`.
async fn join(
    room: RoomRef<Caller>,
    form: Form,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = form.params().await?;
    let (identity, grant) = match &room.account {
        Caller::Participant(token) => (token.identity.as_str(), token.room.as_deref()),
        Caller::Account(_) => (params.required("Identity")?, None),
    };
    let identity = Identity::parse(identity).inspect_err(|_| {
        state.metrics.joined(JoinOutcome::Refused);
    })?;
    let request = Join {
        account_sid: room.account.account_sid(),
        segment: &room.segment,
        sid: room.sid.as_ref(),
        identity: &identity,
        grant,
        new_room: &DEFAULT_ROOM,
        media: state.media.as_ref().map(|plane| MediaJoin {
            owner: &plane.owner,
            connect_timeout: plane.connect_timeout.map(|t| t.as_secs_f64()),
        }),
    };
    let joined = state
        .pool
        .transaction(async |c| participant_join::join(c, &request).await)
        .await;
    let joined = match joined {
        Ok(joined) => joined,
        Err(e) => {
            // A refusal is a join's outcome; a database error (503) is not counted as one.
            if let ChangeError::Refused(r) = &e {
                let limit = match r {
                    Refusal::RoomCreationOff => Some("client_room_creation"),
                    Refusal::RoomsQuota => Some("rooms_in_progress"),
                    Refusal::ParticipantsQuota => Some("participants_connected"),
                    _ => None,
                };
                if let Some(limit) = limit {
                    state
                        .metrics
                        .account_limits_hit
                        .with_label_values(&[limit])
                        .inc();
                }
                state.metrics.joined(match r {
                    Refusal::RoomFull => JoinOutcome::RoomFull,
                    Refusal::RoomCompleted => JoinOutcome::RoomCompleted,
                    _ => JoinOutcome::Refused,
                });
            }
            return Err(change_error(e, &room, None));
        }
    };
    if joined.room_created {
        state.metrics.rooms_created.inc();
        tracing::info!(room_sid = %joined.room.sid, account_sid = %joined.room.account_sid, "room created by a join");
    }
    if let Some(old) = &joined.replaced {
        state
            .metrics
            .participants_disconnected(EndReason::DuplicateIdentity, 1);
        tracing::info!(participant_sid = %old.sid, room_sid = %old.room_sid, "participant replaced by a join with its identity");
    }
    state.metrics.joined(if joined.replaced.is_some() {
        JoinOutcome::Replaced
    } else {
        JoinOutcome::Joined
    });
    let p = &joined.participant;
    let media = match (&state.media, &joined.media_node) {
        (Some(plane), Some(node)) => Some(
            plane
                .admit_joined(node, &joined)
                .await
                .map_err(ApiError::Unavailable)?,
        ),
        _ => None,
    };
    tracing::info!(participant_sid = %p.sid, room_sid = %p.room_sid, account_sid = %p.account_sid, media_node = joined.media_node.as_deref(), "participant joined");
    let mut resource = ParticipantResource::new(p, &state.public_url);
    resource.media = media.as_ref();
    Ok(json(
        HttpResponse::Created(),
        &resource,
        PARTICIPANT_JSON_BYTES + 300,
    ))
}

/// `GET .../Participants/{ParticipantSidOrIdentity}`.
async fn fetch(
    req: HttpRequest,
    room: RoomRef,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let participant = ParticipantRef::from(&req, &room)?;
    let found = state
        .pool
        .run(async |c| participant.find_in(c, &room).await)
        .await?;
    match found {
        Ok(row) => Ok(json(
            HttpResponse::Ok(),
            &ParticipantResource::new(&row, &state.public_url),
            PARTICIPANT_JSON_BYTES,
        )),
        Err(r) => Err(refused(r, &room, Some(&participant.segment))),
    }
}

/// `POST .../Participants/{ParticipantSidOrIdentity}` with `Status=disconnected` (202): Twilio's
/// kick with Basic auth; with the participant's own Access Token, leaving.
async fn update(
    req: HttpRequest,
    room: RoomRef<Caller>,
    form: Form,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let participant = ParticipantRef::from(&req, &room)?;
    let params = form.params().await?;
    if params.required("Status")? != "disconnected" {
        return Err(ApiError::invalid_parameter("Status must be disconnected"));
    }
    let (reason, own) = match &room.account {
        Caller::Account(_) => (EndReason::Kicked, None),
        Caller::Participant(t) => (
            EndReason::Left,
            Some(Own {
                identity: &t.identity,
                grant: t.room.as_deref(),
            }),
        ),
    };
    let row = disconnect(&state, &room, &participant, reason, own).await?;
    Ok(json(
        HttpResponse::Accepted(),
        &ParticipantResource::new(&row, &state.public_url),
        PARTICIPANT_JSON_BYTES,
    ))
}

/// Disconnects the participant `participant` names in `room`'s room, for `reason` (the REST
/// kick or leave, and the console's Kick).
pub(crate) async fn disconnect<A: Authenticated>(
    state: &AppState,
    room: &RoomRef<A>,
    participant: &ParticipantRef,
    reason: EndReason,
    own: Option<Own<'_>>,
) -> Result<ParticipantRow, ApiError> {
    let account = room.account.account_sid();
    let keys = participant.keys();
    let (_, row) = state
        .pool
        .transaction(async |c| {
            participants::disconnect(c, account, room.keys(), &keys, reason, own).await
        })
        .await
        .map_err(|e| change_error(e, room, Some(&participant.segment)))?;
    state.metrics.participants_disconnected(reason, 1);
    tracing::info!(participant_sid = %row.sid, room_sid = %row.room_sid, reason = reason.as_str(), "participant disconnected");
    Ok(row)
}

/// `POST .../Participants/{Sid}/Anonymize` (200): the identity becomes the SID.
async fn anonymize(
    req: HttpRequest,
    room: RoomRef,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let participant = ParticipantRef::from(&req, &room)?;
    let account = &room.account.sid;
    let found = participant
        .with(
            &state.pool,
            &room,
            async |c, p| -> Result<_, crate::db::DbError> {
                let done = participants::anonymize(c, account, &p.room_sid, &p.sid).await?;
                Ok(done.ok_or(Refusal::ParticipantNotFound))
            },
        )
        .await?;
    match found {
        Ok((_, row)) => Ok(json(
            HttpResponse::Ok(),
            &ParticipantResource::anonymized(&row, &state.public_url),
            PARTICIPANT_JSON_BYTES,
        )),
        Err(r) => Err(refused(r, &room, Some(&participant.segment))),
    }
}

/// The list filters as given (`Status` left to the room's default when absent).
fn list_filter(params: &Params) -> Result<(ParticipantFilter, bool, EchoedFilters), ApiError> {
    let mut echo: EchoedFilters = Vec::new();
    let status = params
        .single("Status")?
        .map(|s| {
            echo.push(("Status", s.to_string()));
            ParticipantStatus::parse(s).ok_or_else(|| {
                ApiError::invalid_parameter(
                    "Status must be one of connected, disconnected, reconnecting",
                )
            })
        })
        .transpose()?;
    let identity = params.single("Identity")?.map(|i| {
        echo.push(("Identity", i.to_string()));
        i.to_string()
    });
    // An identity no participant can have (e.g. with NUL, which `text` cannot hold) matches
    // nothing: the list is empty, and the value never reaches the database.
    let matches_nothing = identity
        .as_deref()
        .is_some_and(|i| Identity::parse(i).is_err());
    let filter = ParticipantFilter {
        status,
        identity,
        created_on_or_after: date_filter(params, "DateCreatedAfter", &mut echo)?,
        created_before: date_filter(params, "DateCreatedBefore", &mut echo)?,
    };
    Ok((filter, matches_nothing, echo))
}

/// `GET .../Participants`: oldest first, keyset-paged. `Status` defaults to `connected` for an
/// in-progress room and to `disconnected` for an ended one (whose participants all are).
async fn list(
    req: HttpRequest,
    room: RoomRef,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string().as_bytes())?;
    let (filter, matches_nothing, echo) = list_filter(&params)?;
    let page = PageRequest::from_params(&params, sid::PARTICIPANT)?;
    let found = state
        .pool
        .run(async |c| -> Result<_, crate::db::DbError> {
            let Some(r) = room.find(c).await? else {
                return Ok(None);
            };
            let found = if matches_nothing {
                Page {
                    rows: Vec::new(),
                    more_beyond: false,
                }
            } else {
                participants::list(c, &r, &filter, &page).await?
            };
            Ok(Some((r.sid, found)))
        })
        .await?;
    let Some((room_sid, found)) = found else {
        return Err(room.not_found(""));
    };
    let list = ListPage {
        path: &format!("/v1/Rooms/{room_sid}/Participants"),
        key: "participants",
        filters: &echo,
        item_bytes: PARTICIPANT_JSON_BYTES,
    };
    Ok(list.respond(&state.public_url, &page, &found, |r| {
        ParticipantResource::new(r, &state.public_url)
    }))
}
