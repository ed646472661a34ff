//! Twilio's composition hooks: `/v1/CompositionHooks[/{Sid}]` create, list, fetch, update,
//! delete. An enabled hook composes every room of its account that ends with recordings (see
//! `db::composition_hooks`).

use super::extract::{path_segment, Form};
use super::recordings::lookup::not_found;
use super::respond::{get, json, resource, ListPage};
use super::rooms::list::{date_filter, EchoedFilters};
use crate::auth::authenticator::Account;
use crate::db::composition_hooks::{self, HookFilter, HookRow};
use crate::domain::composition::CompositionSpec;
use crate::domain::sid::{self, CompositionHookSid};
use crate::http::state::AppState;
use crate::twilio::form::{parse_bool, Params};
use crate::twilio::paging::PageRequest;
use crate::twilio::time;
use crate::twilio::urls::{PublicUrl, ResourceUrl};
use crate::twilio::ApiError;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/v1/CompositionHooks")
            .route(get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        resource("/v1/CompositionHooks/{hook}")
            .route(get().to(fetch))
            .route(web::post().to(update))
            .route(web::delete().to(delete)),
    );
}

const JSON_BYTES: usize = 2048;

#[derive(Serialize)]
struct HookResource<'a> {
    account_sid: &'a str,
    friendly_name: &'a str,
    enabled: bool,
    #[serde(serialize_with = "time::serialize")]
    date_created: DateTime<Utc>,
    #[serde(serialize_with = "time::serialize_opt")]
    date_updated: Option<DateTime<Utc>>,
    sid: &'a str,
    audio_sources: &'a [String],
    audio_sources_excluded: &'a [String],
    video_layout: &'a serde_json::Value,
    resolution: &'a str,
    format: &'a str,
    trim: bool,
    status_callback: Option<&'a str>,
    status_callback_method: &'a str,
    url: ResourceUrl<'a>,
}

impl<'a> HookResource<'a> {
    fn new(row: &'a HookRow, base: &'a PublicUrl) -> Self {
        HookResource {
            account_sid: &row.account_sid,
            friendly_name: &row.friendly_name,
            enabled: row.enabled,
            date_created: row.date_created,
            date_updated: row.date_updated,
            sid: &row.sid,
            audio_sources: &row.audio_sources,
            audio_sources_excluded: &row.audio_sources_excluded,
            video_layout: &row.video_layout.0,
            resolution: &row.resolution,
            format: &row.format,
            trim: row.trimmed,
            status_callback: row.status_callback.as_deref(),
            status_callback_method: &row.status_callback_method,
            url: ResourceUrl::new(base, &["CompositionHooks", &row.sid]),
        }
    }

    fn respond(
        row: &HookRow,
        state: &AppState,
        status: actix_web::http::StatusCode,
    ) -> HttpResponse {
        json(
            HttpResponse::build(status),
            &HookResource::new(row, &state.public_url),
            JSON_BYTES,
        )
    }
}

/// `FriendlyName`: required, 1 to 100 characters, no control characters.
fn friendly_name(params: &Params) -> Result<String, ApiError> {
    let name = params.required("FriendlyName")?;
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid_parameter(
            "FriendlyName must be 1 to 100 characters",
        ));
    }
    Ok(name.to_string())
}

fn enabled(params: &Params, current: bool) -> Result<bool, ApiError> {
    params
        .single("Enabled")?
        .map_or(Ok(current), |v| parse_bool("Enabled", v))
}

async fn create(
    account: Account,
    form: Form,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = form.params().await?;
    let name = friendly_name(&params)?;
    let enabled = enabled(&params, true)?;
    let spec = CompositionSpec::from_params(&params, CompositionSpec::default())?;
    let row = state
        .pool
        .transaction(async |c| {
            composition_hooks::create(c, &account.sid, &name, enabled, &spec).await
        })
        .await?;
    Ok(HookResource::respond(&row, &state, StatusCode::CREATED))
}

/// `POST /v1/CompositionHooks/{Sid}`: `FriendlyName` is required; what the form does not name
/// stays as it was (read and written with the hook locked, so concurrent updates do not mix).
async fn update(
    req: HttpRequest,
    account: Account,
    form: Form,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let sid = hook_sid(&req)?;
    let params = form.params().await?;
    let name = friendly_name(&params)?;
    let updated = state
        .pool
        .transaction(async |c| -> Result<_, crate::db::DbError> {
            let Some(current) = composition_hooks::find(&mut *c, &account.sid, &sid, true).await?
            else {
                return Ok(None);
            };
            let spec = enabled(&params, current.enabled).and_then(|enabled| {
                Ok((
                    enabled,
                    CompositionSpec::from_params(&params, current.spec())?,
                ))
            });
            let (enabled, spec) = match spec {
                Ok(parsed) => parsed,
                Err(refused) => return Ok(Some(Err(refused))),
            };
            let row =
                composition_hooks::update(c, &account.sid, &sid, &name, enabled, &spec).await?;
            Ok(row.map(Ok))
        })
        .await?;
    let row = updated.ok_or_else(|| not_found(&req))??;
    Ok(HookResource::respond(&row, &state, StatusCode::OK))
}

fn hook_sid(req: &HttpRequest) -> Result<CompositionHookSid, ApiError> {
    CompositionHookSid::parse(&path_segment(req, "hook")?).ok_or_else(|| not_found(req))
}

async fn fetch(
    req: HttpRequest,
    account: Account,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let sid = hook_sid(&req)?;
    let row = state
        .pool
        .run(async |c| composition_hooks::find(c, &account.sid, &sid, false).await)
        .await?
        .ok_or_else(|| not_found(&req))?;
    Ok(HookResource::respond(&row, &state, StatusCode::OK))
}

async fn delete(
    req: HttpRequest,
    account: Account,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let sid = hook_sid(&req)?;
    let gone = state
        .pool
        .run(async |c| composition_hooks::delete(c, &account.sid, &sid).await)
        .await?;
    if !gone {
        return Err(not_found(&req));
    }
    Ok(HttpResponse::NoContent().finish())
}

/// `FriendlyName` as an `ILIKE` pattern: `*` any run of characters, the rest literal.
fn name_pattern(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + 2);
    for c in raw.chars() {
        match c {
            '*' => out.push('%'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

async fn list(
    req: HttpRequest,
    account: Account,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string().as_bytes())?;
    let mut echo: EchoedFilters = Vec::new();
    let mut filter = HookFilter::default();
    if let Some(e) = params.single("Enabled")? {
        filter.enabled = Some(parse_bool("Enabled", e)?);
        echo.push(("Enabled", e.to_string()));
    }
    let like = match params.single("FriendlyName")? {
        Some(n) if n.chars().count() > 100 || n.chars().any(char::is_control) => {
            return Err(ApiError::invalid_parameter(
                "FriendlyName must be at most 100 characters",
            ))
        }
        Some(n) => {
            echo.push(("FriendlyName", n.to_string()));
            Some(name_pattern(n))
        }
        None => None,
    };
    filter.created_on_or_after = date_filter(&params, "DateCreatedAfter", &mut echo)?;
    filter.created_before = date_filter(&params, "DateCreatedBefore", &mut echo)?;
    let page = PageRequest::from_params(&params, sid::COMPOSITION_HOOK)?;
    let found = state
        .pool
        .run(async |c| {
            composition_hooks::list(c, &account.sid, &filter, like.as_deref(), &page).await
        })
        .await?;
    let list = ListPage {
        path: "/v1/CompositionHooks",
        key: "composition_hooks",
        filters: &echo,
        item_bytes: JSON_BYTES,
    };
    Ok(list.respond(&state.public_url, &page, &found, |r| {
        HookResource::new(r, &state.public_url)
    }))
}
