//! The console's stylesheet and script, built into the binary (no build step, no CDN).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};

const CSS: &str = include_str!("../../console/static/console.css");
const JS: &str = include_str!("../../console/static/console.js");

/// `GET /console/static/{file}`: cached for an hour.
pub(super) async fn serve(req: HttpRequest) -> HttpResponse {
    let (body, mime) = match req.match_info().get("file") {
        Some("console.css") => (CSS, "text/css; charset=utf-8"),
        Some("console.js") => (JS, "text/javascript; charset=utf-8"),
        _ => return HttpResponse::NotFound().finish(),
    };
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, mime))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(body)
}
