//! The job side of compositions: a composition is due once every recording of its room is
//! settled; it is claimed under a short lease with `SKIP LOCKED` (each account's oldest due one,
//! accounts taking turns), and the process that composes renews the lease as it goes, so a
//! process that dies leaves it to another claim a lease later. After a few claims it fails.
//! Every change of status writes its status callback in the same statement.

use super::callbacks;
use super::compositions::{event, EVENT_PARAMS};
use super::recording_jobs::lock_room;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use std::sync::LazyLock;
use std::time::Duration;

/// A claimed composition.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Job {
    pub sid: String,
    pub account_sid: String,
    pub room_sid: String,
    pub video_layout: sqlx::types::Json<serde_json::Value>,
    pub audio_sources: Vec<String>,
    pub audio_sources_excluded: Vec<String>,
    pub resolution: String,
    pub format: String,
    pub trimmed: bool,
    /// This claim included.
    pub attempts: i32,
}

/// A recording a composition may use.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Source {
    pub sid: String,
    pub source_sid: String,
    pub track_name: String,
    pub kind: String,
    pub media_path: String,
    pub media_started_at: DateTime<Utc>,
    pub media_ended_at: DateTime<Utc>,
}

/// The room's span in real time, when its account runs on real time (a test clock's room has
/// none: its times are the clock's).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RoomSpan {
    pub date_created: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    pub clocked: bool,
}

const DUE: &str = "status IN ('enqueued', 'processing') AND not_before <= now() \
    AND lease_until < now()";
const SETTLED: &str = "NOT EXISTS (SELECT 1 FROM recordings rec \
    WHERE rec.room_sid = c.room_sid AND rec.status = 'processing')";

/// Claims up to `n` due compositions for `owner` for `lease`.
pub async fn claim(
    pool: &PgPool,
    owner: &str,
    n: i64,
    lease: Duration,
) -> Result<Vec<Job>, sqlx::Error> {
    static CLAIM: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH accounts AS (SELECT DISTINCT account_sid FROM compositions c WHERE {DUE} AND {SETTLED}), \
             due AS ( \
                SELECT d.sid FROM accounts a CROSS JOIN LATERAL ( \
                    SELECT sid, not_before FROM compositions c \
                    WHERE c.account_sid = a.account_sid AND {DUE} AND {SETTLED} \
                    ORDER BY not_before LIMIT 1 FOR UPDATE SKIP LOCKED) d \
                ORDER BY d.not_before LIMIT $3) \
             UPDATE compositions c SET lease_owner = $1, \
                lease_until = now() + make_interval(secs => $2), attempts = c.attempts + 1 \
             FROM due WHERE c.sid = due.sid \
             RETURNING c.sid, c.account_sid, c.room_sid, c.video_layout, c.audio_sources, \
                c.audio_sources_excluded, c.resolution, c.format, c.trimmed, c.attempts"
        )
    });
    sqlx::query_as(&CLAIM)
        .bind(owner)
        .bind(lease.as_secs_f64())
        .bind(n)
        .fetch_all(pool)
        .await
}

/// What a job composes: the room's completed recordings (oldest first) and its span.
pub async fn sources(pool: &PgPool, job: &Job) -> Result<(Vec<Source>, RoomSpan), sqlx::Error> {
    let sources = sqlx::query_as(
        "SELECT sid, source_sid, track_name, kind, media_path, media_started_at, media_ended_at \
         FROM recordings WHERE room_sid = $1 AND status = 'completed' AND media_path IS NOT NULL \
            AND media_ended_at IS NOT NULL \
         ORDER BY media_started_at, sid",
    )
    .bind(&job.room_sid)
    .fetch_all(pool)
    .await?;
    let span = sqlx::query_as("SELECT date_created, end_time, clocked FROM rooms WHERE sid = $1")
        .bind(&job.room_sid)
        .fetch_one(pool)
        .await?;
    Ok((sources, span))
}

type Scalar<'q> = sqlx::query::QueryScalar<'q, sqlx::Postgres, i64, sqlx::postgres::PgArguments>;

/// Runs `statement` (`$1` the job, `$2` the owner, then `binds`) with the job's room locked; the
/// rows it returned (0: the claim was lost, or the composition deleted).
async fn locked<'q>(
    pool: &PgPool,
    job: &'q Job,
    statement: &'q str,
    bind: impl FnOnce(Scalar<'q>) -> Scalar<'q>,
    owner: &'q str,
) -> Result<i64, sqlx::Error> {
    crate::db::transaction(pool, async |c| {
        lock_room(c, &job.room_sid).await?;
        bind(sqlx::query_scalar(statement).bind(&job.sid).bind(owner))
            .fetch_one(&mut *c)
            .await
    })
    .await
}

/// The job starts (its first claim: `processing`, with `composition-started`), or goes on.
/// `false` when the claim was lost.
pub async fn start(pool: &PgPool, job: &Job, owner: &str) -> Result<bool, sqlx::Error> {
    static START: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH old AS (SELECT status FROM compositions WHERE sid = $1), \
             c AS (UPDATE compositions SET status = 'processing' \
                WHERE sid = $1 AND lease_owner = $2 AND status IN ('enqueued', 'processing') \
                RETURNING *), \
             {events} \
             SELECT count(*) FROM c",
            events = callbacks::enqueue(&[event(
                "'composition-started'",
                EVENT_PARAMS,
                "(SELECT status FROM old) = 'enqueued'"
            )]),
        )
    });
    Ok(locked(pool, job, &START, |q| q, owner).await? == 1)
}

/// Renews the claim for `lease`, and writes `composition-progress` when `report` (the caller
/// spaces them out). `false` when the claim was lost (stop composing).
pub async fn progress(
    pool: &PgPool,
    job: &Job,
    owner: &str,
    lease: Duration,
    report: Option<(u32, u32)>,
) -> Result<bool, sqlx::Error> {
    static PROGRESS: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH c AS (UPDATE compositions SET lease_until = now() + make_interval(secs => $3), \
                progress_at = CASE WHEN $4 THEN now() ELSE progress_at END \
                WHERE sid = $1 AND lease_owner = $2 AND status = 'processing' RETURNING *), \
             {events} \
             SELECT count(*) FROM c",
            events = callbacks::enqueue(&[event(
                "'composition-progress'",
                "'CompositionSid', c.sid, 'CompositionUri', '/v1/Compositions/' || c.sid, \
                 'PercentageDone', $5::text, 'SecondsRemaining', $6::text",
                "$4"
            )]),
        )
    });
    let (percent, remaining) = report.unwrap_or((0, 0));
    let n = locked(
        pool,
        job,
        &PROGRESS,
        |q| {
            q.bind(lease.as_secs_f64())
                .bind(report.is_some())
                .bind(percent as i32)
                .bind(remaining as i32)
        },
        owner,
    )
    .await?;
    Ok(n == 1)
}

/// Records a composed file with `composition-available`. `false` when the claim was lost or the
/// composition deleted meanwhile: the file is then not its.
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
            "WITH c AS ( \
                UPDATE compositions SET status = 'completed', duration = $3, size = $4, \
                    bitrate = CASE WHEN $3 > 0 THEN ($4 * 8 / 1000 / $3)::integer ELSE 0 END, \
                    media_path = $5, lease_owner = NULL, lease_until = '-infinity', \
                    date_completed = roomd_now() \
                WHERE sid = $1 AND lease_owner = $2 AND status = 'processing' RETURNING *), \
             {events} \
             SELECT count(*) FROM c",
            events = callbacks::enqueue(&[event(
                "'composition-available'",
                "'CompositionSid', c.sid, 'CompositionUri', '/v1/Compositions/' || c.sid, \
                 'MediaUri', '/v1/Compositions/' || c.sid || '/Media', \
                 'Duration', c.duration::text, 'Size', c.size::text",
                ""
            )]),
        )
    });
    let n = locked(
        pool,
        job,
        &COMPLETE,
        |q| q.bind(duration).bind(size).bind(media_path),
        owner,
    )
    .await?;
    Ok(n == 1)
}

/// Records a failed attempt: due again after `retry_in`, unless this was its last claim
/// (`max_attempts`) or `permanent`: then `failed`, with `composition-failed`. Whether it failed
/// for good.
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
            "WITH c AS ( \
                UPDATE compositions SET failure = $3, lease_owner = NULL, lease_until = '-infinity', \
                    status = CASE WHEN $4 OR attempts >= $5 THEN 'failed' ELSE status END, \
                    not_before = now() + make_interval(secs => $6) \
                WHERE sid = $1 AND lease_owner = $2 AND status = 'processing' RETURNING *), \
             {events} \
             SELECT count(*) FILTER (WHERE status = 'failed') FROM c",
            events = callbacks::enqueue(&[event(
                "'composition-failed'",
                "'CompositionSid', c.sid, 'CompositionUri', '/v1/Compositions/' || c.sid, \
                 'FailedOperation', c.failure",
                "c.status = 'failed'"
            )]),
        )
    });
    let n = locked(
        pool,
        job,
        &FAIL,
        |q| {
            q.bind(failure)
                .bind(permanent)
                .bind(max_attempts)
                .bind(retry_in.as_secs_f64())
        },
        owner,
    )
    .await?;
    Ok(n == 1)
}

/// A process that stops gives its claims back at once.
pub async fn give_back(pool: &PgPool, owner: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE compositions SET lease_owner = NULL, lease_until = '-infinity' \
         WHERE lease_owner = $1 AND status IN ('enqueued', 'processing')",
    )
    .bind(owner)
    .execute(pool)
    .await
    .map(drop)
}
