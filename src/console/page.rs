//! What every signed-in page shares: its header, and how its live part is answered.

use super::error::ConsoleError;
use super::session::Signed;
use super::views;
use crate::db::test_clocks;
use crate::http::state::AppState;
use actix_web::http::header;
use actix_web::HttpResponse;

/// The header of a signed-in page.
pub(super) async fn nav(
    state: &AppState,
    signed: &Signed,
    section: &'static str,
) -> Result<views::Nav, ConsoleError> {
    let account = signed.account.sid.as_str();
    let clock = state
        .pool
        .run(async |c| test_clocks::exists(c, account).await)
        .await?;
    Ok(views::Nav {
        account: account.to_string(),
        csrf: signed.csrf(),
        clock,
        section,
    })
}

/// A page's live part, with its digest (the script compares it with the one it shows).
pub(super) fn fragment(live: String) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("X-Console-Digest", views::digest(&live)))
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .body(live)
}
