//! A participant's subscribe rules, stored as JSON on its row.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

/// A participant's subscribe rules (normal form; Twilio's default, include all, when never set)
/// and when they were last set.
pub async fn subscribe_rules(
    db: impl PgExecutor<'_>,
    participant_sid: &str,
) -> Result<(serde_json::Value, Option<DateTime<Utc>>), sqlx::Error> {
    let (rules, updated): (Option<serde_json::Value>, Option<DateTime<Utc>>) = sqlx::query_as(
        "SELECT subscribe_rules, subscribe_rules_updated FROM participants WHERE sid = $1",
    )
    .bind(participant_sid)
    .fetch_one(db)
    .await?;
    Ok((
        rules.unwrap_or_else(crate::domain::rules::include_all),
        updated,
    ))
}

/// Replaces a participant's subscribe rules; when they were set.
pub async fn set_subscribe_rules(
    db: impl PgExecutor<'_>,
    participant_sid: &str,
    rules: &serde_json::Value,
) -> Result<DateTime<Utc>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE participants SET subscribe_rules = $2, subscribe_rules_updated = roomd_now() \
         WHERE sid = $1 RETURNING subscribe_rules_updated",
    )
    .bind(participant_sid)
    .bind(rules)
    .fetch_one(db)
    .await
}
