//! `GET /v1/Rooms`: Twilio's filters, newest first, keyset-paged.

use super::resource::{RoomResource, ROOM_JSON_BYTES};
use crate::auth::authenticator::Account;
use crate::db::list::Page;
use crate::db::room_list::{self, RoomFilter};
use crate::domain::room::{RoomStatus, UniqueName};
use crate::domain::sid;
use crate::http::respond::ListPage;
use crate::http::state::AppState;
use crate::twilio::form::Params;
use crate::twilio::paging::PageRequest;
use crate::twilio::time;
use crate::twilio::ApiError;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};

/// The filters as given, in the order every paging URL repeats them.
pub type EchoedFilters = Vec<(&'static str, String)>;

/// The filter, or `None` when it can match no room (a `UniqueName` no room can have, e.g. with
/// NUL): such a list is empty, and is not sent to the database.
pub(crate) fn list_filter(
    params: &Params,
) -> Result<(Option<RoomFilter>, EchoedFilters), ApiError> {
    let mut echo: EchoedFilters = Vec::new();
    let status = match params.single("Status")? {
        None => RoomStatus::InProgress,
        Some(s) => {
            let status = RoomStatus::parse(s).ok_or_else(|| {
                ApiError::invalid_parameter("Status must be one of in-progress, completed, failed")
            })?;
            echo.push(("Status", s.to_string()));
            status
        }
    };
    let unique_name = params.single("UniqueName")?;
    if let Some(n) = unique_name {
        echo.push(("UniqueName", n.to_string()));
    }
    let unique_name = unique_name.map(UniqueName::parse).transpose();
    let created_on_or_after = date_filter(params, "DateCreatedAfter", &mut echo)?;
    let created_before = date_filter(params, "DateCreatedBefore", &mut echo)?;
    let filter = unique_name.ok().map(|unique_name| RoomFilter {
        status,
        unique_name,
        created_on_or_after,
        created_before,
    });
    Ok((filter, echo))
}

/// A date filter (`DateCreatedAfter`, `DateCreatedBefore`), echoed when given.
pub fn date_filter(
    params: &Params,
    key: &'static str,
    echo: &mut EchoedFilters,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    params
        .single(key)?
        .map(|v| {
            let t = time::parse_filter(key, v)?;
            echo.push((key, v.to_string()));
            Ok(t)
        })
        .transpose()
}

pub async fn list(
    req: HttpRequest,
    account: Account,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string().as_bytes())?;
    let (filter, echo) = list_filter(&params)?;
    let page = PageRequest::from_params(&params, sid::ROOM)?;

    let found = match &filter {
        Some(filter) => {
            state
                .pool
                .run(async |c| room_list::list(c, &account.sid, filter, &page).await)
                .await?
        }
        None => Page {
            rows: Vec::new(),
            more_beyond: false,
        },
    };

    let list = ListPage {
        path: "/v1/Rooms",
        key: "rooms",
        filters: &echo,
        item_bytes: ROOM_JSON_BYTES,
    };
    Ok(list.respond(&state.public_url, &page, &found, |r| {
        RoomResource::new(r, &state.public_url)
    }))
}
