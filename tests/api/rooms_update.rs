use crate::helpers::spawn_app;
use crate::rooms_create::is_twilio_date;
use chrono::DateTime;

#[tokio::test]
async fn completing_a_room_sets_end_time_and_duration_from_the_database_clock() {
    let app = spawn_app().await;
    let room = app.create_room("UniqueName=ending").await;
    let sid = room["sid"].as_str().unwrap();
    // Age the room by 42 s so the duration is known.
    sqlx::query(
        "UPDATE rooms SET date_created = date_created - interval '42 seconds' WHERE sid = $1",
    )
    .bind(sid)
    .execute(&app.pool)
    .await
    .unwrap();

    let done = app.complete_room(sid).await;
    assert_eq!(done["status"], "completed");
    assert!(is_twilio_date(&done["end_time"]));
    let start = DateTime::parse_from_rfc3339(done["date_created"].as_str().unwrap()).unwrap();
    let end = DateTime::parse_from_rfc3339(done["end_time"].as_str().unwrap()).unwrap();
    let duration = done["duration"].as_i64().unwrap();
    assert_eq!(
        duration,
        (end - start).num_seconds(),
        "duration matches the shown times"
    );
    assert!((42..=44).contains(&duration), "{duration}");
    assert_eq!(done["date_updated"], done["end_time"]);
    let reason: String = sqlx::query_scalar("SELECT end_reason FROM rooms WHERE sid = $1")
        .bind(sid)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(reason, "rest");
}

#[tokio::test]
async fn completing_by_unique_name_frees_the_name_for_a_new_room() {
    let app = spawn_app().await;
    let first = app.create_room("UniqueName=reusable").await;
    let r = app.post("/v1/Rooms/reusable", "Status=completed").await;
    assert_eq!(r.status, 202);
    assert_eq!(r.body["sid"], first["sid"]);

    let second = app.create_room("UniqueName=reusable").await;
    assert_ne!(second["sid"], first["sid"]);
    assert_eq!(
        app.get("/v1/Rooms/reusable").await.body["sid"],
        second["sid"]
    );
}

#[tokio::test]
async fn a_room_that_is_not_in_progress_cannot_be_completed_again() {
    let app = spawn_app().await;
    let room = app.create_room("").await;
    let sid = room["sid"].as_str().unwrap();
    let done = app.complete_room(sid).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let again = app
        .post(&format!("/v1/Rooms/{sid}"), "Status=completed")
        .await;
    again.assert_error(400, 53118);
    assert_eq!(again.body["message"], "Room completed");
    let now = app.get(&format!("/v1/Rooms/{sid}")).await.body;
    assert_eq!(now["end_time"], done["end_time"], "end_time is unchanged");
    assert_eq!(now["duration"], done["duration"]);
}

#[tokio::test]
async fn the_status_parameter_is_required_and_only_completed_is_accepted() {
    let app = spawn_app().await;
    let room = app.create_room("").await;
    let path = format!("/v1/Rooms/{}", room["sid"].as_str().unwrap());
    let missing = app.post(&path, "").await;
    missing.assert_error(400, 20001);
    assert_eq!(
        missing.body["message"],
        "Missing required parameter Status in the post body"
    );
    for bad in [
        "Status=in-progress",
        "Status=failed",
        "Status=COMPLETED",
        "Status=",
    ] {
        app.post(&path, bad).await.assert_error(400, 53112);
    }
    app.post(&path, "Status=completed&Status=completed")
        .await
        .assert_error(400, 20001);
    assert_eq!(
        app.get(&path).await.body["status"],
        "in-progress",
        "nothing was changed"
    );
}

#[tokio::test]
async fn completing_an_unknown_room_is_not_found() {
    let app = spawn_app().await;
    app.post(
        "/v1/Rooms/RM0123456789abcdef0123456789abcdef",
        "Status=completed",
    )
    .await
    .assert_error(404, 20404);
    app.post("/v1/Rooms/nobody-here", "Status=completed")
        .await
        .assert_error(404, 20404);
}

#[tokio::test]
async fn a_completed_rooms_sid_never_completes_another_room_named_like_it() {
    let app = spawn_app().await;
    let ended = app.create_room("").await;
    let sid = ended["sid"].as_str().unwrap();
    app.complete_room(sid).await;
    let namesake = app.create_room(&format!("UniqueName={sid}")).await;
    app.post(&format!("/v1/Rooms/{sid}"), "Status=completed")
        .await
        .assert_error(400, 53118);
    let still = app
        .get(&format!("/v1/Rooms/{}", namesake["sid"].as_str().unwrap()))
        .await;
    assert_eq!(still.body["status"], "in-progress");
}
