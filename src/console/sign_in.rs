//! Signing in (an account's SID and auth token, or an API key's SID and secret, verified as
//! Basic auth is and throttled the same way on failures) and out.

use super::error::{html, see_other, ConsoleError};
use super::session::{
    check_post, cleared_cookie, cookie_secret, same_origin, session_cookie, ConsoleSettings, Signed,
};
use super::views::SignInPage;
use crate::auth::authenticator::Authenticator;
use crate::auth::console_sessions::SessionSecret;
use crate::db::console_sessions;
use crate::http::extract::Form;
use crate::http::state::AppState;
use crate::twilio::ApiError;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::SecretString;

fn form(status: actix_web::http::StatusCode, sid: &str, error: Option<String>) -> HttpResponse {
    html(
        HttpResponse::build(status),
        &SignInPage {
            nav: None,
            sid: sid.to_string(),
            error,
        },
    )
}

/// `GET /console/sign-in`.
pub(super) async fn page() -> HttpResponse {
    form(actix_web::http::StatusCode::OK, "", None)
}

/// `POST /console/sign-in`: a session and its cookie, then the rooms; or the form again with
/// what went wrong (401, or 429 while failures are throttled), and no session.
pub(super) async fn sign_in(
    req: HttpRequest,
    form_body: Form,
    auth: web::Data<Authenticator>,
    state: web::Data<AppState>,
    settings: web::Data<ConsoleSettings>,
) -> Result<HttpResponse, ConsoleError> {
    same_origin(&req, &settings)?;
    let params = form_body.params().await?;
    let sid = params
        .single("AccountSid")?
        .unwrap_or("")
        .trim()
        .to_string();
    let token = SecretString::from(params.single("AuthToken")?.unwrap_or("").trim());
    let address = req.peer_addr().map(|a| a.ip());
    let (account, key) = match auth.sign_in(&sid, &token, address).await {
        Ok(found) => found,
        Err(ApiError::Unauthorized) => {
            // Not the SID as typed: a token pasted in the wrong field must not reach the log.
            tracing::info!("console sign-in refused");
            return Ok(form(
                actix_web::http::StatusCode::UNAUTHORIZED,
                &sid,
                Some("That Account SID and auth token do not match: nobody is signed in.".into()),
            ));
        }
        Err(ApiError::TooManyRequests { retry_after }) => {
            let mut page = form(
                actix_web::http::StatusCode::TOO_MANY_REQUESTS,
                &sid,
                Some(format!(
                    "Too many failed sign-ins: try again in {retry_after} s."
                )),
            );
            page.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(retry_after));
            return Ok(page);
        }
        Err(e) => return Err(e.into()),
    };
    let secret = SessionSecret::generate();
    let digest = secret.digest();
    let ttl = settings.session_ttl.as_secs() as i64;
    state
        .pool
        .run(async |c| console_sessions::open(c, &digest, &account, key.as_deref(), ttl).await)
        .await?;
    tracing::info!(account_sid = %account, api_key_sid = key.as_deref().unwrap_or(""), "console session opened");
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/console/rooms"))
        .insert_header((header::SET_COOKIE, session_cookie(&secret, &settings)))
        .finish())
}

/// `POST /console/sign-out`: the session ends (here and on every replica) and its cookie goes.
pub(super) async fn sign_out(
    req: HttpRequest,
    signed: Signed,
    form_body: Form,
    state: web::Data<AppState>,
    settings: web::Data<ConsoleSettings>,
) -> Result<HttpResponse, ConsoleError> {
    let params = form_body.params().await?;
    check_post(&req, &signed, &params)?;
    if let Some(secret) = cookie_secret(&req) {
        let digest = secret.digest();
        state
            .pool
            .run(async |c| console_sessions::close(c, &digest).await)
            .await?;
    }
    tracing::info!(account_sid = %signed.account.sid, "console session closed");
    let mut done = see_other("/console/sign-in");
    done.headers_mut().insert(
        header::SET_COOKIE,
        header::HeaderValue::from_str(&cleared_cookie(&settings)).map_err(ApiError::internal)?,
    );
    Ok(done)
}
