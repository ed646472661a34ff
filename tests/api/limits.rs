//! Per-account limits: one account's request rate, and client-side room creation.

use crate::cli::{json_stdout, roomd};
use crate::helpers::{create_account, create_api_key, spawn_app_with, Options};
use reqwest::Method;
use std::time::Duration;

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
    let url = app.database_url.clone();
    let sid = app.account.sid.clone();
    let updated = tokio::task::spawn_blocking(move || {
        json_stdout(&roomd(
            &url,
            &[
                "accounts",
                "update",
                &sid,
                "--max-requests-per-second",
                "1000",
            ],
        ))
    })
    .await
    .unwrap();
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

    let url = app.database_url.clone();
    let sid = app.account.sid.clone();
    let out = tokio::task::spawn_blocking(move || {
        roomd(
            &url,
            &[
                "accounts",
                "update",
                &sid,
                "--client-room-creation",
                "false",
            ],
        )
    })
    .await
    .unwrap();
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
