//! The conversion side of recordings: a segment that ended is a job (`status = 'processing'`,
//! `media_ended_at` set), claimed under a lease with `SKIP LOCKED` (each account's oldest due
//! one, accounts taking turns), so that several processes convert each segment once and a
//! process that dies mid-way leaves it to the next claim. Its end (`completed` or `failed`) and
//! its status callback commit together.

use super::callbacks;
use super::recordings::{ended_event, COMPLETED_PARAMS, FAILED_PARAMS};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use std::sync::LazyLock;
use std::time::Duration;

/// A claimed conversion.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Job {
    pub sid: String,
    pub account_sid: String,
    pub room_sid: String,
    pub participant_sid: String,
    pub kind: String,
    pub codec: String,
    pub media_mindex: i32,
    pub media_started_at: DateTime<Utc>,
    pub media_ended_at: DateTime<Utc>,
    /// The node's stream file, when the node said which it is.
    pub media_file: Option<String>,
    /// This claim included.
    pub attempts: i32,
}

const DUE: &str = "status = 'processing' AND media_ended_at IS NOT NULL \
    AND not_before <= now() AND lease_until < now()";

/// Claims up to `n` due conversions for `owner` until `lease` from now: the oldest due one of
/// each account with any, oldest first.
pub async fn claim(
    pool: &PgPool,
    owner: &str,
    n: i64,
    lease: Duration,
) -> Result<Vec<Job>, sqlx::Error> {
    static CLAIM: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH accounts AS (SELECT DISTINCT account_sid FROM recordings WHERE {DUE}), \
             due AS ( \
                SELECT d.sid FROM accounts a CROSS JOIN LATERAL ( \
                    SELECT sid, not_before FROM recordings x \
                    WHERE x.account_sid = a.account_sid AND {DUE} \
                    ORDER BY not_before LIMIT 1 FOR UPDATE SKIP LOCKED) d \
                ORDER BY d.not_before LIMIT $3) \
             UPDATE recordings rec SET lease_owner = $1, \
                lease_until = now() + make_interval(secs => $2), attempts = rec.attempts + 1 \
             FROM due WHERE rec.sid = due.sid \
             RETURNING rec.sid, rec.account_sid, rec.room_sid, rec.participant_sid, rec.kind, \
                rec.codec, rec.media_mindex, rec.media_started_at, rec.media_ended_at, \
                rec.media_file, rec.attempts"
        )
    });
    sqlx::query_as(&CLAIM)
        .bind(owner)
        .bind(lease.as_secs_f64())
        .bind(n)
        .fetch_all(pool)
        .await
}

/// Locks the job's room (every statement that writes a room's events locks it first).
pub(super) async fn lock_room(conn: &mut PgConnection, room_sid: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1 FROM rooms WHERE sid = $1 FOR UPDATE")
        .bind(room_sid)
        .execute(conn)
        .await
        .map(drop)
}

/// Records a finished conversion with `recording-completed`. `false` when the claim was lost
/// (its lease passed to another process) or the recording was deleted meanwhile: the file is
/// then not its.
pub async fn complete(
    pool: &PgPool,
    job: &Job,
    owner: &str,
    duration: i32,
    size: i64,
    media_path: &str,
) -> Result<bool, sqlx::Error> {
    static COMPLETE: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH rec AS ( \
                UPDATE recordings SET status = 'completed', duration = $3, size = $4, \
                    media_path = $5, lease_owner = NULL, lease_until = '-infinity', \
                    date_updated = roomd_now() \
                WHERE sid = $1 AND lease_owner = $2 AND status = 'processing' RETURNING *), \
             {events} \
             SELECT count(*) FROM rec",
            events = callbacks::enqueue(&[ended_event("'recording-completed'", &COMPLETED_PARAMS)]),
        )
    });
    crate::db::transaction(pool, async |c| {
        lock_room(c, &job.room_sid).await?;
        let n: i64 = sqlx::query_scalar(&COMPLETE)
            .bind(&job.sid)
            .bind(owner)
            .bind(duration)
            .bind(size)
            .bind(media_path)
            .fetch_one(&mut *c)
            .await?;
        Ok(n == 1)
    })
    .await
}

/// Records a failed attempt: the job is due again after `retry_in`, unless this was its last
/// attempt (`max_attempts`) or `permanent`: then it is `failed`, with `recording-failed`.
/// Returns whether it failed for good.
pub async fn fail(
    pool: &PgPool,
    job: &Job,
    owner: &str,
    failure: &str,
    permanent: bool,
    max_attempts: i32,
    retry_in: Duration,
) -> Result<bool, sqlx::Error> {
    static FAIL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH rec AS ( \
                UPDATE recordings SET failure = $3, lease_owner = NULL, lease_until = '-infinity', \
                    status = CASE WHEN $4 OR attempts >= $5 THEN 'failed' ELSE status END, \
                    not_before = now() + make_interval(secs => $6), \
                    date_updated = CASE WHEN $4 OR attempts >= $5 THEN roomd_now() ELSE date_updated END \
                WHERE sid = $1 AND lease_owner = $2 AND status = 'processing' RETURNING *), \
             {events} \
             SELECT COALESCE(bool_or(status = 'failed'), false) FROM rec",
            events = callbacks::enqueue(&[callbacks::EventSource {
                filter: "rec.status = 'failed'",
                ..ended_event("'recording-failed'", &FAILED_PARAMS)
            }]),
        )
    });
    crate::db::transaction(pool, async |c| {
        lock_room(c, &job.room_sid).await?;
        sqlx::query_scalar(&FAIL)
            .bind(&job.sid)
            .bind(owner)
            .bind(failure)
            .bind(permanent)
            .bind(max_attempts)
            .bind(retry_in.as_secs_f64())
            .fetch_one(&mut *c)
            .await
    })
    .await
}

/// Whether a room's stream files are no longer needed: it ended, and none of its segments is
/// still open or waiting for conversion.
pub async fn room_settled(pool: &PgPool, room_sid: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM rooms WHERE sid = $1 AND status <> 'in-progress') \
            AND NOT EXISTS (SELECT 1 FROM recordings WHERE room_sid = $1 AND status = 'processing')",
    )
    .bind(room_sid)
    .fetch_one(pool)
    .await
}

/// The bytes of converted media the database knows of (the `recordings_bytes` gauge).
pub async fn stored_bytes(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COALESCE(sum(size), 0)::bigint FROM recordings WHERE status = 'completed'",
    )
    .fetch_one(pool)
    .await
}
