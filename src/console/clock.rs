//! A test-clock account's clock: what it reads, the rooms in progress on it, and Advance.

use super::error::{html, render, see_other, ConsoleError};
use super::session::{check_post, Signed};
use super::views::{self, ClockLive, ClockPage};
use crate::db::test_clocks::{self, Advance};
use crate::http::extract::Form;
use crate::http::state::AppState;
use crate::http::test_clock::{advance_clock, parse_advance};
use crate::twilio::form::Params;
use crate::twilio::ApiError;
use actix_web::{web, HttpResponse};

async fn live(state: &AppState, signed: &Signed) -> Result<String, ConsoleError> {
    let account = signed.account.sid.as_str();
    let frozen = state
        .pool
        .run(async |c| test_clocks::frozen_time(c, account).await)
        .await?
        .ok_or_else(|| ApiError::not_found("/TestClock"))?;
    let rooms = super::rooms::live(state, account, &Params::default(), true).await?;
    render(ClockLive {
        frozen_time: views::when(frozen),
        rooms,
    })
}

/// `GET /console/clock` (404 for an account on real time).
pub(super) async fn page(
    signed: Signed,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let live = live(&state, &signed).await?;
    let page = ClockPage {
        nav: Some(super::page::nav(&state, &signed, "clock").await?),
        csrf: signed.csrf(),
        digest: views::digest(&live),
        live,
    };
    Ok(html(HttpResponse::Ok(), &page))
}

/// `GET /console/clock/live`.
pub(super) async fn live_part(
    signed: Signed,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    Ok(super::page::fragment(live(&state, &signed).await?))
}

/// `POST /console/clock` with `Advance` (seconds), as `POST /v1/TestClock` takes it.
pub(super) async fn advance(
    req: actix_web::HttpRequest,
    signed: Signed,
    form: Form,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let params = form.params().await?;
    check_post(&req, &signed, &params)?;
    let seconds = parse_advance(params.required("Advance")?)?;
    advance_clock(&state, &signed.account, Advance::By(seconds)).await?;
    Ok(see_other("/console/clock"))
}
