//! Per-account limits: one account's request rate, and client-side room creation.

use crate::cli::{json_stdout, roomd};
use crate::helpers::{create_account, create_api_key, spawn_app_with, Options};
use reqwest::Method;
use std::time::Duration;

/// `roomd accounts update <the app's account> <args>`, run as a user would; its output.
async fn update_account(app: &crate::helpers::TestApp, args: &[&str]) -> std::process::Output {
    let url = app.database_url.clone();
    let mut all: Vec<String> = vec!["accounts".into(), "update".into(), app.account.sid.clone()];
    all.extend(args.iter().map(|a| a.to_string()));
    tokio::task::spawn_blocking(move || {
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        roomd(&url, &all)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn an_account_past_its_request_rate_gets_429_while_another_account_is_served() {
    let app = spawn_app_with(Options {
        account_requests_per_second: 5,
        auth_cache_ttl: Duration::from_secs(1),
        ..Options::default()
    })
    .await;
    let other = create_account(&app.pool, "other").await;
    // Warm both credentials (argon2 once each), then flood with the first.
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(app.get("/v1/Rooms").await);
    }
    let refused: Vec<_> = statuses.iter().filter(|r| r.status == 429).collect();
    assert!(refused.len() >= 10, "{}", refused.len());
    refused[0].assert_error(429, 20429);
    let raw = app
        .client
        .get(app.url("/v1/Rooms"))
        .basic_auth(&app.account.sid, Some(&app.account.token))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 429);
    let retry: u64 = raw.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    // The other account is not slowed by it.
    let r = app
        .request_as(Some(&other), Method::GET, "/v1/Rooms", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // The account's own rate, set from the CLI, applies once the credential is read again.
    let updated = json_stdout(&update_account(&app, &["--max-requests-per-second", "1000"]).await);
    assert_eq!(updated["max_requests_per_second"], 1000);
    assert_eq!(updated["client_room_creation"], true);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut ok = 0;
    for _ in 0..40 {
        if app.get("/v1/Rooms").await.status == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 40);
    let text = app.metrics_text().await;
    assert!(
        crate::helpers::metric_value(&text, r#"roomd_account_limits_hit_total{limit="requests"}"#)
            .unwrap()
            >= 10.0
    );
}

#[tokio::test]
async fn an_account_may_turn_client_side_room_creation_off() {
    let app = spawn_app_with(Options {
        auth_cache_ttl: Duration::from_secs(1),
        ..Options::default()
    })
    .await;
    // On by default, as on Twilio: a join names a room into being.
    let r = app
        .post("/v1/Rooms/made-by-join/Participants", "Identity=a")
        .await;
    assert_eq!(r.status, 201, "{}", r.body);

    let out = update_account(&app, &["--client-room-creation", "false"]).await;
    assert_eq!(json_stdout(&out)["client_room_creation"], false);

    let key = create_api_key(&app.pool, &app.account.sid).await;
    let rooms_before = app.room_count().await;
    app.post("/v1/Rooms/nobody-made-it/Participants", "Identity=a")
        .await
        .assert_error(404, 20404);
    app.post_bearer(&key.token("b", None), "/v1/Rooms/nor-this/Participants", "")
        .await
        .assert_error(404, 20404);
    assert_eq!(app.room_count().await, rooms_before);
    // Rooms made over REST are joined as before.
    app.create_room("UniqueName=made-by-rest").await;
    let r = app
        .post("/v1/Rooms/made-by-rest/Participants", "Identity=c")
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let text = app.metrics_text().await;
    assert_eq!(
        crate::helpers::metric_value(
            &text,
            r#"roomd_account_limits_hit_total{limit="client_room_creation"}"#
        ),
        Some(2.0)
    );

    // Bad input to the CLI: a rate out of range, an unknown account.
    let url = app.database_url.clone();
    let sid = app.account.sid.clone();
    let (bad, missing) = tokio::task::spawn_blocking(move || {
        (
            roomd(
                &url,
                &["accounts", "update", &sid, "--max-requests-per-second", "0"],
            ),
            roomd(
                &url,
                &[
                    "accounts",
                    "update",
                    &format!("AC{}", "0".repeat(32)),
                    "--client-room-creation",
                    "true",
                ],
            ),
        )
    })
    .await
    .unwrap();
    assert!(!bad.status.success() && !missing.status.success());
}

#[tokio::test]
async fn an_account_holds_at_most_its_quota_of_rooms_in_progress_and_participants_connected() {
    let app = spawn_app_with(Options {
        account_quotas: roomd::app::startup::AccountQuotas {
            rooms_in_progress: 3,
            participants_connected: 2,
        },
        ..Options::default()
    })
    .await;
    let mut rooms = Vec::new();
    for i in 0..3 {
        let room = app.create_room(&format!("UniqueName=r{i}")).await;
        rooms.push(room["sid"].as_str().unwrap().to_string());
    }
    app.post("/v1/Rooms", "UniqueName=r3")
        .await
        .assert_error(400, 53119);
    // Nor by a join that would create its room.
    app.post("/v1/Rooms/r4/Participants", "Identity=a")
        .await
        .assert_error(400, 53119);
    assert_eq!(app.room_count().await, 3);
    // Another account has a quota of its own.
    let other = create_account(&app.pool, "other").await;
    let r = app
        .request_as(
            Some(&other),
            Method::POST,
            "/v1/Rooms",
            Some("UniqueName=r0"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // A room that ends frees its place.
    app.complete_room(&rooms[2]).await;
    app.create_room("UniqueName=r5").await;

    // Participants: two connected at once, across the account's rooms.
    app.join(&rooms[0], "a").await;
    app.join(&rooms[1], "b").await;
    app.post(
        &format!("/v1/Rooms/{}/Participants", rooms[1]),
        "Identity=c",
    )
    .await
    .assert_error(400, 53206);
    // Taking over a connected identity does not add one.
    let again = app
        .post(
            &format!("/v1/Rooms/{}/Participants", rooms[0]),
            "Identity=a",
        )
        .await;
    assert_eq!(again.status, 201, "{}", again.body);
    // One that leaves frees its place.
    let left = app
        .post(
            &format!("/v1/Rooms/{}/Participants/b", rooms[1]),
            "Status=disconnected",
        )
        .await;
    assert_eq!(left.status, 202, "{}", left.body);
    app.join(&rooms[1], "c").await;

    // The account's own quota (0: unlimited) applies at once, from the CLI.
    let updated = json_stdout(
        &update_account(
            &app,
            &[
                "--max-rooms-in-progress",
                "0",
                "--max-participants-connected",
                "5",
            ],
        )
        .await,
    );
    assert_eq!(updated["max_rooms_in_progress"], 0);
    assert_eq!(updated["max_participants_connected"], 5);
    for i in 6..10 {
        app.create_room(&format!("UniqueName=r{i}")).await;
    }
    app.join(&rooms[1], "d").await;
    let text = app.metrics_text().await;
    for (limit, hits) in [("rooms_in_progress", 2.0), ("participants_connected", 1.0)] {
        assert_eq!(
            crate::helpers::metric_value(
                &text,
                &format!(r#"roomd_account_limits_hit_total{{limit="{limit}"}}"#)
            ),
            Some(hits),
            "{limit}"
        );
    }
}
