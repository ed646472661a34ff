//! Published tracks: publishing (roomd's extension), Twilio's reads, the room-wide limit under a
//! race, and tracks going away with their participant or room.

use crate::helpers::{create_api_key, spawn_app, TestApp};
use crate::rooms_create::is_twilio_date;
use serde_json::Value;

fn tracks_path(room: &str, participant: &str) -> String {
    format!("/v1/Rooms/{room}/Participants/{participant}/PublishedTracks")
}

async fn publish(app: &TestApp, room: &str, participant: &str, form: &str) -> Value {
    let r = app.post(&tracks_path(room, participant), form).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body
}

async fn published_count(app: &TestApp, room_sid: &str) -> (i32, i64) {
    sqlx::query_as(
        "SELECT r.tracks_published, (SELECT count(*) FROM published_tracks t WHERE t.room_sid = r.sid) \
         FROM rooms r WHERE r.sid = $1",
    )
    .bind(room_sid)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn participants_publish_toggle_and_unpublish_tracks_that_read_as_twilios() {
    let app = spawn_app().await;
    let room = app.create_room("UniqueName=studio").await;
    let room_sid = room["sid"].as_str().unwrap();
    let alice = app.join(room_sid, "alice").await;
    let alice_sid = alice["sid"].as_str().unwrap();

    let mic = publish(&app, "studio", "alice", "Kind=audio&Name=mic").await;
    let cam = publish(&app, room_sid, alice_sid, "Kind=video&Enabled=false").await;
    let mic_sid = mic["sid"].as_str().unwrap();
    assert!(roomd::domain::sid::TrackSid::parse(mic_sid).is_some());
    assert_eq!(mic["name"], "mic");
    assert_eq!(mic["kind"], "audio");
    assert_eq!(mic["enabled"], true);
    assert_eq!(mic["participant_sid"], alice_sid);
    assert_eq!(mic["room_sid"], room_sid);
    assert!(is_twilio_date(&mic["date_created"]) && is_twilio_date(&mic["date_updated"]));
    assert_eq!(
        mic["url"],
        format!(
            "{}/v1/Rooms/{room_sid}/Participants/{alice_sid}/PublishedTracks/{mic_sid}",
            app.address
        )
    );
    assert_eq!(mic.as_object().unwrap().len(), 9, "{mic}");
    // Without a Name, the track is named by its SID.
    assert_eq!(cam["name"], cam["sid"]);
    assert_eq!(cam["enabled"], false);

    // Twilio's reads: list (oldest first) and fetch by SID or name, by room name or SID.
    let list = app.get(&tracks_path(room_sid, alice_sid)).await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.body["meta"]["key"], "published_tracks");
    let names: Vec<&str> = list.body["published_tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["audio", "video"]);
    for path in [
        format!("{}/{mic_sid}", tracks_path(room_sid, alice_sid)),
        format!("{}/mic", tracks_path("studio", "alice")),
    ] {
        let r = app.get(&path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert_eq!(r.body, mic);
    }

    // Toggle, then unpublish (204): gone from the reads, and its place is free again.
    let r = app
        .post(
            &format!("{}/mic", tracks_path("studio", "alice")),
            "Enabled=false",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["enabled"], false);
    assert_eq!(published_count(&app, room_sid).await, (2, 2));
    let r = app
        .client
        .delete(app.url(&format!("{}/mic", tracks_path("studio", "alice"))))
        .basic_auth(&app.account.sid, Some(&app.account.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(r.text().await.unwrap().is_empty());
    app.get(&format!("{}/mic", tracks_path("studio", "alice")))
        .await
        .assert_error(404, 20404);
    assert_eq!(published_count(&app, room_sid).await, (1, 1));
    // A name is free again once its track is unpublished.
    publish(&app, "studio", "alice", "Kind=audio&Name=mic").await;
}

#[tokio::test]
async fn a_participant_publishes_with_its_own_token_and_only_for_itself() {
    let app = spawn_app().await;
    let key = create_api_key(&app.pool, &app.account.sid).await;
    let token = key.token("alice", Some("studio"));
    let r = app
        .post_bearer(&token, "/v1/Rooms/studio/Participants", "")
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    app.join("studio", "bob").await;
    let r = app
        .post_bearer(&token, &tracks_path("studio", "alice"), "Kind=audio")
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    app.post_bearer(&token, &tracks_path("studio", "bob"), "Kind=audio")
        .await
        .assert_error(401, 20106);
    let elsewhere = key.token("alice", Some("another-room"));
    app.post_bearer(&elsewhere, &tracks_path("studio", "alice"), "Kind=audio")
        .await
        .assert_error(401, 20106);
    let sid = r.body["sid"].as_str().unwrap();
    let r = app
        .post_bearer(
            &token,
            &format!("{}/{sid}", tracks_path("studio", "alice")),
            "Enabled=false",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn bad_tracks_get_twilios_codes_and_store_nothing() {
    let app = spawn_app().await;
    app.create_room("UniqueName=radio&AudioOnly=true").await;
    let room = app.create_room("UniqueName=tv").await;
    let room_sid = room["sid"].as_str().unwrap();
    app.join("radio", "alice").await;
    app.join("tv", "bob").await;
    let bob = tracks_path("tv", "bob");
    app.post(&tracks_path("radio", "alice"), "Kind=video")
        .await
        .assert_error(400, 53300);
    app.post(&bob, "").await.assert_error(400, 20001);
    app.post(&bob, "Kind=hologram")
        .await
        .assert_error(400, 53300);
    app.post(&bob, "Kind=audio&Name=")
        .await
        .assert_error(400, 53301);
    app.post(&bob, &format!("Kind=audio&Name={}", "n".repeat(129)))
        .await
        .assert_error(400, 53302);
    app.post(&bob, "Kind=audio&Name=a%01b")
        .await
        .assert_error(400, 53303);
    app.post(&bob, "Kind=audio&Enabled=maybe")
        .await
        .assert_error(400, 20001);
    publish(&app, "tv", "bob", "Kind=audio&Name=mic").await;
    app.post(&bob, "Kind=video&Name=mic")
        .await
        .assert_error(400, 53304);
    app.post(&tracks_path("tv", "nobody"), "Kind=audio")
        .await
        .assert_error(404, 20404);
    app.post(&format!("{bob}/nothing"), "Enabled=true")
        .await
        .assert_error(404, 20404);
    app.post(&format!("{bob}/mic"), "")
        .await
        .assert_error(400, 20001);
    app.get(&format!("{bob}/MT0123456789abcdef0123456789abcdef"))
        .await
        .assert_error(404, 20404);
    assert_eq!(published_count(&app, room_sid).await, (1, 1));
    // A disconnected participant publishes nothing.
    app.post("/v1/Rooms/tv/Participants/bob", "Status=disconnected")
        .await;
    let bob_gone = app
        .get(&format!(
            "/v1/Rooms/{room_sid}/Participants?Status=disconnected"
        ))
        .await
        .body["participants"][0]["sid"]
        .as_str()
        .unwrap()
        .to_string();
    app.post(&tracks_path(room_sid, &bob_gone), "Kind=audio")
        .await
        .assert_error(400, 53204);
}

#[tokio::test]
async fn the_rooms_published_track_limit_holds_under_a_race() {
    let app = spawn_app().await;
    // A large room: at most 16 tracks published at once, room-wide.
    let room = app
        .create_room("UniqueName=big&MaxParticipants=60&LargeRoom=true")
        .await;
    let room_sid = room["sid"].as_str().unwrap();
    assert_eq!(room["max_concurrent_published_tracks"], 16);
    for i in 0..4 {
        app.join(room_sid, &format!("p{i}")).await;
    }
    let publishes = (0..24).map(|i| {
        let (app, room_sid) = (&app, room_sid);
        async move {
            app.post(
                &tracks_path(room_sid, &format!("p{}", i % 4)),
                &format!("Kind=audio&Name=t{i}"),
            )
            .await
        }
    });
    let replies = futures_util::future::join_all(publishes).await;
    assert_eq!(replies.iter().filter(|r| r.status == 201).count(), 16);
    for r in replies.iter().filter(|r| r.status != 201) {
        r.assert_error(400, 53203);
    }
    assert_eq!(published_count(&app, room_sid).await, (16, 16));
    let text = app.metrics_text().await;
    assert_eq!(
        crate::helpers::metric_value(&text, r#"roomd_tracks_published_total{kind="audio"}"#),
        Some(16.0)
    );
    assert_eq!(
        crate::helpers::metric_value(&text, "roomd_tracks_published"),
        Some(16.0)
    );
}

#[tokio::test]
async fn a_participant_publishes_at_most_its_cap_of_tracks_under_a_race_and_then_leaves_at_once() {
    let cap = roomd::domain::track::MAX_TRACKS_PER_PARTICIPANT as usize;
    let app = spawn_app().await;
    let receiver = crate::receiver::Receiver::ok().await;
    let room = app
        .create_room(&format!(
            "UniqueName=cap&StatusCallback={}",
            crate::helpers::enc(&receiver.url("/x"))
        ))
        .await;
    let room_sid = room["sid"].as_str().unwrap();
    assert_eq!(room["max_concurrent_published_tracks"], 0);
    app.join(room_sid, "many").await;
    app.join(room_sid, "other").await;
    let publishes = (0..cap + 8).map(|i| {
        let (app, room_sid) = (&app, room_sid);
        async move {
            app.post(
                &tracks_path(room_sid, "many"),
                &format!("Kind=data&Name=t{i}"),
            )
            .await
        }
    });
    let replies = futures_util::future::join_all(publishes).await;
    assert_eq!(replies.iter().filter(|r| r.status == 201).count(), cap);
    for r in replies.iter().filter(|r| r.status != 201) {
        r.assert_error(400, 53203);
    }
    // The cap is the participant's: another one still publishes.
    let other = app
        .post(&tracks_path(room_sid, "other"), "Kind=audio")
        .await;
    assert_eq!(other.status, 201, "{}", other.body);
    // Leaving removes every track, with its event, in one short statement.
    let kicked = app
        .post(
            &format!("/v1/Rooms/{room_sid}/Participants/many"),
            "Status=disconnected",
        )
        .await;
    assert_eq!(kicked.status, 202, "{}", kicked.body);
    assert_eq!(published_count(&app, room_sid).await, (1, 1));
    let removed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM callback_events WHERE room_sid = $1 AND event = 'track-removed'",
    )
    .bind(room_sid)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(removed, cap as i64);
}

#[tokio::test]
async fn tracks_are_unpublished_when_their_participant_leaves_or_their_room_ends() {
    let app = spawn_app().await;
    let room = app.create_room("UniqueName=show").await;
    let room_sid = room["sid"].as_str().unwrap();
    for who in ["alice", "bob"] {
        app.join(room_sid, who).await;
        publish(&app, room_sid, who, "Kind=audio").await;
        publish(&app, room_sid, who, "Kind=video").await;
    }
    assert_eq!(published_count(&app, room_sid).await, (4, 4));
    let r = app
        .post(
            &format!("/v1/Rooms/{room_sid}/Participants/alice"),
            "Status=disconnected",
        )
        .await;
    assert_eq!(r.status, 202);
    assert_eq!(published_count(&app, room_sid).await, (2, 2));
    // A duplicate-identity join replaces bob, and his tracks go with the old participant.
    app.join(room_sid, "bob").await;
    assert_eq!(published_count(&app, room_sid).await, (0, 0));
    publish(&app, room_sid, "bob", "Kind=audio").await;
    app.complete_room(room_sid).await;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM published_tracks WHERE room_sid = $1")
        .bind(room_sid)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
}
