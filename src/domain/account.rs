//! Accounts (tenants) as the CLI shows them. The auth token itself is never stored: only its
//! argon2id hash, and the plain token is printed once, at creation or rotation.

use chrono::{DateTime, Utc};
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
}

/// A new account's one-time view: the account plus its plain auth token.
#[derive(Debug, Serialize)]
pub struct NewAccount {
    pub sid: String,
    pub friendly_name: String,
    pub status: String,
    #[serde(serialize_with = "crate::twilio::time::serialize")]
    pub date_created: DateTime<Utc>,
    pub auth_token: String,
}

/// An auth token is 32 lowercase hex digits, as Twilio's are.
pub fn is_valid_token(token: &str) -> bool {
    token.len() == 32
        && token
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
