//! `/v1/TestClock` (a roomd extension): read and advance the authenticated account's test clock.

use super::extract::Form;
use super::respond::json;
use crate::auth::authenticator::Account;
use crate::db::test_clocks::{self, Advance, Advanced};
use crate::http::respond::{get, resource};
use crate::http::state::AppState;
use crate::twilio::time;
use crate::twilio::ApiError;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// The longest single advance: ten years of 366 days, in seconds.
pub const MAX_ADVANCE_SECONDS: i64 = 10 * 366 * 24 * 3600;

const PATH: &str = "/TestClock";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/v1/TestClock")
            .route(get().to(fetch))
            .route(web::post().to(advance)),
    );
}

#[derive(Serialize)]
struct TestClockResource<'a> {
    account_sid: &'a str,
    #[serde(serialize_with = "time::serialize")]
    frozen_time: DateTime<Utc>,
    url: String,
}

fn render(account: &Account, frozen_time: DateTime<Utc>, state: &AppState) -> HttpResponse {
    json(
        HttpResponse::Ok(),
        &TestClockResource {
            account_sid: &account.sid,
            frozen_time,
            url: state.public_url.join("/v1/TestClock"),
        },
        256,
    )
}

/// `GET /v1/TestClock`: the clock's time (404 for an account without one).
async fn fetch(account: Account, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let frozen = state
        .pool
        .run(async |c| test_clocks::frozen_time(c, &account.sid).await)
        .await?
        .ok_or_else(|| super::respond::resource_not_found(PATH))?;
    Ok(render(&account, frozen, &state))
}

/// `POST /v1/TestClock` with `Advance=<seconds>` or `FrozenTime=<ISO-8601>`: moves the clock
/// forward and applies what fell due on the way, all committed before the answer (200, the
/// clock's new time). Never backwards (400 20001).
async fn advance(
    account: Account,
    form: Form,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = form.params().await?;
    let how = match (params.single("Advance")?, params.single("FrozenTime")?) {
        (Some(seconds), None) => Advance::By(parse_advance(seconds)?),
        (None, Some(t)) => Advance::To(time::parse_filter("FrozenTime", t)?),
        _ => return Err(ApiError::invalid_parameter(
            "Either Advance (seconds) or FrozenTime (an ISO-8601 date-time) is required, not both",
        )),
    };
    let frozen_time = advance_clock(&state, &account, how).await?;
    Ok(render(&account, frozen_time, &state))
}

/// Moves `account`'s clock (the REST advance and the console's Advance): its new time.
pub(crate) async fn advance_clock(
    state: &AppState,
    account: &Account,
    how: Advance,
) -> Result<DateTime<Utc>, ApiError> {
    // The advance takes the clock's lock itself (FOR UPDATE); this request's work must not
    // first take it FOR SHARE as the account's other requests do.
    crate::db::request_context::use_test_clock(None);
    let advanced = state
        .pool
        .transaction(async |c| test_clocks::advance(c, &account.sid, how).await)
        .await?;
    match advanced {
        Advanced::Moved {
            frozen_time,
            rooms_ended,
            participants_disconnected,
        } => {
            tracing::info!(account_sid = %account.sid, frozen_time = %frozen_time, rooms_ended, participants_disconnected, "test clock advanced");
            Ok(frozen_time)
        }
        Advanced::Backwards { frozen_time } => Err(ApiError::invalid_parameter(format!(
            "A test clock only moves forward: it reads {}",
            frozen_time.format("%Y-%m-%dT%H:%M:%SZ")
        ))),
        Advanced::TooFar => Err(ApiError::invalid_parameter(
            "A test clock stops at the end of the year 9999",
        )),
        Advanced::NoClock => Err(super::respond::resource_not_found(PATH)),
    }
}

/// `Advance`: whole seconds, 1 to `MAX_ADVANCE_SECONDS`.
pub(crate) fn parse_advance(value: &str) -> Result<i64, ApiError> {
    match value.trim().parse::<i64>() {
        Ok(n) if (1..=MAX_ADVANCE_SECONDS).contains(&n) => Ok(n),
        Ok(n) if n <= 0 => Err(ApiError::invalid_parameter(
            "A test clock only moves forward: Advance must be a positive number of seconds",
        )),
        _ => Err(ApiError::invalid_parameter(format!(
            "Invalid value for Advance: expected whole seconds from 1 to {MAX_ADVANCE_SECONDS}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_takes_positive_whole_seconds_within_ten_years() {
        assert_eq!(parse_advance("301").unwrap(), 301);
        assert_eq!(parse_advance(" 1 ").unwrap(), 1);
        assert_eq!(
            parse_advance(&MAX_ADVANCE_SECONDS.to_string()).unwrap(),
            MAX_ADVANCE_SECONDS
        );
        let over = (MAX_ADVANCE_SECONDS + 1).to_string();
        for bad in ["0", "-5", "1.5", "", "abc", "99999999999999999999", &over] {
            let e = parse_advance(bad).unwrap_err();
            assert_eq!(e.code(), 20001, "{bad}");
        }
    }
}
