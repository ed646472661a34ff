//! `/v1/Rooms/{Room}/Participants/{Participant}/PublishedTracks[/{TrackSidOrName}]`: Twilio's
//! published-track resource (list, fetch), and roomd's publishing extension (publish, enable or
//! disable, unpublish), which a signaling or media server calls as tracks come and go.

use super::extract::{path_segment, Form};
use super::participant_ref::{change_error, ParticipantRef, TrackList};
use super::respond::json;
use super::room_ref::RoomRef;
use crate::auth::authenticator::{Authenticated, Caller};
use crate::db::participants::ParticipantRow;
use crate::db::participants::{Own, ParticipantKey, Refusal};
use crate::db::rooms::RoomKey;
use crate::db::tracks::{self, Publisher, TrackKey, TrackRow};
use crate::domain::sid::TrackSid;
use crate::domain::track::{TrackKind, TrackName};
use crate::http::respond::{get, resource};
use crate::http::state::AppState;
use crate::twilio::error::code;
use crate::twilio::form::parse_bool;
use crate::twilio::time;
use crate::twilio::urls::{PublicUrl, ResourceUrl};
use crate::twilio::ApiError;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// The published-track resource, keys in the order of Twilio's examples.
#[derive(Serialize)]
pub struct TrackResource<'a> {
    room_sid: &'a str,
    #[serde(serialize_with = "time::serialize")]
    date_created: DateTime<Utc>,
    #[serde(serialize_with = "time::serialize")]
    date_updated: DateTime<Utc>,
    participant_sid: &'a str,
    sid: &'a str,
    name: &'a str,
    kind: &'a str,
    enabled: bool,
    url: ResourceUrl<'a>,
}

impl<'a> TrackResource<'a> {
    pub fn new(row: &'a TrackRow, base: &'a PublicUrl) -> Self {
        TrackResource {
            room_sid: &row.room_sid,
            date_created: row.date_created,
            date_updated: row.date_updated,
            participant_sid: &row.participant_sid,
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
                    &row.participant_sid,
                    "PublishedTracks",
                    &row.sid,
                ],
            ),
        }
    }
}

const TRACK_JSON_BYTES: usize = 400;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/v1/Rooms/{room}/Participants/{participant}/PublishedTracks")
            .route(get().to(list))
            .route(web::post().to(publish)),
    )
    .service(
        resource("/v1/Rooms/{room}/Participants/{participant}/PublishedTracks/{track}")
            .route(get().to(fetch))
            .route(web::post().to(update))
            .route(web::delete().to(unpublish)),
    );
}

/// The `{track}` segment: an MT SID, else a name. A segment no track could be named is a 404.
struct TrackRef {
    segment: String,
    sid: Option<TrackSid>,
}

impl TrackRef {
    fn from(
        req: &HttpRequest,
        room: &RoomRef<impl Authenticated>,
        participant: &ParticipantRef,
    ) -> Result<TrackRef, ApiError> {
        let segment = path_segment(req, "track")?;
        if TrackName::parse(&segment).is_err() {
            return Err(room.not_found(&format!(
                "/Participants/{}/PublishedTracks/{segment}",
                participant.segment
            )));
        }
        Ok(TrackRef {
            sid: TrackSid::parse(&segment),
            segment,
        })
    }

    fn keys(&self) -> Vec<TrackKey<'_>> {
        self.sid
            .as_deref()
            .map(TrackKey::Sid)
            .into_iter()
            .chain(std::iter::once(TrackKey::Name(&self.segment)))
            .collect()
    }
}

/// The room and participant a track path names, as lookup keys.
struct PathKeys<'a> {
    room: Vec<RoomKey<'a>>,
    participant: Vec<ParticipantKey<'a>>,
}

impl<'a> PathKeys<'a> {
    fn of(room: &'a RoomRef<Caller>, participant: &'a ParticipantRef) -> Self {
        PathKeys {
            room: room.keys().collect(),
            participant: participant.keys(),
        }
    }

    /// Who asks for a change to the participant's tracks: the account (Basic), or the
    /// participant itself (its Access Token).
    fn publisher(&'a self, room: &'a RoomRef<Caller>) -> Publisher<'a> {
        Publisher {
            account_sid: room.account.account_sid(),
            room_keys: &self.room,
            participant_keys: &self.participant,
            own: match &room.account {
                Caller::Account(_) => None,
                Caller::Participant(t) => Some(Own {
                    identity: &t.identity,
                    grant: t.room.as_deref(),
                }),
            },
        }
    }
}

/// The API error for a refused track change, naming the track for a 404.
fn track_error(
    e: crate::db::participants::ChangeError,
    room: &RoomRef<impl Authenticated>,
    participant: &ParticipantRef,
    track: Option<&TrackRef>,
) -> ApiError {
    use crate::db::participants::ChangeError;
    match (e, track) {
        (ChangeError::Refused(Refusal::TrackNotFound), Some(t)) => room.not_found(&format!(
            "/Participants/{}/PublishedTracks/{}",
            participant.segment, t.segment
        )),
        (e, _) => change_error(e, room, Some(&participant.segment)),
    }
}

/// `POST .../PublishedTracks` (roomd extension, 201): `Kind` (required), `Name` (default: the
/// track's SID), `Enabled` (default true).
async fn publish(
    req: HttpRequest,
    room: RoomRef<Caller>,
    form: Form,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let participant = ParticipantRef::from(&req, &room)?;
    let params = form.params().await?;
    let kind = TrackKind::parse(params.required("Kind")?).ok_or_else(|| {
        ApiError::bad_request(code::TRACK_INVALID, "Kind must be audio, video or data")
    })?;
    let name = params.single("Name")?.map(TrackName::parse).transpose()?;
    let enabled = match params.single("Enabled")? {
        None => true,
        Some(v) => parse_bool("Enabled", v)?,
    };
    let keys = PathKeys::of(&room, &participant);
    let who = keys.publisher(&room);
    let track = state
        .pool
        .transaction(async |c| tracks::publish(c, &who, name.as_ref(), kind, enabled).await)
        .await
        .map_err(|e| track_error(e, &room, &participant, None))?;
    state.metrics.track_published(kind);
    tracing::info!(track_sid = %track.sid, participant_sid = %track.participant_sid, kind = kind.as_str(), "track published");
    Ok(json(
        HttpResponse::Created(),
        &TrackResource::new(&track, &state.public_url),
        TRACK_JSON_BYTES,
    ))
}

/// `POST .../PublishedTracks/{TrackSidOrName}` with `Enabled` (roomd extension, 200).
async fn update(
    req: HttpRequest,
    room: RoomRef<Caller>,
    form: Form,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let participant = ParticipantRef::from(&req, &room)?;
    let track = TrackRef::from(&req, &room, &participant)?;
    let params = form.params().await?;
    let enabled = parse_bool("Enabled", params.required("Enabled")?)?;
    let keys = PathKeys::of(&room, &participant);
    let who = keys.publisher(&room);
    let row = state
        .pool
        .transaction(async |c| tracks::set_enabled(c, &who, &track.keys(), enabled).await)
        .await
        .map_err(|e| track_error(e, &room, &participant, Some(&track)))?;
    Ok(json(
        HttpResponse::Ok(),
        &TrackResource::new(&row, &state.public_url),
        TRACK_JSON_BYTES,
    ))
}

/// `DELETE .../PublishedTracks/{TrackSidOrName}` (roomd extension, 204).
async fn unpublish(
    req: HttpRequest,
    room: RoomRef<Caller>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let participant = ParticipantRef::from(&req, &room)?;
    let track = TrackRef::from(&req, &room, &participant)?;
    let keys = PathKeys::of(&room, &participant);
    let who = keys.publisher(&room);
    let row = state
        .pool
        .transaction(async |c| tracks::unpublish(c, &who, &track.keys()).await)
        .await
        .map_err(|e| track_error(e, &room, &participant, Some(&track)))?;
    tracing::info!(track_sid = %row.sid, participant_sid = %row.participant_sid, "track unpublished");
    Ok(HttpResponse::NoContent().finish())
}

/// `GET .../PublishedTracks/{TrackSidOrName}`.
async fn fetch(
    req: HttpRequest,
    room: RoomRef,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let participant = ParticipantRef::from(&req, &room)?;
    let track = TrackRef::from(&req, &room, &participant)?;
    let found = participant
        .with(&state.pool, &room, async |c, p| -> Result<_, sqlx::Error> {
            let t = tracks::find(c, &room.account.sid, &p.sid, &track.keys()).await?;
            Ok(t.ok_or(Refusal::TrackNotFound))
        })
        .await?;
    match found {
        Ok((_, row)) => Ok(json(
            HttpResponse::Ok(),
            &TrackResource::new(&row, &state.public_url),
            TRACK_JSON_BYTES,
        )),
        Err(r) => Err(track_error(r.into(), &room, &participant, Some(&track))),
    }
}

/// `GET .../PublishedTracks`: the participant's tracks now, oldest first, paged.
async fn list(
    req: HttpRequest,
    room: RoomRef,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let account = &room.account.sid;
    ParticipantRef::from(&req, &room)?
        .list_tracks::<Published>(&req, &room, &state, async |c, p, page| {
            tracks::list(c, account, &p.sid, page).await
        })
        .await
}

/// `PublishedTracks`, as a participant's track list.
struct Published;

impl TrackList for Published {
    const LEAF: &'static str = "PublishedTracks";
    const KEY: &'static str = "published_tracks";
    const ITEM_BYTES: usize = TRACK_JSON_BYTES;
    type Resource<'a> = TrackResource<'a>;
    fn render<'a>(
        row: &'a TrackRow,
        _: &'a ParticipantRow,
        base: &'a PublicUrl,
    ) -> TrackResource<'a> {
        TrackResource::new(row, base)
    }
}
