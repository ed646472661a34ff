//! `{participant}` in a path, resolved for the authenticated account (a PA SID, else an identity),
//! and the answers every participant route gives when a change is refused.

use super::extract::path_segment;
use super::room_ref::RoomRef;
use crate::auth::access_token::TokenError;
use crate::auth::authenticator::Authenticated;
use crate::auth::signing_keys::token_error;
use crate::db::participants::{self, ChangeError, ParticipantKey, ParticipantRow, Refusal};
use crate::domain::participant::Identity;
use crate::domain::sid::ParticipantSid;
use crate::twilio::error::code;
use crate::twilio::ApiError;
use actix_web::HttpRequest;

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

    pub fn keys(&self) -> Vec<ParticipantKey<'_>> {
        self.sid
            .as_deref()
            .map(ParticipantKey::Sid)
            .into_iter()
            .chain(std::iter::once(ParticipantKey::Identity(&self.segment)))
            .collect()
    }
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
