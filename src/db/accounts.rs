//! Accounts. Only argon2id hashes of auth tokens ever reach the database.

use crate::domain::account::Account;
use secrecy::{ExposeSecret, SecretString};
use sqlx::{PgExecutor, PgPool};

const COLUMNS: &str = "sid, friendly_name, status, date_created, date_updated, \
    EXISTS (SELECT 1 FROM test_clocks t WHERE t.account_sid = accounts.sid) AS test_clock, \
    max_requests_per_second, client_room_creation, max_rooms_in_progress, \
    max_participants_connected";

/// Creates an account; with `test_clock`, one whose time is a test clock frozen at its creation
/// (to the second).
pub async fn create(
    db: impl PgExecutor<'_>,
    sid: &str,
    friendly_name: &str,
    token_hash: &SecretString,
    token_sealed: Option<&[u8]>,
    test_clock: bool,
) -> Result<Account, sqlx::Error> {
    sqlx::query_as(
        "WITH a AS ( \
            INSERT INTO accounts (sid, friendly_name, auth_token_hash, auth_token_sealed) \
            VALUES ($1, $2, $3, $4) RETURNING sid, friendly_name, status, date_created, \
                date_updated, max_requests_per_second, client_room_creation, \
                max_rooms_in_progress, max_participants_connected), \
         c AS (INSERT INTO test_clocks (account_sid, frozen_time) \
            SELECT sid, date_trunc('second', date_created) FROM a WHERE $5) \
         SELECT a.*, $5 AS test_clock FROM a",
    )
    .bind(sid)
    .bind(friendly_name)
    .bind(token_hash.expose_secret())
    .bind(token_sealed)
    .bind(test_clock)
    .fetch_one(db)
    .await
}

/// What `roomd accounts update` changes (`None`: leave as it is).
#[derive(Debug, Default)]
pub struct AccountUpdate {
    /// `Some(None)`: back to the default.
    pub max_requests_per_second: Option<Option<i32>>,
    pub client_room_creation: Option<bool>,
    /// `Some(None)`: back to the default; `Some(Some(0))`: unlimited.
    pub max_rooms_in_progress: Option<Option<i32>>,
    pub max_participants_connected: Option<Option<i32>>,
}

/// Changes an account's limits; the account as it is then, or `None` when there is none.
pub async fn update(
    pool: &PgPool,
    sid: &str,
    update: &AccountUpdate,
) -> Result<Option<Account>, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE accounts SET \
            max_requests_per_second = CASE WHEN $2 THEN $3 ELSE max_requests_per_second END, \
            client_room_creation = coalesce($4, client_room_creation), \
            max_rooms_in_progress = CASE WHEN $5 THEN $6 ELSE max_rooms_in_progress END, \
            max_participants_connected = CASE WHEN $7 THEN $8 ELSE max_participants_connected END, \
            date_updated = now() \
         WHERE sid = $1 RETURNING {COLUMNS}"
    ))
    .bind(sid)
    .bind(update.max_requests_per_second.is_some())
    .bind(update.max_requests_per_second.flatten())
    .bind(update.client_room_creation)
    .bind(update.max_rooms_in_progress.is_some())
    .bind(update.max_rooms_in_progress.flatten())
    .bind(update.max_participants_connected.is_some())
    .bind(update.max_participants_connected.flatten())
    .fetch_optional(pool)
    .await
}

pub async fn list(pool: &PgPool) -> Result<Vec<Account>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM accounts ORDER BY date_created, sid"
    ))
    .fetch_all(pool)
    .await
}

/// The stored hash of an active account's token, and the account's own request rate (`None`:
/// the default); `None` for unknown or inactive accounts.
pub async fn active_token_hash(
    db: impl PgExecutor<'_>,
    sid: &str,
) -> Result<Option<(SecretString, Option<i32>)>, sqlx::Error> {
    let row: Option<(String, Option<i32>)> = sqlx::query_as(
        "SELECT auth_token_hash, max_requests_per_second FROM accounts \
         WHERE sid = $1 AND status = 'active'",
    )
    .bind(sid)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|(hash, rate)| (SecretString::from(hash), rate)))
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

/// Replaces an account's token (its hash, and the token sealed under the master key); false when
/// there is no such account.
pub async fn set_token_hash(
    pool: &PgPool,
    sid: &str,
    token_hash: &SecretString,
    token_sealed: Option<&[u8]>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE accounts SET auth_token_hash = $2, auth_token_sealed = $3, date_updated = now() \
         WHERE sid = $1",
    )
    .bind(sid)
    .bind(token_hash.expose_secret())
    .bind(token_sealed)
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
    token_sealed: Option<&[u8]>,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO accounts (sid, friendly_name, auth_token_hash, auth_token_sealed) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (sid) DO UPDATE SET auth_token_hash = EXCLUDED.auth_token_hash, \
            auth_token_sealed = EXCLUDED.auth_token_sealed, date_updated = now() \
         RETURNING (xmax = 0)",
    )
    .bind(sid)
    .bind(friendly_name)
    .bind(token_hash.expose_secret())
    .bind(token_sealed)
    .fetch_one(pool)
    .await
}

/// Seals an account's current token where none is sealed yet (an account created before tokens
/// were sealed, whose token the caller knows, e.g. the bootstrap account's).
pub async fn seal_token_if_missing(
    pool: &PgPool,
    sid: &str,
    token_sealed: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE accounts SET auth_token_sealed = $2 WHERE sid = $1 AND auth_token_sealed IS NULL",
    )
    .bind(sid)
    .bind(token_sealed)
    .execute(pool)
    .await?;
    Ok(())
}
