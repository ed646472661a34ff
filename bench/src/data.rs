//! The data a run works on: the preloaded rooms, and the keys each scenario picks from.

use super::*;

pub(crate) async fn preload(pool: &PgPool, rooms: i64, key: &MasterKey) -> Result<()> {
    let hash = roomd::auth::credentials::hash_token(TOKEN);
    for i in 0..ACCOUNTS {
        // Sealed, as the CLI does: status callbacks are signed with it.
        let sealed = key.seal(&account_sid(i), TOKEN.as_bytes());
        roomd::db::accounts::upsert(
            pool,
            &account_sid(i),
            &format!("bench {i}"),
            &hash,
            Some(&sealed),
        )
        .await?;
    }
    // 60% of the rooms in account 0 (so a page 10,000 pages deep exists), the rest over the other
    // 99; every 10th room in progress; created over 100 days.
    let chunk = 100_000;
    let mut start = 0;
    while start < rooms {
        let end = (start + chunk).min(rooms);
        insert_generated(pool, "bench", start, end, false).await?;
        start = end;
    }
    // The benchmark's accounts hold far more live rooms (60,000 in account 0) and participants
    // than an account's default quota: theirs are unlimited, so the quota checks are skipped.
    sqlx::query("UPDATE accounts SET max_rooms_in_progress = 0, max_participants_connected = 0")
        .execute(pool)
        .await?;
    sqlx::query("ANALYZE rooms").execute(pool).await?;
    Ok(())
}

/// Rooms `start..end` named by `tag` (SIDs from md5(tag, n)), in one statement: 60% in account
/// 0, the rest over the other 99; every 10th in progress, or all of them with `all_in_progress`
/// (then all in account 0); created over the last 100 days.
pub(crate) async fn insert_generated(
    pool: &PgPool,
    tag: &str,
    start: i64,
    end: i64,
    all_in_progress: bool,
) -> Result<Vec<String>> {
    // Set-up, not measured: exempt from the statement timeout every roomd connection carries
    // (100,000 rows with every index of `rooms` can take longer on a busy machine).
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL statement_timeout = 0")
        .execute(&mut *tx)
        .await?;
    let sids = sqlx::query_scalar(
            "INSERT INTO rooms (sid, account_sid, status, type, unique_name, status_callback_method, \
                max_participants, max_participant_duration, max_concurrent_published_tracks, \
                record_participants_on_connect, video_codecs, media_region, audio_only, \
                empty_room_timeout, unused_room_timeout, large_room, date_created, date_updated, \
                end_time, duration, end_reason, deadline, deadline_reason) \
             SELECT 'RM' || md5($3 || g), \
                'AC' || lpad(to_hex(CASE WHEN g % 10 < 6 OR $4 THEN 0 ELSE 1 + g % 99 END), 32, '0'), \
                CASE WHEN ip THEN 'in-progress' ELSE 'completed' END, 'group', $3 || '-' || g, 'POST', \
                50, 14400, 0, false, ARRAY['VP8'], 'us1', false, 5, 5, false, created, created, \
                CASE WHEN ip THEN NULL ELSE created + interval '10 minutes' END, \
                CASE WHEN ip THEN NULL ELSE 600 END, CASE WHEN ip THEN NULL ELSE 'rest' END, \
                CASE WHEN ip THEN now() + interval '1 day' END, CASE WHEN ip THEN 'unused_timeout' END \
             FROM (SELECT g, g % 10 = 3 OR $4 AS ip, \
                     now() - (g % 100) * interval '1 day' - (g % 86400) * interval '1 second' AS created \
                   FROM generate_series($1::bigint, $2::bigint - 1) g) s \
             RETURNING sid",
        )
        .bind(start)
        .bind(end)
        .bind(tag)
        .bind(all_in_progress)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(sids)
}

pub(crate) struct Data {
    pub(crate) sids: Arc<Vec<String>>,
    pub(crate) names: Arc<Vec<String>>,
    /// Unique names of ended rooms of account 0 (`Status=completed&UniqueName=`).
    pub(crate) completed_names: Arc<Vec<String>>,
    pub(crate) deep_token: String,
    /// An in-progress room of account 0 with 50 participants connected (and 50 gone).
    pub(crate) crowded_room: String,
}

/// Participants joined per fresh room in a `join` run (the rooms hold 50).
pub(crate) const JOINS_PER_ROOM: u64 = 8;

/// `n` fresh in-progress rooms of account 0 for a `complete` run to end, or a `join` run to join
/// (made untimed, with SQL), so that every timed request acts on a room that is really in
/// progress and has room.
pub(crate) async fn fresh_rooms(pool: &PgPool, n: i64) -> Result<Arc<Vec<String>>> {
    let tag = format!("complete-{:x}", rand_u64());
    // In chunks, each well within the pool's statement timeout.
    let mut sids = Vec::with_capacity(n as usize);
    let mut start = 0;
    while start < n {
        let end = (start + 50_000).min(n);
        sids.extend(insert_generated(pool, &tag, start, end, true).await?);
        start = end;
    }
    Ok(Arc::new(sids))
}

pub(crate) async fn load_data(pool: &PgPool) -> Result<Data> {
    let acct = account_sid(0);
    let in_progress: Vec<(String, String)> = sqlx::query_as(
        "SELECT sid, unique_name FROM rooms WHERE account_sid = $1 AND status = 'in-progress' ORDER BY sid",
    )
    .bind(&acct)
    .fetch_all(pool)
    .await?;
    let completed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rooms WHERE account_sid = $1 AND status = 'completed'",
    )
    .bind(&acct)
    .fetch_one(pool)
    .await?;
    // The room about 10,000 pages of 50 in (or as deep as the data goes).
    let depth = (10_000 * 50).min((completed - 100).max(0));
    let deep_sid: String = sqlx::query_scalar(
        "SELECT sid FROM rooms WHERE account_sid = $1 AND status = 'completed' \
         ORDER BY date_created DESC, sid DESC OFFSET $2 LIMIT 1",
    )
    .bind(&acct)
    .bind(depth)
    .fetch_one(pool)
    .await?;
    let completed_names: Vec<String> = sqlx::query_scalar(
        "SELECT unique_name FROM rooms WHERE account_sid = $1 AND status = 'completed' \
         ORDER BY sid LIMIT 10000",
    )
    .bind(&acct)
    .fetch_all(pool)
    .await?;
    let crowded_room = fresh_rooms(pool, 1).await?[0].clone();
    sqlx::query(
        "WITH joined AS ( \
            INSERT INTO participants (sid, account_sid, room_sid, identity, status, date_created, \
                start_time, end_time, duration, end_reason, deadline) \
            SELECT 'PA' || md5($1 || g), $2, $1, 'user-' || g, \
                CASE WHEN g <= 50 THEN 'connected' ELSE 'disconnected' END, \
                now() - g * interval '1 second', now() - g * interval '1 second', \
                CASE WHEN g > 50 THEN now() END, CASE WHEN g > 50 THEN g END, \
                CASE WHEN g > 50 THEN 'left' END, \
                CASE WHEN g <= 50 THEN now() + interval '4 hours' END \
            FROM generate_series(1, 100) g RETURNING 1) \
         UPDATE rooms SET participants_connected = 50, deadline = NULL, deadline_reason = NULL \
         WHERE sid = $1",
    )
    .bind(&crowded_room)
    .bind(&acct)
    .execute(pool)
    .await?;
    // Each connected participant publishes audio and video; user-1 subscribes with rules.
    sqlx::query(
        "WITH published AS ( \
            INSERT INTO published_tracks (sid, account_sid, room_sid, participant_sid, name, kind) \
            SELECT 'MT' || md5(p.sid || k), p.account_sid, p.room_sid, p.sid, p.identity || '-' || k, k \
            FROM participants p, unnest(ARRAY['audio', 'video']) k \
            WHERE p.room_sid = $1 AND p.status = 'connected' RETURNING 1) \
         UPDATE rooms SET tracks_published = (SELECT count(*) FROM published) WHERE sid = $1",
    )
    .bind(&crowded_room)
    .execute(pool)
    .await?;
    sqlx::query(
        "UPDATE participants SET subscribe_rules = $2, subscribe_rules_updated = now() \
         WHERE room_sid = $1 AND identity = 'user-1' AND status = 'connected'",
    )
    .bind(&crowded_room)
    .bind(subscriber_rules())
    .execute(pool)
    .await?;
    sqlx::query("ANALYZE participants").execute(pool).await?;
    sqlx::query("ANALYZE published_tracks")
        .execute(pool)
        .await?;
    Ok(Data {
        crowded_room,
        sids: Arc::new(in_progress.iter().map(|r| r.0.clone()).collect()),
        names: Arc::new(in_progress.iter().map(|r| r.1.clone()).collect()),
        completed_names: Arc::new(completed_names),
        deep_token: format!("PA{deep_sid}"),
    })
}

/// The crowded room's subscriber's rules: everything but one publisher's video.
pub(crate) fn subscriber_rules() -> serde_json::Value {
    serde_json::json!([
        {"type": "include", "all": true},
        {"type": "exclude", "publisher": "user-2", "kind": "video"}
    ])
}

pub(crate) fn pick(v: &[String], n: u64) -> &str {
    // A cheap scramble so consecutive requests hit scattered rows.
    &v[(n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16) as usize % v.len()]
}

pub(crate) fn rand_u64() -> u64 {
    u64::from_str_radix(&roomd::domain::sid::random_hex32()[..16], 16).unwrap_or(0)
}
