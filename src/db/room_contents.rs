//! What a room holds now, read whole for display (the console's room page): its published
//! tracks, and its connected participants' subscribe rules. Bounded by the caller's limit.

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
