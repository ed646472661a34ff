//! RecordingSettings and CompositionSettings (`/v1/{Recording,Composition}Settings/Default`): one
//! row per account and kind. roomd keeps media on its own disk, so the storage and encryption
//! flags are always false here (a request asking for them is refused before it gets this far).

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MediaSettingsRow {
    pub account_sid: String,
    pub friendly_name: String,
    pub aws_credentials_sid: Option<String>,
    pub encryption_key_sid: Option<String>,
    pub aws_s3_url: Option<String>,
    pub aws_storage_enabled: bool,
    pub encryption_enabled: bool,
    pub date_updated: DateTime<Utc>,
}

const COLUMNS: &str = "account_sid, friendly_name, aws_credentials_sid, encryption_key_sid, \
    aws_s3_url, aws_storage_enabled, encryption_enabled, date_updated";

/// The account's settings of `kind` (`recording` or `composition`), if ever written.
pub async fn find(
    db: impl PgExecutor<'_>,
    account_sid: &str,
    kind: &str,
) -> Result<Option<MediaSettingsRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM media_settings WHERE account_sid = $1 AND kind = $2"
    ))
    .bind(account_sid)
    .bind(kind)
    .fetch_optional(db)
    .await
}

/// What a POST writes (the storage and encryption flags are false: see the module).
pub struct NewSettings<'a> {
    pub friendly_name: &'a str,
    pub aws_credentials_sid: Option<&'a str>,
    pub encryption_key_sid: Option<&'a str>,
    pub aws_s3_url: Option<&'a str>,
}

/// Writes the account's settings of `kind` (a POST replaces them whole, as Twilio's does).
pub async fn write(
    db: impl PgExecutor<'_>,
    account_sid: &str,
    kind: &str,
    new: &NewSettings<'_>,
) -> Result<MediaSettingsRow, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO media_settings (account_sid, kind, friendly_name, aws_credentials_sid, \
            encryption_key_sid, aws_s3_url) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (account_sid, kind) DO UPDATE SET friendly_name = EXCLUDED.friendly_name, \
            aws_credentials_sid = EXCLUDED.aws_credentials_sid, \
            encryption_key_sid = EXCLUDED.encryption_key_sid, aws_s3_url = EXCLUDED.aws_s3_url, \
            date_updated = now() \
         RETURNING {COLUMNS}"
    ))
    .bind(account_sid)
    .bind(kind)
    .bind(new.friendly_name)
    .bind(new.aws_credentials_sid)
    .bind(new.encryption_key_sid)
    .bind(new.aws_s3_url)
    .fetch_one(db)
    .await
}
