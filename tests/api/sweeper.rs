use crate::helpers::{spawn_app, TestApp};
use roomd::workers::sweeper::sweep_once;

async fn expire(app: &TestApp, sid: &str) {
    sqlx::query("UPDATE rooms SET deadline = now() - interval '1 second' WHERE sid = $1")
        .bind(sid)
        .execute(&app.pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_room_created_gets_its_unused_timeout_as_deadline() {
    let app = spawn_app().await;
    let room = app.create_room("UnusedRoomTimeout=7").await;
    let minutes: f64 = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM deadline - date_created)::float8 / 60 FROM rooms WHERE sid = $1",
    )
    .bind(room["sid"].as_str().unwrap())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!((minutes - 7.0).abs() < 0.01, "{minutes}");
}

#[tokio::test]
async fn the_sweeper_ends_an_expired_room_and_leaves_a_live_one_alone() {
    let app = spawn_app().await;
    let expired = app.create_room("UniqueName=stale").await;
    let live = app.create_room("UniqueName=live").await;
    let expired_sid = expired["sid"].as_str().unwrap();
    expire(&app, expired_sid).await;

    let ended = sweep_once(&app.pool, None).await.unwrap().rooms;
    assert_eq!(
        ended.iter().map(|e| e.sid.as_str()).collect::<Vec<_>>(),
        [expired_sid]
    );
    assert_eq!(ended[0].end_reason, "unused_timeout");

    let after = app.get(&format!("/v1/Rooms/{expired_sid}")).await.body;
    assert_eq!(after["status"], "completed");
    assert!(after["end_time"].is_string() && after["duration"].is_i64());
    assert_eq!(
        app.get(&format!("/v1/Rooms/{}", live["sid"].as_str().unwrap()))
            .await
            .body["status"],
        "in-progress"
    );
    // Its name is free again, and a second sweep has nothing to do.
    app.create_room("UniqueName=stale").await;
    assert!(sweep_once(&app.pool, None).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_room_completed_over_rest_is_not_ended_again_by_the_sweeper() {
    let app = spawn_app().await;
    let room = app.create_room("").await;
    let sid = room["sid"].as_str().unwrap();
    let done = app.complete_room(sid).await;
    sqlx::query("UPDATE rooms SET deadline = now() - interval '1 minute', deadline_reason = 'unused_timeout' WHERE sid = $1")
        .bind(sid)
        .execute(&app.pool)
        .await
        .unwrap();
    assert!(sweep_once(&app.pool, None).await.unwrap().is_empty());
    assert_eq!(
        app.get(&format!("/v1/Rooms/{sid}")).await.body["end_time"],
        done["end_time"]
    );
}

#[tokio::test]
async fn two_sweepers_at_once_end_each_room_exactly_once() {
    let app = spawn_app().await;
    crate::helpers::insert_rooms_due_in(&app.pool, &app.account.sid, "bulk", 5000, -60.0).await;
    let (a, b) = tokio::join!(sweep_once(&app.pool, None), sweep_once(&app.pool, None));
    let (a, b) = (a.unwrap().rooms, b.unwrap().rooms);
    assert_eq!(a.len() + b.len(), 5000);
    let mut all: Vec<&str> = a.iter().chain(b.iter()).map(|e| e.sid.as_str()).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 5000, "no room was ended twice");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM rooms WHERE status = 'in-progress'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

/// The room's deadline, as seconds from now, and what it means.
async fn deadline(app: &TestApp, sid: &str) -> (Option<f64>, Option<String>) {
    sqlx::query_as(
        "SELECT EXTRACT(EPOCH FROM deadline - now())::float8, deadline_reason FROM rooms WHERE sid = $1",
    )
    .bind(sid)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

async fn overdue(app: &TestApp, participant_sid: &str) {
    sqlx::query("UPDATE participants SET deadline = now() - interval '1 second' WHERE sid = $1")
        .bind(participant_sid)
        .execute(&app.pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn participants_clear_the_unused_deadline_and_the_last_to_leave_starts_the_empty_one() {
    let app = spawn_app().await;
    let room = app
        .create_room("UniqueName=t&EmptyRoomTimeout=3&UnusedRoomTimeout=9")
        .await;
    let sid = room["sid"].as_str().unwrap();
    let (secs, reason) = deadline(&app, sid).await;
    assert!(secs.unwrap() > 8.0 * 60.0 && reason.as_deref() == Some("unused_timeout"));

    app.join(sid, "alice").await;
    app.join(sid, "bob").await;
    assert_eq!(deadline(&app, sid).await, (None, None));
    let kick = |who: &'static str| {
        let app = &app;
        async move {
            let r = app
                .post(
                    &format!("/v1/Rooms/{sid}/Participants/{who}"),
                    "Status=disconnected",
                )
                .await;
            assert_eq!(r.status, 202, "{}", r.body);
        }
    };
    kick("alice").await;
    assert_eq!(deadline(&app, sid).await, (None, None), "bob is still in");
    kick("bob").await;
    let (secs, reason) = deadline(&app, sid).await;
    assert!((secs.unwrap() - 180.0).abs() < 5.0, "{secs:?}");
    assert_eq!(reason.as_deref(), Some("empty_timeout"));

    // A new join clears it again; leaving again restarts it.
    app.join(sid, "carol").await;
    assert_eq!(deadline(&app, sid).await, (None, None));
    kick("carol").await;
    expire(&app, sid).await;
    let swept = sweep_once(&app.pool, None).await.unwrap();
    assert_eq!(swept.rooms.len(), 1);
    assert_eq!(swept.rooms[0].end_reason, "empty_timeout");
    assert_eq!(
        app.get(&format!("/v1/Rooms/{sid}")).await.body["status"],
        "completed"
    );
}

#[tokio::test]
async fn the_sweeper_disconnects_participants_past_their_max_duration_and_then_empty_rooms_wait() {
    let app = spawn_app().await;
    let room = app
        .create_room("UniqueName=long&MaxParticipantDuration=600")
        .await;
    let sid = room["sid"].as_str().unwrap();
    let alice = app.join(sid, "alice").await;
    let bob = app.join(sid, "bob").await;
    let alice_sid = alice["sid"].as_str().unwrap();
    let bob_sid = bob["sid"].as_str().unwrap();
    // Each participant's deadline is its start plus the room's MaxParticipantDuration.
    let secs: f64 = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM deadline - start_time)::float8 FROM participants WHERE sid = $1",
    )
    .bind(alice_sid)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(secs, 600.0);

    overdue(&app, alice_sid).await;
    let swept = sweep_once(&app.pool, Some(&app.metrics)).await.unwrap();
    assert!(swept.rooms.is_empty());
    assert_eq!(
        swept
            .participants
            .iter()
            .map(|p| p.sid.as_str())
            .collect::<Vec<_>>(),
        [alice_sid]
    );
    let a = app
        .get(&format!("/v1/Rooms/{sid}/Participants/{alice_sid}"))
        .await
        .body;
    assert_eq!(a["status"], "disconnected");
    assert!(a["duration"].is_i64() && a["end_time"].is_string());
    assert_eq!(deadline(&app, sid).await, (None, None), "bob is still in");
    assert!(sweep_once(&app.pool, None).await.unwrap().is_empty());

    overdue(&app, bob_sid).await;
    let swept = sweep_once(&app.pool, Some(&app.metrics)).await.unwrap();
    assert_eq!(swept.participants.len(), 1);
    assert!(swept.rooms.is_empty(), "the room waits its empty timeout");
    assert_eq!(
        deadline(&app, sid).await.1.as_deref(),
        Some("empty_timeout")
    );
    assert_eq!(
        app.metrics
            .participants_disconnected
            .with_label_values(&["max_duration"])
            .get(),
        2
    );
}

#[tokio::test]
async fn a_room_ended_by_the_sweeper_disconnects_whoever_is_still_in_it() {
    let app = spawn_app().await;
    let room = app.create_room("UniqueName=x").await;
    let sid = room["sid"].as_str().unwrap();
    let alice = app.join(sid, "alice").await;
    // A room someone is in has no deadline; give it one, as only a forced end would.
    sqlx::query(
        "UPDATE rooms SET deadline = now() - interval '1 second', deadline_reason = 'unused_timeout' \
         WHERE sid = $1",
    )
    .bind(sid)
    .execute(&app.pool)
    .await
    .unwrap();
    let swept = sweep_once(&app.pool, None).await.unwrap();
    assert_eq!(swept.rooms[0].participants_disconnected, 1);
    let ended = app.get(&format!("/v1/Rooms/{sid}")).await.body;
    let a = app
        .get(&format!(
            "/v1/Rooms/{sid}/Participants/{}",
            alice["sid"].as_str().unwrap()
        ))
        .await
        .body;
    assert_eq!(a["status"], "disconnected");
    assert_eq!(a["end_time"], ended["end_time"]);
}

#[tokio::test]
async fn two_sweepers_at_once_disconnect_each_overdue_participant_exactly_once() {
    let app = spawn_app().await;
    let rooms =
        crate::helpers::insert_rooms_due_in(&app.pool, &app.account.sid, "busy", 200, 3600.0).await;
    // Five overdue participants in each room.
    sqlx::query(
        "WITH p AS ( \
            INSERT INTO participants (sid, account_sid, room_sid, identity, status, deadline) \
            SELECT 'PA' || md5(r || g), $2, r, 'user-' || g, 'connected', now() - interval '1 second' \
            FROM unnest($1::text[]) r, generate_series(1, 5) g RETURNING room_sid) \
         UPDATE rooms SET participants_connected = 5, deadline = NULL, deadline_reason = NULL \
         WHERE sid = ANY($1)",
    )
    .bind(&rooms)
    .bind(&app.account.sid)
    .execute(&app.pool)
    .await
    .unwrap();
    let (a, b) = tokio::join!(sweep_once(&app.pool, None), sweep_once(&app.pool, None));
    let (a, b) = (a.unwrap().participants, b.unwrap().participants);
    let mut all: Vec<&str> = a.iter().chain(b.iter()).map(|p| p.sid.as_str()).collect();
    assert_eq!(all.len(), 1000);
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 1000, "no participant was disconnected twice");
    let (connected, with_empty_deadline): (i64, i64) = sqlx::query_as(
        "SELECT COALESCE(sum(participants_connected), 0)::bigint, \
            count(*) FILTER (WHERE deadline_reason = 'empty_timeout') \
         FROM rooms WHERE sid = ANY($1)",
    )
    .bind(&rooms)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((connected, with_empty_deadline), (0, 200));
}

/// Makes every update of `table` whose new row matches `condition` fail, as a statement timeout
/// would (a trigger `refuse_<table>`).
async fn refuse_updates(app: &TestApp, table: &str, condition: &str) {
    sqlx::raw_sql(&format!(
        "CREATE FUNCTION refuse_{table}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
            IF {condition} THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$; \
         CREATE TRIGGER refuse_{table} BEFORE UPDATE ON {table} FOR EACH ROW \
            EXECUTE FUNCTION refuse_{table}();"
    ))
    .execute(&app.pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_room_whose_statement_fails_never_keeps_the_sweeper_from_ending_the_others() {
    let app = spawn_app().await;
    let metrics = roomd::telemetry::metrics::Metrics::new();
    let rooms =
        crate::helpers::insert_rooms_due_in(&app.pool, &app.account.sid, "due", 5, -1.0).await;
    // One room's end fails, as a statement timeout would: a trigger refuses it.
    let broken = rooms[2].clone();
    refuse_updates(
        &app,
        "rooms",
        &format!("NEW.sid = '{broken}' AND NEW.status = 'completed'"),
    )
    .await;
    let swept = sweep_once(&app.pool, Some(&metrics)).await.unwrap();
    let mut ended: Vec<&str> = swept.rooms.iter().map(|r| r.sid.as_str()).collect();
    ended.sort();
    let mut others: Vec<&str> = rooms
        .iter()
        .map(String::as_str)
        .filter(|s| *s != broken)
        .collect();
    others.sort();
    assert_eq!(ended, others);
    assert_eq!(
        metrics.sweeper_failures.with_label_values(&["rooms"]).get(),
        1
    );
    let status: String = sqlx::query_scalar("SELECT status FROM rooms WHERE sid = $1")
        .bind(&broken)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(status, "in-progress");
    // Once the cause is gone, the next pass ends it.
    sqlx::raw_sql("DROP TRIGGER refuse_rooms ON rooms")
        .execute(&app.pool)
        .await
        .unwrap();
    let swept = sweep_once(&app.pool, Some(&metrics)).await.unwrap();
    assert_eq!(swept.rooms.len(), 1);
    assert_eq!(swept.rooms[0].sid, broken);
}

#[tokio::test]
async fn a_participant_whose_disconnection_fails_never_keeps_the_sweeper_from_the_others() {
    let app = spawn_app().await;
    let metrics = roomd::telemetry::metrics::Metrics::new();
    let mut rooms = Vec::new();
    for name in ["a", "b", "c"] {
        let room = app.create_room(&format!("UniqueName={name}")).await;
        let sid = room["sid"].as_str().unwrap().to_string();
        app.join(&sid, "p").await;
        rooms.push(sid);
    }
    sqlx::query("UPDATE participants SET deadline = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    let broken = rooms[1].clone();
    refuse_updates(
        &app,
        "participants",
        &format!("NEW.room_sid = '{broken}' AND NEW.status = 'disconnected'"),
    )
    .await;
    let swept = sweep_once(&app.pool, Some(&metrics)).await.unwrap();
    let mut left: Vec<&str> = swept
        .participants
        .iter()
        .map(|p| p.room_sid.as_str())
        .collect();
    left.sort();
    let mut others = vec![rooms[0].as_str(), rooms[2].as_str()];
    others.sort();
    assert_eq!(left, others);
    assert_eq!(
        metrics
            .sweeper_failures
            .with_label_values(&["participants"])
            .get(),
        1
    );
}
