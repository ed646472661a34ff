//! What a room holds, read whole for display (the console's room page): its published tracks,
//! its connected participants' subscribe rules, and its callback events' attempt logs (migration
//! V13). Bounded by the caller's limit.

use super::tracks::{TrackRow, COLUMNS};
use sqlx::PgExecutor;

/// The tracks published in a room now, oldest first, at most `limit` (the console's room page).
pub async fn tracks(
    db: impl PgExecutor<'_>,
    account_sid: &str,
    room_sid: &str,
    limit: i64,
) -> Result<Vec<TrackRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM published_tracks WHERE account_sid = $1 AND room_sid = $2 \
         ORDER BY date_created, sid LIMIT $3"
    ))
    .bind(account_sid)
    .bind(room_sid)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// The subscribe rules of a room's connected participants (SID, rules in normal form), join
/// order, at most `limit` (the console's room page).
pub async fn subscribe_rules(
    db: impl PgExecutor<'_>,
    room_sid: &str,
    limit: i64,
) -> Result<Vec<(String, serde_json::Value)>, sqlx::Error> {
    let rows: Vec<(String, Option<serde_json::Value>)> = sqlx::query_as(
        "SELECT sid, subscribe_rules FROM participants WHERE room_sid = $1 \
         AND status = 'connected' ORDER BY date_created, sid LIMIT $2",
    )
    .bind(room_sid)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(sid, rules)| (sid, rules.unwrap_or_else(crate::domain::rules::include_all)))
        .collect())
}

/// One delivery attempt of a status callback, as migration V13's log keeps it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Attempt {
    pub attempt: i32,
    pub at: chrono::DateTime<chrono::Utc>,
    /// The receiver's HTTP status, when one answered.
    pub status: Option<i32>,
    pub error: Option<String>,
}

/// The attempt logs of a room's first `limit` events (`SequenceNumber` order), by event SID.
pub async fn callback_attempts(
    db: impl PgExecutor<'_>,
    account_sid: &str,
    room_sid: &str,
    limit: i64,
) -> Result<Vec<(String, sqlx::types::Json<Vec<Attempt>>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT sid, attempt_log FROM callback_events WHERE account_sid = $1 AND room_sid = $2 \
         ORDER BY sequence_number LIMIT $3",
    )
    .bind(account_sid)
    .bind(room_sid)
    .bind(limit)
    .fetch_all(db)
    .await
}
