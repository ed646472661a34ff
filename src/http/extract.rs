//! What handlers read from a request beyond authentication: the form body (bounded in size and
//! time, read only after every other extractor succeeded) and strictly decoded path segments.

use crate::http::respond::resource_not_found;
use crate::twilio::error::code;
use crate::twilio::form::{percent_decode, Params};
use crate::twilio::ApiError;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;

/// The largest request body roomd reads.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Reads a form-encoded body of at most 64 KiB, within the body timeout (`ROOMD_BODY_TIMEOUT`):
/// a client that trickles its body, or declares more than it sends, gets 408 and its connection
/// closed instead of holding it. A body with another Content-Type is refused; an empty body needs
/// none (curl -X POST sends none).
pub async fn read_form(req: &HttpRequest, payload: web::Payload) -> Result<Params, ApiError> {
    let body = read_body(req, payload, MAX_BODY_BYTES).await?;
    if !body.is_empty() {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = content_type.split(';').next().unwrap_or("").trim();
        if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code::INVALID_PARAMETER,
                "Content-Type must be application/x-www-form-urlencoded",
            ));
        }
    }
    Params::parse(&body)
}

/// Reads a body of at most `max` bytes within the body timeout (413 and 408 otherwise).
pub async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    max: usize,
) -> Result<web::BytesMut, ApiError> {
    let timeout = req
        .app_data::<web::Data<crate::http::state::AppState>>()
        .map_or(crate::http::state::DEFAULT_BODY_TIMEOUT, |s| s.body_timeout);
    let read = async {
        let payload = &mut payload;
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::invalid_parameter(format!("Could not read the request body: {e}"))
            })?;
            if body.len() + chunk.len() > max {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    code::INVALID_PARAMETER,
                    format!("Request body is larger than {} KiB", max / 1024),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                code::INVALID_PARAMETER,
                format!(
                    "The request body did not arrive within {} s",
                    timeout.as_secs()
                ),
            ))
        })
}

/// A form-encoded request body, not yet read. actix-web polls a handler's extractors together,
/// so reading it here would parse (and answer 400/413/415 for) an unauthenticated client's
/// body before its credentials were checked; the handler reads it with `params` instead, once
/// every other extractor (authentication first) has succeeded.
pub struct Form {
    req: HttpRequest,
    payload: web::Payload,
}

impl Form {
    /// The body's parameters, read by `read_form` (bounded in size and time).
    pub async fn params(self) -> Result<Params, ApiError> {
        read_form(&self.req, self.payload).await
    }
}

impl actix_web::FromRequest for Form {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        // Taking the payload stream reads nothing, and cannot fail.
        let payload = web::Payload::from_request(req, payload)
            .into_inner()
            .map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")));
        std::future::ready(payload.map(|payload| Form {
            req: req.clone(),
            payload,
        }))
    }
}

/// A path parameter, percent-decoded once, strictly, from the raw path (no `+` rule in paths).
/// actix-router's own decoding turns invalid UTF-8 such as `%FF` into U+FFFD, which could name a
/// room called "\u{FFFD}"; a segment that is not UTF-8 cannot name anything, so it is a 404 like
/// any other unknown name.
pub fn path_segment(req: &HttpRequest, name: &str) -> Result<String, ApiError> {
    let not_found = || {
        let path = req.path();
        resource_not_found(path.strip_prefix("/v1").unwrap_or(path))
    };
    let placeholder = format!("{{{name}}}");
    let index = req
        .match_pattern()
        .and_then(|p| p.split('/').position(|s| s == placeholder))
        .ok_or_else(not_found)?;
    let raw = req
        .uri()
        .path()
        .split('/')
        .nth(index)
        .ok_or_else(not_found)?;
    // No name or SID holds NUL (text cannot store it), so such a segment names nothing.
    percent_decode(raw.as_bytes(), false)
        .filter(|s| !s.contains('\0'))
        .ok_or_else(not_found)
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn path_segments_keep_plus_signs() {
        assert_eq!(percent_decode(b"a%20b+c", false).as_deref(), Some("a b+c"));
        assert_eq!(percent_decode(b"%2Fx", false).as_deref(), Some("/x"));
        assert_eq!(percent_decode(b"%zz", false), None);
        assert_eq!(percent_decode(b"%+1", false), None);
        assert_eq!(percent_decode(b"%ff", false), None);
    }
}
