//! The web console's sessions (migration V12): opened after a credential verified, found by the
//! SHA-256 of the cookie's secret, ended by sign-out, by their fixed expiry, or by the triggers
//! that revoke them when their credential changes.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

/// Sessions one account may hold at once; opening one more ends its oldest (a script that signs
/// in in a loop cannot grow the table without bound).
pub const MAX_PER_ACCOUNT: i64 = 100;

/// A live session: whom it acts for, and until when.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub account_sid: String,
    pub api_key_sid: Option<String>,
    pub expires_at: DateTime<Utc>,
    /// The account's own request rate (`None`: the default), read with the session.
    pub max_requests_per_second: Option<i32>,
}

/// Opens a session for `account_sid` (through `api_key_sid`, when a key signed in) that lasts
/// `ttl_seconds`, ends the account's sessions beyond the newest `MAX_PER_ACCOUNT`, and drops
/// expired sessions of any account (bounded: the oldest 100). One statement.
pub async fn open(
    db: impl PgExecutor<'_>,
    id_hash: &[u8; 32],
    account_sid: &str,
    api_key_sid: Option<&str>,
    ttl_seconds: i64,
) -> Result<DateTime<Utc>, sqlx::Error> {
    sqlx::query_scalar(
        "WITH opened AS ( \
             INSERT INTO console_sessions (id_hash, account_sid, api_key_sid, expires_at) \
             VALUES ($1, $2, $3, now() + make_interval(secs => $4)) RETURNING expires_at), \
         over AS ( \
             DELETE FROM console_sessions WHERE id_hash IN ( \
                 SELECT id_hash FROM console_sessions WHERE account_sid = $2 \
                 ORDER BY date_created DESC OFFSET $5 - 1)), \
         expired AS ( \
             DELETE FROM console_sessions WHERE id_hash IN ( \
                 SELECT id_hash FROM console_sessions WHERE expires_at <= now() \
                 ORDER BY expires_at LIMIT 100)) \
         SELECT expires_at FROM opened",
    )
    .bind(&id_hash[..])
    .bind(account_sid)
    .bind(api_key_sid)
    .bind(ttl_seconds as f64)
    .bind(MAX_PER_ACCOUNT)
    .fetch_one(db)
    .await
}

/// The live session with this hash, of an active account.
pub async fn find(
    db: impl PgExecutor<'_>,
    id_hash: &[u8; 32],
) -> Result<Option<SessionRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.account_sid, s.api_key_sid, s.expires_at, a.max_requests_per_second \
         FROM console_sessions s JOIN accounts a ON a.sid = s.account_sid \
         WHERE s.id_hash = $1 AND s.expires_at > now() AND a.status = 'active'",
    )
    .bind(&id_hash[..])
    .fetch_optional(db)
    .await
}

/// Ends a session (sign-out); false when there was none.
pub async fn close(db: impl PgExecutor<'_>, id_hash: &[u8; 32]) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
        .bind(&id_hash[..])
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}
