//! Twilio's error body `{"code","message","more_info","status"}` and the codes roomd answers with.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use std::fmt;

/// Twilio error codes roomd uses (see the notes' section 3).
pub mod code {
    pub const INVALID_PARAMETER: u32 = 20001;
    pub const AUTHENTICATE: u32 = 20003;
    pub const FORBIDDEN: u32 = 20403;
    pub const METHOD_NOT_ALLOWED: u32 = 20004;
    pub const NOT_FOUND: u32 = 20404;
    pub const TOO_MANY_REQUESTS: u32 = 20429;
    pub const INTERNAL: u32 = 20500;
    pub const UNAVAILABLE: u32 = 20503;
    pub const INVALID_PAGE_TOKEN: u32 = 21481;
    pub const ROOM_NAME_INVALID: u32 = 53100;
    pub const ROOM_NAME_TOO_LONG: u32 = 53101;
    pub const ROOM_NAME_INVALID_CHARACTERS: u32 = 53102;
    pub const MAX_PARTICIPANTS_OUT_OF_RANGE: u32 = 53107;
    pub const ROOM_TYPE_INVALID: u32 = 53108;
    pub const TIMEOUT_OUT_OF_RANGE: u32 = 53109;
    pub const STATUS_CALLBACK_METHOD_INVALID: u32 = 53110;
    pub const STATUS_CALLBACK_INVALID: u32 = 53111;
    pub const ROOM_STATUS_INVALID: u32 = 53112;
    pub const ROOM_EXISTS: u32 = 53113;
    pub const INCOMPATIBLE_PARAMETERS: u32 = 53114;
    pub const MEDIA_REGION_INVALID: u32 = 53115;
    pub const ROOM_COMPLETED: u32 = 53118;
    pub const ROOMS_QUOTA: u32 = 53119;
    pub const PARTICIPANTS_QUOTA: u32 = 53206;
    pub const RECORDING_RULES_INVALID: u32 = 53120;
    pub const MAX_PARTICIPANT_DURATION_OUT_OF_RANGE: u32 = 53123;
    pub const ROOM_FULL: u32 = 53105;
    pub const IDENTITY_INVALID: u32 = 53200;
    pub const IDENTITY_TOO_LONG: u32 = 53201;
    pub const IDENTITY_INVALID_CHARACTERS: u32 = 53202;
    /// Used for a participant that is not connected when an operation needs it to be.
    pub const PARTICIPANT_NOT_CONNECTED: u32 = 53204;
    pub const MAX_PUBLISHED_TRACKS: u32 = 53203;
    pub const SUBSCRIBE_RULES_INVALID: u32 = 53215;
    pub const TRACK_INVALID: u32 = 53300;
    pub const TRACK_NAME_INVALID: u32 = 53301;
    pub const TRACK_NAME_TOO_LONG: u32 = 53302;
    pub const TRACK_NAME_INVALID_CHARACTERS: u32 = 53303;
    pub const TRACK_NAME_DUPLICATED: u32 = 53304;
}

/// Every error roomd returns over HTTP. Client mistakes carry their Twilio code; anything else is
/// `Internal`, logged with its cause chain and shown to the client only as 20500.
#[derive(Debug)]
pub enum ApiError {
    Twilio {
        status: StatusCode,
        code: u32,
        message: String,
    },
    Unauthorized,
    /// Too many failed authentications (or a full verification queue): try again in this many
    /// seconds (`Retry-After`).
    TooManyRequests {
        retry_after: u64,
    },
    Unavailable(anyhow::Error),
    Internal(anyhow::Error),
}

impl ApiError {
    pub fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        ApiError::Twilio {
            status,
            code,
            message: message.into(),
        }
    }

    /// HTTP 400 with the given Twilio code.
    pub fn bad_request(code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// A generic malformed or invalid parameter (20001).
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::bad_request(code::INVALID_PARAMETER, message)
    }

    /// 404 naming the path without the `/v1` prefix, as Twilio does: `/Rooms/RMxxx`.
    pub fn not_found(resource_path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            code::NOT_FOUND,
            format!("The requested resource {resource_path} was not found"),
        )
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(err.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Twilio { status, .. } => *status,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> u32 {
        match self {
            ApiError::Twilio { code, .. } => *code,
            ApiError::Unauthorized => code::AUTHENTICATE,
            ApiError::TooManyRequests { .. } => code::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => code::UNAVAILABLE,
            ApiError::Internal(_) => code::INTERNAL,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            ApiError::Twilio { message, .. } => message,
            ApiError::Unauthorized => "Authenticate",
            ApiError::TooManyRequests { .. } => "Too Many Requests",
            ApiError::Unavailable(_) => "Service is unavailable. Please try again",
            ApiError::Internal(_) => "An internal server error occurred",
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Internal(e) | ApiError::Unavailable(e) => write!(f, "{}: {e:#}", self.code()),
            _ => write!(f, "{} {}", self.code(), self.message()),
        }
    }
}

/// The wire body. Field order is Twilio's. Never carries both `type` and `title`: the official
/// clients would then switch to RFC 9457 handling and raise a different exception class.
#[derive(Serialize)]
pub struct ErrorBody<'a> {
    pub code: u32,
    pub message: &'a str,
    pub more_info: String,
    pub status: u16,
}

pub fn more_info(code: u32) -> String {
    format!("https://www.twilio.com/docs/errors/{code}")
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(e) => tracing::error!(error = format!("{e:#}"), "internal error"),
            ApiError::Unavailable(e) => {
                tracing::warn!(error = format!("{e:#}"), "database unavailable")
            }
            _ => {}
        }
        let status = self.status();
        let body = ErrorBody {
            code: self.code(),
            message: self.message(),
            more_info: more_info(self.code()),
            status: status.as_u16(),
        };
        let mut resp = HttpResponse::build(status);
        match self {
            ApiError::Unauthorized => {
                resp.insert_header((header::WWW_AUTHENTICATE, r#"Basic realm="Twilio API""#));
            }
            ApiError::TooManyRequests { retry_after } => {
                resp.insert_header((header::RETRY_AFTER, retry_after.to_string()));
            }
            _ => {}
        }
        // The rest of an unread body may still be on its way: the connection cannot be reused.
        if status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::PAYLOAD_TOO_LARGE {
            resp.force_close();
        }
        resp.json(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn body_of(e: ApiError) -> serde_json::Value {
        let resp = e.error_response();
        let bytes = resp.into_body().try_into_bytes().unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn the_unauthorized_body_is_twilios() {
        let v = body_of(ApiError::Unauthorized);
        assert_eq!(
            v.to_string(),
            r#"{"code":20003,"message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401}"#
        );
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let v = body_of(ApiError::internal(anyhow::anyhow!("secret detail")));
        assert_eq!(v["code"], 20500);
        assert_eq!(v["status"], 500);
        assert!(!v.to_string().contains("secret detail"));
    }
}
