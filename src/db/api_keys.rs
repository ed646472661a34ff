//! API keys (`SK...`): a secret that acts for one account. Stored as an argon2id hash (Basic
//! auth) and sealed under the master key (Access Tokens); never in clear.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sqlx::{PgExecutor, PgPool};

/// A key as `keys list` shows it: no secret.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ApiKey {
    pub sid: String,
    pub account_sid: String,
    pub friendly_name: String,
    #[serde(serialize_with = "crate::twilio::time::serialize")]
    pub date_created: DateTime<Utc>,
}

const COLUMNS: &str = "sid, account_sid, friendly_name, date_created";

/// Creates a key; `None` when the account does not exist.
pub async fn create(
    pool: &PgPool,
    sid: &str,
    account_sid: &str,
    friendly_name: &str,
    secret_hash: &SecretString,
    secret_sealed: &[u8],
) -> Result<Option<ApiKey>, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO api_keys (sid, account_sid, friendly_name, secret_hash, secret_sealed) \
         SELECT $1, sid, $3, $4, $5 FROM accounts WHERE sid = $2 RETURNING {COLUMNS}"
    ))
    .bind(sid)
    .bind(account_sid)
    .bind(friendly_name)
    .bind(secret_hash.expose_secret())
    .bind(secret_sealed)
    .fetch_optional(pool)
    .await
}

pub async fn list(pool: &PgPool, account_sid: &str) -> Result<Vec<ApiKey>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM api_keys WHERE account_sid = $1 ORDER BY date_created, sid"
    ))
    .bind(account_sid)
    .fetch_all(pool)
    .await
}

/// Deletes a key; false when there was none.
pub async fn delete(pool: &PgPool, sid: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM api_keys WHERE sid = $1")
        .bind(sid)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The account a key acts for and its secret's hash, if the key exists and its account is active.
pub async fn active_secret_hash(
    db: impl PgExecutor<'_>,
    sid: &str,
) -> Result<Option<(String, SecretString, Option<i32>)>, sqlx::Error> {
    let row: Option<(String, String, Option<i32>)> = sqlx::query_as(
        "SELECT k.account_sid, k.secret_hash, a.max_requests_per_second FROM api_keys k \
         JOIN accounts a ON a.sid = k.account_sid \
         WHERE k.sid = $1 AND a.status = 'active'",
    )
    .bind(sid)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|(account, hash, rate)| (account, SecretString::from(hash), rate)))
}

/// The account a key acts for and its sealed secret, if the key exists and its account is active
/// (Access Tokens are verified with the secret).
pub async fn active_secret_sealed(
    db: impl PgExecutor<'_>,
    sid: &str,
) -> Result<Option<(String, Vec<u8>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT k.account_sid, k.secret_sealed FROM api_keys k \
         JOIN accounts a ON a.sid = k.account_sid \
         WHERE k.sid = $1 AND a.status = 'active'",
    )
    .bind(sid)
    .fetch_optional(db)
    .await
}

/// The sealed check value of the master key: `sealed` is recorded on first use, and what is
/// recorded is returned (see `auth::master_key::MasterKey::check`).
pub async fn master_key_check(pool: &PgPool, sealed: Vec<u8>) -> sqlx::Result<Vec<u8>> {
    sqlx::query("INSERT INTO master_key_check (sealed) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(sealed)
        .execute(pool)
        .await?;
    sqlx::query_scalar("SELECT sealed FROM master_key_check")
        .fetch_one(pool)
        .await
}
