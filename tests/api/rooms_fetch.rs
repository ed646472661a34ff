use crate::helpers::{enc, spawn_app};
use reqwest::Method;

#[tokio::test]
async fn a_room_is_fetched_by_sid_and_by_unique_name() {
    let app = spawn_app().await;
    let room = app.create_room("UniqueName=Weekly+Sync+%E2%9C%93").await;
    let sid = room["sid"].as_str().unwrap();

    let by_sid = app.get(&format!("/v1/Rooms/{sid}")).await;
    assert_eq!(by_sid.status, 200);
    assert_eq!(by_sid.body, room);

    let by_name = app
        .get(&format!(
            "/v1/Rooms/{}",
            enc("Weekly Sync ✓").replace('+', "%20")
        ))
        .await;
    assert_eq!(by_name.status, 200);
    assert_eq!(by_name.body, room);
    assert_eq!(
        by_name.body["url"],
        format!("{}/v1/Rooms/{sid}", app.address),
        "url is always the SID form"
    );

    let upper = format!("RM{}", sid[2..].to_ascii_uppercase());
    assert_eq!(
        app.get(&format!("/v1/Rooms/{upper}")).await.body["sid"],
        sid
    );
}

#[tokio::test]
async fn a_completed_room_is_found_by_sid_but_not_by_name() {
    let app = spawn_app().await;
    let room = app.create_room("UniqueName=done").await;
    let sid = room["sid"].as_str().unwrap();
    app.complete_room(sid).await;

    let by_sid = app.get(&format!("/v1/Rooms/{sid}")).await;
    assert_eq!(
        (by_sid.status, by_sid.body["status"].as_str()),
        (200, Some("completed"))
    );

    let by_name = app.get("/v1/Rooms/done").await;
    by_name.assert_error(404, 20404);
    assert_eq!(
        by_name.body["message"],
        "The requested resource /Rooms/done was not found"
    );
}

#[tokio::test]
async fn unknown_and_unnameable_rooms_are_not_found() {
    let app = spawn_app().await;
    let missing = "RM0123456789abcdef0123456789abcdef";
    let r = app.get(&format!("/v1/Rooms/{missing}")).await;
    r.assert_error(404, 20404);
    assert_eq!(
        r.body["message"],
        format!("The requested resource /Rooms/{missing} was not found")
    );
    for path in [
        "/v1/Rooms/no-such-room",
        "/v1/Rooms/nul%00name",
        "/v1/Rooms/ctl%07",
        "/v1/Rooms/bad%FFutf8",
        &format!("/v1/Rooms/{}", "x".repeat(200)),
    ] {
        app.get(path).await.assert_error(404, 20404);
    }
}

#[tokio::test]
async fn a_name_that_looks_like_a_sid_still_finds_its_room() {
    let app = spawn_app().await;
    let lookalike = "RMffffffffffffffffffffffffffffffff";
    let room = app.create_room(&format!("UniqueName={lookalike}")).await;
    let r = app.get(&format!("/v1/Rooms/{lookalike}")).await;
    assert_eq!(r.body["sid"], room["sid"]);
    let _ = Method::GET;
}

#[tokio::test]
async fn an_invalid_utf8_segment_never_names_the_replacement_character_room() {
    let app = spawn_app().await;
    // A room really named U+FFFD, which lossy decoding would turn %FF into.
    let room = app.create_room("UniqueName=%EF%BF%BD").await;
    assert_eq!(room["unique_name"], "\u{FFFD}");
    app.get("/v1/Rooms/%FF").await.assert_error(404, 20404);
    app.post("/v1/Rooms/%FF", "Status=completed")
        .await
        .assert_error(404, 20404);
    // Its real name, percent-encoded, still finds it.
    let r = app.get("/v1/Rooms/%EF%BF%BD").await;
    assert_eq!(r.body["sid"], room["sid"]);
}

#[tokio::test]
async fn head_on_a_get_route_answers_like_get_without_a_body() {
    let app = spawn_app().await;
    let room = app.create_room("UniqueName=headed").await;
    for path in ["/v1/Rooms", "/v1/Rooms/headed", "/healthz"] {
        let r = app
            .client
            .head(app.url(path))
            .basic_auth(&app.account.sid, Some(&app.account.token))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
        assert!(r.bytes().await.unwrap().is_empty());
    }
    let missing = app
        .client
        .head(app.url("/v1/Rooms/nope"))
        .basic_auth(&app.account.sid, Some(&app.account.token))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let _ = room;
}
