//! Request ids, metrics and logs.

use crate::cli::{serve, signal, wait};
use crate::helpers::{metric_value, spawn_app, spawn_app_with, Options, TestAccount};
use reqwest::Method;
use std::collections::HashSet;

fn is_request_id(v: &str) -> bool {
    v.len() == 34
        && v.starts_with("RQ")
        && v[2..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[tokio::test]
async fn every_response_carries_a_fresh_twilio_request_id() {
    let app = spawn_app().await;
    let stranger = TestAccount {
        sid: app.account.sid.clone(),
        token: "0".repeat(32),
    };
    let mut seen = HashSet::new();
    for (who, method, path) in [
        (Some(&app.account), Method::POST, "/v1/Rooms"),
        (Some(&app.account), Method::GET, "/v1/Rooms"),
        (Some(&stranger), Method::GET, "/v1/Rooms"),
        (Some(&app.account), Method::GET, "/v1/Nope"),
        (Some(&app.account), Method::DELETE, "/v1/Rooms"),
        (None, Method::GET, "/healthz"),
    ] {
        let mut req = app.client.request(method, app.url(path));
        if let Some(a) = who {
            req = req.basic_auth(&a.sid, Some(&a.token));
        }
        let resp = req.send().await.unwrap();
        let id = resp.headers()["twilio-request-id"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(is_request_id(&id), "{path}: {id}");
        assert!(seen.insert(id), "ids are unique");
    }
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_rooms_auth_and_the_sweeper() {
    let app = spawn_app().await;
    let room = app.create_room("UniqueName=metered").await;
    let sid = room["sid"].as_str().unwrap();
    for _ in 0..5 {
        assert_eq!(app.get(&format!("/v1/Rooms/{sid}")).await.status, 200);
    }
    app.get("/v1/Rooms/metered").await;
    app.complete_room(sid).await;
    app.get("/v1/Unknown/Path").await;
    let expired = app.create_room("").await;
    sqlx::query("UPDATE rooms SET deadline = now() - interval '1 second' WHERE sid = $1")
        .bind(expired["sid"].as_str().unwrap())
        .execute(&app.pool)
        .await
        .unwrap();
    let ended = roomd::workers::sweeper::sweep_once(&app.pool, Some(&app.metrics))
        .await
        .unwrap();
    assert_eq!(ended.rooms.len(), 1);

    // No auth needed.
    let resp = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    let get = |series: &str| {
        metric_value(&text, series).unwrap_or_else(|| panic!("{series} missing:\n{text}"))
    };
    assert_eq!(
        get(r#"roomd_http_requests_total{method="POST",route="/v1/Rooms",status="201"}"#),
        2.0
    );
    assert_eq!(
        get(r#"roomd_http_requests_total{method="GET",route="/v1/Rooms/{room}",status="200"}"#),
        6.0
    );
    assert_eq!(
        get(r#"roomd_http_requests_total{method="POST",route="/v1/Rooms/{room}",status="202"}"#),
        1.0
    );
    assert_eq!(
        get(r#"roomd_http_requests_total{method="GET",route="unmatched",status="404"}"#),
        1.0
    );
    assert!(!text.contains(sid), "no raw paths as labels");
    assert_eq!(
        get(r#"roomd_http_request_duration_seconds_count{route="/v1/Rooms/{room}"}"#),
        7.0
    );
    assert_eq!(get("roomd_rooms_created_total"), 2.0);
    assert_eq!(get(r#"roomd_rooms_ended_total{reason="rest"}"#), 1.0);
    assert_eq!(
        get(r#"roomd_rooms_ended_total{reason="unused_timeout"}"#),
        1.0
    );
    assert_eq!(
        get(r#"roomd_rooms_ended_total{reason="empty_timeout"}"#),
        0.0
    );
    assert_eq!(get("roomd_rooms_in_progress"), 0.0);
    assert!(get("roomd_sweeper_batches_total") >= 1.0);
    assert!(get("roomd_sweeper_batch_duration_seconds_count") >= 1.0);
    // Nine authenticated requests (the unknown path needs none), one argon2 verification.
    assert_eq!(get("roomd_argon2_verifications_total"), 1.0);
    assert_eq!(get("roomd_auth_cache_misses_total"), 1.0);
    assert_eq!(get("roomd_auth_cache_hits_total"), 8.0);
    // The workers' pools, summed: the connections that served the requests above are idle now
    // (the gauges are read before this scrape takes one).
    assert!(get("roomd_db_pool_connections_idle") >= 1.0);
    assert_eq!(get("roomd_db_pool_connections_in_use"), 0.0);
}

#[tokio::test]
async fn metrics_may_have_a_listener_of_their_own() {
    let app = spawn_app_with(Options {
        separate_metrics: true,
        ..Default::default()
    })
    .await;
    let separate = app.metrics_address.clone().unwrap();
    let resp = app
        .client
        .get(format!("{separate}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("roomd_rooms_created_total"));
    let main = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(main.status(), 404, "not on the public listener");
}

#[tokio::test]
async fn json_logs_carry_the_request_id_and_never_a_secret() {
    let db = crate::helpers::fresh_database().await;
    let sid = format!("AC{}", "e".repeat(32));
    let token = "s3cret-token-value";
    let mut served = serve(vec![
        ("DATABASE_URL", db.url.clone()),
        ("ROOMD_BOOTSTRAP_ACCOUNT", format!("{sid}:{token}")),
        ("ROOMD_LOG_FORMAT", "json".into()),
        ("RUST_LOG", "debug".into()),
    ])
    .await;
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{}/v1/Rooms", served.base))
        .basic_auth(&sid, Some(token))
        .form(&[("UniqueName", "logged")])
        .send()
        .await
        .unwrap();
    let id = created.headers()["twilio-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(created.status(), 201);
    let denied = client
        .get(format!("{}/v1/Rooms", served.base))
        .basic_auth(&sid, Some("wrong-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    signal(&served.child, libc::SIGTERM);
    assert!(wait(std::mem::replace(
        &mut served.child,
        std::process::Command::new("true").spawn().unwrap()
    ))
    .await
    .success());
    let lines = served.log.finish();

    let of_request: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["span"]["request_id"] == id)
        .collect();
    assert!(
        of_request
            .iter()
            .any(|v| v["fields"]["message"] == "room created"),
        "{lines:?}"
    );
    assert!(
        of_request
            .iter()
            .any(|v| v["fields"]["message"] == "request served"),
        "{lines:?}"
    );
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{sid}:{token}"),
    );
    for l in &lines {
        assert!(
            serde_json::from_str::<serde_json::Value>(l).is_ok(),
            "every line is JSON: {l}"
        );
        for secret in [token, "wrong-token", basic.as_str(), "$argon2"] {
            assert!(!l.contains(secret), "a secret in the log: {l}");
        }
    }
}

#[tokio::test]
async fn made_up_methods_share_one_metric_label_so_series_stay_bounded() {
    let app = spawn_app().await;
    let scrape = || async {
        app.client
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let series = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("roomd_http_requests_total{"))
            .count()
    };
    for i in 0..200 {
        let method = reqwest::Method::from_bytes(format!("MADEUP{i}").as_bytes()).unwrap();
        let r = app
            .client
            .request(method, app.url("/v1/Rooms"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405);
    }
    let text = scrape().await;
    assert!(!text.contains("MADEUP"), "no raw method as a label");
    assert_eq!(
        metric_value(
            &text,
            r#"roomd_http_requests_total{method="other",route="/v1/Rooms",status="405"}"#
        ),
        Some(200.0)
    );
    let before = series(&text);
    for i in 200..400 {
        let method = reqwest::Method::from_bytes(format!("MADEUP{i}").as_bytes()).unwrap();
        app.client
            .request(method, app.url("/v1/Rooms"))
            .send()
            .await
            .unwrap();
    }
    assert_eq!(
        series(&scrape().await),
        before + 1,
        "only the first scrape's own series is new"
    );
}

#[tokio::test]
async fn metrics_count_joins_by_outcome_disconnects_by_reason_and_who_is_connected() {
    let app = spawn_app().await;
    let room = app
        .create_room("UniqueName=metered&MaxParticipants=2")
        .await;
    let sid = room["sid"].as_str().unwrap();
    app.join(sid, "alice").await;
    app.join(sid, "bob").await;
    app.join(sid, "bob").await; // takes bob's place
    let full = app
        .post(&format!("/v1/Rooms/{sid}/Participants"), "Identity=carol")
        .await;
    assert_eq!(full.status, 400);
    app.post(
        &format!("/v1/Rooms/{sid}/Participants/alice"),
        "Status=disconnected",
    )
    .await;
    app.join("elsewhere", "dave").await; // creates its room
    let text = app.metrics_text().await;
    for (series, expected) in [
        (r#"roomd_participant_joins_total{outcome="joined"}"#, 3.0),
        (r#"roomd_participant_joins_total{outcome="replaced"}"#, 1.0),
        (r#"roomd_participant_joins_total{outcome="room_full"}"#, 1.0),
        (r#"roomd_participant_joins_total{outcome="refused"}"#, 0.0),
        (
            r#"roomd_participants_disconnected_total{reason="duplicate_identity"}"#,
            1.0,
        ),
        (
            r#"roomd_participants_disconnected_total{reason="kicked"}"#,
            1.0,
        ),
        (
            r#"roomd_participants_disconnected_total{reason="room_ended"}"#,
            0.0,
        ),
        // bob (in the first room) and dave: counted from the database.
        ("roomd_participants_connected", 2.0),
        ("roomd_rooms_created_total", 2.0),
    ] {
        assert_eq!(metric_value(&text, series), Some(expected), "{series}");
    }
    app.complete_room(sid).await;
    assert_eq!(
        app.metrics
            .participants_disconnected
            .with_label_values(&["room_ended"])
            .get(),
        1
    );
}

#[tokio::test]
async fn a_taken_default_metrics_address_is_logged_and_serving_goes_on_without_it() {
    use roomd::app::startup::{Application, ServerSettings};
    let db = crate::helpers::fresh_database().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let settings = |optional| ServerSettings {
        metrics_bind: Some(taken.local_addr().unwrap()),
        metrics_bind_optional: optional,
        ..ServerSettings::local()
    };
    // An address the operator chose is not given up.
    assert!(Application::build(settings(false), db.options.clone()).is_err());
    // The default one is: roomd serves, with no metrics listener and no /metrics on the main
    // listener either (it may be public).
    let app = Application::build(settings(true), db.options.clone()).unwrap();
    assert_eq!(app.metrics_addr(), None);
    let base = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until(std::future::pending()));
    let client = reqwest::Client::new();
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 404);
}
