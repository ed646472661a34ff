//! Twilio lists, for any table: keyset paging on `(ordering column, sid)` within an owner scope
//! (the account, and for sub-resources the parent), with the filters a resource adds.
//!
//! A page token names a row by SID; the row's position is looked up by primary key inside the
//! same statement, and the page continues strictly after (or before) it, so a deep page costs
//! what the first one does.

use super::error::DbError;
use crate::twilio::error::code;
use crate::twilio::paging::{Cursor, PageRequest};
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, Postgres, QueryBuilder};

/// What a resource's list reads.
pub struct Listing {
    pub table: &'static str,
    pub columns: &'static str,
    /// The ordering column; ties are broken by `sid`.
    pub order_by: &'static str,
    /// Newest first (rooms), or oldest first.
    pub descending: bool,
}

/// One page in display order, and whether rows lie beyond it in the direction it was read.
pub struct Page<R> {
    pub rows: Vec<R>,
    pub more_beyond: bool,
}

/// Twilio's `DateCreatedAfter` (inclusive) and `DateCreatedBefore` (exclusive) filters, for
/// those given, as further conditions on `date_created`.
pub fn push_created<'q>(
    q: &mut QueryBuilder<'q, Postgres>,
    on_or_after: Option<chrono::DateTime<chrono::Utc>>,
    before: Option<chrono::DateTime<chrono::Utc>>,
) {
    if let Some(t) = on_or_after {
        q.push(" AND date_created >= ").push_bind(t);
    }
    if let Some(t) = before {
        q.push(" AND date_created < ").push_bind(t);
    }
}

/// Reads one page of `listing`. `owner` holds the text columns every row (and the token's row)
/// must match, e.g. `[("account_sid", account)]`; `filters` pushes further `AND ...`
/// conditions. A token naming no row in the owner scope is 21481.
pub async fn page<'q, R>(
    conn: &mut PgConnection,
    listing: &Listing,
    owner: &[(&'static str, &'q str)],
    filters: impl FnOnce(&mut QueryBuilder<'q, Postgres>),
    page: &'q PageRequest,
) -> Result<Page<R>, DbError>
where
    R: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    let Listing {
        table,
        columns,
        order_by,
        descending,
    } = *listing;
    let token_sid = match &page.cursor {
        Cursor::Start => None,
        Cursor::After(sid) | Cursor::Before(sid) => Some(sid.as_str()),
    };
    let backwards = matches!(page.cursor, Cursor::Before(_));
    // Reading backwards runs the other way, and the page is reversed afterwards.
    let descending_now = descending != backwards;

    let mut q: QueryBuilder<'q, Postgres> =
        QueryBuilder::new(format!("SELECT {columns} FROM {table} WHERE true"));
    push_owner(&mut q, "", owner);
    filters(&mut q);
    if let Some(sid) = token_sid {
        // The date is a scalar subquery (an InitPlan, evaluated once), so the row comparison
        // stays an index condition.
        let op = if descending_now { "<" } else { ">" };
        q.push(format!(
            " AND ({order_by}, sid) {op} ((SELECT t.{order_by} FROM {table} t WHERE true"
        ));
        push_owner(&mut q, "t.", owner);
        q.push(" AND t.sid = ").push_bind(sid);
        q.push("), ").push_bind(sid).push(")");
    }
    let dir = if descending_now { "DESC" } else { "ASC" };
    q.push(format!(" ORDER BY {order_by} {dir}, sid {dir}"));
    q.push(" LIMIT ").push_bind(i64::from(page.page_size) + 1);
    if page.offset() > 0 {
        q.push(" OFFSET ")
            .push_bind(i64::try_from(page.offset()).unwrap_or(i64::MAX));
    }
    let mut rows: Vec<R> = q.build_query_as().fetch_all(&mut *conn).await?;
    // An empty page may mean the token names no row of this owner: only then ask.
    if let (true, Some(sid)) = (rows.is_empty(), token_sid) {
        let mut q: QueryBuilder<'q, Postgres> =
            QueryBuilder::new(format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE true"));
        push_owner(&mut q, "", owner);
        q.push(" AND sid = ").push_bind(sid).push(")");
        let known: bool = q.build_query_scalar().fetch_one(&mut *conn).await?;
        if !known {
            return Err(DbError::Refused {
                code: code::INVALID_PAGE_TOKEN,
                message: "Invalid PageToken",
            });
        }
    }
    let more_beyond = rows.len() > page.page_size as usize;
    rows.truncate(page.page_size as usize);
    if backwards {
        rows.reverse();
    }
    Ok(Page { rows, more_beyond })
}

fn push_owner<'q>(
    q: &mut QueryBuilder<'q, Postgres>,
    alias: &str,
    owner: &[(&'static str, &'q str)],
) {
    for (column, value) in owner {
        q.push(format!(" AND {alias}{column} = ")).push_bind(*value);
    }
}
