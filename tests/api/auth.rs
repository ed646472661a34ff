use crate::helpers::{create_account, spawn_app, TestAccount};
use reqwest::Method;

#[tokio::test]
async fn missing_or_wrong_credentials_get_twilios_401() {
    let app = spawn_app().await;
    let wrong_token = TestAccount {
        sid: app.account.sid.clone(),
        token: "0".repeat(32),
    };
    let unknown_sid = TestAccount {
        sid: format!("AC{}", "0".repeat(32)),
        token: app.account.token.clone(),
    };
    let not_a_sid = TestAccount {
        sid: "someone".into(),
        token: app.account.token.clone(),
    };
    for who in [
        None,
        Some(&wrong_token),
        Some(&unknown_sid),
        Some(&not_a_sid),
    ] {
        for (method, path) in [
            (Method::GET, "/v1/Rooms"),
            (Method::POST, "/v1/Rooms"),
            (Method::GET, "/v1/Rooms/x"),
        ] {
            let r = app.request_as(who, method.clone(), path, Some("")).await;
            r.assert_error(401, 20003);
            assert_eq!(
                r.body.to_string(),
                r#"{"code":20003,"message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401}"#
            );
            assert_eq!(r.headers["www-authenticate"], r#"Basic realm="Twilio API""#);
        }
    }
    assert_eq!(app.room_count().await, 0);
}

#[tokio::test]
async fn malformed_authorization_headers_are_401() {
    let app = spawn_app().await;
    for header in [
        "Basic",
        "Basic !!!",
        "Bearer abc",
        "Basic Zm9v",
        "Basic OnRva2Vu",
        "Basic   ",
        "basic",
    ] {
        let resp = app
            .client
            .get(app.url("/v1/Rooms"))
            .header("Authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{header}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["code"], 20003);
    }
}

#[tokio::test]
async fn another_accounts_rooms_are_not_found_by_sid_or_name_for_fetch_update_and_list() {
    let app = spawn_app().await;
    let other = create_account(&app.pool, "other").await;
    let mine = app.create_room("UniqueName=private").await;
    let sid = mine["sid"].as_str().unwrap();
    let as_other = |method: Method, path: String, form: Option<&'static str>| {
        let app = &app;
        let other = other.clone();
        async move { app.request_as(Some(&other), method, &path, form).await }
    };
    for key in [sid, "private"] {
        as_other(Method::GET, format!("/v1/Rooms/{key}"), None)
            .await
            .assert_error(404, 20404);
        as_other(
            Method::POST,
            format!("/v1/Rooms/{key}"),
            Some("Status=completed"),
        )
        .await
        .assert_error(404, 20404);
    }
    for q in ["", "?UniqueName=private", "?Status=in-progress"] {
        let r = as_other(Method::GET, format!("/v1/Rooms{q}"), None).await;
        assert_eq!(r.body["rooms"], serde_json::json!([]), "{q}");
    }
    // Untouched by all of that.
    let r = app.get(&format!("/v1/Rooms/{sid}")).await;
    assert_eq!(r.body["status"], "in-progress");
    assert_eq!(
        app.get("/v1/Rooms").await.body["rooms"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_rotated_token_stops_working_once_the_cache_ttl_has_passed() {
    let app = crate::helpers::spawn_app_with(crate::helpers::Options {
        auth_cache_ttl: std::time::Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    let argon2 = || app.metrics.argon2_verifications.get();
    assert_eq!(app.get("/v1/Rooms").await.status, 200);
    assert_eq!(argon2(), 1);
    // Past the TTL, an unchanged stored hash renews the entry without another argon2 run.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(app.get("/v1/Rooms").await.status, 200);
    assert_eq!(app.get("/v1/Rooms").await.status, 200);
    assert_eq!(argon2(), 1);
    let new_token = roomd::domain::sid::random_hex32();
    roomd::db::accounts::set_token_hash(
        &app.pool,
        &app.account.sid,
        &roomd::auth::credentials::hash_token(&new_token),
        None,
    )
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    app.get("/v1/Rooms").await.assert_error(401, 20003);
    let rotated = TestAccount {
        sid: app.account.sid.clone(),
        token: new_token,
    };
    assert_eq!(
        app.request_as(Some(&rotated), Method::GET, "/v1/Rooms", None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn suspended_accounts_cannot_authenticate() {
    let app = crate::helpers::spawn_app_with(crate::helpers::Options {
        auth_cache_ttl: std::time::Duration::from_secs(0),
        ..Default::default()
    })
    .await;
    // Verified once (and remembered); with a TTL of 0 every later request re-reads the account.
    assert_eq!(app.get("/v1/Rooms").await.status, 200);
    sqlx::query("UPDATE accounts SET status = 'suspended' WHERE sid = $1")
        .bind(&app.account.sid)
        .execute(&app.pool)
        .await
        .unwrap();
    app.get("/v1/Rooms").await.assert_error(401, 20003);
}

#[tokio::test]
async fn repeated_failures_for_a_sid_get_429_before_any_verification_and_spare_other_accounts() {
    let app = spawn_app().await;
    // The account's own client is verified (and cached) before the flood.
    assert_eq!(app.get("/v1/Rooms").await.status, 200);
    let wrong = TestAccount {
        sid: app.account.sid.clone(),
        token: "0".repeat(32),
    };
    let unknown = TestAccount {
        sid: roomd::domain::sid::generate("AC"),
        token: "0".repeat(32),
    };
    for attacked in [&wrong, &unknown] {
        let mut statuses = Vec::new();
        for _ in 0..30 {
            let r = app
                .request_as(Some(attacked), Method::GET, "/v1/Rooms", None)
                .await;
            if r.status == 429 {
                r.assert_error(429, 20429);
                let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
                assert!((1..=60).contains(&wait), "{wait}");
            }
            statuses.push(r.status);
        }
        // Known and unknown SIDs are throttled alike, after the same number of failures.
        assert_eq!(
            statuses.iter().filter(|s| **s == 401).count(),
            roomd::auth::failure_throttle::MAX_FAILURES_PER_SID as usize,
            "{statuses:?}"
        );
        assert!(statuses[20..].iter().all(|s| *s == 429), "{statuses:?}");
    }
    let before = app.metrics.argon2_verifications.get();
    for _ in 0..10 {
        app.request_as(Some(&wrong), Method::GET, "/v1/Rooms", None)
            .await
            .assert_error(429, 20429);
    }
    assert_eq!(
        app.metrics.argon2_verifications.get(),
        before,
        "no argon2 for a 429"
    );
    // The cached credential of the attacked account, and another account, still work.
    assert_eq!(app.get("/v1/Rooms").await.status, 200);
    let other = crate::helpers::create_account(&app.pool, "other").await;
    let r = app
        .request_as(Some(&other), Method::GET, "/v1/Rooms", None)
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn credentials_are_checked_before_the_body_is_read() {
    let app = spawn_app().await;
    // A body roomd would refuse (415, 400) or that never ends: an unauthenticated client gets
    // 401 for all of them, and roomd does not parse what it sent.
    let bodies: [(&str, &[u8]); 2] = [
        ("application/json", b"{}"),
        ("application/x-www-form-urlencoded", b"UniqueName=%zz"),
    ];
    for (content_type, body) in bodies {
        for path in ["/v1/Rooms", "/v1/Rooms/some-room"] {
            let r = app
                .client
                .post(format!("{}{path}", app.address))
                .basic_auth(&app.account.sid, Some("0".repeat(32)))
                .header("Content-Type", content_type)
                .body(body.to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 401, "{content_type} {path}");
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["code"], 20003, "{content_type} {path}");
        }
    }
}
