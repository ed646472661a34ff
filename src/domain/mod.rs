//! Validated domain types: parsed once from the wire, trusted everywhere after.

pub mod account;
pub mod composition;
pub mod create_room;
pub mod participant;
pub mod room;
pub mod rules;
pub mod sid;
pub mod track;
pub mod video_layout;

use crate::twilio::ApiError;

/// The Twilio errors for a name-like value (a room name, an identity, a track name): empty, too
/// long, control characters. Each is a code and its message.
pub struct NameErrors {
    pub invalid: (u32, &'static str),
    pub too_long: (u32, &'static str),
    pub invalid_characters: (u32, &'static str),
}

/// Checks a name-like value: 1..=`max_chars` characters and no control characters (which also
/// keeps NUL, which PostgreSQL's `text` cannot hold, away from the database).
pub fn check_name(value: &str, max_chars: usize, errors: &NameErrors) -> Result<(), ApiError> {
    let refuse = |(code, message): (u32, &'static str)| Err(ApiError::bad_request(code, message));
    if value.is_empty() {
        return refuse(errors.invalid);
    }
    if value.chars().count() > max_chars {
        return refuse(errors.too_long);
    }
    if value.chars().any(char::is_control) {
        return refuse(errors.invalid_characters);
    }
    Ok(())
}
