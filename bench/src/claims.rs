//! The dispatcher's claim, timed directly: with no other events queued, and again with a deep
//! backlog of another account's events queued behind receivers that never answer (each room's
//! head waiting out its backoff, everything behind it due). Before issue 20 a claim walked that
//! backlog row by row; now it reads only heads, so the two should cost about the same.

use super::*;
use roomd::db::callback_claims::{claim, ClaimLimits};

#[derive(Serialize)]
pub(crate) struct ClaimCost {
    /// Events queued behind dead receivers in the second measurement.
    pub(crate) backlog_events: i64,
    pub(crate) claims: usize,
    pub(crate) empty_p50_ms: f64,
    pub(crate) empty_p99_ms: f64,
    pub(crate) backlog_p50_ms: f64,
    pub(crate) backlog_p99_ms: f64,
}

/// Rooms of the live account, each with one due event: what every claim takes.
const LIVE_ROOMS: i64 = 50;
/// Events per dead room (its head and the ones queued behind it).
const PER_DEAD_ROOM: i64 = 1000;

pub(crate) async fn run(pool: &PgPool, backlog: i64, claims: usize) -> Result<ClaimCost> {
    let live = account_sid(2);
    let dead = account_sid(1);
    insert_events(pool, &live, "claim-live", LIVE_ROOMS, 1, false).await?;
    let (empty_p50_ms, empty_p99_ms) = time_claims(pool, &live, claims).await?;
    insert_events(
        pool,
        &dead,
        "claim-dead",
        backlog / PER_DEAD_ROOM,
        PER_DEAD_ROOM,
        true,
    )
    .await?;
    sqlx::query("ANALYZE callback_events").execute(pool).await?;
    let (backlog_p50_ms, backlog_p99_ms) = time_claims(pool, &live, claims).await?;
    Ok(ClaimCost {
        backlog_events: backlog / PER_DEAD_ROOM * PER_DEAD_ROOM,
        claims,
        empty_p50_ms,
        empty_p99_ms,
        backlog_p50_ms,
        backlog_p99_ms,
    })
}

/// `rooms` rooms of `account`, each with `per_room` pending events: the first is the room's
/// head (waiting out an hour's backoff when `dead`, due now otherwise), the rest due behind it.
/// Set-up, not measured: in chunks, exempt from the statement timeout.
async fn insert_events(
    pool: &PgPool,
    account: &str,
    tag: &str,
    rooms: i64,
    per_room: i64,
    dead: bool,
) -> Result<()> {
    let chunk = (200_000 / per_room).max(1);
    let mut start = 0;
    while start < rooms {
        let end = (start + chunk).min(rooms);
        let mut tx = pool.begin().await?;
        sqlx::query("SET LOCAL statement_timeout = 0")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "WITH r AS ( \
                INSERT INTO rooms (sid, account_sid, status, type, unique_name, status_callback, \
                    status_callback_method, max_participants, max_participant_duration, \
                    max_concurrent_published_tracks, record_participants_on_connect, video_codecs, \
                    media_region, audio_only, empty_room_timeout, unused_room_timeout, large_room) \
                SELECT 'RM' || md5($2 || g), $1, 'in-progress', 'group', $2 || '-' || g, \
                    'http://127.0.0.1:9/dead', 'POST', 50, 14400, 0, false, ARRAY['VP8'], 'us1', \
                    false, 5, 5, false \
                FROM generate_series($3::bigint, $4::bigint - 1) g RETURNING sid) \
             INSERT INTO callback_events (sid, account_sid, room_sid, sequence_number, event, url, \
                method, params, head, next_attempt) \
             SELECT 'EV' || md5(r.sid || s), $1, r.sid, s, 'participant-connected', \
                'http://127.0.0.1:9/dead', 'POST', \
                jsonb_build_object('RoomSid', r.sid, 'StatusCallbackEvent', 'participant-connected'), \
                s = 0, CASE WHEN s = 0 AND $6 THEN now() + interval '1 hour' ELSE now() END \
             FROM r, generate_series(0, $5::bigint - 1) s",
        )
        .bind(account)
        .bind(tag)
        .bind(start)
        .bind(end)
        .bind(per_room)
        .bind(dead)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        start = end;
    }
    Ok(())
}

/// Claims the live account's due heads `n` times (putting them back between claims, untimed);
/// p50 and p99 of a claim, in ms.
async fn time_claims(pool: &PgPool, live: &str, n: usize) -> Result<(f64, f64)> {
    let limits = ClaimLimits {
        free: 256,
        per_account: 256,
        per_host: 256,
        ..ClaimLimits::default()
    };
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        sqlx::query(
            "UPDATE callback_events SET next_attempt = now() - interval '1 second', attempts = 0 \
             WHERE account_sid = $1",
        )
        .bind(live)
        .execute(pool)
        .await?;
        let t = Instant::now();
        let claimed = claim(pool, &limits, Duration::from_secs(60)).await?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        if claimed.len() as i64 != LIVE_ROOMS {
            bail!("a claim took {} events, not {LIVE_ROOMS}", claimed.len());
        }
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    Ok((at(0.5), at(0.99)))
}
