//! Who a console request acts for: the `Signed` extractor (a live session's cookie, past the
//! account's request rate, on its clock), the session cookie itself, and the checks every
//! console form post passes (same origin, and the session's CSRF token).

use super::error::ConsoleError;
use crate::auth::authenticator::{Account, Authenticator};
use crate::auth::console_sessions::SessionSecret;
use crate::twilio::form::Params;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// The session cookie's name.
pub const COOKIE: &str = "roomd_console";
/// The form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "csrf";

/// The console's settings (`ROOMD_CONSOLE_SESSION_TTL`, and whether the public URL is https).
#[derive(Clone, Debug)]
pub struct ConsoleSettings {
    pub session_ttl: Duration,
    /// `Secure` cookies: the public URL is https.
    pub secure: bool,
    /// The public URL's origin (`scheme://host[:port]`): a form post from it is this console's
    /// own, whatever `Host` a reverse proxy passes on.
    pub public_origin: String,
}

/// A request of a signed-in session.
pub struct Signed {
    pub account: Account,
    pub secret: SessionSecret,
}

impl Signed {
    /// The CSRF token this session's forms carry.
    pub fn csrf(&self) -> String {
        self.secret.csrf_token()
    }
}

/// The session cookie's value in `req`, when it has a secret's shape.
pub fn cookie_secret(req: &HttpRequest) -> Option<SessionSecret> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .and_then(|(_, value)| SessionSecret::from_cookie(value))
}

/// The `Set-Cookie` value that gives the browser `secret` for `ttl`.
pub fn session_cookie(secret: &SessionSecret, settings: &ConsoleSettings) -> String {
    format!(
        "{COOKIE}={}; Path=/console; Max-Age={}; HttpOnly; SameSite=Strict{}",
        secret.cookie_value(),
        settings.session_ttl.as_secs(),
        if settings.secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn cleared_cookie(settings: &ConsoleSettings) -> String {
    format!(
        "{COOKIE}=; Path=/console; Max-Age=0; HttpOnly; SameSite=Strict{}",
        if settings.secure { "; Secure" } else { "" }
    )
}

/// Refuses a form post another origin's page sent: by `Sec-Fetch-Site`, which current browsers
/// send (`same-origin`, or `none` for one the user typed, passes); from a browser without it, by
/// an `Origin` that is neither this host nor the public URL's. A post with neither header (not a
/// browser) is left to the CSRF token.
pub fn same_origin(req: &HttpRequest, settings: &ConsoleSettings) -> Result<(), ConsoleError> {
    let header_str = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header_str(header::HeaderName::from_static("sec-fetch-site")) {
        return match site {
            "same-origin" | "none" => Ok(()),
            _ => Err(ConsoleError::CrossSite),
        };
    }
    if let Some(origin) = header_str(header::ORIGIN) {
        let origin = origin.trim_end_matches('/');
        let host = header_str(header::HOST).unwrap_or("");
        let this_host = !host.is_empty()
            && origin
                .split_once("://")
                .is_some_and(|(_, rest)| rest == host);
        if !this_host && origin != settings.public_origin {
            return Err(ConsoleError::CrossSite);
        }
    }
    Ok(())
}

/// A console form post's checks: same origin, and this session's CSRF token in `params`.
pub fn check_post(req: &HttpRequest, signed: &Signed, params: &Params) -> Result<(), ConsoleError> {
    let settings = req
        .app_data::<web::Data<ConsoleSettings>>()
        .ok_or(ConsoleError::CrossSite)?;
    same_origin(req, settings)?;
    match params.single(CSRF_FIELD) {
        Ok(Some(token)) if signed.secret.csrf_matches(token) => Ok(()),
        _ => Err(ConsoleError::CrossSite),
    }
}

impl FromRequest for Signed {
    type Error = ConsoleError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let secret = cookie_secret(req);
        let auth = req.app_data::<web::Data<Authenticator>>().cloned();
        Box::pin(async move {
            let (Some(secret), Some(auth)) = (secret, auth) else {
                return Err(ConsoleError::SignIn);
            };
            match auth.session(&secret).await? {
                Some((sid, _)) => Ok(Signed {
                    account: Account { sid },
                    secret,
                }),
                None => Err(ConsoleError::SignIn),
            }
        })
    }
}
