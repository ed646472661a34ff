//! A room's recording rules, stored as JSON on its row (replaced by `recordings::set_rules`,
//! which starts and ends the recordings they change).

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

/// A room's recording rules (as set at create or since; without any, include-all when it records
/// participants on connect, else none) and when they were last replaced.
pub async fn recording_rules(
    db: impl PgExecutor<'_>,
    room_sid: &str,
) -> Result<(serde_json::Value, Option<DateTime<Utc>>), sqlx::Error> {
    let (rules, on_connect, updated): (Option<serde_json::Value>, bool, Option<DateTime<Utc>>) =
        sqlx::query_as(
            "SELECT recording_rules, record_participants_on_connect, recording_rules_updated \
             FROM rooms WHERE sid = $1",
        )
        .bind(room_sid)
        .fetch_one(db)
        .await?;
    let rules = rules.unwrap_or_else(|| {
        if on_connect {
            crate::domain::rules::include_all()
        } else {
            serde_json::Value::Array(Vec::new())
        }
    });
    Ok((rules, updated))
}
