//! Published tracks: their names and kinds, as Twilio accepts them.

use super::{check_name, NameErrors};
use crate::twilio::error::code;
use crate::twilio::ApiError;

/// Twilio's longest track name.
pub const MAX_TRACK_NAME_CHARS: usize = 128;
/// The most tracks one participant publishes at once. Twilio's SDKs publish a handful (a
/// microphone, a camera, a screen, a data track); a bound keeps what one departure removes, and
/// the events it writes, small enough for one short statement.
pub const MAX_TRACKS_PER_PARTICIPANT: i64 = 32;

/// A track name: 1..=128 characters, no control characters. It derefs to `str`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackName(String);

impl TrackName {
    /// The name, or the Twilio error (53301, 53302, 53303) that says why it cannot be one.
    pub fn parse(name: &str) -> Result<TrackName, ApiError> {
        const ERRORS: NameErrors = NameErrors {
            invalid: (code::TRACK_NAME_INVALID, "Track name is invalid"),
            too_long: (code::TRACK_NAME_TOO_LONG, "Track name is too long"),
            invalid_characters: (
                code::TRACK_NAME_INVALID_CHARACTERS,
                "Track name contains invalid characters",
            ),
        };
        check_name(name, MAX_TRACK_NAME_CHARS, &ERRORS)?;
        Ok(TrackName(name.to_string()))
    }
}

impl std::ops::Deref for TrackName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// What a track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    Audio,
    Video,
    Data,
}

impl TrackKind {
    pub const ALL: [TrackKind; 3] = [TrackKind::Audio, TrackKind::Video, TrackKind::Data];

    pub fn parse(s: &str) -> Option<TrackKind> {
        match s {
            "audio" => Some(TrackKind::Audio),
            "video" => Some(TrackKind::Video),
            "data" => Some(TrackKind::Data),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TrackKind::Audio => "audio",
            TrackKind::Video => "video",
            TrackKind::Data => "data",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(name: &str) -> u32 {
        match TrackName::parse(name) {
            Err(ApiError::Twilio { code, .. }) => code,
            other => panic!("{name:?} was accepted: {other:?}"),
        }
    }

    #[test]
    fn track_names_follow_twilios_limits() {
        assert_eq!(&*TrackName::parse("camera").unwrap(), "camera");
        assert!(TrackName::parse(&"é".repeat(128)).is_ok());
        assert_eq!(code_of(""), 53301);
        assert_eq!(code_of(&"x".repeat(129)), 53302);
        assert_eq!(code_of("a\u{0}b"), 53303);
    }

    #[test]
    fn kinds_round_trip() {
        for k in TrackKind::ALL {
            assert_eq!(TrackKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(TrackKind::parse("Video"), None);
    }
}
