//! Test clocks: an account whose time stands still until `POST /v1/TestClock` moves it, with
//! everything that falls due on the way applied at its deadline, events included; real time
//! ends nothing of it, and other accounts do not notice.

use crate::helpers::{
    create_account, create_api_key, create_clocked_account, enc, spawn_app, spawn_app_with,
    Options, Reply, TestAccount, TestApp,
};
use crate::receiver::Receiver;
use chrono::{DateTime, Duration as Span, Utc};
use reqwest::Method;
use serde_json::Value;

/// `app`, acting as `account`.
struct As<'a> {
    app: &'a TestApp,
    account: TestAccount,
}

impl As<'_> {
    async fn get(&self, path: &str) -> Reply {
        self.app
            .request_as(Some(&self.account), Method::GET, path, None)
            .await
    }

    async fn post(&self, path: &str, form: &str) -> Reply {
        self.app
            .request_as(Some(&self.account), Method::POST, path, Some(form))
            .await
    }

    async fn create_room(&self, form: &str) -> Value {
        let r = self.post("/v1/Rooms", form).await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body
    }

    async fn join(&self, room: &str, identity: &str) -> Value {
        let r = self
            .post(
                &format!("/v1/Rooms/{room}/Participants"),
                &format!("Identity={identity}"),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body
    }

    async fn clock(&self) -> DateTime<Utc> {
        let r = self.get("/v1/TestClock").await;
        assert_eq!(r.status, 200, "{}", r.body);
        time(&r.body["frozen_time"])
    }

    async fn advance(&self, seconds: i64) -> DateTime<Utc> {
        let r = self
            .post("/v1/TestClock", &format!("Advance={seconds}"))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        time(&r.body["frozen_time"])
    }
}

async fn clocked(app: &TestApp) -> As<'_> {
    As {
        app,
        account: create_clocked_account(&app.pool, "clocked").await,
    }
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a date: {v}")))
        .unwrap()
        .with_timezone(&Utc)
}

fn callback(receiver: &Receiver) -> String {
    format!("StatusCallback={}", enc(&receiver.url("/events")))
}

#[tokio::test]
async fn a_room_nobody_joins_ends_at_its_unused_timeout_when_the_clock_passes_it() {
    let app = spawn_app().await;
    let me = clocked(&app).await;
    let receiver = Receiver::ok().await;
    let start = me.clock().await;
    let r = me.get("/v1/TestClock").await;
    assert_eq!(r.body["account_sid"], me.account.sid.as_str());
    assert_eq!(r.body["url"], app.url("/v1/TestClock"));
    assert_eq!(r.body.as_object().unwrap().len(), 3, "{}", r.body);

    let room = me
        .create_room(&format!("UnusedRoomTimeout=5&{}", callback(&receiver)))
        .await;
    let sid = room["sid"].as_str().unwrap();
    assert_eq!(
        time(&room["date_created"]),
        start,
        "created at the clock's time"
    );
    receiver.delivered(1).await;

    assert_eq!(me.advance(299).await, start + Span::seconds(299));
    let r = me.get(&format!("/v1/Rooms/{sid}")).await;
    assert_eq!(r.body["status"], "in-progress", "not due yet");

    assert_eq!(me.advance(2).await, start + Span::seconds(301));
    // Committed before the answer: the next read sees it.
    let r = me.get(&format!("/v1/Rooms/{sid}")).await;
    assert_eq!(r.body["status"], "completed", "{}", r.body);
    assert_eq!(r.body["duration"], 300);
    assert_eq!(time(&r.body["end_time"]), start + Span::seconds(300));
    assert_eq!(time(&r.body["date_updated"]), start + Span::seconds(300));

    let got = receiver.delivered(2).await;
    assert_eq!(got[1].event(), "room-ended");
    assert_eq!(got[1].param("RoomDuration"), Some("300"));
    assert_eq!(got[1].param("RoomStatus"), Some("completed"));
    let at = DateTime::parse_from_rfc3339(got[1].param("Timestamp").unwrap()).unwrap();
    assert_eq!(at, start + Span::seconds(300));
}

#[tokio::test]
async fn an_empty_room_and_an_overstaying_participant_end_in_deadline_order() {
    let app = spawn_app().await;
    let me = clocked(&app).await;
    let receiver = Receiver::ok().await;
    let start = me.clock().await;

    // Empty timeout: a participant comes and is removed at once; the room ends a minute later.
    let empty = me
        .create_room(&format!("EmptyRoomTimeout=1&{}", callback(&receiver)))
        .await;
    let empty = empty["sid"].as_str().unwrap().to_string();
    let p = me.join(&empty, "alice").await;
    let kicked = me
        .post(
            &format!(
                "/v1/Rooms/{empty}/Participants/{}",
                p["sid"].as_str().unwrap()
            ),
            "Status=disconnected",
        )
        .await;
    assert_eq!(kicked.status, 202, "{}", kicked.body);

    // Max duration: bob is cut off at 600 s; his room then empties and ends 5 minutes later.
    let long = me
        .create_room(&format!(
            "MaxParticipantDuration=600&EmptyRoomTimeout=5&{}",
            callback(&receiver)
        ))
        .await;
    let long = long["sid"].as_str().unwrap().to_string();
    let bob = me.join(&long, "bob").await;
    assert_eq!(time(&bob["start_time"]), start);

    assert_eq!(me.advance(901).await, start + Span::seconds(901));
    let r = me.get(&format!("/v1/Rooms/{empty}")).await;
    assert_eq!(r.body["status"], "completed");
    assert_eq!(r.body["duration"], 60);
    let r = me
        .get(&format!(
            "/v1/Rooms/{long}/Participants/{}",
            bob["sid"].as_str().unwrap()
        ))
        .await;
    assert_eq!(r.body["status"], "disconnected");
    assert_eq!(r.body["duration"], 600);
    assert_eq!(time(&r.body["end_time"]), start + Span::seconds(600));
    let r = me.get(&format!("/v1/Rooms/{long}")).await;
    assert_eq!(r.body["status"], "completed");
    assert_eq!(r.body["duration"], 900);

    let got = receiver.delivered(8).await;
    let of = |room: &str| -> Vec<(String, String)> {
        got.iter()
            .filter(|e| e.param("RoomSid") == Some(room))
            .map(|e| {
                (
                    e.event().to_string(),
                    e.param("Timestamp").unwrap().to_string(),
                )
            })
            .collect()
    };
    let at = |s: i64| {
        (start + Span::seconds(s))
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string()
    };
    assert_eq!(
        of(&long),
        vec![
            ("room-created".into(), at(0)),
            ("participant-connected".into(), at(0)),
            ("participant-disconnected".into(), at(600)),
            ("room-ended".into(), at(900)),
        ]
    );
    let bob_left = got
        .iter()
        .find(|e| e.event() == "participant-disconnected" && e.param("RoomSid") == Some(&long))
        .unwrap();
    assert_eq!(bob_left.param("ParticipantDuration"), Some("600"));
    assert_eq!(
        of(&empty).last().unwrap(),
        &("room-ended".to_string(), at(60))
    );
}

#[tokio::test]
async fn real_time_never_ends_a_clocked_room_and_an_advance_touches_no_other_account() {
    let app = spawn_app().await;
    let me = clocked(&app).await;
    let clocked_room = me.create_room("UnusedRoomTimeout=1").await;
    let clocked_room = clocked_room["sid"].as_str().unwrap().to_string();
    let real = app.create_room("UnusedRoomTimeout=1").await;
    let real = real["sid"].as_str().unwrap().to_string();
    assert!(
        (Utc::now() - time(&app.get(&format!("/v1/Rooms/{real}")).await.body["date_created"]))
            .num_seconds()
            < 60,
        "a real-time account's rooms are stamped with real time"
    );
    // Both deadlines an hour in the real past: the sweeper ends only the real-time room.
    sqlx::query("UPDATE rooms SET deadline = now() - interval '1 hour' WHERE sid = ANY($1)")
        .bind(vec![clocked_room.clone(), real.clone()])
        .execute(&app.pool)
        .await
        .unwrap();
    let swept = roomd::workers::sweeper::sweep_once(&app.pool, None)
        .await
        .unwrap();
    let ended: Vec<&str> = swept.rooms.iter().map(|r| r.sid.as_str()).collect();
    assert_eq!(ended, vec![real.as_str()]);
    let r = me.get(&format!("/v1/Rooms/{clocked_room}")).await;
    assert_eq!(r.body["status"], "in-progress");
    let r = app.get(&format!("/v1/Rooms/{real}")).await;
    assert_eq!(r.body["status"], "completed");

    // A real-time room with a deadline still ahead is left alone by another account's advance.
    let other = app.create_room("UnusedRoomTimeout=1").await;
    let other = other["sid"].as_str().unwrap().to_string();
    me.advance(3600 * 24).await;
    let r = app.get(&format!("/v1/Rooms/{other}")).await;
    assert_eq!(r.body["status"], "in-progress");
    let r = me.get(&format!("/v1/Rooms/{clocked_room}")).await;
    assert_eq!(r.body["status"], "completed", "the advance ended it");
}

#[tokio::test]
async fn concurrent_advances_of_one_clock_both_count() {
    let app = spawn_app().await;
    let me = clocked(&app).await;
    let start = me.clock().await;
    let (a, b) = tokio::join!(me.advance(100), me.advance(100));
    assert_eq!(a.max(b), start + Span::seconds(200));
    assert_eq!(a.min(b), start + Span::seconds(100));
    assert_eq!(me.clock().await, start + Span::seconds(200));
}

#[tokio::test]
async fn created_date_filters_and_later_rooms_follow_the_clock() {
    let app = spawn_app().await;
    let me = clocked(&app).await;
    let start = me.clock().await;
    let first = me.create_room("UniqueName=first").await;
    me.advance(2 * 86400).await;
    let second = me.create_room("UniqueName=second").await;
    assert_eq!(time(&second["date_created"]), start + Span::days(2));
    let after = (start + Span::days(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let r = me
        .get(&format!("/v1/Rooms?DateCreatedAfter={}", enc(&after)))
        .await;
    let sids: Vec<&str> = r.body["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["sid"].as_str().unwrap())
        .collect();
    assert_eq!(sids, vec![second["sid"].as_str().unwrap()]);

    // The first room, never joined, ended at its (default) unused timeout on the way.
    let r = me
        .get(&format!("/v1/Rooms/{}", first["sid"].as_str().unwrap()))
        .await;
    assert_eq!(r.body["status"], "completed");
    assert_eq!(time(&r.body["end_time"]), start + Span::minutes(5));

    // Ended through the API, on the clock too.
    me.advance(60).await;
    let r = me
        .post(
            &format!("/v1/Rooms/{}", second["sid"].as_str().unwrap()),
            "Status=completed",
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        time(&r.body["end_time"]),
        start + Span::days(2) + Span::seconds(60)
    );
    assert_eq!(r.body["duration"], 60);
}

#[tokio::test]
async fn a_participant_joining_with_an_access_token_joins_on_the_clock() {
    let app = spawn_app().await;
    let me = clocked(&app).await;
    let key = create_api_key(&app.pool, &me.account.sid).await;
    me.create_room("UniqueName=standup").await;
    let start = me.advance(42).await;
    let r = app
        .post_bearer(
            &key.token("carol", Some("standup")),
            "/v1/Rooms/standup/Participants",
            "",
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(time(&r.body["start_time"]), start);
    assert_eq!(time(&r.body["date_created"]), start);
}

#[tokio::test]
async fn bad_advances_and_accounts_without_a_clock_get_twilios_errors() {
    let app = spawn_app().await;
    let me = clocked(&app).await;
    let start = me.clock().await;
    for form in [
        "Advance=0",
        "Advance=-5",
        "Advance=1.5",
        "Advance=abc",
        "Advance=",
        "Advance=99999999999999999999",
        "Advance=10&FrozenTime=2030-01-01T00:00:00Z",
        "",
        "FrozenTime=yesterday",
        "FrozenTime=10000-01-01T00:00:00Z",
    ] {
        me.post("/v1/TestClock", form)
            .await
            .assert_error(400, 20001);
    }
    let earlier = (start - Span::seconds(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    me.post("/v1/TestClock", &format!("FrozenTime={}", enc(&earlier)))
        .await
        .assert_error(400, 20001);
    let same = start.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    me.post("/v1/TestClock", &format!("FrozenTime={}", enc(&same)))
        .await
        .assert_error(400, 20001);
    assert_eq!(me.clock().await, start, "nothing moved");
    let later = (start + Span::hours(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let r = me
        .post("/v1/TestClock", &format!("FrozenTime={}", enc(&later)))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(time(&r.body["frozen_time"]), start + Span::hours(1));

    // To the year 9999's last second, and no further.
    let r = me
        .post("/v1/TestClock", "FrozenTime=9999-12-31T23:59:59Z")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    me.post("/v1/TestClock", "Advance=1")
        .await
        .assert_error(400, 20001);
    assert_eq!(me.clock().await.to_rfc3339(), "9999-12-31T23:59:59+00:00");

    app.get("/v1/TestClock").await.assert_error(404, 20404);
    app.post("/v1/TestClock", "Advance=10")
        .await
        .assert_error(404, 20404);
    app.request_as(None, Method::GET, "/v1/TestClock", None)
        .await
        .assert_error(401, 20003);
    app.request_as(Some(&me.account), Method::DELETE, "/v1/TestClock", None)
        .await
        .assert_error(405, 20004);
}

#[tokio::test]
async fn a_server_with_test_clocks_turned_off_refuses_clocked_accounts_only() {
    let app = spawn_app_with(Options {
        test_clocks: false,
        ..Options::default()
    })
    .await;
    let me = clocked(&app).await;
    me.get("/v1/Rooms").await.assert_error(403, 20403);
    me.post("/v1/TestClock", "Advance=10")
        .await
        .assert_error(403, 20403);
    let other = create_account(&app.pool, "real").await;
    let r = app
        .request_as(Some(&other), Method::GET, "/v1/Rooms", None)
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn the_cli_creates_test_clock_accounts_lists_them_and_refuses_them_when_turned_off() {
    let app = spawn_app().await;
    let url = app.database_url.clone();
    let created = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            crate::cli::json_stdout(&crate::cli::roomd(
                &url,
                &[
                    "accounts",
                    "create",
                    "--friendly-name",
                    "suite",
                    "--test-clock",
                ],
            ))
        }
    })
    .await
    .unwrap();
    assert_eq!(created["test_clock"], true);
    let me = As {
        app: &app,
        account: TestAccount {
            sid: created["sid"].as_str().unwrap().to_string(),
            token: created["auth_token"].as_str().unwrap().to_string(),
        },
    };
    // Frozen at the account's creation, to the second.
    let frozen = me.clock().await;
    let made = time(&created["date_created"]);
    assert_eq!(frozen, made);

    let listed = tokio::task::spawn_blocking({
        let url = url.clone();
        move || crate::cli::roomd(&url, &["accounts", "list"])
    })
    .await
    .unwrap();
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let flag = |sid: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["sid"] == sid)
            .unwrap()["test_clock"]
            .clone()
    };
    assert_eq!(flag(&me.account.sid), true);
    assert_eq!(flag(&app.account.sid), false);

    let refused = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_roomd"))
            .args(["accounts", "create", "--friendly-name", "x", "--test-clock"])
            .env("DATABASE_URL", &url)
            .env("ROOMD_MASTER_KEY", crate::cli::TEST_MASTER_KEY)
            .env("ROOMD_TEST_CLOCKS", "false")
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("ROOMD_TEST_CLOCKS"));
}

#[tokio::test]
async fn two_replicas_share_one_clock_and_other_accounts_advance_independently() {
    let app = spawn_app().await;
    let other = crate::helpers::start_server(&app._db.options, Options::default(), None);
    let me = clocked(&app).await;
    let them = clocked(&app).await;
    let start = me.clock().await;
    let their_start = them.clock().await;
    // Created through one replica, ended by an advance through the other, read back through
    // the first.
    let room = me.create_room("UnusedRoomTimeout=1").await;
    let advanced = app
        .client
        .post(format!("{}/v1/TestClock", other.address))
        .basic_auth(&me.account.sid, Some(&me.account.token))
        .form(&[("Advance", "61")])
        .send()
        .await
        .unwrap();
    assert_eq!(advanced.status(), 200);
    assert_eq!(me.clock().await, start + Span::seconds(61));
    let r = me
        .get(&format!("/v1/Rooms/{}", room["sid"].as_str().unwrap()))
        .await;
    assert_eq!(r.body["status"], "completed");
    assert_eq!(r.body["duration"], 60);
    // Another account's clock did not move.
    assert_eq!(them.clock().await, their_start);
}
