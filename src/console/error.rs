//! What a console request that cannot go on gets: a way to sign in, a refusal of a post from
//! another site, or the API's own error worded on a page (never a Twilio JSON body).

use super::views::ErrorPage;
use crate::twilio::ApiError;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

#[derive(Debug)]
pub enum ConsoleError {
    /// No live session: to the sign-in page.
    SignIn,
    /// A form post from another site, or without this session's CSRF token.
    CrossSite,
    Api(ApiError),
}

impl From<ApiError> for ConsoleError {
    fn from(e: ApiError) -> Self {
        ConsoleError::Api(e)
    }
}

impl From<sqlx::Error> for ConsoleError {
    fn from(e: sqlx::Error) -> Self {
        ConsoleError::Api(e.into())
    }
}

impl From<crate::db::DbError> for ConsoleError {
    fn from(e: crate::db::DbError) -> Self {
        ConsoleError::Api(e.into())
    }
}

impl std::fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConsoleError::SignIn => f.write_str("not signed in"),
            ConsoleError::CrossSite => f.write_str("cross-site form post refused"),
            ConsoleError::Api(e) => e.fmt(f),
        }
    }
}

/// An HTML page, as every console answer is.
pub fn html(mut builder: actix_web::HttpResponseBuilder, page: &impl Template) -> HttpResponse {
    match page.render() {
        Ok(body) => builder
            .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
            .body(body),
        Err(e) => ConsoleError::Api(ApiError::internal(e)).error_response(),
    }
}

/// A template's text (a live fragment).
pub fn render(t: impl Template) -> Result<String, ConsoleError> {
    t.render()
        .map_err(|e| ConsoleError::Api(ApiError::internal(e)))
}

/// `303 See Other` to `to` (after a form post, or to sign in).
pub fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            ConsoleError::SignIn => StatusCode::SEE_OTHER,
            ConsoleError::CrossSite => StatusCode::FORBIDDEN,
            ConsoleError::Api(e) => e.status(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (title, message) = match self {
            ConsoleError::SignIn => return see_other("/console/sign-in"),
            ConsoleError::CrossSite => (
                "Refused",
                "This form was not sent from this console's own page (or its page is too old): \
                 nothing was changed. Reload the page and try again."
                    .to_string(),
            ),
            ConsoleError::Api(ApiError::Internal(e)) => {
                tracing::error!(error = %format!("{e:#}"), "console request failed");
                ("Something went wrong", "An internal error occurred.".into())
            }
            ConsoleError::Api(e) => ("That did not work", e.message().to_string()),
        };
        let mut builder = HttpResponse::build(self.status_code());
        if let ConsoleError::Api(ApiError::TooManyRequests { retry_after }) = self {
            builder.insert_header((header::RETRY_AFTER, retry_after.to_string()));
        }
        let page = ErrorPage {
            nav: None,
            title: title.into(),
            message,
            back: "/console/rooms".into(),
        };
        html(builder, &page)
    }
}
