//! CORS, for the two resources a browser page calls directly: the join and the leave
//! (`ROOMD_CORS_ORIGINS`). Nothing else answers cross-origin requests.

/// CORS for the join and leave: the listed origins, `POST` with `Authorization` (the Access
/// Token) and a form body; preflights cached for 10 minutes. A request from another origin is
/// served as before, without CORS headers (its browser keeps the answer from the page); no
/// origin listed: no CORS at all.
pub fn join_and_leave(origins: &[String]) -> actix_web::middleware::Condition<actix_cors::Cors> {
    let cors = origins
        .iter()
        .fold(actix_cors::Cors::default(), |cors, origin| {
            cors.allowed_origin(origin)
        })
        .allowed_methods(["GET", "POST"])
        .allowed_headers([
            actix_web::http::header::AUTHORIZATION,
            actix_web::http::header::CONTENT_TYPE,
        ])
        .block_on_origin_mismatch(false)
        .max_age(600);
    actix_web::middleware::Condition::new(!origins.is_empty(), cors)
}
