//! The rooms page: in progress first, then recent (or one status, with the API's filters),
//! refreshed in place; and the Create form.

use super::error::{html, render, see_other, ConsoleError};
use super::session::{check_post, Signed, CSRF_FIELD};
use super::views::{self, RoomFilterForm, RoomLine, RoomSection, RoomsLive, RoomsPage};
use crate::db::room_list::{self, RoomFilter};
use crate::db::rooms::RoomRow;
use crate::db::DbError;
use crate::domain::room::RoomStatus;
use crate::http::extract::Form;
use crate::http::rooms::list::list_filter;
use crate::http::state::AppState;
use crate::twilio::form::{encode, Params};
use crate::twilio::paging::{Cursor, PageRequest};
use actix_web::{web, HttpRequest, HttpResponse};
use sqlx::PgConnection;

/// Rooms a section shows at most.
const SHOWN: u32 = 50;
/// The filters the page takes, as the API names them.
const FILTERS: [&str; 4] = [
    "Status",
    "UniqueName",
    "DateCreatedAfter",
    "DateCreatedBefore",
];

fn first(n: u32) -> PageRequest {
    PageRequest {
        page_size: n,
        page: 0,
        token: None,
        cursor: Cursor::Start,
    }
}

/// The filters of the page's query string, those filled in (the API's parsing reads the four
/// it knows).
fn query(req: &HttpRequest) -> Result<Params, ConsoleError> {
    Ok(Params::parse(req.query_string().as_bytes())?.filled_without(&[]))
}

fn line(r: &RoomRow) -> RoomLine {
    RoomLine {
        sid: r.sid.clone(),
        name: r.unique_name.clone(),
        status: r.status.as_str(),
        kind: r.room_type.as_str(),
        created: views::when(r.date_created),
        duration: r
            .duration
            .map(|d| views::seconds(d.into()))
            .unwrap_or_default(),
    }
}

async fn section(
    c: &mut PgConnection,
    account: &str,
    title: &'static str,
    filter: &RoomFilter,
    n: u32,
) -> Result<(RoomSection, Vec<RoomRow>), DbError> {
    let page = first(n);
    let found = room_list::list(c, account, filter, &page).await?;
    let section = RoomSection {
        title,
        rooms: found.rows.iter().map(line).collect(),
        more: found.more_beyond,
    };
    Ok((section, found.rows))
}

/// The live part of the rooms page for these filters. Without a `Status`, the rooms in
/// progress, then the most recent that ended (completed or failed).
pub(super) async fn live(
    state: &AppState,
    account: &str,
    params: &Params,
    in_progress_only: bool,
) -> Result<String, ConsoleError> {
    let (filter, _) = list_filter(params)?;
    let Some(filter) = filter else {
        return render(RoomsLive { sections: vec![] });
    };
    let given = params.single("Status")?.is_some();
    let sections = state
        .pool
        .run(async |c| -> Result<_, DbError> {
            if given {
                let title = match filter.status {
                    RoomStatus::InProgress => "In progress",
                    RoomStatus::Completed => "Completed",
                    RoomStatus::Failed => "Failed",
                };
                return Ok(vec![section(c, account, title, &filter, SHOWN).await?.0]);
            }
            let (now, _) = section(c, account, "In progress", &filter, SHOWN).await?;
            if in_progress_only {
                return Ok(vec![now]);
            }
            let mut ended = Vec::new();
            let mut more = false;
            for status in [RoomStatus::Completed, RoomStatus::Failed] {
                let f = RoomFilter {
                    status,
                    ..filter.clone()
                };
                let (s, rows) = section(c, account, "", &f, SHOWN / 2).await?;
                more |= s.more;
                ended.extend(rows);
            }
            ended.sort_by(|a, b| (b.date_created, &b.sid).cmp(&(a.date_created, &a.sid)));
            ended.truncate((SHOWN / 2) as usize);
            let recent = RoomSection {
                title: "Recently ended",
                rooms: ended.iter().map(line).collect(),
                more,
            };
            Ok(vec![now, recent])
        })
        .await?;
    render(RoomsLive { sections })
}

fn query_string(params: &Params) -> String {
    FILTERS
        .iter()
        .filter_map(|k| {
            params
                .single(k)
                .ok()
                .flatten()
                .map(|v| format!("{k}={}", encode(v)))
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// `GET /console/rooms`.
pub(super) async fn page(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let params = query(&req)?;
    let live = live(&state, &signed.account.sid, &params, false).await?;
    let value = |k| params.single(k).ok().flatten().unwrap_or("").to_string();
    let page = RoomsPage {
        nav: Some(super::page::nav(&state, &signed, "rooms").await?),
        csrf: signed.csrf(),
        filter: RoomFilterForm {
            status: value("Status"),
            unique_name: value("UniqueName"),
            after: value("DateCreatedAfter"),
            before: value("DateCreatedBefore"),
        },
        live_url: format!("/console/rooms/live?{}", query_string(&params)),
        digest: views::digest(&live),
        live,
    };
    Ok(html(HttpResponse::Ok(), &page))
}

/// `GET /console/rooms/live`: the live part alone, for the page's script.
pub(super) async fn live_part(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let params = query(&req)?;
    let live = live(&state, &signed.account.sid, &params, false).await?;
    Ok(super::page::fragment(live))
}

/// `POST /console/rooms`: creates a room with the form's Twilio parameters, then shows it.
pub(super) async fn create(
    req: HttpRequest,
    signed: Signed,
    form: Form,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let params = form.params().await?;
    check_post(&req, &signed, &params)?;
    let params = params.filled_without(&[CSRF_FIELD]);
    let row = crate::http::rooms::create_room(&state, &signed.account.sid, &params).await?;
    Ok(see_other(&format!("/console/rooms/{}", row.sid)))
}
