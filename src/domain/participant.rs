//! Participants: the identity a participant joins with, and the statuses Twilio lists by.

use super::{check_name, NameErrors};
use crate::twilio::error::code;
use crate::twilio::ApiError;

/// Twilio's longest identity.
pub const MAX_IDENTITY_CHARS: usize = 128;

/// A participant identity as Twilio accepts it: 1..=128 characters, no control characters (NUL
/// cannot be stored in `text`). It derefs to `str`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity(String);

impl Identity {
    /// The identity, or the Twilio error (53200, 53201, 53202) that says why it cannot be one.
    pub fn parse(identity: &str) -> Result<Identity, ApiError> {
        const ERRORS: NameErrors = NameErrors {
            invalid: (code::IDENTITY_INVALID, "Participant identity is invalid"),
            too_long: (code::IDENTITY_TOO_LONG, "Participant identity is too long"),
            invalid_characters: (
                code::IDENTITY_INVALID_CHARACTERS,
                "Participant identity contains invalid characters",
            ),
        };
        check_name(identity, MAX_IDENTITY_CHARS, &ERRORS)?;
        if is_participant_sid_shaped(identity) {
            return Err(ApiError::bad_request(
                code::IDENTITY_INVALID,
                "Participant identity is invalid: it may not have the shape of a participant SID",
            ));
        }
        Ok(Identity(identity.to_string()))
    }
}

/// Whether an identity looks like a participant SID (`PA` + 32 hex digits, any case). Such an
/// identity is refused at join: `/Participants/{PA...}` names a participant by SID, and
/// Anonymize gives a participant its SID as identity, which must not collide with another's.
pub fn is_participant_sid_shaped(identity: &str) -> bool {
    crate::domain::sid::is_sid("PA", identity)
}

impl std::ops::Deref for Identity {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// The `Status` filter of a participant list. `reconnecting` is a status Twilio lists by; roomd
/// has no media plane, so no participant is ever in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParticipantStatus {
    Connected,
    Disconnected,
    Reconnecting,
}

impl ParticipantStatus {
    pub fn parse(s: &str) -> Option<ParticipantStatus> {
        match s {
            "connected" => Some(ParticipantStatus::Connected),
            "disconnected" => Some(ParticipantStatus::Disconnected),
            "reconnecting" => Some(ParticipantStatus::Reconnecting),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ParticipantStatus::Connected => "connected",
            ParticipantStatus::Disconnected => "disconnected",
            ParticipantStatus::Reconnecting => "reconnecting",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(identity: &str) -> u32 {
        match Identity::parse(identity) {
            Err(ApiError::Twilio { code, .. }) => code,
            other => panic!("{identity:?} was accepted: {other:?}"),
        }
    }

    #[test]
    fn identities_follow_twilios_limits() {
        assert_eq!(&*Identity::parse("alice").unwrap(), "alice");
        assert!(Identity::parse(&"é".repeat(128)).is_ok());
        assert_eq!(code_of(""), 53200);
        assert_eq!(code_of(&"x".repeat(129)), 53201);
        assert_eq!(code_of("a\u{0}b"), 53202);
        assert_eq!(code_of("line\nbreak"), 53202);
        assert_eq!(code_of("PA0123456789abcdef0123456789ABCDEF"), 53200);
        assert!(Identity::parse("PA0123456789abcdef0123456789abcdef0").is_ok());
        assert!(Identity::parse("PAxyz").is_ok());
    }

    #[test]
    fn statuses_round_trip() {
        for s in ["connected", "disconnected", "reconnecting"] {
            assert_eq!(ParticipantStatus::parse(s).unwrap().as_str(), s);
        }
        assert_eq!(ParticipantStatus::parse("Connected"), None);
    }
}
