//! Accounts. Only argon2id hashes of auth tokens ever reach the database.

use crate::domain::account::Account;
use secrecy::{ExposeSecret, SecretString};
use sqlx::{PgExecutor, PgPool};

const COLUMNS: &str = "sid, friendly_name, status, date_created, date_updated";

pub async fn create(
    db: impl PgExecutor<'_>,
    sid: &str,
    friendly_name: &str,
    token_hash: &SecretString,
) -> Result<Account, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO accounts (sid, friendly_name, auth_token_hash) VALUES ($1, $2, $3) RETURNING {COLUMNS}"
    ))
    .bind(sid)
    .bind(friendly_name)
    .bind(token_hash.expose_secret())
    .fetch_one(db)
    .await
}

pub async fn list(pool: &PgPool) -> Result<Vec<Account>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM accounts ORDER BY date_created, sid"
    ))
    .fetch_all(pool)
    .await
}

/// The stored hash of an active account's token; `None` for unknown or inactive accounts.
pub async fn active_token_hash(
    db: impl PgExecutor<'_>,
    sid: &str,
) -> Result<Option<SecretString>, sqlx::Error> {
    let hash: Option<String> = sqlx::query_scalar(
        "SELECT auth_token_hash FROM accounts WHERE sid = $1 AND status = 'active'",
    )
    .bind(sid)
    .fetch_optional(db)
    .await?;
    Ok(hash.map(SecretString::from))
}

/// Any account's stored hash, whatever its status.
pub async fn token_hash(pool: &PgPool, sid: &str) -> Result<Option<SecretString>, sqlx::Error> {
    let hash: Option<String> =
        sqlx::query_scalar("SELECT auth_token_hash FROM accounts WHERE sid = $1")
            .bind(sid)
            .fetch_optional(pool)
            .await?;
    Ok(hash.map(SecretString::from))
}

/// Replaces an account's token hash; false when there is no such account.
pub async fn set_token_hash(
    pool: &PgPool,
    sid: &str,
    token_hash: &SecretString,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE accounts SET auth_token_hash = $2, date_updated = now() WHERE sid = $1",
    )
    .bind(sid)
    .bind(token_hash.expose_secret())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Creates the account if it is missing, else sets its token hash; returns true if it was created.
pub async fn upsert(
    pool: &PgPool,
    sid: &str,
    friendly_name: &str,
    token_hash: &SecretString,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO accounts (sid, friendly_name, auth_token_hash) VALUES ($1, $2, $3)
         ON CONFLICT (sid) DO UPDATE SET auth_token_hash = EXCLUDED.auth_token_hash, date_updated = now()
         RETURNING (xmax = 0)",
    )
    .bind(sid)
    .bind(friendly_name)
    .bind(token_hash.expose_secret())
    .fetch_one(pool)
    .await
}
