//! `POST /v1/Media/Nodes/{Node}/Events` (a roomd extension, for Janus only): a media node's
//! event handler posts its events here, HTTP Basic as the node's name with the node's admin
//! secret. The events change the database (in order, each idempotent), then roomd
//! answers 200 and tells Janus what they call for.

use super::extract::read_body;
use super::state::AppState;
use crate::twilio::ApiError;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;

/// The largest batch of events read (Janus groups what queued while roomd was away).
const MAX_EVENTS_BYTES: usize = 4 << 20;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::respond::resource("/v1/Media/Nodes/{node}/Events").route(web::post().to(events)),
    );
}

async fn events(
    req: HttpRequest,
    node: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let Some(plane) = state.media.clone() else {
        return Err(super::respond::resource_not_found(req.path()));
    };
    let node = node.into_inner();
    if !authenticated(&req, &node, &plane).await {
        return Err(ApiError::Unauthorized);
    }
    let body = read_body(&req, payload, MAX_EVENTS_BYTES).await?;
    let events = match serde_json::from_slice(&body) {
        Ok(serde_json::Value::Array(events)) => events,
        Ok(event @ serde_json::Value::Object(_)) => vec![event],
        _ => {
            return Err(ApiError::invalid_parameter(
                "The body must be a Janus event or an array of them",
            ))
        }
    };
    let replies = crate::media::events::apply(&plane, &plane.pool, &node, &events).await?;
    if !replies.is_empty() {
        tokio::spawn(async move {
            match plane.node(&node).await {
                Ok(n) => crate::media::replies::reply(&plane, &n.admin, replies).await,
                Err(e) => tracing::warn!(error = %e, "answering a media node's events failed"),
            }
        });
    }
    Ok(HttpResponse::Ok().finish())
}

/// Basic auth as `node` with its events password (a node roomd does not know: refused).
async fn authenticated(req: &HttpRequest, node: &str, plane: &crate::media::MediaPlane) -> bool {
    let Some(encoded) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Ok(decoded) = std::str::from_utf8(&decoded) else {
        return false;
    };
    let Some((user, password)) = decoded.split_once(':') else {
        return false;
    };
    if user != node || crate::db::media_nodes::NodeRow::valid_name(node).is_none() {
        return false;
    }
    plane
        .known_node(node)
        .await
        .is_some_and(|n| n.events_password_matches(password))
}
