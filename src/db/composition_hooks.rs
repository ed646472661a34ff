//! Composition hooks (`HK`): an account's templates that compose each of its rooms that ends
//! with recordings. A room that ends is queued by a trigger (`rooms_to_compose`, migration V11)
//! and turned into one composition per enabled hook by `compose_ended_rooms`, in one
//! transaction that any process may run (`SKIP LOCKED`; each hook composes a room once).

use super::callbacks;
use super::compositions::{event, serialize_per_account, EVENT_PARAMS, SPEC_COLUMNS};
use super::error::{DbError, OnConstraint};
use super::list::{self, Listing, Page};
use super::recording_jobs::lock_room;
use crate::domain::composition::{CompositionSpec, Format};
use crate::domain::video_layout::{Layout, Resolution};
use crate::twilio::error::code;
use crate::twilio::paging::PageRequest;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor, PgPool};
use std::sync::LazyLock;

/// The most hooks an account may have (each makes a composition of every room that ends).
pub const MAX_HOOKS: i64 = 20;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HookRow {
    pub sid: String,
    pub account_sid: String,
    pub friendly_name: String,
    pub enabled: bool,
    pub video_layout: sqlx::types::Json<serde_json::Value>,
    pub audio_sources: Vec<String>,
    pub audio_sources_excluded: Vec<String>,
    pub resolution: String,
    pub format: String,
    pub trimmed: bool,
    pub status_callback: Option<String>,
    pub status_callback_method: String,
    pub date_created: DateTime<Utc>,
    pub date_updated: Option<DateTime<Utc>>,
}

impl crate::twilio::paging::HasSid for HookRow {
    fn sid(&self) -> &str {
        &self.sid
    }
}

impl HookRow {
    /// What the hook composes with (stored values were checked when written).
    pub fn spec(&self) -> CompositionSpec {
        CompositionSpec {
            video_layout: serde_json::from_value::<Layout>(self.video_layout.0.clone())
                .unwrap_or_default(),
            audio_sources: self.audio_sources.clone(),
            audio_sources_excluded: self.audio_sources_excluded.clone(),
            resolution: Resolution::parse(&self.resolution).unwrap_or(Resolution::DEFAULT),
            format: Format::parse(&self.format).unwrap_or(Format::Webm),
            trim: self.trimmed,
            status_callback: self.status_callback.clone(),
            status_callback_method: if self.status_callback_method == "GET" {
                "GET"
            } else {
                "POST"
            },
        }
    }
}

const COLUMNS: &str = "sid, account_sid, friendly_name, enabled, video_layout, audio_sources, \
    audio_sources_excluded, resolution, format, trimmed, status_callback, status_callback_method, \
    date_created, date_updated";
const UNIQUE_NAME: &str = "composition_hooks_friendly_name";
const NAME_TAKEN: &str = "A composition hook of this account already has this FriendlyName";

/// Creates a hook; refused (20001) when the name is taken or the account has `MAX_HOOKS`.
pub async fn create(
    conn: &mut PgConnection,
    account_sid: &str,
    friendly_name: &str,
    enabled: bool,
    spec: &CompositionSpec,
) -> Result<HookRow, DbError> {
    serialize_per_account(&mut *conn, "composition hooks", account_sid).await?;
    static CREATE: LazyLock<String> = LazyLock::new(|| {
        format!(
            "INSERT INTO composition_hooks (sid, account_sid, friendly_name, enabled, {SPEC_COLUMNS}) \
             SELECT 'HK' || replace(gen_random_uuid()::text, '-', ''), $1, $2, $3, $4, $5, $6, $7, \
                $8, $9, $10, $11 \
             WHERE (SELECT count(*) FROM composition_hooks WHERE account_sid = $1) < $12 \
             RETURNING {COLUMNS}"
        )
    });
    bind_spec(
        sqlx::query_as(&CREATE)
            .bind(account_sid)
            .bind(friendly_name)
            .bind(enabled),
        spec,
    )
    .bind(MAX_HOOKS)
    .fetch_optional(conn)
    .await
    .on_constraint(UNIQUE_NAME, code::INVALID_PARAMETER, NAME_TAKEN)?
    .ok_or(DbError::Refused {
        code: code::INVALID_PARAMETER,
        message: "The account has as many composition hooks as roomd allows (20)",
    })
}

fn bind_spec<'q, O>(
    q: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    spec: &'q CompositionSpec,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    q.bind(sqlx::types::Json(spec.layout_json()))
        .bind(&spec.audio_sources)
        .bind(&spec.audio_sources_excluded)
        .bind(spec.resolution.to_string())
        .bind(spec.format.as_str())
        .bind(spec.trim)
        .bind(&spec.status_callback)
        .bind(spec.status_callback_method)
}

/// Replaces a hook's settings; `None` when the account has no such hook.
pub async fn update(
    conn: &mut PgConnection,
    account_sid: &str,
    sid: &str,
    friendly_name: &str,
    enabled: bool,
    spec: &CompositionSpec,
) -> Result<Option<HookRow>, DbError> {
    static UPDATE: LazyLock<String> = LazyLock::new(|| {
        format!(
            "UPDATE composition_hooks SET friendly_name = $3, enabled = $4, ({SPEC_COLUMNS}) = \
                ($5, $6, $7, $8, $9, $10, $11, $12), date_updated = roomd_now() \
             WHERE account_sid = $1 AND sid = $2 RETURNING {COLUMNS}"
        )
    });
    bind_spec(
        sqlx::query_as(&UPDATE)
            .bind(account_sid)
            .bind(sid)
            .bind(friendly_name)
            .bind(enabled),
        spec,
    )
    .fetch_optional(conn)
    .await
    .on_constraint(UNIQUE_NAME, code::INVALID_PARAMETER, NAME_TAKEN)
}

/// One of the account's hooks; with `lock`, locked for an update in the caller's transaction.
pub async fn find(
    db: impl PgExecutor<'_>,
    account_sid: &str,
    sid: &str,
    lock: bool,
) -> Result<Option<HookRow>, sqlx::Error> {
    static FIND: LazyLock<[String; 2]> = LazyLock::new(|| {
        let sql =
            format!("SELECT {COLUMNS} FROM composition_hooks WHERE account_sid = $1 AND sid = $2");
        [sql.clone(), format!("{sql} FOR UPDATE")]
    });
    sqlx::query_as(&FIND[usize::from(lock)])
        .bind(account_sid)
        .bind(sid)
        .fetch_optional(db)
        .await
}

/// Deletes a hook; whether it existed. Its compositions stay.
pub async fn delete(
    db: impl PgExecutor<'_>,
    account_sid: &str,
    sid: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM composition_hooks WHERE account_sid = $1 AND sid = $2")
        .bind(account_sid)
        .bind(sid)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The filters of the hook list (besides `FriendlyName`, an `ILIKE` pattern).
#[derive(Debug, Default, Clone)]
pub struct HookFilter {
    pub enabled: Option<bool>,
    pub created_on_or_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
}

const LISTING: Listing = Listing {
    table: "composition_hooks",
    columns: COLUMNS,
    order_by: "date_created",
    descending: true,
};

pub async fn list<'q>(
    conn: &mut PgConnection,
    account_sid: &'q str,
    filter: &'q HookFilter,
    like: Option<&'q str>,
    page: &'q PageRequest,
) -> Result<Page<HookRow>, DbError> {
    list::page(
        conn,
        &LISTING,
        &[("account_sid", account_sid)],
        |q| {
            if let Some(e) = filter.enabled {
                q.push(" AND enabled = ").push_bind(e);
            }
            if let Some(pattern) = like {
                q.push(" AND friendly_name ILIKE ")
                    .push_bind(pattern)
                    .push(" ESCAPE '\\'");
            }
            list::push_created(q, filter.created_on_or_after, filter.created_before);
        },
        page,
    )
    .await
}

/// Makes the compositions of up to `limit` ended rooms queued for the hooks (one per enabled
/// hook of the room's account, with `composition-enqueued`), each room in a transaction of its
/// own. Returns the compositions made.
pub async fn compose_ended_rooms(pool: &PgPool, limit: i64) -> Result<u64, sqlx::Error> {
    static MAKE: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH c AS ( \
                INSERT INTO compositions (sid, account_sid, room_sid, hook_sid, {SPEC_COLUMNS}) \
                SELECT 'CJ' || replace(gen_random_uuid()::text, '-', ''), h.account_sid, $1, h.sid, \
                    {h_spec} \
                FROM composition_hooks h JOIN rooms r ON r.account_sid = h.account_sid \
                WHERE r.sid = $1 AND h.enabled \
                ON CONFLICT DO NOTHING RETURNING *), \
             {events} \
             SELECT count(*) FROM c",
            h_spec = SPEC_COLUMNS
                .split(", ")
                .map(|c| format!("h.{c}"))
                .collect::<Vec<_>>()
                .join(", "),
            events = callbacks::enqueue(&[event("'composition-enqueued'", EVENT_PARAMS, "")]),
        )
    });
    let mut made = 0;
    for _ in 0..limit {
        let n = crate::db::transaction(pool, async |c| {
            let room: Option<String> = sqlx::query_scalar(
                "DELETE FROM rooms_to_compose WHERE room_sid = (SELECT room_sid \
                    FROM rooms_to_compose ORDER BY date_created LIMIT 1 FOR UPDATE SKIP LOCKED) \
                 RETURNING room_sid",
            )
            .fetch_optional(&mut *c)
            .await?;
            let Some(room) = room else {
                return Ok(None);
            };
            lock_room(&mut *c, &room).await?;
            let n: i64 = sqlx::query_scalar(&MAKE)
                .bind(&room)
                .fetch_one(&mut *c)
                .await?;
            Ok(Some(n as u64))
        })
        .await?;
        match n {
            Some(n) => made += n,
            None => break,
        }
    }
    Ok(made)
}
