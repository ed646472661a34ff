//! Per-request observability: a Twilio-style request id (`RQ` + 32 hex) on every response and
//! on every log line of the request, one access-log line, and the HTTP metrics.

use crate::telemetry::metrics::Metrics;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{web, Error, HttpMessage};
use std::time::Instant;
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder};

pub const REQUEST_ID_HEADER: &str = "twilio-request-id";

/// The id of the request being served.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// The root span of each request: it carries `request_id`, so every event logged while serving
/// the request (in any module) carries it too. No header is recorded, so no credential can be.
pub struct RoomdRootSpan;

impl RootSpanBuilder for RoomdRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let id = crate::domain::sid::generate("RQ");
        let span = tracing::info_span!(
            "request",
            request_id = %id,
            method = %request.method(),
            path = %request.path(),
        );
        request.extensions_mut().insert(RequestId(id));
        span
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

/// Inner middleware (inside the root span): sets the `Twilio-Request-Id` header, counts and times
/// the request by route template, and logs one line per request.
pub async fn observe(
    req: ServiceRequest,
    next: actix_web::middleware::Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let id = req.extensions().get::<RequestId>().cloned();
    let method = method_label(req.method());
    let mut res = crate::db::request_context::with_request_budget(next.call(req)).await?;
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    let status = res.status().as_u16();
    let elapsed = started.elapsed();
    if let Some(RequestId(id)) = id {
        if let Ok(v) = HeaderValue::from_str(&id) {
            res.headers_mut()
                .insert(HeaderName::from_static(REQUEST_ID_HEADER), v);
        }
    }
    if let Some(m) = metrics {
        m.http_requests
            .with_label_values(&[method, &route, &status.to_string()])
            .inc();
        m.http_duration
            .with_label_values(&[&route])
            .observe(elapsed.as_secs_f64());
    }
    tracing::info!(%route, status, latency_ms = elapsed.as_secs_f64() * 1000.0, "request served");
    Ok(res)
}

/// The `method` label: the methods roomd knows, and `other` for anything else (actix accepts any
/// token as a method, and a label per made-up method would grow the series without bound).
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
