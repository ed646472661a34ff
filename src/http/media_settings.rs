//! `/v1/RecordingSettings/Default` and `/v1/CompositionSettings/Default`: fetch and create (a POST
//! replaces them), per account. roomd keeps media on its own disk: a POST that turns on external
//! storage (`AwsStorageEnabled`) or encryption (`EncryptionEnabled`) is refused (400/20001) with a
//! body that says so.

use super::extract::Form;
use super::respond::{get, json, resource};
use crate::auth::authenticator::Account;
use crate::db::media_settings::{self, MediaSettingsRow, NewSettings};
use crate::domain::sid::is_sid;
use crate::http::state::AppState;
use crate::twilio::form::{parse_bool, Params};
use crate::twilio::urls::{PublicUrl, ResourceUrl};
use crate::twilio::ApiError;
use actix_web::{web, HttpResponse};
use serde::Serialize;

pub fn configure(cfg: &mut web::ServiceConfig) {
    for (path, kind) in [
        ("/v1/RecordingSettings/Default", Kind::Recording),
        ("/v1/CompositionSettings/Default", Kind::Composition),
    ] {
        cfg.service(
            resource(path)
                .app_data(web::Data::new(kind))
                .route(get().to(fetch))
                .route(web::post().to(create)),
        );
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Recording,
    Composition,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Recording => "recording",
            Kind::Composition => "composition",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Kind::Recording => "RecordingSettings",
            Kind::Composition => "CompositionSettings",
        }
    }
}

#[derive(Serialize)]
struct SettingsResource<'a> {
    account_sid: &'a str,
    friendly_name: Option<&'a str>,
    aws_credentials_sid: Option<&'a str>,
    aws_s3_url: Option<&'a str>,
    aws_storage_enabled: bool,
    encryption_key_sid: Option<&'a str>,
    encryption_enabled: bool,
    url: ResourceUrl<'a>,
}

fn respond(
    account: &str,
    row: Option<&MediaSettingsRow>,
    kind: Kind,
    base: &PublicUrl,
) -> HttpResponse {
    let body = SettingsResource {
        account_sid: account,
        friendly_name: row.map(|r| r.friendly_name.as_str()),
        aws_credentials_sid: row.and_then(|r| r.aws_credentials_sid.as_deref()),
        aws_s3_url: row.and_then(|r| r.aws_s3_url.as_deref()),
        aws_storage_enabled: false,
        encryption_key_sid: row.and_then(|r| r.encryption_key_sid.as_deref()),
        encryption_enabled: false,
        url: ResourceUrl::new(base, &[kind.path(), "Default"]),
    };
    json(HttpResponse::Ok(), &body, 1024)
}

/// `GET`: the account's settings; never written, the defaults (media kept by roomd).
async fn fetch(
    account: Account,
    kind: web::Data<Kind>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let row = state
        .pool
        .run(async |c| media_settings::find(c, &account.sid, kind.as_str()).await)
        .await?;
    Ok(respond(
        &account.sid,
        row.as_ref(),
        **kind,
        &state.public_url,
    ))
}

fn credential_sid<'p>(params: &'p Params, key: &str) -> Result<Option<&'p str>, ApiError> {
    match params.single(key)? {
        None | Some("") => Ok(None),
        Some(v) if is_sid("CR", v) => Ok(Some(v)),
        Some(_) => Err(ApiError::invalid_parameter(format!(
            "{key} must be a credential SID (CR...)"
        ))),
    }
}

/// `POST` (200): `FriendlyName` required; the storage and encryption flags may only be false.
async fn create(
    account: Account,
    kind: web::Data<Kind>,
    form: Form,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = form.params().await?;
    let name = params.required("FriendlyName")?;
    if name.chars().count() > 255 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid_parameter(
            "FriendlyName must be at most 255 characters",
        ));
    }
    for (key, what) in [
        ("AwsStorageEnabled", "external storage (AWS S3)"),
        ("EncryptionEnabled", "encryption"),
    ] {
        if params
            .single(key)?
            .map(|v| parse_bool(key, v))
            .transpose()?
            == Some(true)
        {
            return Err(ApiError::invalid_parameter(format!(
                "{key}=true is not supported: roomd keeps {}s on its own disk, without {what}",
                kind.as_str()
            )));
        }
    }
    let aws_s3_url = match params.single("AwsS3Url")? {
        None | Some("") => None,
        Some(u) if u.len() < 1024 && url::Url::parse(u).is_ok_and(|u| u.scheme() == "https") => {
            Some(u)
        }
        Some(_) => return Err(ApiError::invalid_parameter("AwsS3Url must be an https URL")),
    };
    let new = NewSettings {
        friendly_name: name,
        aws_credentials_sid: credential_sid(&params, "AwsCredentialsSid")?,
        encryption_key_sid: credential_sid(&params, "EncryptionKeySid")?,
        aws_s3_url,
    };
    let row = state
        .pool
        .run(async |c| media_settings::write(c, &account.sid, kind.as_str(), &new).await)
        .await?;
    Ok(respond(&account.sid, Some(&row), **kind, &state.public_url))
}
