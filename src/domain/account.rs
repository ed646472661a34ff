//! Accounts (tenants) as the CLI shows them. The auth token itself is never stored: only its
//! argon2id hash, and the plain token is printed once, at creation or rotation.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Account {
    pub sid: String,
    pub friendly_name: String,
    pub status: String,
    #[serde(serialize_with = "crate::twilio::time::serialize")]
    pub date_created: DateTime<Utc>,
    #[serde(serialize_with = "crate::twilio::time::serialize")]
    pub date_updated: DateTime<Utc>,
    /// Whether the account runs on a test clock of its own (`POST /v1/TestClock` moves it).
    pub test_clock: bool,
    /// The account's own request rate per process (`None`: `ROOMD_ACCOUNT_REQUESTS_PER_SECOND`).
    pub max_requests_per_second: Option<i32>,
    /// Whether a join naming a room that does not exist creates it (Twilio's client-side room
    /// creation; on by default).
    pub client_room_creation: bool,
    /// The account's own quotas (`None`: the defaults; 0: unlimited).
    pub max_rooms_in_progress: Option<i32>,
    pub max_participants_connected: Option<i32>,
}

/// A new account's one-time view: the account plus its plain auth token (which `Debug` never
/// shows; only serializing it for the one-time print reveals it).
#[derive(Debug, Serialize)]
pub struct NewAccount {
    pub sid: String,
    pub friendly_name: String,
    pub status: String,
    #[serde(serialize_with = "crate::twilio::time::serialize")]
    pub date_created: DateTime<Utc>,
    pub test_clock: bool,
    #[serde(serialize_with = "expose")]
    pub auth_token: SecretString,
}

fn expose<S: serde::Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose_secret())
}

/// An auth token is 32 lowercase hex digits, as Twilio's are.
pub fn is_valid_token(token: &str) -> bool {
    token.len() == 32
        && token
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_account_shows_its_token_only_when_serialized() {
        let token = "0123456789abcdef0123456789abcdef";
        let account = NewAccount {
            sid: format!("AC{}", "a".repeat(32)),
            friendly_name: "t".into(),
            status: "active".into(),
            date_created: Utc::now(),
            test_clock: false,
            auth_token: SecretString::from(token),
        };
        assert!(!format!("{account:?}").contains(token));
        let json = serde_json::to_value(&account).unwrap();
        assert_eq!(json["auth_token"], token);
    }
}
