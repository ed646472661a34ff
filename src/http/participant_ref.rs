//! `{participant}` in a path, resolved for the authenticated account (a PA SID, else an identity),
//! and the answers every participant route gives when a change is refused.

use super::extract::path_segment;
use super::room_ref::RoomRef;
use crate::auth::access_token::TokenError;
use crate::auth::authenticator::Authenticated;
use crate::auth::signing_keys::token_error;
use crate::db::error::BreaksConnection;
use crate::db::list::Page;
use crate::db::participants::{self, ChangeError, ParticipantKey, ParticipantRow, Refusal};
use crate::db::tracks::TrackRow;
use crate::db::DbError;
use crate::db::WorkerPool;
use crate::domain::participant::Identity;
use crate::domain::sid;
use crate::domain::sid::ParticipantSid;
use crate::http::respond::ListPage;
use crate::http::state::AppState;
use crate::twilio::error::code;
use crate::twilio::form::Params;
use crate::twilio::paging::PageRequest;
use crate::twilio::urls::PublicUrl;
use crate::twilio::ApiError;
use actix_web::HttpRequest;
use actix_web::HttpResponse;

/// The `{participant}` segment: a PA SID (any status), else an identity (connected only). A
/// segment no participant could be named is a 404 before any database work.
pub(crate) struct ParticipantRef {
    pub segment: String,
    sid: Option<ParticipantSid>,
}

impl ParticipantRef {
    pub fn from(
        req: &HttpRequest,
        room: &RoomRef<impl Authenticated>,
    ) -> Result<ParticipantRef, ApiError> {
        let segment = path_segment(req, "participant")?;
        let not_found = || room.not_found(&format!("/Participants/{segment}"));
        let sid = ParticipantSid::parse(&segment);
        if sid.is_none() && Identity::parse(&segment).is_err() {
            return Err(not_found());
        }
        Ok(ParticipantRef { sid, segment })
    }

    /// The participant (any status) this names, in the room `room` names, on one connection.
    pub async fn find_in(
        &self,
        c: &mut sqlx::PgConnection,
        room: &RoomRef,
    ) -> Result<Result<ParticipantRow, Refusal>, sqlx::Error> {
        let Some(r) = room.find(c).await? else {
            return Ok(Err(Refusal::RoomNotFound));
        };
        let found = participants::find(c, &room.account.sid, &r.sid, &self.keys()).await?;
        Ok(found.ok_or(Refusal::ParticipantNotFound))
    }

    /// Runs `work` on one connection with the participant this names; the refusal (no such room
    /// or participant, or `work`'s own) for the route to word.
    pub async fn with<T, E>(
        &self,
        pool: &WorkerPool,
        room: &RoomRef,
        work: impl AsyncFnOnce(
            &mut sqlx::PgConnection,
            &ParticipantRow,
        ) -> Result<Result<T, Refusal>, E>,
    ) -> Result<Result<(ParticipantRow, T), Refusal>, E>
    where
        E: From<sqlx::Error> + BreaksConnection,
    {
        pool.run(async |c| {
            let p = match self.find_in(c, room).await? {
                Ok(p) => p,
                Err(r) => return Ok(Err(r)),
            };
            Ok(work(c, &p).await?.map(|t| (p, t)))
        })
        .await
    }

    /// One page of the tracks `read` finds for this participant (published, or subscribed),
    /// listed at `list.leaf` under it, each row rendered by `render`.
    pub async fn list_tracks<L: TrackList>(
        &self,
        req: &HttpRequest,
        room: &RoomRef,
        state: &AppState,
        read: impl AsyncFnOnce(
            &mut sqlx::PgConnection,
            &ParticipantRow,
            &PageRequest,
        ) -> Result<Page<TrackRow>, DbError>,
    ) -> Result<HttpResponse, ApiError> {
        let params = Params::parse(req.query_string().as_bytes())?;
        let page = PageRequest::from_params(&params, sid::TRACK)?;
        let found = self
            .with(&state.pool, room, async |c, p| -> Result<_, DbError> {
                Ok(Ok(read(c, p, &page).await?))
            })
            .await?;
        let (p, found) = found.map_err(|r| refused(r, room, Some(&self.segment)))?;
        let path = format!(
            "/v1/Rooms/{}/Participants/{}/{}",
            p.room_sid,
            p.sid,
            L::LEAF
        );
        let list = ListPage {
            path: &path,
            key: L::KEY,
            filters: &[],
            item_bytes: L::ITEM_BYTES,
        };
        Ok(list.respond(&state.public_url, &page, &found, |r| {
            L::render(r, &p, &state.public_url)
        }))
    }

    pub fn keys(&self) -> Vec<ParticipantKey<'_>> {
        self.sid
            .as_deref()
            .map(ParticipantKey::Sid)
            .into_iter()
            .chain(std::iter::once(ParticipantKey::Identity(&self.segment)))
            .collect()
    }
}

/// One of a participant's track lists: its path under the participant, its key, and how a row
/// is written.
pub trait TrackList {
    const LEAF: &'static str;
    const KEY: &'static str;
    /// About what one item's JSON takes, to size the body once.
    const ITEM_BYTES: usize;
    type Resource<'a>: serde::Serialize;
    fn render<'a>(
        row: &'a TrackRow,
        of: &'a ParticipantRow,
        base: &'a PublicUrl,
    ) -> Self::Resource<'a>;
}

/// The API error for a refused change.
pub(crate) fn refused(
    r: Refusal,
    room: &RoomRef<impl Authenticated>,
    participant: Option<&str>,
) -> ApiError {
    match r {
        Refusal::RoomNotFound | Refusal::RoomCreationOff => room.not_found(""),
        Refusal::RoomCompleted => ApiError::bad_request(code::ROOM_COMPLETED, "Room completed"),
        Refusal::RoomFull => {
            ApiError::bad_request(code::ROOM_FULL, "Room contains too many Participants")
        }
        Refusal::NotGranted | Refusal::NotYours => token_error(TokenError::InvalidGrants),
        Refusal::ParticipantNotFound => {
            room.not_found(&format!("/Participants/{}", participant.unwrap_or("")))
        }
        Refusal::NotConnected => ApiError::bad_request(
            code::PARTICIPANT_NOT_CONNECTED,
            "Participant is not connected",
        ),
        Refusal::TrackNotFound => room.not_found(&format!(
            "/Participants/{}/PublishedTracks",
            participant.unwrap_or("")
        )),
        Refusal::TrackNameDuplicated => {
            ApiError::bad_request(code::TRACK_NAME_DUPLICATED, "Track name is duplicated")
        }
        Refusal::MaxTracks => {
            ApiError::bad_request(code::MAX_PUBLISHED_TRACKS, "Max published tracks reached")
        }
        Refusal::RoomsQuota => ApiError::bad_request(
            code::ROOMS_QUOTA,
            crate::db::rooms::ROOMS_QUOTA_MESSAGE,
        ),
        Refusal::ParticipantsQuota => ApiError::bad_request(
            code::PARTICIPANTS_QUOTA,
            "Participant concurrency quota exceeded: the account has as many participants connected as its quota allows",
        ),
        Refusal::MaxTracksPerParticipant => ApiError::bad_request(
            code::MAX_PUBLISHED_TRACKS,
            format!(
                "Max published tracks reached: a participant publishes at most {} tracks",
                crate::domain::track::MAX_TRACKS_PER_PARTICIPANT
            ),
        ),
        Refusal::VideoInAudioOnlyRoom => ApiError::bad_request(
            code::TRACK_INVALID,
            "An audio-only Room takes no video tracks",
        ),
        Refusal::MediaTrack => ApiError::bad_request(
            code::TRACK_INVALID,
            "This track is carried by the media server: its participant's client unpublishes or mutes it",
        ),
        Refusal::NoMediaNode => ApiError::Unavailable(anyhow::anyhow!(
            "no media node answers: the participant cannot be admitted to media"
        )),
    }
}

pub(crate) fn change_error(
    e: ChangeError,
    room: &RoomRef<impl Authenticated>,
    participant: Option<&str>,
) -> ApiError {
    match e {
        ChangeError::Refused(r) => refused(r, room, participant),
        ChangeError::Sql(e) => e.into(),
    }
}
