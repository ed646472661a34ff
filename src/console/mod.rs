//! The web console at `/console`: server-rendered pages (askama) where a signed-in account sees
//! its rooms, participants, tracks, callbacks, recordings and compositions, and acts on them.
//! It reads through `db/` and acts through the same functions the REST routes of `http/` call,
//! so a console action is the API's action. A small script (`console/static/console.js`)
//! refreshes each page's live part by polling; without it, every page and form still works.
//!
//! Every answer carries a Content-Security-Policy that allows only this origin's own script and
//! style (no inline code), and is never cached.

mod actions;
mod assets;
mod clock;
mod error;
mod page;
mod room;
mod rooms;
pub mod session;
mod sign_in;
mod views;

use crate::http::respond::get;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{DefaultHeaders, Next};
use actix_web::{web, HttpResponse};
pub use error::ConsoleError;
use session::{ConsoleSettings, Signed};

/// The policy of every console answer.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    media-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
    base-uri 'none'";

/// The console's routes, under `/console`.
pub fn configure(cfg: &mut web::ServiceConfig, settings: ConsoleSettings) {
    cfg.service(
        web::scope("/console")
            .app_data(web::Data::new(settings))
            .wrap(actix_web::middleware::from_fn(sign_in_redirect))
            .wrap(
                DefaultHeaders::new()
                    .add((header::CONTENT_SECURITY_POLICY, CSP))
                    .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                    .add((header::X_FRAME_OPTIONS, "DENY"))
                    .add((header::REFERRER_POLICY, "same-origin"))
                    .add((header::CACHE_CONTROL, "no-store")),
            )
            .route("", get().to(home))
            .route("/", get().to(home))
            .route("/sign-in", get().to(sign_in::page))
            .route("/sign-in", web::post().to(sign_in::sign_in))
            .route("/sign-out", web::post().to(sign_in::sign_out))
            .route("/rooms", get().to(rooms::page))
            .route("/rooms", web::post().to(rooms::create))
            .route("/rooms/live", get().to(rooms::live_part))
            .route("/rooms/{room}", get().to(room::page))
            .route("/rooms/{room}/live", get().to(room::live_part))
            .route("/rooms/{room}/end", web::post().to(actions::end))
            .route(
                "/rooms/{room}/participants/{participant}/kick",
                web::post().to(actions::kick),
            )
            .route(
                "/rooms/{room}/callbacks/{event}/replay",
                web::post().to(actions::replay),
            )
            .route(
                "/rooms/{room}/recordings/{recording}/delete",
                web::post().to(actions::delete_recording),
            )
            .route("/clock", get().to(clock::page))
            .route("/clock", web::post().to(clock::advance))
            .route("/clock/live", get().to(clock::live_part))
            .route("/static/{file}", get().to(assets::serve))
            .default_service(web::to(not_found)),
    );
}

/// The way to the sign-in page, answered as a plain redirect: a request without a session is
/// not an error worth the request log's error line.
async fn sign_in_redirect(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let res = next.call(req).await?;
    let signed_out = res
        .response()
        .error()
        .and_then(|e| e.as_error::<ConsoleError>())
        .is_some_and(|e| matches!(e, ConsoleError::SignIn));
    if signed_out {
        let (req, _) = res.into_parts();
        let to = ServiceResponse::new(req, error::see_other("/console/sign-in"));
        return Ok(to.map_into_boxed_body());
    }
    Ok(res.map_into_boxed_body())
}

/// `/console`: the rooms (or, signed out, the sign-in page).
async fn home(_: Signed) -> HttpResponse {
    error::see_other("/console/rooms")
}

async fn not_found() -> Result<HttpResponse, ConsoleError> {
    Err(ConsoleError::Api(crate::twilio::ApiError::not_found(
        "this console page",
    )))
}
