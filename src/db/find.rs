//! Finding one row by the first of several keys (a SID, then a name), on one connection.

use sqlx::postgres::PgRow;

/// The row the first of `tries` finds: each a statement taking `$1`, `$2` (the `scope`, e.g. the
/// account and the parent) and `$3` (the value a path segment may be, e.g. a SID then a name),
/// tried in order on one connection.
pub async fn first_found<R>(
    conn: &mut sqlx::PgConnection,
    scope: [&str; 2],
    tries: impl IntoIterator<Item = (&str, &str)>,
) -> Result<Option<R>, sqlx::Error>
where
    R: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
{
    for (sql, value) in tries {
        let found = sqlx::query_as(sql)
            .bind(scope[0])
            .bind(scope[1])
            .bind(value)
            .fetch_optional(&mut *conn)
            .await?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}
