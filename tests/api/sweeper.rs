use crate::helpers::{spawn_app, TestApp};
use roomd::sweeper::sweep_once;

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
    sqlx::query("UPDATE rooms SET deadline = now() - interval '1 minute' WHERE sid = $1")
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
