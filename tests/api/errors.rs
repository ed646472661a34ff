//! Errors the framework would otherwise answer in its own words: every one is Twilio's body.

use crate::helpers::spawn_app;
use reqwest::Method;

#[tokio::test]
async fn unknown_paths_are_twilio_404s() {
    let app = spawn_app().await;
    for path in ["/v1/Nope", "/", "/v2/Rooms", "/v1/Rooms/RMx/Unknown/Deeper"] {
        let r = app.get(path).await;
        r.assert_error(404, 20404);
    }
    let r = app.get("/v1/Nope").await;
    assert_eq!(
        r.body["message"],
        "The requested resource /Nope was not found"
    );
}

#[tokio::test]
async fn wrong_methods_are_twilio_405s() {
    let app = spawn_app().await;
    for (method, path) in [
        (Method::DELETE, "/v1/Rooms"),
        (Method::PUT, "/v1/Rooms"),
        (Method::DELETE, "/v1/Rooms/x"),
        (Method::PATCH, "/v1/Rooms/x"),
    ] {
        app.request_as(Some(&app.account), method, path, None)
            .await
            .assert_error(405, 20004);
    }
}

#[tokio::test]
async fn oversized_malformed_and_mistyped_bodies_are_rejected_with_twilio_bodies() {
    let app = spawn_app().await;
    let big = format!("UniqueName={}", "a".repeat(70 * 1024));
    app.post("/v1/Rooms", &big).await.assert_error(413, 20001);
    for body in [
        "UniqueName=%E0%A4",
        "UniqueName=%zz",
        "=novalue",
        "UniqueName=a&UniqueName=b",
    ] {
        app.post("/v1/Rooms", body).await.assert_error(400, 20001);
    }
    let raw = app
        .client
        .post(app.url("/v1/Rooms"))
        .basic_auth(&app.account.sid, Some(&app.account.token))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(vec![b'U', b'=', 0xff, 0xfe])
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let json = app
        .client
        .post(app.url("/v1/Rooms"))
        .basic_auth(&app.account.sid, Some(&app.account.token))
        .header("Content-Type", "application/json")
        .body(r#"{"UniqueName":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 415);
    let body: serde_json::Value = json.json().await.unwrap();
    assert_eq!(body["code"], 20001);
    assert_eq!(app.room_count().await, 0);
}

#[tokio::test]
async fn healthz_answers_without_auth_and_serving_survives_killed_connections() {
    // (A database that is down entirely, and 503 from /healthz then: resilience.rs.)
    let app = spawn_app().await;
    let ok = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    for _ in 0..8 {
        assert_eq!(app.get("/v1/Rooms").await.status, 200);
    }
    // Kill every connection the server's workers hold, as a failover or an operator would.
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()) t",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(killed >= 1, "the server held no connection to kill");
    // A request on a killed connection is a retryable 503 (never a 500 or a hang); the workers
    // then open new connections and serve again.
    let mut served = 0;
    for _ in 0..40 {
        let r = app.get("/v1/Rooms").await;
        if r.status == 200 {
            served += 1;
            if served == 8 {
                break;
            }
        } else {
            r.assert_error(503, 20503);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    assert_eq!(served, 8, "the server did not recover its connections");
}
