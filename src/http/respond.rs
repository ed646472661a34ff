//! How routes are matched and answered: GET-and-HEAD routes, JSON bodies written once, and
//! Twilio's 404 and 405 for everything unrouted.

use crate::db::list::Page;
use crate::twilio::error::code;
use crate::twilio::paging::{self, HasSid, ListBody, PageRequest, PageResult};
use crate::twilio::urls::PublicUrl;
use crate::twilio::ApiError;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

/// A route for GET, and for HEAD, which answers the same without a body (HTTP/1.1 requires
/// both; actix-http leaves the body out of a HEAD response).
pub fn get() -> actix_web::Route {
    web::route().guard(actix_web::guard::Any(actix_web::guard::Get()).or(actix_web::guard::Head()))
}

/// A JSON response, serialized once into a buffer of `capacity` bytes (no regrowth for the
/// expected size).
pub fn json(
    mut response: actix_web::HttpResponseBuilder,
    body: &impl serde::Serialize,
    capacity: usize,
) -> HttpResponse {
    let mut buf = Vec::with_capacity(capacity);
    match serde_json::to_writer(&mut buf, body) {
        Ok(()) => response.content_type(header::ContentType::json()).body(buf),
        Err(e) => ApiError::internal(e).error_response(),
    }
}

/// A 404 for `path`, named as Twilio does: without the `/v1` prefix.
pub fn resource_not_found(path: &str) -> ApiError {
    ApiError::not_found(path)
}

/// Any path no route matches.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    let path = req.path();
    resource_not_found(path.strip_prefix("/v1").unwrap_or(path)).error_response()
}

/// A known path with a method it does not support.
pub async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        code::METHOD_NOT_ALLOWED,
        format!("Method not allowed: {}", req.method()),
    )
    .error_response()
}

/// A list resource's page, as Twilio writes it: `{"<key>": [...], "meta": {...}}`.
pub struct ListPage<'a> {
    /// The list's path (`/v1/Rooms/RM.../Participants`), for the paging URLs.
    pub path: &'a str,
    /// The items' key, and `meta.key`.
    pub key: &'static str,
    /// The filters every paging URL carries, as the request gave them.
    pub filters: &'a [(&'a str, String)],
    /// About what one item's JSON takes, to size the body once.
    pub item_bytes: usize,
}

impl ListPage<'_> {
    /// The page of `found` that `page` asked for, each row rendered by `render`.
    pub fn respond<'r, R: HasSid, T: serde::Serialize>(
        &self,
        base: &PublicUrl,
        page: &PageRequest,
        found: &'r Page<R>,
        render: impl Fn(&'r R) -> T,
    ) -> HttpResponse {
        let result = PageResult::of(page, &found.rows, found.more_beyond);
        let meta = paging::meta(base, self.path, self.key, self.filters, page, result);
        let items: Vec<T> = found.rows.iter().map(render).collect();
        let capacity = (items.len() + 1) * self.item_bytes;
        json(HttpResponse::Ok(), &ListBody { items, meta }, capacity)
    }
}

/// A resource at `path` whose unrouted methods get Twilio's 405.
pub fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}
