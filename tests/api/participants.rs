//! Participants: joining (Basic + Identity, or an Access Token), Twilio's participant resource
//! (list, fetch, kick, anonymize), and what ending a room does to them.

use crate::helpers::{create_account, create_api_key, enc, spawn_app};
use crate::rooms_create::is_twilio_date;
use reqwest::Method;
use serde_json::Value;

fn sid_of(v: &Value) -> String {
    v["sid"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn participants_join_by_token_and_by_identity_and_show_as_twilio_shows_them() {
    let app = spawn_app().await;
    let room = app.create_room("UniqueName=standup").await;
    let room_sid = sid_of(&room);
    let key = create_api_key(&app.pool, &app.account.sid).await;

    // By Access Token (granted this room by name), and by Basic auth with Identity.
    let token = key.token("alice", Some("standup"));
    let r = app
        .post_bearer(&token, "/v1/Rooms/standup/Participants", "")
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let alice = r.body;
    let bob = app.join(&room_sid, "bob").await;

    let alice_sid = sid_of(&alice);
    assert!(roomd::domain::sid::ParticipantSid::parse(&alice_sid).is_some());
    assert_eq!(alice["identity"], "alice");
    assert_eq!(alice["status"], "connected");
    assert_eq!(alice["room_sid"], room_sid.as_str());
    assert_eq!(alice["account_sid"], app.account.sid.as_str());
    assert!(alice["end_time"].is_null() && alice["duration"].is_null());
    for k in ["date_created", "date_updated", "start_time"] {
        assert!(is_twilio_date(&alice[k]), "{k}: {}", alice[k]);
    }
    let url = format!(
        "{}/v1/Rooms/{room_sid}/Participants/{alice_sid}",
        app.address
    );
    assert_eq!(alice["url"], url.as_str());
    for (link, tail) in [
        ("published_tracks", "PublishedTracks"),
        ("subscribed_tracks", "SubscribedTracks"),
        ("subscribe_rules", "SubscribeRules"),
        ("anonymize", "Anonymize"),
    ] {
        assert_eq!(alice["links"][link], format!("{url}/{tail}"));
    }
    // Twilio's fields; with a media plane attached (ROOMD_TEST_MEDIA=janus), the join's answer
    // has roomd's `media` besides.
    let keys: Vec<&str> = alice
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .filter(|k| *k != "media")
        .collect();
    assert_eq!(
        keys.len(),
        12,
        "Twilio's participant has exactly these fields: {keys:?}"
    );

    // List (connected by default, join order), fetch by SID and by identity, by room name too.
    let list = app.get("/v1/Rooms/standup/Participants").await;
    assert_eq!(list.status, 200, "{}", list.body);
    let listed: Vec<&str> = list.body["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["identity"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["alice", "bob"]);
    assert_eq!(list.body["meta"]["key"], "participants");
    assert_eq!(list.body["meta"]["page_size"], 50);
    for path in [
        format!("/v1/Rooms/{room_sid}/Participants/{alice_sid}"),
        "/v1/Rooms/standup/Participants/alice".to_string(),
        format!("/v1/Rooms/{room_sid}/Participants/alice"),
    ] {
        let r = app.get(&path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        // The resource is the join's, without its `media` (only the join hands that out).
        let mut joined = alice.clone();
        joined.as_object_mut().unwrap().remove("media");
        assert_eq!(r.body, joined, "{path}");
    }

    // Kick bob: 202, disconnected with end_time and duration; fetchable by SID only after.
    let bob_sid = sid_of(&bob);
    let r = app
        .post(
            &format!("/v1/Rooms/{room_sid}/Participants/bob"),
            "Status=disconnected",
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["status"], "disconnected");
    assert!(is_twilio_date(&r.body["end_time"]));
    assert!(r.body["duration"].as_i64().is_some_and(|d| d >= 0));
    app.get(&format!("/v1/Rooms/{room_sid}/Participants/bob"))
        .await
        .assert_error(404, 20404);
    assert_eq!(
        app.get(&format!("/v1/Rooms/{room_sid}/Participants/{bob_sid}"))
            .await
            .body["status"],
        "disconnected"
    );
    // Kicking again changes nothing: 400 53204.
    let again = app
        .post(
            &format!("/v1/Rooms/{room_sid}/Participants/{bob_sid}"),
            "Status=disconnected",
        )
        .await;
    again.assert_error(400, 53204);
    let list = app
        .get(&format!(
            "/v1/Rooms/{room_sid}/Participants?Status=disconnected"
        ))
        .await;
    assert_eq!(list.body["participants"].as_array().unwrap().len(), 1);
    assert!(list.body["meta"]["url"]
        .as_str()
        .unwrap()
        .contains("Status=disconnected"));

    // Anonymize: identity becomes the SID, no links, url ends in /Anonymize.
    let r = app
        .post(
            &format!("/v1/Rooms/{room_sid}/Participants/{bob_sid}/Anonymize"),
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["identity"], bob_sid.as_str());
    assert!(r.body.get("links").is_none());
    assert!(r.body["url"].as_str().unwrap().ends_with("/Anonymize"));
    assert_eq!(r.body["status"], "disconnected");

    // Completing the room disconnects everyone still in it, at the room's end time.
    let done = app.complete_room(&room_sid).await;
    let a = app
        .get(&format!("/v1/Rooms/{room_sid}/Participants/{alice_sid}"))
        .await
        .body;
    assert_eq!(a["status"], "disconnected");
    assert_eq!(a["end_time"], done["end_time"]);
    assert!(a["duration"].is_i64());
    // A completed room lists its (disconnected) participants by default.
    let list = app.get(&format!("/v1/Rooms/{room_sid}/Participants")).await;
    assert_eq!(list.body["participants"].as_array().unwrap().len(), 2);
    let connected: i32 =
        sqlx::query_scalar("SELECT participants_connected FROM rooms WHERE sid = $1")
            .bind(&room_sid)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(connected, 0);
}

#[tokio::test]
async fn a_participant_leaves_with_its_own_token_and_only_its_own() {
    let app = spawn_app().await;
    let key = create_api_key(&app.pool, &app.account.sid).await;
    let alice_token = key.token("alice", None);
    let r = app
        .post_bearer(&alice_token, "/v1/Rooms/daily/Participants", "")
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    app.join("daily", "bob").await;

    // Alice's token cannot disconnect bob.
    app.post_bearer(
        &alice_token,
        "/v1/Rooms/daily/Participants/bob",
        "Status=disconnected",
    )
    .await
    .assert_error(401, 20106);
    let r = app
        .post_bearer(
            &alice_token,
            "/v1/Rooms/daily/Participants/alice",
            "Status=disconnected",
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["status"], "disconnected");
    let r = app.get("/v1/Rooms/daily/Participants").await;
    let listed: Vec<&str> = r.body["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["identity"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["bob"]);
}

#[tokio::test]
async fn a_join_creates_the_room_it_names_once_however_many_race() {
    let app = spawn_app().await;
    let joins = (0..12).map(|i| {
        let app = &app;
        async move {
            app.post(
                "/v1/Rooms/fresh-room/Participants",
                &format!("Identity=user-{i}"),
            )
            .await
        }
    });
    let replies = futures_util::future::join_all(joins).await;
    for r in &replies {
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let rooms: Vec<String> = replies
        .iter()
        .map(|r| r.body["room_sid"].as_str().unwrap().to_string())
        .collect();
    assert!(rooms.iter().all(|r| *r == rooms[0]), "one room: {rooms:?}");
    let room = app.get("/v1/Rooms/fresh-room").await.body;
    assert_eq!(room["sid"], rooms[0].as_str());
    assert_eq!(room["type"], "group");
    assert_eq!(app.room_count().await, 1);
    // A SID that names no room is not a name to create.
    app.post(
        "/v1/Rooms/RM0123456789abcdef0123456789abcdef/Participants",
        "Identity=x",
    )
    .await
    .assert_error(404, 20404);
    assert_eq!(app.room_count().await, 1);
}

#[tokio::test]
async fn exactly_one_of_many_concurrent_joins_takes_the_last_place() {
    let app = spawn_app().await;
    let room = app.create_room("UniqueName=small&MaxParticipants=3").await;
    let room_sid = sid_of(&room);
    app.join(&room_sid, "first").await;
    app.join(&room_sid, "second").await;
    let joins = (0..16).map(|i| {
        let (app, room_sid) = (&app, &room_sid);
        async move {
            app.post(
                &format!("/v1/Rooms/{room_sid}/Participants"),
                &format!("Identity=racer-{i}"),
            )
            .await
        }
    });
    let replies = futures_util::future::join_all(joins).await;
    let won = replies.iter().filter(|r| r.status == 201).count();
    assert_eq!(won, 1, "exactly one join takes the last place");
    for r in replies.iter().filter(|r| r.status != 201) {
        r.assert_error(400, 53105);
    }
    let (connected, stored): (i32, i64) = sqlx::query_as(
        "SELECT r.participants_connected, \
            (SELECT count(*) FROM participants p WHERE p.room_sid = r.sid AND p.status = 'connected') \
         FROM rooms r WHERE r.sid = $1",
    )
    .bind(&room_sid)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((connected, stored), (3, 3));
}

#[tokio::test]
async fn a_second_join_with_a_connected_identity_takes_its_place_even_in_a_full_room() {
    let app = spawn_app().await;
    let room = app.create_room("UniqueName=one&MaxParticipants=1").await;
    let room_sid = sid_of(&room);
    let first = app.join(&room_sid, "alice").await;
    app.post(
        &format!("/v1/Rooms/{room_sid}/Participants"),
        "Identity=bob",
    )
    .await
    .assert_error(400, 53105);
    let second = app.join(&room_sid, "alice").await;
    assert_ne!(first["sid"], second["sid"]);
    let old = app
        .get(&format!(
            "/v1/Rooms/{room_sid}/Participants/{}",
            sid_of(&first)
        ))
        .await
        .body;
    assert_eq!(old["status"], "disconnected");
    assert!(old["duration"].is_i64());
    let now = app
        .get(&format!("/v1/Rooms/{room_sid}/Participants/alice"))
        .await
        .body;
    assert_eq!(now["sid"], second["sid"]);
    let metrics = app
        .metrics
        .participants_disconnected
        .with_label_values(&["duplicate_identity"])
        .get();
    assert_eq!(metrics, 1);
}

#[tokio::test]
async fn joins_are_refused_with_twilios_codes_and_change_nothing() {
    let app = spawn_app().await;
    let room = app.create_room("UniqueName=r").await;
    let room_sid = sid_of(&room);
    let path = format!("/v1/Rooms/{room_sid}/Participants");
    app.post(&path, "").await.assert_error(400, 20001);
    app.post(&path, "Identity=").await.assert_error(400, 53200);
    app.post(&path, &format!("Identity={}", "x".repeat(129)))
        .await
        .assert_error(400, 53201);
    app.post(&path, "Identity=a%00b")
        .await
        .assert_error(400, 20001);
    app.post(&path, "Identity=a%01b")
        .await
        .assert_error(400, 53202);
    app.post(&path, "Identity=a%0Ab")
        .await
        .assert_error(400, 53202);
    // Unauthenticated, or another account: 401, or 404 as if the room did not exist.
    app.request_as(None, Method::POST, &path, Some("Identity=x"))
        .await
        .assert_error(401, 20003);
    let other = create_account(&app.pool, "other").await;
    app.request_as(Some(&other), Method::POST, &path, Some("Identity=x"))
        .await
        .assert_error(404, 20404);
    // Another account's key and token act on that account's rooms only.
    let other_key = create_api_key(&app.pool, &other.sid).await;
    app.post_bearer(&other_key.token("x", None), &path, "")
        .await
        .assert_error(404, 20404);
    app.request_as(
        Some(&other_key.basic()),
        Method::POST,
        &path,
        Some("Identity=x"),
    )
    .await
    .assert_error(404, 20404);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM participants")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 0);
    // Bad paths and parameters on the participant resource.
    app.get(&format!("{path}/PA0123456789abcdef0123456789abcdef"))
        .await
        .assert_error(404, 20404);
    app.get(&format!("{path}/nobody"))
        .await
        .assert_error(404, 20404);
    app.get(&format!("{path}/a%00b"))
        .await
        .assert_error(404, 20404);
    app.get(&format!("{path}?Status=gone"))
        .await
        .assert_error(400, 20001);
    app.get(&format!("{path}?DateCreatedAfter=yesterday"))
        .await
        .assert_error(400, 20001);
    app.get(&format!("{path}?PageToken=PAnope"))
        .await
        .assert_error(400, 21481);
    app.get("/v1/Rooms/nope/Participants")
        .await
        .assert_error(404, 20404);
    app.join(&room_sid, "alice").await;
    let p = format!("{path}/alice");
    app.post(&p, "").await.assert_error(400, 20001);
    app.post(&p, "Status=connected")
        .await
        .assert_error(400, 20001);
    app.post(&format!("{path}/nobody"), "Status=disconnected")
        .await
        .assert_error(404, 20404);
    app.post(&format!("{path}/nobody/Anonymize"), "")
        .await
        .assert_error(404, 20404);
    // A completed room takes no joins.
    app.complete_room(&room_sid).await;
    app.post(&path, "Identity=late")
        .await
        .assert_error(400, 53118);
    let r = app.get(&format!("{path}?Identity={}", enc("alice"))).await;
    assert_eq!(r.body["participants"][0]["status"], "disconnected");
}

#[tokio::test]
async fn an_identity_shaped_like_a_participant_sid_is_refused_so_anonymize_never_collides() {
    let app = spawn_app().await;
    let room = sid_of(&app.create_room("UniqueName=anon").await);
    let alice = sid_of(&app.join(&room, "alice").await);
    let path = format!("/v1/Rooms/{room}/Participants");
    app.post(&path, &format!("Identity={alice}"))
        .await
        .assert_error(400, 53200);
    let key = create_api_key(&app.pool, &app.account.sid).await;
    app.post_bearer(&key.token(&alice, None), &path, "")
        .await
        .assert_error(401, 20106);

    // A participant that joined with such an identity before the rule (written here directly):
    // anonymizing the participant whose SID it holds is refused while both are connected, not
    // a 500, and works once the impostor has gone.
    let bob = sid_of(&app.join(&room, "bob").await);
    sqlx::query("UPDATE participants SET identity = $1 WHERE sid = $2")
        .bind(&alice)
        .bind(&bob)
        .execute(&app.pool)
        .await
        .unwrap();
    app.post(&format!("{path}/{alice}/Anonymize"), "")
        .await
        .assert_error(400, 53200);
    let kicked = app
        .post(&format!("{path}/{bob}"), "Status=disconnected")
        .await;
    assert_eq!(kicked.status, 202, "{}", kicked.body);
    let anonymized = app.post(&format!("{path}/{alice}/Anonymize"), "").await;
    assert_eq!(anonymized.status, 200, "{}", anonymized.body);
    assert_eq!(anonymized.body["identity"], alice.as_str());
}

#[tokio::test]
async fn a_listed_origins_page_may_join_and_leave_from_the_browser_and_no_other_may() {
    let page = "http://127.0.0.1:5173";
    let app = crate::helpers::spawn_app_with(crate::helpers::Options {
        cors_origins: vec![page.to_string()],
        ..Default::default()
    })
    .await;
    let key = create_api_key(&app.pool, &app.account.sid).await;
    let token = key.token("alice", None);
    let preflight = |origin: &'static str, path: &'static str| {
        app.client
            .request(Method::OPTIONS, app.url(path))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type",
            )
            .send()
    };
    let allowed = preflight(page, "/v1/Rooms/daily/Participants")
        .await
        .unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    let h = allowed.headers();
    assert_eq!(h["access-control-allow-origin"], page);
    let methods = h["access-control-allow-methods"].to_str().unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let headers = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(headers.contains("authorization"), "{headers}");
    let leave = preflight(page, "/v1/Rooms/daily/Participants/alice")
        .await
        .unwrap();
    assert_eq!(leave.headers()["access-control-allow-origin"], page);
    // Another origin gets no CORS grant (its browser keeps the answer from its page).
    let other = preflight("https://evil.example", "/v1/Rooms/daily/Participants")
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    // Nor does any other resource.
    let rooms = preflight(page, "/v1/Rooms").await.unwrap();
    assert!(rooms.headers().get("access-control-allow-origin").is_none());

    let joined = app
        .client
        .post(app.url("/v1/Rooms/daily/Participants"))
        .header("Origin", page)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(joined.status(), 201);
    assert_eq!(joined.headers()["access-control-allow-origin"], page);
    let left = app
        .client
        .post(app.url("/v1/Rooms/daily/Participants/alice"))
        .header("Origin", page)
        .bearer_auth(&token)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("Status=disconnected")
        .send()
        .await
        .unwrap();
    assert_eq!(left.status(), 202);
    assert_eq!(left.headers()["access-control-allow-origin"], page);
}

#[tokio::test]
async fn without_listed_origins_nothing_answers_cors() {
    let app = spawn_app().await;
    let r = app
        .client
        .request(Method::OPTIONS, app.url("/v1/Rooms/daily/Participants"))
        .header("Origin", "http://127.0.0.1:5173")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    assert_eq!(r.status(), 405);
    // A request that carries an Origin is served as ever.
    let joined = app
        .client
        .post(app.url("/v1/Rooms/daily/Participants"))
        .header("Origin", "http://127.0.0.1:5173")
        .basic_auth(&app.account.sid, Some(&app.account.token))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("Identity=bob")
        .send()
        .await
        .unwrap();
    assert_eq!(joined.status(), 201);
    assert!(joined
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}
