//! The operator's endpoints (no auth): `GET /healthz`, 200 when the database answers and 503
//! otherwise, and `GET /metrics`.

use crate::http::state::AppState;
use actix_web::{web, HttpResponse};
use std::time::Duration;

pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let ping = tokio::time::timeout(
        Duration::from_secs(2),
        state
            .pool
            .run(async |c| sqlx::query("SELECT 1").execute(c).await),
    )
    .await;
    match ping {
        Ok(Ok(_)) => HttpResponse::Ok().json(serde_json::json!({"status": "ok"})),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health check: database unavailable");
            HttpResponse::ServiceUnavailable().json(serde_json::json!({"status": "unavailable"}))
        }
        Err(_) => {
            tracing::warn!("health check: database did not answer within 2 s");
            HttpResponse::ServiceUnavailable().json(serde_json::json!({"status": "unavailable"}))
        }
    }
}

/// `GET /metrics` (no auth): Prometheus text format.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render(&state.pool, &state.pools).await)
}
