//! `GET /v1/Rooms`: an account's rooms with Twilio's filters, a keyset page at a time.

use super::error::DbError;
use super::list::{self, Listing, Page};
use super::rooms::{RoomRow, COLUMNS};
use crate::domain::room::{RoomStatus, UniqueName};
use crate::twilio::paging::PageRequest;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// The list filters of `GET /v1/Rooms`.
#[derive(Debug, Clone)]
pub struct RoomFilter {
    pub status: RoomStatus,
    pub unique_name: Option<UniqueName>,
    pub created_on_or_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
}

const LISTING: Listing = Listing {
    table: "rooms",
    columns: COLUMNS,
    order_by: "date_created",
    descending: true,
};

/// A page of the account's rooms, newest first, keyset-paged on `(date_created, sid)`.
pub async fn list<'q>(
    conn: &mut PgConnection,
    account_sid: &'q str,
    filter: &'q RoomFilter,
    page: &'q PageRequest,
) -> Result<Page<RoomRow>, DbError> {
    list::page(
        conn,
        &LISTING,
        &[("account_sid", account_sid)],
        |q| {
            q.push(" AND status = ").push_bind(filter.status.as_str());
            if let Some(name) = &filter.unique_name {
                q.push(" AND unique_name = ").push_bind(&**name);
            }
            list::push_created(q, filter.created_on_or_after, filter.created_before);
        },
        page,
    )
    .await
}
